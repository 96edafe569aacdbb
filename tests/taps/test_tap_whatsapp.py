"""tap-whatsapp against the real webhook receiver, fed by the WhatsApp emulation's deliverer.

One receiver (a child process, ``WebhooksProcess``) serves the module; the emulation
posts the world's chats to it, signed, with duplicates, as Meta would. The SDK's
standard tap tests run against it with small pages; the behaviour tests check what the
pipeline relies on: every event once (duplicates were stored once), each stream's
bookmark resumes after its last ``seq``, new deliveries are read incrementally, failures
are clear and secret-free, and an extract that fails because the warehouse is down is
replayed from the receiver later without loss or duplicates.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from taprun import (
    assert_conformed_as_the_sdk_would,
    free_port,
    run_tap,
)

from omnicanal.channels.whatsapp import SANDBOX_APP_SECRET, SANDBOX_VERIFY_TOKEN
from omnicanal.channels.whatsapp.emulation import WhatsAppEmulator
from omnicanal.errors import ExtractError, WarehouseError
from omnicanal.extract import read_state, run_extract
from omnicanal.sandbox import SandboxServer, generate_world
from omnicanal.settings import get_settings
from omnicanal.webhooks.app import WebhookSecrets
from omnicanal.webhooks.server import WebhooksProcess
from tap_whatsapp.tap import TapWhatsApp

AS_OF = datetime(2025, 6, 1, 15, 0, tzinfo=UTC)
READ_TOKEN = "test-read-token-whatsapp"
TAP_EXECUTABLE = Path(sys.executable).with_name("tap-whatsapp")
STREAMS = ("messages", "statuses", "contacts", "user_preferences")


# get_tap_test_class needs the config (the receiver's URL) at import; the receiver
# starts in the module fixture below, on that port.
RECEIVER_PORT = free_port()
BASE_CONFIG: dict[str, Any] = {
    "receiver_url": f"http://127.0.0.1:{RECEIVER_PORT}",
    "read_token": READ_TOKEN,
}
SECRETS = {"whatsapp": WebhookSecrets(SANDBOX_APP_SECRET, SANDBOX_VERIFY_TOKEN)}


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhooksProcess]:
    store = tmp_path_factory.mktemp("receiver")
    with WebhooksProcess(store, SECRETS, read_token=READ_TOKEN, port=RECEIVER_PORT) as running:
        yield running


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    world = generate_world(120, 20250601, as_of=AS_OF)
    options = {"retry_base": 0.02, "duplicate_share": 0.15}
    with SandboxServer(world, whatsapp=options) as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def delivered(receiver: WebhooksProcess, sandbox: SandboxServer) -> dict[str, Any]:
    """Everything the world holds, delivered to the receiver (some of it twice)."""
    emulator: WhatsAppEmulator = sandbox.app.state.whatsapp
    report = emulator.deliver(f"{receiver.url}/webhooks/whatsapp")
    assert report.failed == 0 and report.duplicates > 0
    return report.as_dict()


@pytest.fixture
def emulator(sandbox: SandboxServer) -> WhatsAppEmulator:
    return sandbox.app.state.whatsapp


# --- the SDK's standard tests ---------------------------------------------------------

# All standard tests run; none is skipped. Pages of 40 events make every stream follow
# next_after.
TestTapWhatsAppStandard = get_tap_test_class(
    TapWhatsApp,
    config={**BASE_CONFIG, "page_size": 40},
    suite_config=SuiteConfig(max_records_limit=None),
)


# --- helpers ---------------------------------------------------------------------------


class SyncResult:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.records: dict[str, list[dict[str, Any]]] = {s: [] for s in STREAMS}
        self.state: dict[str, Any] = {}
        for message in messages:
            if message["type"] == "RECORD":
                self.records[message["stream"]].append(message["record"])
            elif message["type"] == "STATE":
                self.state = message["value"]

    def bookmark(self, stream: str) -> int | None:
        return self.state.get("bookmarks", {}).get(stream, {}).get("replication_key_value")


def sync(config: dict[str, Any] | None = None, state: dict[str, Any] | None = None) -> SyncResult:
    out = io.StringIO()
    with redirect_stdout(out):
        TapWhatsApp(config={**BASE_CONFIG, **(config or {})}, state=state).sync_all()
    return SyncResult([json.loads(line) for line in out.getvalue().splitlines() if line])


def run_executable(
    tmp_path: Path, config: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return run_tap(TAP_EXECUTABLE, tmp_path, config, *args)


# --- behaviour -------------------------------------------------------------------------


def test_every_event_arrives_once_across_pages(tmp_path: Path, sandbox: SandboxServer) -> None:
    """Through the executable, 25 events a page: each message, status and contact once,
    whatever Meta delivered twice."""
    result = run_executable(tmp_path, {**BASE_CONFIG, "page_size": 25})
    assert result.returncode == 0, result.stderr[-2000:]
    synced = SyncResult([json.loads(line) for line in result.stdout.splitlines() if line])
    inbox = sandbox.app.state.world.slices["whatsapp"]
    messages = synced.records["messages"]
    assert sorted(m["id"] for m in messages) == sorted(m["id"] for m in inbox.messages)
    statuses = Counter((s["id"], s["status"], s["timestamp"]) for s in synced.records["statuses"])
    assert statuses == Counter((s["id"], s["status"], s["timestamp"]) for s in inbox.statuses)
    contacts = synced.records["contacts"]
    assert len(contacts) == len(messages)
    # kept as sent: the old 12-digit wa_ids too, and the profile names of the time
    assert {c["wa_id"] for c in contacts} == set(inbox.wa_person)
    assert any(len(c["wa_id"]) == 12 for c in contacts)
    by_id = {m["id"]: m for m in inbox.messages}
    for record in messages:
        sent = by_id[record["id"]]
        assert record["from"] == sent["from"] and record["timestamp"] == sent["timestamp"]
        assert record["type"] == sent["type"] and record.get("text") == sent.get("text")
        assert record["profile_name"] in inbox.profile_names[sent["from"]]
        assert record["event_id"] == record["id"]
    seqs = [r["seq"] for r in messages]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {r["phone_number_id"] for r in messages} == {inbox.phone_number_id}
    assert synced.bookmark("messages") == max(seqs)
    assert synced.bookmark("statuses") == max(s["seq"] for s in synced.records["statuses"])
    # who stopped or resumed marketing messages, once each, as Meta sent it
    preferences = synced.records["user_preferences"]
    assert inbox.user_preferences and len(preferences) == len(inbox.user_preferences)
    fields = ("wa_id", "detail", "category", "value", "timestamp")
    assert sorted(tuple(p[k] for k in fields) for p in preferences) == sorted(
        tuple(p[k] for k in fields) for p in inbox.user_preferences
    )
    for record in preferences:
        assert record["event_id"] == ":".join(str(record[k]) for k in fields if k != "detail")
        assert record["profile_name"] in inbox.profile_names[record["wa_id"]]


def test_each_stream_resumes_after_its_bookmark() -> None:
    full = sync()
    middle = full.records["messages"][len(full.records["messages"]) // 2]["seq"]
    state = {
        "bookmarks": {
            "messages": {"replication_key": "seq", "replication_key_value": middle},
            "statuses": dict(full.state["bookmarks"]["statuses"]),
        }
    }
    resumed = sync(state=state)
    assert [m["seq"] for m in resumed.records["messages"]] == [
        m["seq"] for m in full.records["messages"] if m["seq"] > middle
    ]
    assert resumed.records["statuses"] == []  # caught up already
    assert len(resumed.records["contacts"]) == len(full.records["contacts"])  # no bookmark
    assert resumed.bookmark("messages") == full.bookmark("messages")


def test_new_deliveries_are_read_incrementally(
    emulator: WhatsAppEmulator, receiver: WebhooksProcess, sandbox: SandboxServer
) -> None:
    before = sync()
    wa_id = next(iter(sandbox.app.state.world.slices["whatsapp"].wa_person))
    emulator.receive(wa_id, "Oi, chegou meu pedido?", name="Nanda 🌻")
    sent = emulator.send_message(
        {"messaging_product": "whatsapp", "to": wa_id, "text": {"body": "Chegou sim!"}}
    )
    report = emulator.deliver(f"{receiver.url}/webhooks/whatsapp", duplicate_share=1.0)
    assert report.delivered == 4 and report.duplicates == 4
    after = sync(state=before.state)
    (message,) = after.records["messages"]
    assert message["from"] == wa_id and message["text"] == {"body": "Oi, chegou meu pedido?"}
    assert message["profile_name"] == "Nanda 🌻"
    assert [c["profile_name"] for c in after.records["contacts"]] == ["Nanda 🌻"]
    statuses = after.records["statuses"]
    # deliveries run in parallel: Meta promises no order
    assert sorted(s["status"] for s in statuses) == ["delivered", "read", "sent"]
    assert {s["id"] for s in statuses} == {sent["messages"][0]["id"]}
    assert after.bookmark("statuses") > before.bookmark("statuses")


def test_receiver_down_fails_with_a_clear_message(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = run_executable(tmp_path, {**BASE_CONFIG, "receiver_url": closed, "max_retries": 1})
    assert result.returncode == 1
    assert f"Could not connect to the webhook receiver at {closed}/events/whatsapp" in result.stderr
    assert "check the `receiver_url` setting" in result.stderr
    assert "Traceback" not in result.stderr and READ_TOKEN not in result.stderr


def test_a_wrong_read_token_names_the_setting_and_is_never_printed(tmp_path: Path) -> None:
    wrong = "not-the-token-8c1f"
    result = run_executable(tmp_path, {**BASE_CONFIG, "read_token": wrong})
    assert result.returncode == 1
    assert "refused the read token (HTTP 401" in result.stderr
    assert "`read_token`" in result.stderr and "Traceback" not in result.stderr
    assert wrong not in result.stderr + result.stdout


def test_an_unknown_channel_names_the_settings(tmp_path: Path) -> None:
    result = run_executable(tmp_path, {**BASE_CONFIG, "channel": "telegram"})
    assert result.returncode == 1
    assert "serves no channel" in result.stderr and "`channel`" in result.stderr


def test_bad_config_names_the_setting() -> None:
    with pytest.raises(ConfigValidationError) as caught:
        TapWhatsApp(config={**BASE_CONFIG, "receiver_url": BASE_CONFIG["receiver_url"] + "/events"})
    assert any("`receiver_url`" in e for e in caught.value.errors)
    with pytest.raises(ConfigValidationError) as caught:
        TapWhatsApp(config={"receiver_url": BASE_CONFIG["receiver_url"]})
    assert any("read_token" in e for e in caught.value.errors)


def test_a_failing_receiver_is_retried() -> None:
    """503 twice, then the page: the sync completes (a stand-in for a restarting receiver)."""
    answers = iter([503, 503])
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    @app.get("/events/whatsapp")
    def events() -> JSONResponse:
        status = next(answers, 200)
        if status != 200:
            return JSONResponse({"error": "restarting"}, status_code=status)
        return JSONResponse({"data": [], "next_after": None})

    with SandboxServer(app) as flaky:
        result = sync({"receiver_url": flaky.url, "max_retries": 3})
    assert next(answers, None) is None  # both 503s were answered, then retried
    assert result.records["messages"] == []


# --- the extract: warehouse down, then back --------------------------------------------


REFUSE_WRITES = """
create or replace function raw_whatsapp.refuse_writes() returns trigger
language plpgsql as $$ begin raise exception 'refusing writes'; end $$;
create trigger refuse_writes before insert or update on raw_whatsapp.messages
for each row execute function raw_whatsapp.refuse_writes();
"""


def _raw(url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def test_warehouse_down_then_back_replays_without_loss_or_duplicates(
    warehouse_env: str,
    monkeypatch: pytest.MonkeyPatch,
    receiver: WebhooksProcess,
    emulator: WhatsAppEmulator,
    sandbox: SandboxServer,
) -> None:
    monkeypatch.setenv("OMNICANAL_WHATSAPP_RECEIVER_URL", receiver.url)
    monkeypatch.setenv("OMNICANAL_WEBHOOKS_READ_TOKEN", READ_TOKEN)
    first = run_extract(get_settings(), "whatsapp")
    stored = httpx.get(
        f"{receiver.url}/events/whatsapp",
        params={"limit": 10000},
        headers={"Authorization": f"Bearer {READ_TOKEN}"},
    ).json()["data"]
    kinds = Counter(e["kind"] for e in stored)
    assert first.rows == {
        "messages": kinds["message"],
        "statuses": kinds["status"],
        "contacts": kinds["message"],
        "user_preferences": kinds["user_preference"],
    }
    assert kinds["user_preference"] > 0

    # new chats arrive while the warehouse is down: the extract fails, the state stays
    wa_id = next(iter(sandbox.app.state.world.slices["whatsapp"].wa_person))
    for text in ("Oi!", "Tem no 38?", "E no 39?"):
        emulator.receive(wa_id, text)
    emulator.deliver(f"{receiver.url}/webhooks/whatsapp")
    good = warehouse_env
    state_before = read_state(get_settings(), "whatsapp")
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    monkeypatch.setenv("OMNICANAL_WAREHOUSE_URL", down)
    with pytest.raises(WarehouseError, match="cannot connect to the warehouse"):
        run_extract(get_settings(), "whatsapp")

    # back, but refusing writes to the messages table mid-load (a full disk, a lock
    # timeout): the loader fails after the tap read the events; no state moves past
    # what was committed
    monkeypatch.setenv("OMNICANAL_WAREHOUSE_URL", good)
    with psycopg.connect(good, autocommit=True) as conn:
        conn.execute(REFUSE_WRITES)
    with pytest.raises(ExtractError, match="refusing writes"):
        run_extract(get_settings(), "whatsapp")
    after_failure = read_state(get_settings(), "whatsapp")
    assert after_failure["bookmarks"]["messages"] == state_before["bookmarks"]["messages"]
    with psycopg.connect(good, autocommit=True) as conn:
        conn.execute("drop trigger refuse_writes on raw_whatsapp.messages")

    # the receiver still holds the events: the next extract replays from the bookmark
    again = run_extract(get_settings(), "whatsapp")
    assert again.rows["messages"] == first.rows["messages"] + 3
    assert again.rows["contacts"] == first.rows["contacts"] + 3
    assert again.rows["statuses"] == first.rows["statuses"]
    duplicated = _raw(
        good,
        "select count(*) - count(distinct id) from raw_whatsapp.messages",
    )
    assert duplicated == [(0,)]
    texts = _raw(
        good,
        "select text ->> 'body' from raw_whatsapp.messages where \"from\" = %s order by seq",
        (wa_id,),
    )
    assert sorted(t for (t,) in texts[-3:]) == ["E no 39?", "Oi!", "Tem no 38?"]
    # a rerun with nothing new changes nothing
    assert run_extract(get_settings(), "whatsapp").rows == again.rows


def test_records_are_conformed_once_per_schema_as_the_sdk_would(delivered: dict[str, Any]) -> None:
    """Every stream conforms its records with tapkit's compiled conformance, and the
    records and state are the ones singer-sdk's own recursive conformance writes."""
    assert_conformed_as_the_sdk_would(TapWhatsApp(config=BASE_CONFIG), sync)
