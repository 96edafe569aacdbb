"""The WhatsApp abandoned-checkout campaign end to end: taps → warehouse → dbt → sync →
the Cloud API → webhooks → the ledger.

A world of 200 people is served by the sandbox, with a webhook receiver of its own; the
commerce taps extract it into a fresh warehouse database, dbt builds
``sync_whatsapp__abandoned_checkout`` and ``customer_consent`` (with identity and the
customer marts beneath them), and ``omnicanal sync`` runs the
``whatsapp__abandoned_checkout`` exposure over HTTP against the emulated Cloud API. The
emulation must then have received exactly one ``carrinho_abandonado`` template for each
checkout of the world's ground truth (``channels.whatsapp.truth``: opted-in people only),
with the right number and parameters. The messages' statuses, posted by the emulation to
the receiver, come back into ``omnicanal_activation.message_statuses`` (a number that is
not on WhatsApp fails there with 131026, visible in ``omnicanal whatsapp statuses``); a
second run sends nothing.

Meta publishes no official Python client for the Cloud API (the PyPI packages are
third parties' wrappers), so requests are checked against its documented shapes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from omnicanal.channels import IDENTITY_SOURCES_ENV, get_channel
from omnicanal.channels.whatsapp.truth import (
    ABANDONED_CHECKOUT_LANGUAGE,
    ABANDONED_CHECKOUT_TEMPLATE,
    expected_abandoned_checkouts,
    received_abandoned_checkouts,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
PLATFORMS = ("shopify", "square", "vtex", "mailchimp")
SEED = 20250601
AS_OF = datetime(2025, 6, 1, 15, 0, 0, tzinfo=UTC)
SYNC = "whatsapp__abandoned_checkout"
MODEL = "sync_whatsapp__abandoned_checkout"


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


def _digits(phone: str) -> str:
    """A Brazilian mobile's digits with its ninth digit, however it was written."""
    digits = re.sub(r"\D", "", phone)
    if digits.startswith("55") and len(digits) == 12 and digits[4] in "6789":
        digits = digits[:4] + "9" + digits[4:]
    return digits


@pytest.fixture
def warehouse_db(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch):
    from omnicanal.config import WarehouseURL

    admin = WarehouseURL.parse(pg_admin_url)
    dbname = f"omnicanal_wa_sync_{uuid.uuid4().hex[:10]}"
    url = WarehouseURL(admin.host, admin.port, admin.user, admin.password, dbname).url()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    monkeypatch.setenv("OMNICANAL_WAREHOUSE_URL", url)
    try:
        yield url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname))
            )


