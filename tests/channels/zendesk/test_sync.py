"""Zendesk's sync end to end: extract, dbt, ``run_sync`` over HTTP, the world's truth.

The sandbox serves a small world; the commerce taps and tap-zendesk extract it into a
fresh warehouse database; dbt builds ``sync_zendesk__recent_buyers`` (identity
resolution links help-desk users to buyers) and its tests; ``run_sync`` pushes it to
the sandbox's Zendesk. The help desk must then tag exactly the users the world says
(:func:`expected_recent_buyer_users`), with the date of the last order, leave every
other tag alone, and a second run sends nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from omnicanal.channels import IDENTITY_SOURCES_ENV, get_channel
from omnicanal.channels.zendesk.truth import (
    RECENT_BUYER_TAG,
    expected_recent_buyer_users,
    held_recent_buyer_users,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
PLATFORMS = ("shopify", "square", "vtex", "zendesk")
SEED = 20250716
AS_OF = datetime(2025, 7, 16, 12, 0, 0, tzinfo=UTC)
MODEL = "sync_zendesk__recent_buyers"


def _dbt(url: str, workdir: Path, *args: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(url)
    env = {
        **os.environ,
        "OMNICANAL_PG_HOST": str(info.get("host", "127.0.0.1")),
        "OMNICANAL_PG_PORT": str(info.get("port", "5432")),
        "OMNICANAL_PG_USER": str(info.get("user", "postgres")),
        "OMNICANAL_PG_PASSWORD": str(info.get("password", "")),
        "OMNICANAL_PG_DBNAME": str(info["dbname"]),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        IDENTITY_SOURCES_ENV: json.dumps(
            [feed.as_var(name) for name in PLATFORMS for feed in get_channel(name).identity]
        ),
    }
    command = [
        str(Path(sys.executable).with_name("dbt")),
        *args,
        "--vars",
        json.dumps({"as_of": AS_OF.isoformat()}),
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(workdir / "target"),
        "--log-path",
        str(workdir / "logs"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def built(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """(warehouse url, world, sandbox) with the Zendesk sync model built."""
    from omnicanal.config import WarehouseURL
    from omnicanal.extract import run_extract
    from omnicanal.sandbox import SandboxServer, generate_world
    from omnicanal.settings import get_settings

    admin = WarehouseURL.parse(pg_admin_url)
    dbname = f"omnicanal_zendesk_{uuid.uuid4().hex[:10]}"
    url = WarehouseURL(admin.host, admin.port, admin.user, admin.password, dbname).url()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    world = generate_world(60, SEED, as_of=AS_OF)
    workdir = tmp_path_factory.mktemp("zendesk_sync")
    try:
        with SandboxServer(world) as sandbox, pytest.MonkeyPatch.context() as patch:
            patch.setenv("OMNICANAL_WAREHOUSE_URL", url)
            patch.setenv("OMNICANAL_HOME", str(workdir / "home"))
            patch.setenv("OMNICANAL_SANDBOX_PORT", str(sandbox.port))
            patch.setenv("OMNICANAL_ZENDESK_API_URL", sandbox.url)
            for name in PLATFORMS:
                run_extract(get_settings(), name, full_refresh=True)
            _dbt(url, workdir, "build", "--select", f"+{MODEL}", "--indirect-selection", "empty")
            _dbt(url, workdir, "test", "--select", MODEL)
            yield url, world, sandbox
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname))
            )


def test_the_help_desk_tags_the_worlds_recent_buyers(built) -> None:
    from omnicanal.activation.engine import run_sync
    from omnicanal.settings import get_settings

    url, world, sandbox = built
    emulator = sandbox.app.state.zendesk
    truth = expected_recent_buyer_users(world)
    assert len(truth) >= 3, "the world must have recent buyers with a help-desk account"
    # an agent's own tag on one of them must survive the sync
    first_email = next(iter(truth))
    agent_tagged = emulator.writes.user_by_email(first_email)
    emulator.writes.tags(str(agent_tagged["id"]), "PUT", {"tags": ["cliente_reclamou"]})

    first = run_sync(get_settings(), "zendesk__recent_buyers")
    tagged = emulator.writes.tagged(RECENT_BUYER_TAG)
    with psycopg.connect(url) as conn:
        model = conn.execute(f"select * from activation.{MODEL}").fetchall()
    assert set(tagged) == set(truth), (sorted(set(truth) ^ set(tagged)), model)
    assert first.failed == 0 and first.pending == 0
    assert first.inserted == len(truth)
    assert held_recent_buyer_users(emulator) == truth
    assert "cliente_reclamou" in emulator.writes.user_by_email(first_email)["tags"]
    assert emulator.writes.users_created == 0  # they all had a help-desk account

    requests = emulator.request_count
    second = run_sync(get_settings(), "zendesk__recent_buyers")
    assert second.sent == 0 and second.unchanged == len(truth)
    assert emulator.request_count == requests  # nothing went over the wire
