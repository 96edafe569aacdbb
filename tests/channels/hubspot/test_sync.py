"""HubSpot's syncs end to end: extract, dbt, ``run_sync`` over HTTP, the world's truth.

The sandbox serves a small world; the commerce taps extract it into a fresh warehouse
database; dbt builds the two HubSpot sync models (and their tests); ``run_sync`` pushes
them to the sandbox's HubSpot. Then the emulated portal must hold exactly what the
world says (the recent-buyers list, :func:`expected_recent_buyers_list`) or what the
model says (the customer attributes), and a second run sends nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from omnicanal.channels import IDENTITY_SOURCES_ENV, get_channel
from omnicanal.channels.hubspot.truth import (
    RECENT_BUYERS_LIST,
    expected_recent_buyers_list,
    held_recent_buyers_list,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
PLATFORMS = ("shopify", "square", "vtex")
SEED = 20250715
AS_OF = datetime(2025, 7, 15, 12, 0, 0, tzinfo=UTC)
MODELS = ("sync_hubspot__recent_buyers", "sync_hubspot__customer_attributes")


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
    """(warehouse url, world, sandbox) with the HubSpot sync models built."""
    from omnicanal.config import WarehouseURL
    from omnicanal.extract import run_extract
    from omnicanal.sandbox import SandboxServer, generate_world
    from omnicanal.settings import get_settings

    admin = WarehouseURL.parse(pg_admin_url)
    dbname = f"omnicanal_hubspot_{uuid.uuid4().hex[:10]}"
    url = WarehouseURL(admin.host, admin.port, admin.user, admin.password, dbname).url()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    world = generate_world(60, SEED, as_of=AS_OF)
    workdir = tmp_path_factory.mktemp("hubspot_sync")
    try:
        with SandboxServer(world) as sandbox, pytest.MonkeyPatch.context() as patch:
            patch.setenv("OMNICANAL_WAREHOUSE_URL", url)
            patch.setenv("OMNICANAL_HOME", str(workdir / "home"))
            patch.setenv("OMNICANAL_SANDBOX_PORT", str(sandbox.port))
            patch.setenv("OMNICANAL_HUBSPOT_API_URL", sandbox.url)
            # the commerce platforms (orders, customers) and Mailchimp (email consent)
            for name in (*PLATFORMS, "mailchimp"):
                run_extract(get_settings(), name, full_refresh=True)
            selected = [f"+{model}" for model in MODELS]
            if (DBT_PROJECT_DIR / "models/marts/customer/customer_consent.sql").exists():
                selected.append("+customer_consent")  # what the engine gates consent with
            # the models and seeds up to the sync models, then the sync models' own tests
            _dbt(url, workdir, "build", "--select", *selected, "--indirect-selection", "empty")
            _dbt(url, workdir, "test", "--select", *MODELS)
            yield url, world, sandbox
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname))
            )


def test_the_recent_buyers_list_holds_the_worlds_truth(built) -> None:
    from omnicanal.activation.engine import run_sync
    from omnicanal.settings import get_settings

    url, world, sandbox = built
    emulator = sandbox.app.state.hubspot
    truth = expected_recent_buyers_list(world)
    assert len(truth) >= 3, "the world must have recent buyers for this test to mean anything"

    first = run_sync(get_settings(), "hubspot__recent_buyers")
    assert first.failed == 0 and first.pending == 0
    assert first.inserted == len(truth)
    assert held_recent_buyers_list(emulator) == truth
    assert emulator.writes.list_by_name(RECENT_BUYERS_LIST).processing_type == "MANUAL"

    requests = emulator.request_count
    second = run_sync(get_settings(), "hubspot__recent_buyers")
    assert second.sent == 0 and second.unchanged == len(truth)
    assert emulator.request_count == requests  # nothing went over the wire


def test_customer_attributes_land_as_contact_properties(built) -> None:
    from omnicanal.activation.engine import run_sync
    from omnicanal.settings import get_settings

    url, world, sandbox = built
    emulator = sandbox.app.state.hubspot
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select email, lifetime_value, orders_count, is_omnichannel, preferred_channel, "
            "last_order_date from activation.sync_hubspot__customer_attributes"
        ).fetchall()
    assert len(rows) >= 5

    first = run_sync(get_settings(), "hubspot__customer_attributes")
    assert (first.inserted, first.failed, first.pending) == (len(rows), 0, 0)
    contacts = emulator.writes.contacts()
    for email, value, orders, omni, preferred, last_date in rows:
        held = contacts[email]
        assert Decimal(held["omnicanal_lifetime_value"]) == value, email
        assert int(held["omnicanal_orders_count"]) == orders
        assert held["omnicanal_is_omnichannel"] == ("true" if omni else "false")
        assert held["omnicanal_preferred_channel"] == preferred
        assert held["omnicanal_last_order_date"] == last_date.isoformat()
    kinds = {name: spec["type"] for name, spec in emulator.writes.properties.items()}
    assert kinds["omnicanal_lifetime_value"] == "number"
    assert kinds["omnicanal_last_order_date"] == "date"

    second = run_sync(get_settings(), "hubspot__customer_attributes")
    assert second.sent == 0 and second.unchanged == len(rows)
