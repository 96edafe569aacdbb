"""End to end: Meta's deliveries → the receiver → tap-whatsapp → raw → staging → identity.

The emulation posts the world's chats to a real receiver (a child process), some
notifications twice, and a forger's posts are refused; the extract loads what the
receiver kept; staging deduplicates a redelivery that reached raw under another event
id, types the timestamps and pairs each business message with its statuses; identity
resolution reads each contact's wa_id (12 digits or 13) as the owner's phone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from omnicanal.channels import CHANNELS
from omnicanal.channels.whatsapp import SANDBOX_APP_SECRET, SANDBOX_VERIFY_TOKEN
from omnicanal.channels.whatsapp.emulation import WhatsAppEmulator
from omnicanal.extract import run_extract
from omnicanal.sandbox import SandboxServer, generate_world
from omnicanal.settings import get_settings
from omnicanal.webhooks.app import WebhookSecrets
from omnicanal.webhooks.server import WebhooksProcess

OMNICANAL = str(Path(sys.executable).with_name("omnicanal"))
AS_OF = datetime(2025, 6, 1, 15, 0, tzinfo=UTC)
READ_TOKEN = "test-read-token-pipeline"


def rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def dbt(*args: str) -> None:
    built = subprocess.run(
        [OMNICANAL, "dbt", *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-2000:]


def test_deliveries_reach_staging_once_and_feed_identity(
    warehouse_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    world = generate_world(80, 20250601, as_of=AS_OF)
    inbox = world.slices["whatsapp"]
    secrets = {"whatsapp": WebhookSecrets(SANDBOX_APP_SECRET, SANDBOX_VERIFY_TOKEN)}
    options = {"duplicate_share": 0.3, "retry_base": 0.02}
    with (
        WebhooksProcess(tmp_path / "store", secrets, read_token=READ_TOKEN) as receiver,
        SandboxServer(world, whatsapp=options) as sandbox,
    ):
        callback = f"{receiver.url}/webhooks/whatsapp"
        # someone without the app secret: 401 on every attempt, nothing stored
        forger = WhatsAppEmulator(world, app_secret="guessed", max_attempts=2, retry_base=0.01)
        forged = forger.deliver(callback, limit=3)
        assert forged.failed == 3 and forged.statuses == {"401": 6}

        # someone on WhatsApp who never wrote stops the marketing messages: the stop
        # names them, so they are a contact (and an identity record) too
        emulator = sandbox.app.state.whatsapp
        writers = set(inbox.wa_person.values())
        silent = next(w for w, p in sorted(emulator.accounts.items()) if p not in writers)
        emulator.set_preference(silent, "stop")
        report = emulator.deliver(callback)
        assert report.failed == 0 and report.duplicates > 0
        monkeypatch.setenv("OMNICANAL_WHATSAPP_RECEIVER_URL", receiver.url)
        monkeypatch.setenv("OMNICANAL_WEBHOOKS_READ_TOKEN", READ_TOKEN)
        extracted = run_extract(get_settings(), "whatsapp")
    assert extracted.rows == {
        "messages": len(inbox.messages),
        "statuses": len(inbox.statuses),
        "contacts": len(inbox.messages),
        "user_preferences": len(inbox.user_preferences),
    }

    # a redelivery that reached raw under another event id (a receiver restored from
    # an older backup re-numbers what it holds): staging must still count it once
    with psycopg.connect(warehouse_env, autocommit=True) as conn:
        conn.execute(
            """insert into raw_whatsapp.messages (seq, event_id, id, "from", timestamp,
                   type, text, profile_name, phone_number_id, received_at)
               select seq + 100000, event_id || ':again', id, "from", timestamp, type,
                      text, profile_name, phone_number_id, received_at
               from raw_whatsapp.messages order by seq limit 5"""
        )
        conn.execute(
            """insert into raw_whatsapp.contacts (seq, event_id, wa_id, profile_name,
                   message_id, timestamp)
               select seq + 100000, event_id || ':again', wa_id, profile_name, message_id,
                      timestamp
               from raw_whatsapp.contacts order by seq limit 5"""
        )

    feed = [f.as_var("whatsapp") for f in CHANNELS["whatsapp"].identity]
    # staging built and tested (its unit tests too), then identity's records from it
    dbt(
        "build",
        "--select",
        "staging.whatsapp path:seeds/identity int_identity__record_changes int_identity__records",
        "--exclude",
        "int_identity__record_changes,test_type:unit int_identity__records,test_type:unit",
        "--vars",
        json.dumps({"identity_sources": feed}),
    )
    directions = dict(
        rows(
            warehouse_env,
            "select direction, count(*) from staging.stg_whatsapp__messages group by 1",
        )
    )
    statused = {s["id"] for s in inbox.statuses}
    assert directions == {"inbound": len(inbox.messages), "outbound": len(statused)}
    # typed: timestamps are the user's epoch seconds
    first = inbox.messages[0]
    (sent_at,) = rows(
        warehouse_env,
        "select sent_at from staging.stg_whatsapp__messages"
        f" where whatsapp_message_id = '{first['id']}'",
    )[0]
    assert int(sent_at.timestamp()) == int(first["timestamp"])
    # who stopped or resumed marketing messages, once each, at the webhook's time
    preferences = rows(
        warehouse_env,
        "select wa_id, preference, cast(extract(epoch from preference_at) as bigint)"
        " from staging.stg_whatsapp__user_preferences",
    )
    assert inbox.user_preferences and sorted(preferences) == sorted(
        (p["wa_id"], p["value"], p["timestamp"]) for p in inbox.user_preferences
    )
    read = rows(
        warehouse_env,
        "select count(*) from staging.stg_whatsapp__messages where read_at is not null",
    )
    assert read == [(len({s["id"] for s in inbox.statuses if s["status"] == "read"}),)]

    contacts = dict(
        rows(warehouse_env, "select wa_id, profile_name from staging.stg_whatsapp__contacts")
    )
    assert set(contacts) == set(inbox.wa_person) | {silent}  # as sent: 12 digits stay 12
    names = {n for ns in inbox.profile_names.values() for n in ns}
    assert {contacts[w] for w in contacts if w != silent} <= names

    schema = rows(
        warehouse_env,
        "select table_schema from information_schema.tables"
        " where table_name = 'int_identity__records'",
    )[0][0]
    linked = dict(
        rows(warehouse_env, f"select record_key, wa_id_e164 from {schema}.int_identity__records")
    )
    assert len(linked) == len(inbox.wa_person) + 1
    assert linked[f"whatsapp:{silent}"] == world.person(emulator.accounts[silent]).phone
    for wa_id, person_id in inbox.wa_person.items():
        # with or without the ninth digit, identity reads the owner's mobile
        assert linked[f"whatsapp:{wa_id}"] == world.person(person_id).phone, wa_id
