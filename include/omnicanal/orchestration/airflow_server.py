"""A real Airflow 3 deployment on this machine, for tests and benchmarks.

``AirflowCluster`` runs the four components a production deployment runs
(api-server, scheduler, dag-processor, triggerer), each as its own process in its own
process group, with the LocalExecutor, on a free port, in a private ``AIRFLOW_HOME``.
Unlike ``dag.test()`` this measures and exercises what a data engineer sees after
``make ui``: tasks queued by the scheduler, started by the executor, reporting to the
API server through the Task Execution API.

Metadata database: a database ``airflow_<hash of home>`` on the warehouse's Postgres
server, reached with psycopg 3 (``postgresql+psycopg://``, which Airflow's SQLAlchemy
accepts). SQLite was rejected: with LocalExecutor the scheduler, the dag-processor,
the api-server and every task process write concurrently, and SQLite serialises
them ("database is locked") and forces SequentialExecutor-like behaviour.
A fresh database per home also keeps one cluster's runs out of another's.

Auth: Airflow 3's simple auth manager with one admin user whose password we write into
the passwords file, so a client (the REST helper below, or a browser) can log in;
``POST /auth/token`` gives the JWT the REST API v2 wants.

Usage::

    with AirflowCluster(settings, home=tmp / "airflow") as cluster:
        cluster.api.wait_for_dags(["omnicanal_pipeline"], timeout=120)
        run_id = cluster.api.trigger("omnicanal_pipeline")
        assert cluster.api.wait_for_run("omnicanal_pipeline", run_id, timeout=600) == "success"
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx
import psycopg
from psycopg import sql

from omnicanal.config import Settings, WarehouseURL
from omnicanal.errors import OmnicanalError
from omnicanal.orchestration.airflow_env import airflow_env

COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
FINAL_RUN_STATES = ("success", "failed")


class AirflowClusterError(OmnicanalError):
    """The local Airflow deployment failed to start or to answer."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _warehouse_url(settings: Settings) -> WarehouseURL:
    """The warehouse server's URL parts, by whichever function this version offers."""
    from omnicanal import warehouse

    url = getattr(warehouse, "url", None)
    return url(settings) if callable(url) else settings.warehouse()


def metadata_db_name(home: Path) -> str:
    """One metadata database per Airflow home, so clusters never share run history."""
    digest = hashlib.sha1(str(home.resolve()).encode()).hexdigest()[:12]
    return f"airflow_{digest}"


def ensure_metadata_db(server: WarehouseURL, name: str) -> str:
    """Create database ``name`` on the server if missing; its SQLAlchemy URL for Airflow."""
    admin = WarehouseURL(server.host, server.port, server.user, server.password, "postgres")
    try:
        with psycopg.connect(admin.url(), autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (name,))
            if exists.fetchone() is None:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        raise AirflowClusterError(
            f"cannot reach the warehouse's Postgres at {server.redacted()} to create "
            f"Airflow's metadata database: {exc}. Start it with `omnicanal warehouse up` "
            "or set OMNICANAL_WAREHOUSE_URL."
        ) from None
    db = WarehouseURL(server.host, server.port, server.user, server.password, name)
    return db.url().replace("postgresql://", "postgresql+psycopg://", 1)


