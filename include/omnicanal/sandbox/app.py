"""The sandbox as a web app: every emulated API over one world, and ways to run it.

``create_app`` mounts the Shopify and Mailchimp emulators on one FastAPI app;
``SandboxServer`` runs it on a local port in a background thread for tests and the
demo; ``serve`` runs it in the foreground from a world file, which is what
``omnicanal sandbox serve`` calls; ``generate_world_file`` is the
``omnicanal sandbox generate`` side.
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from omnicanal.sandbox.mailchimp import (
    DEFAULT_LIST_ID,
    DEFAULT_MAILCHIMP_API_KEY,
    MailchimpEmulator,
)
from omnicanal.sandbox.shopify import (
    DEFAULT_BUCKET_SIZE,
    DEFAULT_LEAK_RATE,
    DEFAULT_SHOPIFY_TOKEN,
    ShopifyEmulator,
)
from omnicanal.sandbox.world import World, generate_world

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787


def create_app(
    world: World,
    *,
    shopify_token: str = DEFAULT_SHOPIFY_TOKEN,
    mailchimp_api_key: str = DEFAULT_MAILCHIMP_API_KEY,
    mailchimp_list_id: str = DEFAULT_LIST_ID,
    shopify_bucket_size: int = DEFAULT_BUCKET_SIZE,
    shopify_leak_rate: float = DEFAULT_LEAK_RATE,
    mailchimp_max_requests_per_second: int | None = None,
    mailchimp_state_path: str | Path | None = None,
) -> FastAPI:
    """Build the sandbox app serving ``world``.

    The emulators are reachable for tests as ``app.state.shopify``
    (``ShopifyEmulator``) and ``app.state.mailchimp`` (``MailchimpEmulator``), the world
    as ``app.state.world``. Shopify lives under ``/admin/api/2024-10``, Mailchimp under
    ``/3.0``, and ``GET /healthz`` answers when the app is up.
    """
    app = FastAPI(
        title="omnicanal sandbox",
        description="Emulated platform APIs (Shopify, Mailchimp) over one synthetic world.",
        docs_url="/_sandbox/docs",
        redoc_url=None,
        openapi_url="/_sandbox/openapi.json",
    )
    shopify = ShopifyEmulator(
        world,
        access_token=shopify_token,
        bucket_size=shopify_bucket_size,
        leak_rate=shopify_leak_rate,
    )
    mailchimp = MailchimpEmulator(
        api_key=mailchimp_api_key,
        list_ids=(mailchimp_list_id,),
        max_requests_per_second=mailchimp_max_requests_per_second,
        state_path=mailchimp_state_path,
    )
    app.state.world, app.state.shopify, app.state.mailchimp = world, shopify, mailchimp
    app.include_router(shopify.router)
    app.include_router(mailchimp.router)

    @app.get("/healthz", tags=["sandbox"])
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "seed": world.seed,
            "as_of": world.as_of.isoformat(),
            "people": len(world.people),
        }

    return app


class SandboxServer:
    """Run the sandbox on ``host:port`` in a background thread, as a context manager.

    ``port=0`` (the default) picks a free port, so parallel test runs never collide.
    Pass a ``World`` (plus ``create_app`` keyword arguments) or a ready ``FastAPI`` app::

        with SandboxServer(generate_world(200, seed=1)) as sandbox:
            httpx.get(f"{sandbox.url}/healthz")
            sandbox.app.state.mailchimp.members()
    """

    def __init__(
        self,
        world_or_app: World | FastAPI,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        startup_timeout: float = 10.0,
        **app_options: Any,
    ) -> None:
        if isinstance(world_or_app, FastAPI):
            if app_options:
                raise TypeError("app options only apply when a World is given, not an app")
            self.app = world_or_app
        else:
            self.app = create_app(world_or_app, **app_options)
        self.host = host
        self._requested_port = port
        self._startup_timeout = startup_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        if self.port is None:
            raise RuntimeError("the sandbox server is not running; use it as a context manager")
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        """Bind the port, start serving and wait until ``/healthz`` answers."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError as exc:
            sock.close()
            raise RuntimeError(
                f"cannot listen on {self.host}:{self._requested_port} ({exc}); "
                "pick another port or stop what is using it"
            ) from exc
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"omnicanal-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._wait_until_healthy()
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._thread is not None and not self._thread.is_alive():
                break
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the sandbox did not answer on {self.url}/healthz in time")

    def stop(self) -> None:
        """Ask uvicorn to finish and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server, self._thread = None, None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def generate_world_file(
    path: str | Path, *, people: int, seed: int, as_of: datetime | None = None
) -> World:
    """Generate a world and save it as JSON at ``path`` (parent folders are created).

    The file pins the world's ``as_of``: serving it later replays the same moment, so
    regenerate it when "recent" must mean recent to the wall clock.
    """
    world = generate_world(people, seed, as_of)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    world.to_json(target)
    return world


def serve(
    world_path: str | Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    shopify_token: str = DEFAULT_SHOPIFY_TOKEN,
    mailchimp_api_key: str = DEFAULT_MAILCHIMP_API_KEY,
    mailchimp_list_id: str = DEFAULT_LIST_ID,
    shopify_bucket_size: int = DEFAULT_BUCKET_SIZE,
    shopify_leak_rate: float = DEFAULT_LEAK_RATE,
    mailchimp_max_requests_per_second: int | None = None,
    mailchimp_state_path: str | Path | None = None,
    log_level: str = "info",
) -> None:
    """Serve the world in ``world_path`` in the foreground until interrupted (Ctrl-C).

    Mutations made through the API (Mailchimp members, touched Shopify records) live
    in memory only; the world file is never written.
    """
    path = Path(world_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no world file at {path}; create one with `omnicanal sandbox generate`"
        )
    app = create_app(
        World.from_json(path),
        shopify_token=shopify_token,
        mailchimp_api_key=mailchimp_api_key,
        mailchimp_list_id=mailchimp_list_id,
        shopify_bucket_size=shopify_bucket_size,
        shopify_leak_rate=shopify_leak_rate,
        mailchimp_max_requests_per_second=mailchimp_max_requests_per_second,
        mailchimp_state_path=mailchimp_state_path,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)
