"""tap-zendesk against the Zendesk emulator of the omnicanal sandbox, over real HTTP.

One ``SandboxServer`` (a 120-person world) serves the module, its export limit off and
nothing held back (``export_delay_seconds=0``) unless a test says otherwise. The SDK's
standard tap tests run against it with small pages; the behaviour tests check what the
pipeline relies on: every record once across pages, the export cursor as the bookmark
(a second sync reads nothing, a changed ticket comes back with its comments), a resumed
sync after a dropped connection, 429 ``Retry-After`` obeyed, the 10-a-minute export pace,
and clear failures that name the setting and leak no secret.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from taprun import (
    assert_conformed_as_the_sdk_would,
    free_port,
    run_tap,
)

from omnicanal.channels.zendesk import SANDBOX_API_TOKEN, SANDBOX_EMAIL, SANDBOX_OAUTH_TOKEN
from omnicanal.channels.zendesk.emulation import ZendeskEmulator
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import World, generate_world
from tap_zendesk.client import ExportPacer
from tap_zendesk.errors import ZendeskConnectionError, ZendeskRetriesExhaustedError
from tap_zendesk.streams import TicketsStream
from tap_zendesk.tap import TapZendesk

PEOPLE = 120
SEED = 20261101
AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TAP_EXECUTABLE = Path(sys.executable).with_name("tap-zendesk")
STREAMS = ("tickets", "users", "ticket_metrics", "satisfaction_ratings", "ticket_comments")


SANDBOX_PORT = free_port()
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
BASE_CONFIG: dict[str, Any] = {
    "api_url": SANDBOX_URL,
    "email": SANDBOX_EMAIL,
    "api_token": SANDBOX_API_TOKEN,
    "export_requests_per_minute": 0,
}


@pytest.fixture(scope="module", autouse=True)
def sandbox() -> Iterator[SandboxServer]:
    world = generate_world(PEOPLE, seed=SEED, as_of=AS_OF)
    options = {"export_rate_limit": None, "rate_limit": None, "export_delay_seconds": 0}
    with SandboxServer(world, port=SANDBOX_PORT, zendesk=options) as server:
        yield server


@pytest.fixture
def zendesk(sandbox: SandboxServer) -> Iterator[ZendeskEmulator]:
    emulator: ZendeskEmulator = sandbox.app.state.zendesk
    yield emulator
    emulator.faults.clear()
    emulator.set_rate_limits(None, None)
    emulator.oauth_expired = False


@pytest.fixture
def world(sandbox: SandboxServer) -> World:
    return sandbox.app.state.world


# --- the SDK's standard tests ---------------------------------------------------------

# All standard tests run; none is skipped. Small pages make every stream follow its
# cursors (exports by 25, lists by 15).
TestTapZendeskStandard = get_tap_test_class(
    TapZendesk,
    config={**BASE_CONFIG, "export_page_size": 25, "page_size": 15},
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

    def ids(self, stream: str) -> list[int]:
        return [record["id"] for record in self.records[stream]]


def _messages(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line]


def sync(config: dict[str, Any] | None = None, state: dict[str, Any] | None = None) -> SyncResult:
    out = io.StringIO()
    with redirect_stdout(out):
        TapZendesk(config={**BASE_CONFIG, **(config or {})}, state=state).sync_all()
    return SyncResult(_messages(out.getvalue()))


def run_executable(
    tmp_path: Path, config: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return run_tap(TAP_EXECUTABLE, tmp_path, config, *args)


# --- behaviour -------------------------------------------------------------------------


def test_every_record_arrives_exactly_once_across_pages(tmp_path: Path, world: World) -> None:
    result = run_executable(tmp_path, {**BASE_CONFIG, "export_page_size": 9, "page_size": 4})
    assert result.returncode == 0, result.stderr[-2000:]
    synced = SyncResult(_messages(result.stdout))
    desk = world.slices["zendesk"]
    comments = [c for thread in desk.comments.values() for c in thread]
    for stream, expected in (
        ("tickets", desk.tickets),
        ("users", desk.users),
        ("ticket_metrics", desk.ticket_metrics),
        ("satisfaction_ratings", desk.satisfaction_ratings),
        ("ticket_comments", comments),
    ):
        ids = synced.ids(stream)
        assert not [i for i, n in Counter(ids).items() if n > 1], stream
        assert set(ids) == {r["id"] for r in expected}, stream
    owner = {c["id"]: t for t, thread in desk.comments.items() for c in thread}
    assert all(c["ticket_id"] == owner[c["id"]] for c in synced.records["ticket_comments"])
    assert {c["via"]["channel"] for c in synced.records["ticket_comments"]} >= {
        "email",
        "web",
        "whatsapp",
        "instagram_dm",
    }


def test_the_export_cursor_is_the_bookmark(world: World, zendesk: ZendeskEmulator) -> None:
    first = sync({"export_page_size": 30})
    bookmarks = first.state["bookmarks"]
    for stream in ("tickets", "users"):
        assert bookmarks[stream]["after_cursor"]
    assert "partitions" not in bookmarks.get("ticket_comments", {})  # not one per ticket

    second = sync(state=first.state)
    assert second.records["tickets"] == [] and second.records["users"] == []
    assert second.records["ticket_comments"] == []
    assert len(second.records["ticket_metrics"]) <= 2  # only what sits on the bookmark

    desk = world.slices["zendesk"]
    ticket = desk.tickets[5]
    rated = next(r for r in desk.satisfaction_ratings if r["score"] == "offered")
    zendesk.touch_ticket(ticket["id"], status="closed")
    zendesk.rate_ticket(rated["ticket_id"], "bad", "Demorou demais")
    third = sync(state=second.state)
    assert set(third.ids("tickets")) == {ticket["id"], rated["ticket_id"]}
    assert {c["ticket_id"] for c in third.records["ticket_comments"]} == {
        ticket["id"],
        rated["ticket_id"],
    }
    new_rating = next(r for r in third.records["satisfaction_ratings"] if r["id"] == rated["id"])
    assert (new_rating["score"], new_rating["comment"]) == ("bad", "Demorou demais")
    assert (
        third.state["bookmarks"]["tickets"]["after_cursor"]
        != (second.state["bookmarks"]["tickets"]["after_cursor"])
    )


def test_start_date_limits_the_first_sync(world: World) -> None:
    desk = world.slices["zendesk"]
    stamps = sorted(t["updated_at"] for t in desk.tickets)
    start = stamps[len(stamps) // 2]
    result = sync({"start_date": start})
    assert set(result.ids("tickets")) == {t["id"] for t in desk.tickets if t["updated_at"] >= start}


def test_an_interrupted_sync_resumes_from_its_last_state(world: World) -> None:
    """The connection drops mid-export; the next run, from the last STATE, completes it."""
    real_send = requests.Session.send
    calls = {"n": 0}

    def flaky_send(session, request, **kwargs):
        calls["n"] += 1
        if calls["n"] > 15:  # page 1, its 10 tickets' comments, page 2 and 3 more
            raise requests.exceptions.ConnectionError("connection reset by peer")
        return real_send(session, request, **kwargs)

    out = io.StringIO()
    config = {**BASE_CONFIG, "export_page_size": 10, "max_retries": 0}
    with (
        mock.patch.object(requests.Session, "send", flaky_send),
        redirect_stdout(out),
        pytest.raises(ZendeskConnectionError),
    ):
        TapZendesk(config=config).sync_all()
    interrupted = SyncResult(_messages(out.getvalue()))
    assert interrupted.records["tickets"], "no ticket before the failure"
    assert interrupted.state["bookmarks"]["tickets"]["after_cursor"]

    resumed = sync({"export_page_size": 10}, state=interrupted.state)
    desk = world.slices["zendesk"]
    got = set(interrupted.ids("tickets")) | set(resumed.ids("tickets"))
    assert got == {t["id"] for t in desk.tickets}
    # the cursor was kept page by page: at most the last page is read again
    assert len(set(interrupted.ids("tickets")) & set(resumed.ids("tickets"))) <= 10


def test_429_retry_after_is_obeyed(world: World, zendesk: ZendeskEmulator) -> None:
    """Two export requests in any 2 s: the third waits for the 429's Retry-After."""
    zendesk.set_rate_limits(None, (2, 2.0))
    before = zendesk.export_requests
    started = time.monotonic()
    result = sync({"export_page_size": 40})
    elapsed = time.monotonic() - started
    desk = world.slices["zendesk"]
    assert set(result.ids("tickets")) == {t["id"] for t in desk.tickets}
    assert set(result.ids("users")) == {u["id"] for u in desk.users}
    pages = -(-len(desk.tickets) // 40) + -(-len(desk.users) // 40)
    refused = zendesk.export_requests - before - pages
    assert refused >= 1  # the limit did bite, and the tap came back after Retry-After
    assert elapsed >= 1.0


def test_5xx_and_a_timeout_are_retried(world: World, zendesk: ZendeskEmulator) -> None:
    zendesk.fail_next(1, 503)
    zendesk.fail_next(1, 500, hang_seconds=2.0)
    with mock.patch("tap_zendesk.client.ZendeskStream.backoff_base_seconds", 0.05):
        result = sync({"request_timeout": 1})
    assert zendesk.faults.pending == 0
    assert set(result.ids("tickets")) == {t["id"] for t in world.slices["zendesk"].tickets}


def test_retries_have_a_limit(zendesk: ZendeskEmulator) -> None:
    zendesk.fail_next(3, 500)
    with (
        mock.patch("tap_zendesk.client.ZendeskStream.backoff_base_seconds", 0.01),
        pytest.raises(ZendeskRetriesExhaustedError, match=r"2 attempt"),
    ):
        sync({"max_retries": 1})


def test_the_export_pace_keeps_ten_requests_a_minute() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = ExportPacer(10, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        pacer.wait()
        now[0] += 1.0
    assert slept == []
    pacer.wait()  # the 11th, 10 s after the first: waits for the first to leave the minute
    assert slept == [50.0]
    unpaced = ExportPacer(0, clock=lambda: now[0], sleep=sleep)
    for _ in range(50):
        unpaced.wait()
    assert slept == [50.0]


def test_the_export_streams_share_the_taps_pacer() -> None:
    tap = TapZendesk(config={**BASE_CONFIG, "export_requests_per_minute": 10})
    tickets, users = tap.streams["tickets"], tap.streams["users"]
    assert tickets.pacer is users.pacer and tickets.pacer.per_minute == 10
    with mock.patch.object(ExportPacer, "wait") as wait:
        sync_tap = TapZendesk(config={**BASE_CONFIG, "export_requests_per_minute": 10})
        with redirect_stdout(io.StringIO()):
            sync_tap.streams["tickets"].sync()
    assert wait.call_count >= 1


def test_bad_token_fails_with_a_clear_message_and_no_secret(tmp_path: Path) -> None:
    wrong = "zd-wrong-0123456789abcdef"
    result = run_executable(tmp_path, {**BASE_CONFIG, "api_token": wrong})
    assert result.returncode == 1
    assert "Zendesk could not authenticate the agent (HTTP 401 Couldn't authenticate you" in (
        result.stderr
    )
    assert "check the `email` and `api_token` settings" in result.stderr
    assert "Traceback" not in result.stderr
    assert wrong not in result.stderr + result.stdout


def test_an_expired_oauth_token_says_to_renew_it(tmp_path: Path, zendesk: ZendeskEmulator) -> None:
    config = {"api_url": SANDBOX_URL, "oauth_token": SANDBOX_OAUTH_TOKEN}
    assert run_executable(tmp_path, config).returncode == 0
    zendesk.expire_oauth_token()
    result = run_executable(tmp_path, config)
    assert result.returncode == 1
    assert "invalid_token" in result.stderr and "renew the token" in result.stderr
    assert SANDBOX_OAUTH_TOKEN not in result.stderr + result.stdout


def test_server_down_fails_with_a_clear_message(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    result = run_executable(tmp_path, {**BASE_CONFIG, "api_url": down, "max_retries": 0})
    assert result.returncode == 1
    assert f"Could not connect to Zendesk at {down}/api/v2/" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"page_size": 101}, "page_size"),
        ({"export_page_size": 1001}, "export_page_size"),
        ({"api_url": "omnicanal.zendesk.com"}, "api_url"),
        ({"api_url": "https://omnicanal.zendesk.com/api/v2"}, "api_url"),
        ({"api_token": None}, "api_token"),
        ({"api_url": None}, "api_url"),
    ],
)
def test_bad_config_is_rejected_naming_the_setting(config: dict[str, Any], setting: str) -> None:
    merged = {k: v for k, v in {**BASE_CONFIG, **config}.items() if v is not None}
    with pytest.raises(ConfigValidationError) as raised:
        TapZendesk(config=merged)
    assert any(setting in error for error in raised.value.errors), raised.value.errors


def test_export_params_start_at_the_bookmark_or_continue_the_cursor() -> None:
    stream = TapZendesk(config={**BASE_CONFIG, "start_date": "2026-01-01T00:00:00Z"}).streams[
        TicketsStream.name
    ]
    assert stream.get_url_params(None, None) == {"per_page": 1000, "start_time": 1767225600}
    assert stream.get_url_params(None, "CUR2") == {"per_page": 1000, "cursor": "CUR2"}
    stream.stream_state["after_cursor"] = "SAVED"
    assert stream.get_url_params(None, None)["cursor"] == "SAVED"
    auth = stream.authenticator.auth_headers["Authorization"]
    assert auth.startswith("Basic ") and SANDBOX_API_TOKEN not in auth


def test_records_are_conformed_once_per_schema_as_the_sdk_would(world: World) -> None:
    """Every stream conforms its records with tapkit's compiled conformance, and the
    records and state are the ones singer-sdk's own recursive conformance writes."""
    assert_conformed_as_the_sdk_would(TapZendesk(config=BASE_CONFIG), sync)