def test_one_template_per_opted_in_checkout_statuses_back_and_a_second_run_sends_none(
    warehouse_db: str,
    webhook_emulations: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from omnicanal.activation.engine import run_sync
    from omnicanal.channels.whatsapp.statuses import collect_statuses, status_counts
    from omnicanal.cli import main
    from omnicanal.demo import start_webhooks
    from omnicanal.extract import run_extract
    from omnicanal.sandbox import SandboxServer, generate_world
    from omnicanal.settings import get_settings

    world = generate_world(200, SEED, as_of=AS_OF)  # its own: the sync writes to it
    expected = expected_abandoned_checkouts(world)
    segment = expected_abandoned_checkouts(world, opted_in_only=False)
    assert len(expected) >= 5 and len(segment) > len(expected)
    # someone with two abandoned checkouts: two messages, 6 s apart (pair rate limit)
    assert max(Counter(c["person_id"] for c in expected.values()).values()) >= 2

    with ExitStack() as stack:
        sandbox = stack.enter_context(SandboxServer(world, **webhook_emulations))
        monkeypatch.setenv("OMNICANAL_SANDBOX_PORT", str(sandbox.port))
        emulator = sandbox.app.state.emulators["whatsapp"]
        start_webhooks(get_settings(), sandbox, stack)  # the receiver, and the backlog
        for name in PLATFORMS:
            run_extract(get_settings(), name, full_refresh=True)
        # the models (their upstream tests belong to their own suites), then this one's
        _dbt(
            warehouse_db,
            tmp_path,
            "build",
            "--select",
            f"+{MODEL}",
            "+customer_consent",
            "--exclude-resource-type",
            "test",
            "unit_test",
        )
        _dbt(warehouse_db, tmp_path, "test", "--select", MODEL)

        # one expected recipient has no WhatsApp account: the message is accepted, then fails
        gone_id, gone = sorted(expected.items())[0]
        for wa_id, person_id in list(emulator.accounts.items()):
            if person_id == gone["person_id"]:
                del emulator.accounts[wa_id]
        failing = {k for k, c in expected.items() if c["person_id"] == gone["person_id"]}

        first = run_sync(get_settings(), SYNC)
        assert (first.inserted, first.failed, first.pending) == (len(expected), 0, 0), first
        assert first.withheld == len(segment) - len(expected), first

        sent = emulator.templates_sent()
        checkouts = Counter(m["biz_opaque_callback_data"].split(":")[1] for m in sent)
        assert checkouts == Counter(set(expected)), "one message per expected checkout"
        assert set(received_abandoned_checkouts(sent)) == set(expected)
        for message in sent:
            truth = expected[message["biz_opaque_callback_data"].split(":")[1]]
            assert (message["name"], message["language"]) == (
                ABANDONED_CHECKOUT_TEMPLATE,
                ABANDONED_CHECKOUT_LANGUAGE,
            )
            assert _digits(message["to"]) == _digits(truth["to"]), (message, truth)
            assert message["parameters"] == {
                "first_name": truth["first_name"],
                "cart_total": truth["cart_total"],
                "checkout_url": truth["checkout_url"],
            }
        # the sync's ledger keeps each message's key; the destination said what it did
        stats = first.destination_stats or {}
        assert stats.get("accepted") == len(expected), stats

        # Meta posts the statuses; the next run reads them into the ledger (at its end)
        emulator.deliver()
        second = run_sync(get_settings(), SYNC)
        assert second.sent == 0 and second.inserted == 0, second
        # the run read them (its stats, shown by `omnicanal sync status`)
        read = (second.destination_stats or {}).get("statuses_read") or {}
        assert read.get("failed") == len(failing), second.destination_stats
        assert read.get("sent") == len(expected) - len(failing), second.destination_stats
        assert len(emulator.templates_sent()) == len(expected)

        with psycopg.connect(warehouse_db) as conn:
            rows = conn.execute(
                "select message_id, sync_name, record_key, status, error_code, error "
                "from omnicanal_activation.message_statuses"
            ).fetchall()
        by_message = {m["id"]: m for m in sent}
        assert {r[0] for r in rows} == set(by_message)
        for message_id, sync_name, key, status, code, error in rows:
            message = by_message[message_id]
            assert (sync_name, key) == (SYNC, message["biz_opaque_callback_data"])
            checkout = key.split(":")[1]
            if checkout in failing:
                assert (status, code) == ("failed", 131026) and "undeliverable" in error.lower()
            else:
                wanted = "read" if emulator.reads_receipts(message["wa_id"]) else "delivered"
                assert (status, code, error) == (wanted, None, None), (key, status)

        # nothing new: nothing read; every event read again (from a lost bookmark, so in
        # any order against what is stored) changes nothing
        assert collect_statuses(get_settings()).statuses == 0
        with psycopg.connect(warehouse_db) as conn:
            conn.execute("update omnicanal_activation.message_status_bookmarks set after_seq = 0")
        again = collect_statuses(get_settings())
        assert again.statuses >= 2 * len(expected) and again.unmatched > 0, again
        with psycopg.connect(warehouse_db) as conn:
            replayed = conn.execute(
                "select message_id, sync_name, record_key, status, error_code, error "
                "from omnicanal_activation.message_statuses"
            ).fetchall()
            counts = status_counts(conn, SYNC)
        assert sorted(replayed) == sorted(rows)
        assert counts[0]["failed"] == len(failing)
        assert {f["record_key"].split(":")[1] for f in counts[0]["failures"]} == failing

    # the CLI shows the failure (the ledger only: the receiver is gone)
    from io import StringIO

    out = StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["whatsapp", "statuses", SYNC, "--no-read"]) == 0
    shown = out.getvalue()
    assert f"{len(failing)} failed" in shown and "131026" in shown, shown
