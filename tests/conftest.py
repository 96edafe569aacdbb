"""Shared fixtures: a real Postgres server and a fresh database per test that needs one,
and a fixed sandbox world with servers over it.

The server is the one ``OMNICANAL_WAREHOUSE_URL`` points at, or else the embedded
warehouse (started here if it was not running, and stopped again at the end).
Airflow is pointed at a private home before anything imports it. The world has a fixed
``as_of`` so every assertion is reproducible; servers bind port 0 so parallel runs
never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
TEST_HOME = PROJECT_DIR / ".omnicanal" / "test"

# Tests keep their state (embedded warehouse, Airflow home) apart from the demo's, and
# Airflow reads its configuration once, at import: set it before any test imports it.
os.environ.setdefault("OMNICANAL_PROJECT_DIR", str(PROJECT_DIR))
os.environ.setdefault("OMNICANAL_HOME", str(TEST_HOME))

# Under pytest-xdist (`make test PYTEST_WORKERS=N`) each worker keeps its own home
# (Airflow's SQLite metadata DB, dbt targets, identity runs) below the run's home, and
# they share one warehouse: the one the controller started (pytest_configure below),
# passed on as OMNICANAL_WAREHOUSE_URL, or the one the user named.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if WORKER:
    os.environ["OMNICANAL_HOME"] = str(Path(os.environ["OMNICANAL_HOME"]) / WORKER)


def _airflow_env() -> dict[str, str]:
    from omnicanal.orchestration.airflow_env import airflow_env
    from omnicanal.settings import get_settings

    return airflow_env(get_settings())


os.environ.update(_airflow_env())


def _parallel(config: pytest.Config) -> bool:
    """Whether this is the controller of a pytest-xdist run (``-n 2``)."""
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    """The controller of a parallel run starts the embedded warehouse once for all its
    workers (they would race to start it, and the first to finish would stop it under
    the other) and hands them its URL; it stops it again at the end if it started it."""
    if not _parallel(config):
        return
    from omnicanal import warehouse
    from omnicanal.settings import get_settings

    settings = get_settings()
    if not settings.uses_embedded_warehouse:
        return
    config._omnicanal_stack = ExitStack()
    url, _ = config._omnicanal_stack.enter_context(warehouse.running(settings))
    os.environ["OMNICANAL_WAREHOUSE_URL"] = url.url()


def pytest_unconfigure(config: pytest.Config) -> None:
    stack = getattr(config, "_omnicanal_stack", None)
    if stack is not None:
        os.environ.pop("OMNICANAL_WAREHOUSE_URL", None)
        stack.close()


# Tests that share a session fixture's costly set-up run on one worker; each module runs
# on one worker (module fixtures are built once), except where every test builds its own
# (these files are long, spread them). Longest first, so the workers finish together.
SHARED_FIXTURE_GROUPS = {"built_sync_pipeline": "sync_pipeline", "airflow_db": "airflow"}
SPREAD_MODULES = ("tests/identity/test_resolve.py", "tests/identity/test_term_frequencies.py")
LONGEST_FIRST = (
    "airflow",
    "tests/ui/test_airflow_ui.py",
    "tests/identity/test_term_frequencies.py::test_incremental_term_counts_equal_a_full_run",
    "sync_pipeline",
    "tests/activation/test_consent_pipeline.py",
    "tests/activation/test_consent_sources.py",
    "tests/identity/test_resolve.py::test_incremental_compares_the_pairs_of_a_split_component",
    "tests/identity/test_resolve.py::test_incremental_run_recomputes_only_the_affected_clusters",
    "tests/dbt/test_kpi_marts.py",
    "tests/privacy/test_erasure.py",
    "tests/channels/test_deletions.py",
    "tests/dbt/test_dbt_project.py",
    "tests/dbt/test_commerce_marts.py",
)


def _group(item: pytest.Item) -> str:
    for fixture, group in SHARED_FIXTURE_GROUPS.items():
        if fixture in getattr(item, "fixturenames", ()):
            return group
    module = item.nodeid.split("::")[0]
    return item.nodeid if module in SPREAD_MODULES else module


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist (``--dist loadgroup``), put each test in its group, longest first."""
    if not WORKER:
        return
    groups = {item.nodeid: _group(item) for item in items}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    rank = {group: n for n, group in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(groups[item.nodeid], len(rank)))


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a database we may create other databases from."""
    from omnicanal import warehouse
    from omnicanal.config import WarehouseURL
    from omnicanal.settings import get_settings

    with warehouse.running(get_settings()) as (url, _):
        yield WarehouseURL(url.host, url.port, url.user, url.password, "postgres").url()


@pytest.fixture
def fresh_db(pg_admin_url: str) -> Iterator[str]:
    """A new, empty database for one test; dropped afterwards."""
    from omnicanal.config import WarehouseURL

    name = f"omnicanal_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    admin = WarehouseURL.parse(pg_admin_url)
    yield WarehouseURL(admin.host, admin.port, admin.user, admin.password, name).url()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def warehouse_env(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point omnicanal's settings (in this process and its children) at a fresh database,
    and the Airflow connection the dbt tasks' profile comes from, as airflow_env does."""
    from omnicanal.orchestration.dbt import WAREHOUSE_CONN_ID

    monkeypatch.setenv("OMNICANAL_WAREHOUSE_URL", fresh_db)
    monkeypatch.setenv(f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}", fresh_db)
    return fresh_db


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata DB in the test home, migrated once (kept between sessions)."""
    import subprocess
    import sys

    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    marker = home / ".migrated"
    if not (marker.exists() and (home / "airflow.db").exists()):
        airflow = Path(sys.executable).parent / "airflow"
        subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
        marker.write_text("ok\n")
    return home


# -- the sync end-to-end tests' pipeline ------------------------------------------------


@pytest.fixture(scope="session")
def built_sync_pipeline(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory):
    """One world extracted and every sync model built, once (``sync_pipeline.py``)."""
    from sync_pipeline import sync_pipeline

    with sync_pipeline(pg_admin_url, tmp_path_factory.mktemp("syncs")) as built:
        yield built


@pytest.fixture
def sync_pipeline(built_sync_pipeline, monkeypatch: pytest.MonkeyPatch):
    """The built sync pipeline, with omnicanal's settings pointed at it for this test."""
    for name, value in built_sync_pipeline.env.items():
        monkeypatch.setenv(name, value)
    return built_sync_pipeline


