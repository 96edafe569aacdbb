"""Running the receiver: in the foreground (``omnicanal webhooks serve``) or as a child
process that tests, the bench and the demo start, SIGKILL and restart.

The child is ``python -m omnicanal.webhooks serve --fd N``: the parent binds the
listening socket and hands it down, so a restarted child answers on the same port
and no port is ever raced for; connections made while no child runs wait in the
socket's backlog, as they would behind a load balancer.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx
import uvicorn

from omnicanal.config import Settings
from omnicanal.errors import OmnicanalError
from omnicanal.webhooks.app import WebhookSecrets, create_app
from omnicanal.webhooks.store import EventStore


def channels_from_settings(settings: Settings) -> dict[str, WebhookSecrets]:
    """Every registry channel whose source is delivered by webhook, with its secrets
    (its settings' ``app_secret`` and ``verify_token``)."""
    from omnicanal.channels import CHANNELS

    found = {}
    for name, channel in CHANNELS.items():
        if channel.source is None or channel.source.delivery != "webhook":
            continue
        values = settings.channel(name)
        found[name] = WebhookSecrets(values.app_secret, values.verify_token)
    return found


def run(
    store_dir: str | Path,
    channels: Mapping[str, WebhookSecrets],
    read_token: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8788,
    sock: socket.socket | None = None,
    log_level: str = "warning",
) -> None:
    """Serve until SIGINT/SIGTERM, then commit what is queued and close the store."""
    if not channels:
        raise OmnicanalError(
            "no channel is delivered by webhook: the registry has no channel whose "
            "source.delivery is 'webhook'"
        )
    store = EventStore(store_dir)
    try:
        app = create_app(store, channels, read_token)
        # No access log: the handshake's URL carries the verify token.
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level.lower(),
            access_log=False,
            lifespan="on",
            server_header=False,
        )
        server = uvicorn.Server(config)
        server.run(sockets=[sock] if sock is not None else None)
    finally:
        store.close()


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """``omnicanal webhooks serve``: the registry's webhook channels, the settings' store."""
    run(
        settings.webhooks_dir,
        channels_from_settings(settings),
        settings.webhooks_read_token,
        host=host or settings.webhooks_host,
        port=port or settings.webhooks_port,
        log_level=settings.log_level,
    )


class WebhooksProcess:
    """The receiver in a child process (own process group), as a context manager.

    ``port=0`` picks a free port. ``channels`` defaults to the registry's webhook
    channels read from ``env`` (the process environment by default); ``log_path``
    collects the child's output (default: this process's)::

        with WebhooksProcess(tmp / "store", {"whatsapp": WebhookSecrets("s", "v")}) as rx:
            httpx.post(f"{rx.url}/webhooks/whatsapp", ...)
            rx.kill()      # SIGKILL the whole group
            rx.start()     # same store, same port
    """

    def __init__(
        self,
        store_dir: str | Path,
        channels: Mapping[str, WebhookSecrets] | None = None,
        *,
        read_token: str = "omnicanal-webhooks-sandbox",
        host: str = "127.0.0.1",
        port: int = 0,
        env: Mapping[str, str] | None = None,
        log_path: str | Path | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.channels = dict(channels) if channels is not None else None
        self.read_token = read_token
        self.host = host
        self._requested_port = port
        self._env = dict(os.environ if env is None else env)
        self._startup_timeout = startup_timeout
        self.log_path = Path(log_path) if log_path else None
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen | None = None
        self._config: Path | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the receiver is not running; use it as a context manager")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _listen(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError as exc:
            sock.close()
            raise OmnicanalError(
                f"cannot listen on {self.host}:{self._requested_port} ({exc}); "
                "pick another port or stop what is using it"
            ) from exc
        sock.listen(2048)
        sock.set_inheritable(True)
        return sock

    def _write_config(self) -> Path:
        # Secrets go to the child in a private file, never on its command line.
        fd, name = tempfile.mkstemp(prefix="omnicanal-webhooks-", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            json.dump(
                {
                    "read_token": self.read_token,
                    "channels": (
                        None
                        if self.channels is None
                        else {n: vars(s) for n, s in self.channels.items()}
                    ),
                },
                handle,
            )
        return Path(name)

    def start(self) -> WebhooksProcess:
        """Start the child (again, after a kill) and wait until ``/healthz`` answers."""
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("the receiver is already running")
        if self._sock is None:
            self._sock = self._listen()
            self.port = self._sock.getsockname()[1]
        if self._config is None:
            self._config = self._write_config()
        cmd = [
            sys.executable,
            "-m",
            "omnicanal.webhooks",
            "serve",
            "--fd",
            str(self._sock.fileno()),
            "--dir",
            str(self.store_dir),
            "--config-file",
            str(self._config),
        ]
        log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                cmd,
                pass_fds=(self._sock.fileno(),),
                start_new_session=True,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
            )
        finally:
            if log:
                log.close()
        self._wait_until_healthy()
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"the receiver exited with status {self._proc.returncode}")
            try:
                answer = httpx.get(f"{self.url}/healthz", timeout=1.0)
                if answer.status_code == 200 and answer.json().get("pid") == self._proc.pid:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"the receiver did not answer on {self.url}/healthz in time")

    def _signal(self, sig: int, timeout: float) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def kill(self) -> None:
        """SIGKILL the child's process group at once (a crash); the socket stays open."""
        self._signal(signal.SIGKILL, 10)

    def terminate(self) -> None:
        """SIGTERM: the child commits what is queued and exits."""
        self._signal(signal.SIGTERM, 15)

    def stop(self) -> None:
        """Terminate the child and release the port and the secrets file."""
        self.terminate()
        self._proc = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._config is not None:
            self._config.unlink(missing_ok=True)
            self._config = None

    def __enter__(self) -> WebhooksProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
