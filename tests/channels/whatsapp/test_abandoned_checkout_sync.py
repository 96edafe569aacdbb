"""The WhatsApp abandoned-checkout campaign end to end: taps → warehouse → dbt → sync →
the Cloud API → webhooks → the ledger.

The sync tests' pipeline (``tests/sync_pipeline.py``: a world of 200 people served by
the sandbox, with a webhook receiver of its own, extracted by the real taps into a fresh
warehouse database, with dbt's build of ``sync_whatsapp__abandoned_checkout`` and
``customer_consent``, identity and the customer marts beneath them, and their tests,
done once for every sync test) is in place; ``omnicanal sync`` runs the
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

import re
import sys
from collections import Counter

import psycopg
import pytest

from omnicanal.channels.whatsapp.truth import (
    ABANDONED_CHECKOUT_LANGUAGE,
    ABANDONED_CHECKOUT_TEMPLATE,
    expected_abandoned_checkouts,
    received_abandoned_checkouts,
)

SYNC = "whatsapp__abandoned_checkout"


def _digits(phone: str) -> str:
    """A Brazilian mobile's digits with its ninth digit, however it was written."""
    digits = re.sub(r"\D", "", phone)
    if digits.startswith("55") and len(digits) == 12 and digits[4] in "6789":
        digits = digits[:4] + "9" + digits[4:]
    return digits


def test_one_template_per_opted_in_checkout_statuses_back_and_a_second_run_sends_none(
    sync_pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnicanal.activation.engine import run_sync
    from omnicanal.channels.whatsapp.statuses import collect_statuses, status_counts
    from omnicanal.cli import main
    from omnicanal.settings import get_settings

    world, warehouse_db = sync_pipeline.world, sync_pipeline.url
    expected = expected_abandoned_checkouts(world)
    segment = expected_abandoned_checkouts(world, opted_in_only=False)
    assert len(expected) >= 5 and len(segment) > len(expected)
    # someone with two abandoned checkouts: two messages, 6 s apart (pair rate limit)
    assert max(Counter(c["person_id"] for c in expected.values()).values()) >= 2
    emulator = sync_pipeline.sandbox.app.state.emulators["whatsapp"]

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

    # the CLI shows the failure (from the ledger only)
    from io import StringIO

    out = StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["whatsapp", "statuses", SYNC, "--no-read"]) == 0
    shown = out.getvalue()
    assert f"{len(failing)} failed" in shown and "131026" in shown, shown