# -- the sandbox ------------------------------------------------------------------------

AS_OF = datetime(2025, 6, 1, 15, 0, 0, tzinfo=UTC)
SEED = 20250601


@pytest.fixture(scope="session")
def world():
    """200 people, read-only: tests that mutate records use ``fresh_server``."""
    from omnicanal.sandbox import generate_world

    return generate_world(200, SEED, as_of=AS_OF)


@pytest.fixture(scope="module")
def server(world):
    """A sandbox over the shared world; tests on it must not change records."""
    from omnicanal.sandbox import SandboxServer

    with SandboxServer(world) as running:
        yield running


@pytest.fixture
def fresh_server():
    """A sandbox over its own copy of the world, for tests that mutate or throttle."""
    from omnicanal.sandbox import SandboxServer, generate_world

    with SandboxServer(generate_world(200, SEED, as_of=AS_OF)) as running:
        yield running


@pytest.fixture
def webhook_emulations(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict]:
    """A free port for this test's webhook receiver (``OMNICANAL_WEBHOOKS_PORT``), and
    the sandbox options of the webhook-fed channels' emulations (WhatsApp), which post
    to that receiver: pass them to ``SandboxServer``, then start the receiver and the
    deliveries with ``omnicanal.demo.start_webhooks``, as the demo does."""
    import socket

    from omnicanal.channels import sources
    from omnicanal.settings import get_settings

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        monkeypatch.setenv("OMNICANAL_WEBHOOKS_PORT", str(free.getsockname()[1]))
    settings = get_settings()
    return {
        c.name: c.emulation.options_from_settings(settings)
        for c in sources()
        if c.source.delivery == "webhook" and c.emulation
    }