def drop_metadata_db(settings: Settings, home: Path) -> None:
    """Drop the metadata database of ``home`` (benchmarks start from a clean history)."""
    server = _warehouse_url(settings)
    admin = WarehouseURL(server.host, server.port, server.user, server.password, "postgres")
    with psycopg.connect(admin.url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(metadata_db_name(home))
            )
        )


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class AirflowAPI:
    """Airflow's REST API v2 over httpx; the bearer token is fetched again on a 401."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 30.0) -> None:
        self.url = url
        self.username = username
        self.password = password
        self._client = httpx.Client(base_url=url, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self._client.close()

    def token(self) -> str:
        """A JWT for the admin user from ``POST /auth/token``."""
        response = self._client.post(
            "/auth/token", json={"username": self.username, "password": self.password}
        )
        if response.status_code >= 400:
            raise AirflowClusterError(
                f"login as {self.username!r} failed ({response.status_code}): {response.text}"
            )
        self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs) -> dict:
        """One call under ``/api/v2``; raises with the server's message on an error."""
        full = path if path.startswith("/") else f"/api/v2/{path}"
        for attempt in (0, 1):
            headers = {"Authorization": f"Bearer {self._token or self.token()}"}
            response = self._client.request(method, full, headers=headers, **kwargs)
            if response.status_code == 401 and attempt == 0:
                self._token = None
                continue
            break
        if response.status_code >= 400:
            raise AirflowClusterError(
                f"{method} {full} answered {response.status_code}: {response.text[:2000]}"
            )
        return response.json() if response.content else {}

    def get(self, path: str, **params) -> dict:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: dict | None = None) -> dict:
        return self.request("POST", path, json=json or {})

    def patch(self, path: str, json: dict | None = None, **params) -> dict:
        return self.request("PATCH", path, json=json or {}, params=params)

    def import_errors(self) -> list[dict]:
        return self.get("importErrors", limit=100)["import_errors"]

    def wait_for_dags(self, dag_ids: list[str], timeout: float) -> None:
        """Until the dag-processor has parsed every DAG in ``dag_ids``; raises with the
        import errors if it has not within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        missing = set(dag_ids)
        while True:
            known = {d["dag_id"] for d in self.get("dags", limit=1000)["dags"]}
            missing = set(dag_ids) - known
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AirflowClusterError(
                    f"DAGs {sorted(missing)} were not parsed within {timeout:.0f}s; "
                    f"import errors: {self.import_errors()}"
                )
            time.sleep(0.5)

    def unpause(self, dag_id: str) -> None:
        self.patch(f"dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """Start a run now; its ``dag_run_id``."""
        run = self.post(f"dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"dags/{dag_id}/dagRuns/{run_id}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float, poll: float = 0.5) -> str:
        """The run's final state (success or failed); raises after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run(dag_id, run_id)["state"]
            if state in FINAL_RUN_STATES:
                return state
            if time.monotonic() > deadline:
                raise AirflowClusterError(
                    f"run {run_id} of {dag_id} still {state} after {timeout:.0f}s"
                )
            time.sleep(poll)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """Every task instance of the run, page by page (the API serves at most
        ``[api] maximum_page_limit``, 100 by default, whatever ``limit`` asks)."""
        found: list[dict] = []
        while True:
            page = self.get(
                f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100, offset=len(found)
            )
            found += page["task_instances"]
            if not page["task_instances"] or len(found) >= page.get("total_entries", 0):
                return found


