"""tap-mailchimp against the Mailchimp emulator of the omnicanal sandbox, over real HTTP.

One ``SandboxServer`` (a 120-person world) serves the module. The SDK's standard tap
tests run against it with small pages so every offset is followed; the behaviour tests
check what the pipeline relies on: every record once across pages, the sync audience
left out, email activity flattened with one ``sent`` row per recipient, bookmarks per
audience and per campaign that resume (an edit in Mailchimp comes back alone), a member
edited mid-sync not lost to offset shifting, retries on 429/5xx/timeouts, and clear
failures naming the setting. Unit tests pin the request parameters and the paginator.
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

from omnicanal.channels.mailchimp import DEFAULT_LIST_ID, SANDBOX_API_KEY
from omnicanal.channels.mailchimp.emulation import MailchimpEmulator
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import World, generate_world
from tap_mailchimp.errors import MailchimpConnectionError, MailchimpRetriesExhaustedError
from tap_mailchimp.streams import LastChangedPaginator, ListMembersStream
from tap_mailchimp.tap import TapMailchimp

PEOPLE = 120
SEED = 20261101
AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TAP_EXECUTABLE = Path(sys.executable).with_name("tap-mailchimp")
STREAMS = ("lists", "list_members", "campaigns", "email_activity", "unsubscribes")


SANDBOX_PORT = free_port()
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
BASE_CONFIG: dict[str, Any] = {
    "api_url": f"{SANDBOX_URL}/3.0",
    "api_key": SANDBOX_API_KEY,
    "exclude_list_ids": [DEFAULT_LIST_ID],
}


@pytest.fixture(scope="module", autouse=True)
def sandbox() -> Iterator[SandboxServer]:
    world = generate_world(PEOPLE, seed=SEED, as_of=AS_OF)
    with SandboxServer(world, port=SANDBOX_PORT) as server:
        # the sync audience holds someone: the tap must not read it back
        requests.post(
            f"{server.url}/3.0/lists/{DEFAULT_LIST_ID}/members",
            json={"email_address": "sincronizado@gmail.com", "status": "subscribed"},
            auth=("omnicanal", SANDBOX_API_KEY),
            timeout=10,
        ).raise_for_status()
        yield server


@pytest.fixture
def mailchimp(sandbox: SandboxServer) -> Iterator[MailchimpEmulator]:
    emulator: MailchimpEmulator = sandbox.app.state.mailchimp
    yield emulator
    emulator.faults.clear()
    emulator.set_rate_limit(None)


@pytest.fixture
def world(sandbox: SandboxServer) -> World:
    return sandbox.app.state.world


# --- the SDK's standard tests ---------------------------------------------------------

# All standard tests run; none is skipped. Pages of 25 make every stream follow offsets.
TestTapMailchimpStandard = get_tap_test_class(
    TapMailchimp,
    config={**BASE_CONFIG, "page_size": 25},
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


def sync(config: dict[str, Any] | None = None, state: dict[str, Any] | None = None) -> SyncResult:
    out = io.StringIO()
    with redirect_stdout(out):
        TapMailchimp(config={**BASE_CONFIG, **(config or {})}, state=state).sync_all()
    return SyncResult([json.loads(line) for line in out.getvalue().splitlines() if line])


def run_executable(
    tmp_path: Path, config: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return run_tap(TAP_EXECUTABLE, tmp_path, config, *args)


def _activity_rows(world: World) -> Counter:
    account = world.slices["mailchimp"]
    rows: Counter = Counter()
    for recipients in account.email_activity.values():
        for recipient in recipients:
            rows[(recipient["campaign_id"], recipient["email_id"], "sent")] += 1
            for action in recipient["activity"]:
                rows[(recipient["campaign_id"], recipient["email_id"], action["action"])] += 1
    return rows


# --- behaviour -------------------------------------------------------------------------


def test_every_record_arrives_exactly_once_across_pages(tmp_path: Path, world: World) -> None:
    result = run_executable(tmp_path, {**BASE_CONFIG, "page_size": 7})
    assert result.returncode == 0, result.stderr[-2000:]
    synced = SyncResult([json.loads(line) for line in result.stdout.splitlines() if line])
    account = world.slices["mailchimp"]
    assert {r["id"] for r in synced.records["lists"]} == {a["id"] for a in account.lists}
    members = [(m["list_id"], m["id"]) for m in synced.records["list_members"]]
    assert Counter(members).most_common(1)[0][1] == 1
    assert set(members) == {
        (m["list_id"], m["id"]) for held in account.members.values() for m in held
    }
    sent = {c["id"] for c in account.campaigns if c["status"] == "sent"}
    assert {c["id"] for c in synced.records["campaigns"]} == sent
    got = Counter(
        (r["campaign_id"], r["email_id"], r["action"]) for r in synced.records["email_activity"]
    )
    assert got == _activity_rows(world)
    sent_rows = [r for r in synced.records["email_activity"] if r["action"] == "sent"]
    send_time = {c["id"]: c["send_time"] for c in account.campaigns}
    assert all(r["timestamp"] == send_time[r["campaign_id"]] for r in sent_rows)
    assert sum(len(u) for u in account.unsubscribes.values()) == len(synced.records["unsubscribes"])
    # "" timestamps are emitted as null; the others as UTC ISO 8601
    assert any(m["timestamp_opt"] is None for m in synced.records["list_members"])
    assert all(m["last_changed"].endswith("+00:00") for m in synced.records["list_members"])


def test_incremental_sync_resumes_from_bookmarks(world: World, mailchimp: MailchimpEmulator):
    first = sync({"page_size": 50})
    bookmarks = first.state["bookmarks"]
    account = world.slices["mailchimp"]
    for partition in bookmarks["list_members"]["partitions"]:
        held = account.members[partition["context"]["list_id"]]
        assert partition["replication_key_value"] == max(m["last_changed"] for m in held)
    assert {p["context"]["campaign_id"] for p in bookmarks["email_activity"]["partitions"]} == {
        c["id"] for c in account.campaigns if c["status"] == "sent"
    }

    second = sync({"page_size": 50}, state=first.state)
    # the API's since filters are strict, so the tap asks from a second before each
    # bookmark: at most the records on it come back, and no "sent" row again
    assert len(second.records["list_members"]) <= len(account.lists) + 2
    campaigns = len(bookmarks["email_activity"]["partitions"])
    assert len(second.records["email_activity"]) <= 2 * campaigns
    assert not [r for r in second.records["email_activity"] if r["action"] == "sent"]

    newsletter = account.lists[0]["id"]
    member = account.members[newsletter][3]
    touched = mailchimp.touch_member(
        newsletter, member["email_address"], merge_fields={"FNAME": "Mariazinha"}
    )
    third = sync({"page_size": 50}, state=second.state)
    changed = [r for r in third.records["list_members"] if r["id"] == member["id"]]
    assert changed and changed[0]["merge_fields"]["FNAME"] == "Mariazinha"
    assert len(third.records["list_members"]) <= len(account.lists) + 3
    value = next(
        p["replication_key_value"]
        for p in third.state["bookmarks"]["list_members"]["partitions"]
        if p["context"]["list_id"] == newsletter
    )
    assert value == touched["last_changed"]


def test_start_date_limits_members_and_campaigns(world: World) -> None:
    account = world.slices["mailchimp"]
    newsletter = account.lists[0]["id"]
    stamps = sorted(m["last_changed"] for m in account.members[newsletter])
    start = stamps[len(stamps) // 2]
    result = sync({"start_date": start})
    got = {m["id"] for m in result.records["list_members"] if m["list_id"] == newsletter}
    assert got == {m["id"] for m in account.members[newsletter] if m["last_changed"] >= start}
    assert {c["id"] for c in result.records["campaigns"]} == {
        c["id"] for c in account.campaigns if c["status"] == "sent" and c["send_time"] >= start
    }


def test_a_member_edited_mid_sync_does_not_hide_another(
    world: World, mailchimp: MailchimpEmulator
) -> None:
    """Offset paging alone skips a member when an earlier one moves to the end of the
    order between two pages; the keyset step does not."""
    account = world.slices["mailchimp"]
    newsletter = account.lists[0]["id"]
    held = sorted(account.members[newsletter], key=lambda m: (m["last_changed"], m["web_id"]))
    first_page_member = held[2]
    pages = {"n": 0}
    real_send = requests.Session.send

    def send(session, request, **kwargs):
        if f"/lists/{newsletter}/members" in request.url:
            pages["n"] += 1
            if pages["n"] == 2:  # between the first and the second page
                mailchimp.touch_member(newsletter, first_page_member["email_address"], vip=True)
        return real_send(session, request, **kwargs)

    with mock.patch.object(requests.Session, "send", send):
        result = sync({"page_size": 10})
    got = {m["id"] for m in result.records["list_members"] if m["list_id"] == newsletter}
    assert got == {m["id"] for m in account.members[newsletter]}


def test_429_5xx_and_a_timeout_are_retried_and_the_sync_completes(
    world: World, mailchimp: MailchimpEmulator
) -> None:
    mailchimp.fail_next(1, 429)
    mailchimp.fail_next(1, 503)
    mailchimp.fail_next(1, 504, hang_seconds=2.0)
    with mock.patch("tap_mailchimp.client.MailchimpStream.backoff_base_seconds", 0.05):
        result = sync({"request_timeout": 1})
    assert mailchimp.faults.pending == 0
    account = world.slices["mailchimp"]
    assert len(result.records["list_members"]) == sum(len(m) for m in account.members.values())


def test_retries_have_a_limit(mailchimp: MailchimpEmulator) -> None:
    mailchimp.fail_next(3, 500)
    with (
        mock.patch("tap_mailchimp.client.MailchimpStream.backoff_base_seconds", 0.01),
        pytest.raises(
            MailchimpRetriesExhaustedError, match=r"HTTP 500 .*Internal Server Error.*2 att"
        ),
    ):
        sync({"max_retries": 1})


def test_timeouts_become_a_connection_error(mailchimp: MailchimpEmulator) -> None:
    mailchimp.fail_next(2, 504, hang_seconds=1.5)
    with (
        mock.patch("tap_mailchimp.client.MailchimpStream.backoff_base_seconds", 0.01),
        pytest.raises(
            MailchimpConnectionError, match=r"did not answer .*/3\.0/\w+ within 1 s \(2 attempt"
        ),
    ):
        sync({"request_timeout": 1, "max_retries": 1})


def test_an_interrupted_sync_resumes_from_its_last_state(world: World) -> None:
    """The connection drops on the members' fourth page (campaigns and their reports are
    done); the next run, from the last STATE, reads the members and reads the reports
    again only from their bookmarks."""
    real_send = requests.Session.send
    member_pages = {"n": 0}

    def flaky_send(session, request, **kwargs):
        if "/members" in request.url:
            member_pages["n"] += 1
            if member_pages["n"] > 3:
                raise requests.exceptions.ConnectionError("connection reset by peer")
        return real_send(session, request, **kwargs)

    out = io.StringIO()
    with (
        mock.patch.object(requests.Session, "send", flaky_send),
        redirect_stdout(out),
        pytest.raises(MailchimpConnectionError),
    ):
        TapMailchimp(config={**BASE_CONFIG, "page_size": 10, "max_retries": 0}).sync_all()
    interrupted = SyncResult([json.loads(line) for line in out.getvalue().splitlines() if line])
    # singer-sdk emits STATE when a stream ends: the reports' bookmarks were saved
    reports = interrupted.state["bookmarks"]["email_activity"]["partitions"]
    assert len(reports) == len(interrupted.records["campaigns"])
    assert all(p["replication_key_value"] for p in reports)
    assert interrupted.records["list_members"]  # some members were read before the cut

    resumed = sync({"page_size": 10}, state=interrupted.state)
    account = world.slices["mailchimp"]
    members = {(m["list_id"], m["id"]) for m in resumed.records["list_members"]}
    assert members == {(m["list_id"], m["id"]) for held in account.members.values() for m in held}
    # the reports were finished: read again only at their bookmarks, no "sent" row
    assert not [r for r in resumed.records["email_activity"] if r["action"] == "sent"]
    assert len(resumed.records["email_activity"]) <= 2 * len(resumed.records["campaigns"])


def test_bad_key_fails_with_a_clear_message_and_no_secret(tmp_path: Path) -> None:
    wrong = "0123456789abcdef0123456789abcdef-us1"
    result = run_executable(tmp_path, {**BASE_CONFIG, "api_key": wrong})
    assert result.returncode == 1
    assert "Mailchimp rejected the API key (HTTP 401 API Key Invalid" in result.stderr
    assert "check the `api_key` setting" in result.stderr
    assert "Traceback" not in result.stderr
    assert wrong not in result.stderr + result.stdout


def test_server_down_fails_with_a_clear_message(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/3.0"
    result = run_executable(tmp_path, {**BASE_CONFIG, "api_url": down, "max_retries": 0})
    assert result.returncode == 1
    assert f"Could not connect to Mailchimp at {down}/campaigns" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"page_size": 1001}, "page_size"),
        ({"api_url": "us1.api.mailchimp.com/3.0"}, "api_url"),
        ({"api_url": "https://us1.api.mailchimp.com"}, "api_url"),
        ({"api_url": None, "api_key": "no-data-centre!"}, "api_key"),
        ({"api_key": None}, "api_key"),
    ],
)
def test_bad_config_is_rejected_naming_the_setting(config: dict[str, Any], setting: str) -> None:
    merged = {k: v for k, v in {**BASE_CONFIG, **config}.items() if v is not None}
    with pytest.raises(ConfigValidationError) as raised:
        TapMailchimp(config=merged)
    assert any(setting in error for error in raised.value.errors), raised.value.errors


# --- units ------------------------------------------------------------------------------


def test_default_api_url_is_the_keys_data_centre() -> None:
    tap = TapMailchimp(config={"api_key": "abc123-us21"})
    stream = tap.streams["lists"]
    assert stream.url_base == "https://us21.api.mailchimp.com/3.0"
    request = requests.Request("GET", stream.url_base).prepare()
    stream.authenticator(request)
    assert request.headers["Authorization"].startswith("Basic ")


def test_member_params_ask_from_a_second_before_the_bookmark() -> None:
    tap = TapMailchimp(config=BASE_CONFIG)
    members = tap.streams[ListMembersStream.name]
    bookmark = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
    with mock.patch.object(members, "get_starting_timestamp", return_value=bookmark):
        params = members.get_url_params({"list_id": "abc"}, None)
    assert params == {
        "count": 1000,
        "offset": 0,
        "sort_field": "last_changed",
        "sort_dir": "ASC",
        "exclude_fields": "_links,members._links",
        "since_last_changed": "2026-03-01T09:59:59+00:00",
    }


def _response(body: dict[str, Any]) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(body).encode()
    return response


def test_last_changed_paginator_steps_by_keyset_and_offset() -> None:
    paginator = LastChangedPaginator()
    page = [
        {"last_changed": "2026-01-01T00:00:01+00:00"},
        {"last_changed": "2026-01-01T00:00:05+00:00"},
        {"last_changed": "2026-01-01T00:00:05+00:00"},
    ]
    paginator.advance(_response({"members": page, "total_items": 10}))
    # from a second before the last member's change, past the two already read at it
    assert paginator.current_value == ("2026-01-01T00:00:04+00:00", 2)
    same = [{"last_changed": "2026-01-01T00:00:05+00:00"}] * 3
    paginator.advance(_response({"members": same, "total_items": 9}))
    assert paginator.current_value == ("2026-01-01T00:00:04+00:00", 5)
    paginator.advance(_response({"members": same[:1], "total_items": 6}))
    assert paginator.finished


def test_records_are_conformed_once_per_schema_as_the_sdk_would(world: World) -> None:
    """Every stream conforms its records with tapkit's compiled conformance, and the
    records and state are the ones singer-sdk's own recursive conformance writes."""
    assert_conformed_as_the_sdk_would(TapMailchimp(config=BASE_CONFIG), sync)
