"""The sandbox as a web app: every emulated API over one world, and ways to run it.

``create_app`` mounts the emulation of every channel in the registry on one FastAPI
app;
``SandboxServer`` runs it on a local port in a background thread for tests and the
demo; ``serve`` runs it in the foreground from a world file, which is what
``omnicanal sandbox serve`` calls; ``generate_world_file`` is the
``omnicanal sandbox world`` side.
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
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from omnicanal.channels import CHANNELS
from omnicanal.config import Settings
from omnicanal.sandbox.world import World, generate_world

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787


def emulation_options(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each channel's emulator options from the settings: the credentials the taps and
    destinations will present, and where an emulation keeps its state."""
    return {
        name: channel.emulation.options_from_settings(settings)
        for name, channel in CHANNELS.items()
        if channel.emulation
    }


def create_app(world: World, **channel_options: dict[str, Any]) -> FastAPI:
    """Build the sandbox app serving ``world``: every channel's emulation, mounted.

    ``channel_options`` are keyword arguments for one channel's emulator, by channel
    name, e.g. ``create_app(world, shopify={"bucket_size": 10_000})``; pass
    ``**emulation_options(settings)`` to use the configured credentials. Each emulator is
    reachable for tests as ``app.state.<channel>`` (``app.state.shopify``,
    ``app.state.mailchimp``) and in ``app.state.emulators``, the world as
    ``app.state.world``; ``GET /healthz`` answers when the app is up.
    """
    unknown = set(channel_options) - {n for n, c in CHANNELS.items() if c.emulation}
    if unknown:
        raise TypeError(f"no channel with an emulation is called {', '.join(sorted(unknown))}")
    app = FastAPI(
        title="omnicanal sandbox",
        description="Emulated platform APIs over one synthetic world: "
        + ", ".join(c.title for c in CHANNELS.values() if c.emulation)
        + ".",
        docs_url="/_sandbox/docs",
        redoc_url=None,
        openapi_url="/_sandbox/openapi.json",
    )
    app.state.world = world
    app.state.emulators = {}
    for name, channel in CHANNELS.items():
        if channel.emulation is None:
            continue
        emulator = channel.emulation.build(world, dict(channel_options.get(name, {})))
        app.include_router(emulator.router)
        app.state.emulators[name] = emulator
        setattr(app.state, name, emulator)

    @app.exception_handler(StarletteHTTPException)
    async def platform_error_body(request: Request, exc: StarletteHTTPException) -> Response:
        """A path no route serves: the platform whose credentials the request carries
        answers with its own error body (each emulation's ``unknown_path``, asked in
        turn), as its host would; FastAPI's ``{"detail": ...}`` only for the rest, and
        for errors a route raised itself."""
        if exc.status_code == 404 and "endpoint" not in request.scope:
            for emulator in app.state.emulators.values():
                answer = getattr(emulator, "unknown_path", None)
                response = answer(request) if answer is not None else None
                if response is not None:
                    return response
        return await http_exception_handler(request, exc)

    @app.get("/healthz", tags=["sandbox"])
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "seed": world.seed,
            "as_of": world.as_of.isoformat(),
            "people": len(world.people),
            "channels": sorted(app.state.emulators),
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
    log_level: str = "info",
    **channel_options: dict[str, Any],
) -> None:
    """Serve the world in ``world_path`` in the foreground until interrupted (Ctrl-C).

    ``channel_options`` as for :func:`create_app`. Mutations made through the API
    (touched Shopify records) live in memory only; the world file is never written.
    """
    path = Path(world_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no world file at {path}; create one with `omnicanal sandbox world`"
        )
    app = create_app(World.from_json(path), **channel_options)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