class AirflowCluster:
    """api-server, scheduler, dag-processor and triggerer with LocalExecutor, as a
    context manager that stops every process it started."""

    def __init__(
        self,
        settings: Settings,
        *,
        home: Path,
        port: int = 0,
        env: dict[str, str] | None = None,
        parallelism: int = 4,
        startup_timeout: float = 180.0,
    ) -> None:
        self.settings = settings
        self.home = Path(home).resolve()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.username = "admin"
        self.password = "omnicanal-admin"
        self.logs_dir = self.home / "component-logs"
        self.parallelism = parallelism
        self.startup_timeout = startup_timeout
        self.extra_env = dict(env or {})
        self.env: dict[str, str] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.api = AirflowAPI(self.url, self.username, self.password)

    # -- environment --------------------------------------------------------------

    def build_env(self) -> dict[str, str]:
        """The environment every component (and every task process) runs in."""
        base = airflow_env(self.settings)
        db_url = ensure_metadata_db(_warehouse_url(self.settings), metadata_db_name(self.home))
        passwords = self.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({self.username: self.password}))
        # Components must agree on the secrets: tasks authenticate to the Task Execution
        # API with JWTs the scheduler signs and the api-server checks.
        secret_file = self.home / ".cluster-secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(64))
        secret = secret_file.read_text().strip()
        overrides = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            # Airflow would derive the async URL as postgresql+asyncpg (not installed);
            # psycopg 3 is async too, so the same URL serves both engines.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db_url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            # The scheduler and the triggerer serve task logs on fixed ports by default
            # (8793, 8794): free ones let two clusters (a test and a benchmark) coexist.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            # A task process reports to the api-server's one worker before it starts; on
            # two busy cores that answer took over the 5 s default four times in a row
            # and the task failed without running (a CI rehearsal at load 6): wait longer.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            "AIRFLOW__API__SECRET_KEY": secret,
            "AIRFLOW__API_AUTH__JWT_SECRET": secret,
            # A new DAG file should appear in seconds, not after the 300 s production
            # default: list the folder every 5 s. Unchanged files are re-parsed every
            # 2 min instead of 30 s: each parse of a Cosmos DAG file is CPU taken from
            # the tasks, and a test or a benchmark does not edit its DAG files.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
            "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "1",
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "1",
            # Two cores: two parsing processes would compete with running tasks.
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "0",
            # The scheduler's loop and heartbeats stay at their defaults (1 s, 5 s): on
            # two cores a busier scheduler takes CPU from the tasks, and the dbt DAG's
            # tasks do not wait on each other (omnicanal.orchestration.dbt_watch).
            # Evaluate every runnable task of a run in one loop (default 16 per loop).
            "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "0",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get(
                "AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"
            ),
        }
        return {**os.environ, **base, **overrides, **self.extra_env}

    # -- lifecycle ----------------------------------------------------------------

    def _airflow(self) -> str:
        return str(Path(sys.executable).parent / "airflow")

    def migrate(self) -> None:
        """``airflow db migrate`` on the metadata database (fast when up to date)."""
        log = self.logs_dir / "db-migrate.log"
        with log.open("wb") as out:
            result = subprocess.run(
                [self._airflow(), "db", "migrate"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if result.returncode != 0:
            raise AirflowClusterError(
                f"`airflow db migrate` failed (exit {result.returncode}); last lines of "
                f"{log}:\n{_tail(log)}"
            )

    def _start(self, component: str) -> None:
        args = [self._airflow(), component]
        if component == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        log = (self.logs_dir / f"{component}.log").open("wb")
        self.procs[component] = subprocess.Popen(
            args,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.home,
            start_new_session=True,
        )
        log.close()

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = self.logs_dir / f"{name}.log"
                raise AirflowClusterError(
                    f"Airflow's {name} exited with code {proc.returncode} while starting; "
                    f"last lines of {log}:\n{_tail(log)}"
                )

    def health(self) -> dict:
        """``/api/v2/monitor/health`` (no login needed)."""
        return httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last: object = "no answer"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                last = self.health()
            except (httpx.HTTPError, ValueError) as exc:
                last = exc
            else:
                parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
                if all((last.get(p) or {}).get("status") == "healthy" for p in parts):
                    return
            time.sleep(0.5)
        raise AirflowClusterError(
            f"Airflow at {self.url} was not healthy within {self.startup_timeout:.0f}s "
            f"(last health: {last}); component logs are in {self.logs_dir}"
        )

    def start(self) -> AirflowCluster:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.env = self.build_env()
        self.migrate()
        try:
            for component in COMPONENTS:
                self._start(component)
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _signal_all(self, sig: signal.Signals) -> None:
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _wait_all(self, until: float) -> bool:
        """Wait for every leader to exit until the monotonic time ``until``; all gone?"""
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.05, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every component's process group, again after 5 s (the scheduler's
        LocalExecutor waits for running tasks until a second signal), and SIGKILL
        whatever is left of the groups after ``grace`` seconds."""
        if self.procs:
            started = time.monotonic()
            self._signal_all(signal.SIGTERM)
            if not self._wait_all(started + min(5.0, grace)):
                self._signal_all(signal.SIGTERM)
                self._wait_all(started + grace)
            # A group may outlive its leader (task processes, uvicorn workers).
            self._signal_all(signal.SIGKILL)
            for proc in self.procs.values():
                proc.wait()
            self.procs.clear()
        self.api.close()

    def __enter__(self) -> AirflowCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
