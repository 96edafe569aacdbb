"""tap-instagram against the Instagram Graph API emulation of the omnicanal sandbox, over HTTP.

One ``SandboxServer`` (a 120-person world) serves the module. The SDK's standard tap
tests run against it with small pages so every cursor is followed; the behaviour tests
check what the pipeline relies on: every record once (replies included), bookmarks that
resume and pick up what changed, conversations paged only down to the bookmark, code 190
reported as "renew the token" without the token, usage headers near 100 % slowing the
tap down, and rate limits / 5xx / timeouts retried.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests
from singer_sdk.exceptions import ConfigValidationError, RetriableAPIError
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from tap_instagram.client import GraphStream, to_utc_iso
from tap_instagram.errors import InstagramAuthError, InstagramRetriesExhaustedError
from tap_instagram.tap import TapInstagram
from taprun import (
    assert_conformed_as_the_sdk_would,
    free_port,
    run_tap,
)

from omnicanal.channels.instagram import (
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_IG_USER_ID,
    SANDBOX_PAGE_ID,
)
from omnicanal.channels.instagram.emulation import InstagramEmulator
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import World, generate_world

PEOPLE = 120
SEED = 20261129
AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TAP_EXECUTABLE = Path(sys.executable).with_name("tap-instagram")
STREAMS = ("media", "comments", "conversations", "messages")


SANDBOX_PORT = free_port()
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
BASE_CONFIG: dict[str, Any] = {
    "api_url": SANDBOX_URL,
    "access_token": SANDBOX_ACCESS_TOKEN,
    "ig_user_id": SANDBOX_IG_USER_ID,
    "page_id": SANDBOX_PAGE_ID,
}


@pytest.fixture(scope="module", autouse=True)
def sandbox() -> Iterator[SandboxServer]:
    world = generate_world(PEOPLE, seed=SEED, as_of=AS_OF)
    with SandboxServer(world, port=SANDBOX_PORT) as server:
        yield server


@pytest.fixture
def instagram(sandbox: SandboxServer) -> Iterator[InstagramEmulator]:
    emulator: InstagramEmulator = sandbox.app.state.instagram
    yield emulator
    emulator.clear_faults()
    emulator.renew_token()


@pytest.fixture
def world(sandbox: SandboxServer) -> World:
    return sandbox.app.state.world


# --- the SDK's standard tests ---------------------------------------------------------

# All standard tests run; none is skipped. Pages of 4 make every stream follow cursors.
TestTapInstagramStandard = get_tap_test_class(
    TapInstagram,
    config={**BASE_CONFIG, "page_size": 4},
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

    def ids(self, stream: str) -> list[str]:
        return [record["id"] for record in self.records[stream]]


def sync(config: dict[str, Any] | None = None, state: dict[str, Any] | None = None) -> SyncResult:
    out = io.StringIO()
    with redirect_stdout(out):
        TapInstagram(config={**BASE_CONFIG, **(config or {})}, state=state).sync_all()
    return SyncResult([json.loads(line) for line in out.getvalue().splitlines() if line])


def run_executable(
    tmp_path: Path, config: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return run_tap(TAP_EXECUTABLE, tmp_path, config, *args)


# --- behaviour -------------------------------------------------------------------------


def test_every_record_arrives_exactly_once_across_pages(tmp_path: Path, world: World) -> None:
    result = run_executable(tmp_path, {**BASE_CONFIG, "page_size": 3})
    assert result.returncode == 0, result.stderr[-2000:]
    synced = SyncResult([json.loads(line) for line in result.stdout.splitlines() if line])
    account = world.slices["instagram"]
    for stream, expected in (
        ("media", account.media),
        ("comments", account.comments),
        ("conversations", account.conversations),
        ("messages", account.messages),
    ):
        ids = synced.ids(stream)
        assert not [i for i, n in Counter(ids).items() if n > 1], stream
        assert set(ids) == {r["id"] for r in expected}, stream
    replies = [c for c in synced.records["comments"] if c.get("parent_id")]
    assert replies and all(r["media_id"] for r in synced.records["comments"])
    truth = {c["id"]: c for c in account.comments}
    assert all(r["parent_id"] == truth[r["id"]]["parent_id"] for r in replies)
    message = synced.records["messages"][0]
    assert message["conversation_id"] and message["from"]["id"] and message["message"]
    assert all(r["ig_user_id"] == SANDBOX_IG_USER_ID for r in synced.records["media"])
    assert SANDBOX_ACCESS_TOKEN not in result.stderr


def test_bookmarks_resume_and_pick_up_new_comments_and_messages(
    world: World, instagram: InstagramEmulator
) -> None:
    first = sync()
    bookmarks = first.state["bookmarks"]
    for stream, key in (
        ("comments", "timestamp"),
        ("conversations", "updated_time"),
        ("messages", "created_time"),
    ):
        latest = max(r[key] for r in first.records[stream])
        assert bookmarks[stream]["replication_key_value"] == latest, stream
    assert all(r["timestamp"].endswith("+00:00") for r in first.records["comments"])

    before = instagram.request_count
    second = sync(state=first.state)
    # inclusive bookmarks: at most the records on them come back; media is re-read in full
    assert len(second.records["comments"]) <= 2
    assert len(second.records["conversations"]) <= 1
    assert len(second.records["media"]) == len(world.slices["instagram"].media)
    # conversations are newest first: one page was enough to reach the bookmark
    conversation_pages = 1 + len(second.records["conversations"])
    assert instagram.request_count - before <= 1 + len(second.records["media"]) + conversation_pages

    later = datetime.now(UTC)
    post = world.slices["instagram"].media[-1]
    fan = world.slices["instagram"].users[0]
    comment = instagram.add_comment(post["id"], fan["id"], "Ainda tem no tamanho P?", at=later)
    reply = instagram.add_comment(
        post["id"], SANDBOX_IG_USER_ID, "Tem sim!", parent_id=comment["id"], at=later
    )
    thread = world.slices["instagram"].conversations[-1]["id"]
    message = instagram.add_message(thread, "meu email é Nova.Pessoa@Gmail.com", at=later)
    third = sync(state=second.state)
    assert {comment["id"], reply["id"]} <= set(third.ids("comments"))
    # the changed thread, and at most the one on the inclusive bookmark
    assert thread in third.ids("conversations") and len(third.ids("conversations")) <= 2
    assert message["id"] in third.ids("messages") and len(third.records["messages"]) <= 2
    assert third.state["bookmarks"]["messages"]["replication_key_value"] == to_utc_iso(
        message["created_time"]
    )


def test_start_date_limits_the_first_sync(world: World) -> None:
    stamps = sorted(m["created_time"] for m in world.slices["instagram"].messages)
    start = to_utc_iso(stamps[len(stamps) // 2])
    result = sync({"start_date": start})
    assert result.records["messages"]
    assert all(m["created_time"] >= start for m in result.records["messages"])
    assert all(c["timestamp"] >= start for c in result.records["comments"])
    assert len(result.records["media"]) == len(world.slices["instagram"].media)


def test_an_expired_token_says_renew_it_without_the_token(
    tmp_path: Path, instagram: InstagramEmulator
) -> None:
    instagram.expire_token()
    result = run_executable(tmp_path, BASE_CONFIG)
    assert result.returncode == 1
    assert "renew the Instagram access token (OMNICANAL_INSTAGRAM_ACCESS_TOKEN" in result.stderr
    assert "190/463" in result.stderr and "Session has expired" in result.stderr
    assert "Traceback" not in result.stderr
    assert SANDBOX_ACCESS_TOKEN not in result.stderr + result.stdout


def test_a_wrong_token_is_an_auth_error(tmp_path: Path) -> None:
    with pytest.raises(InstagramAuthError, match="renew the Instagram access token"):
        sync({"access_token": "EAAGsomeone-elses-token"})


def test_usage_near_the_limit_pauses_the_tap(instagram: InstagramEmulator) -> None:
    instagram.force_usage(95)
    with mock.patch("tap_instagram.client.time.sleep") as sleep:
        result = sync({"usage_threshold": 90, "usage_pause_seconds": 0.25})
    assert result.records["media"]
    assert sleep.call_args_list and all(c.args == (0.25,) for c in sleep.call_args_list)
    instagram.force_usage(50)
    with mock.patch("tap_instagram.client.time.sleep") as sleep:
        sync({"usage_threshold": 90, "usage_pause_seconds": 0.25})
    assert not sleep.called


def test_rate_limits_5xx_and_timeouts_are_retried(
    world: World, instagram: InstagramEmulator
) -> None:
    instagram.rate_limit_next(1, 80002)
    instagram.rate_limit_next(1, 4)
    instagram.fail_next(1, 429)
    instagram.fail_next(1, 503)
    instagram.stall_next(1, 2.0)
    started = time.monotonic()
    with (
        mock.patch.object(GraphStream, "backoff_base_seconds", 0.05),
        mock.patch.object(GraphStream, "backoff_max_seconds", 0.2),
    ):
        result = sync({"request_timeout": 1})
    assert len(result.records["media"]) == len(world.slices["instagram"].media)
    assert len(result.records["messages"]) == len(world.slices["instagram"].messages)
    assert time.monotonic() - started < 30


def test_retries_have_a_limit(instagram: InstagramEmulator) -> None:
    instagram.rate_limit_next(10, 17)
    with (
        mock.patch.object(GraphStream, "backoff_max_seconds", 0.01),
        pytest.raises(InstagramRetriesExhaustedError, match=r"code 17 .*after 3 attempt"),
    ):
        sync({"max_retries": 2})


def test_the_regain_time_of_the_usage_header_is_the_wait() -> None:
    stream = TapInstagram(config=BASE_CONFIG).streams["media"]
    waits = stream.backoff_wait_generator()
    next(waits)
    response = requests.Response()
    response.status_code = 400
    response.headers["X-Business-Use-Case-Usage"] = json.dumps(
        {
            SANDBOX_IG_USER_ID: [
                {"type": "instagram", "call_count": 100, "estimated_time_to_regain_access": 2}
            ]
        }  # fmt: skip
    )
    assert waits.send(RetriableAPIError("limited", response)) == stream.backoff_max_seconds
    plain = requests.Response()
    plain.status_code = 503
    assert 1.0 <= waits.send(RetriableAPIError("down", plain)) <= 1.1


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"api_version": "26"}, "api_version"),
        ({"ig_user_id": "casa.omnicanal"}, "ig_user_id"),
        ({"api_url": "ftp://graph.facebook.com"}, "api_url"),
        ({"api_url": "https://graph.facebook.com/v26.0"}, "api_url"),
    ],
)
def test_bad_config_is_rejected_naming_the_setting(config: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigValidationError) as raised:
        TapInstagram(config={**BASE_CONFIG, **config})
    assert any(f"`{setting}`" in e for e in raised.value.errors)


def test_without_a_page_conversations_come_from_the_ig_user(world: World) -> None:
    result = sync({"page_id": None, "start_date": (AS_OF - timedelta(days=3650)).isoformat()})
    assert set(result.ids("conversations")) == {
        c["id"] for c in world.slices["instagram"].conversations
    }


def test_records_are_conformed_once_per_schema_as_the_sdk_would(world: World) -> None:
    """Every stream conforms its records with tapkit's compiled conformance, and the
    records and state are the ones singer-sdk's own recursive conformance writes."""
    assert_conformed_as_the_sdk_would(TapInstagram(config=BASE_CONFIG), sync)
