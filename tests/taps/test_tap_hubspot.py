"""tap-hubspot against the HubSpot emulator of the omnicanal sandbox, over real HTTP.

One ``SandboxServer`` (a 120-person world, search's per-second limit lifted unless a test
sets it) serves the module. The SDK's standard tap tests run against it with small pages
(a full sync: lists). The behaviour tests check what the pipeline relies on: every record
once with its associations, a full sync by list then incremental ones by search, time
windows that walk past the search's result cap (lowered here) without a 400, the crowded
instant walked by id, resume after an interruption, paced searches, retries on
429/5xx/timeouts, and clear failures. Unit tests pin the request bodies, the window
paginator and the backoff.
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
from tap_hubspot.client import Window, WindowPaginator, to_millis, to_utc_iso
from tap_hubspot.errors import (
    HubSpotAuthError,
    HubSpotConnectionError,
    HubSpotDailyLimitError,
    HubSpotRetriesExhaustedError,
)
from tap_hubspot.streams import HubSpotObjectStream
from tap_hubspot.tap import TapHubSpot
from taprun import (
    assert_conformed_as_the_sdk_would,
    free_port,
    run_tap,
)

from omnicanal.channels.hubspot import SANDBOX_ACCESS_TOKEN, STREAMS
from omnicanal.channels.hubspot.emulation import HubSpotEmulator
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import World, generate_world

PEOPLE = 120
SEED = 20261129
AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TAP_EXECUTABLE = Path(sys.executable).with_name("tap-hubspot")


# get_tap_test_class needs the config (hence the URL) when the class is built, at
# import; the server itself starts in the module fixture below, on that port.
SANDBOX_PORT = free_port()
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
BASE_CONFIG: dict[str, Any] = {
    "api_url": SANDBOX_URL,
    "access_token": SANDBOX_ACCESS_TOKEN,
    "search_requests_per_second": 0,
}


@pytest.fixture(scope="module", autouse=True)
def sandbox() -> Iterator[SandboxServer]:
    world = generate_world(PEOPLE, seed=SEED, as_of=AS_OF)
    options = {"search_per_second": None, "burst": None}
    with SandboxServer(world, port=SANDBOX_PORT, hubspot=options) as server:
        yield server


@pytest.fixture
def hubspot(sandbox: SandboxServer) -> Iterator[HubSpotEmulator]:
    """The emulator, with no fault, limit or lowered cap left behind after the test."""
    emulator: HubSpotEmulator = sandbox.app.state.hubspot
    yield emulator
    emulator.faults.clear()
    emulator.set_rate_limits(burst=None, search_per_second=None)
    emulator.search_cap = 10_000


@pytest.fixture
def world(sandbox: SandboxServer) -> World:
    return sandbox.app.state.world


# --- the SDK's standard tests ---------------------------------------------------------

# All standard tests run; none is skipped. Small pages make every stream follow the
# list's `after` (a full sync: the standard tests start without state).
TestTapHubSpotStandard = get_tap_test_class(
    TapHubSpot,
    config={**BASE_CONFIG, "page_size": 9},
    suite_config=SuiteConfig(max_records_limit=None),
)


# --- helpers ---------------------------------------------------------------------------


class SyncResult:
    """What one tap run wrote: records per stream, and the last STATE."""

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


def _messages(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line]


def sync(config: dict[str, Any] | None = None, state: dict[str, Any] | None = None) -> SyncResult:
    out = io.StringIO()
    with redirect_stdout(out):
        TapHubSpot(config={**BASE_CONFIG, **(config or {})}, state=state).sync_all()
    return SyncResult(_messages(out.getvalue()))


def run_executable(
    tmp_path: Path, config: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return run_tap(TAP_EXECUTABLE, tmp_path, config, *args)


def expected_links(world: World, stream: str, record_id: str, to_type: str) -> list[str]:
    """The associated ids the world holds for one record, whichever side recorded them."""
    found = set()
    for from_type, from_id, other_type, to_id in world.slices["hubspot"].associations:
        if (from_type, from_id, other_type) == (stream, record_id, to_type):
            found.add(to_id)
        if (other_type, to_id, from_type) == (stream, record_id, to_type):
            found.add(from_id)
    return sorted(found, key=int)


def bookmarks_at(moment: datetime) -> dict[str, Any]:
    """A state whose every stream's bookmark is ``moment``: the next sync searches."""
    value = moment.isoformat(timespec="milliseconds")
    recent = int(time.time() * 1000)  # no periodic full sync due
    return {
        "bookmarks": {
            s: {
                "replication_key": "updated_at",
                "replication_key_value": value,
                "last_full_sync": recent,
            }
            for s in STREAMS
        }
    }


# --- behaviour -------------------------------------------------------------------------


def test_full_sync_lists_every_record_once_with_its_associations(
    tmp_path: Path, world: World, hubspot: HubSpotEmulator
) -> None:
    """Through the executable, 7 a page: every object, no duplicate, associations right."""
    result = run_executable(tmp_path, {**BASE_CONFIG, "page_size": 7})
    assert result.returncode == 0, result.stderr[-2000:]
    synced = SyncResult(_messages(result.stdout))
    portal = world.slices["hubspot"]
    for stream in STREAMS:
        ids = synced.ids(stream)
        assert not [i for i, n in Counter(ids).items() if n > 1], stream
        assert set(ids) == {r["id"] for r in portal.objects[stream]}, stream
    for stream in ("deals", "tickets", "calls"):
        for record in synced.records[stream]:
            for to_type, ids in record["associations"].items():
                assert ids == expected_links(world, stream, record["id"], to_type), stream
    contact = synced.records["contacts"][0]
    source = next(c for c in portal.objects["contacts"] if c["id"] == contact["id"])
    assert contact["properties"]["email"] == source["properties"]["email"]
    assert contact["updated_at"] == to_utc_iso(source["updatedAt"])
    # consent: every contact's "Unsubscribed from all email", as HubSpot writes it
    optouts = {c["id"]: c["properties"]["hs_email_optout"] for c in portal.objects["contacts"]}
    assert {c["id"]: c["properties"]["hs_email_optout"] for c in synced.records["contacts"]} == (
        optouts
    )
    assert set(optouts.values()) == {"true", "false"}
    assert '"type":"ACTIVATE_VERSION"' in result.stdout.replace(" ", "")


def test_a_full_sync_leaves_out_archived_contacts_and_activates_its_version(
    world: World, hubspot: HubSpotEmulator
) -> None:
    """An archived contact is not listed: the full sync's ACTIVATE_VERSION lets the loader
    retire it (an incremental search could never notice it is gone)."""
    contacts = world.slices["hubspot"].objects["contacts"]
    index, original = 7, contacts[7]
    hubspot.archive("contacts", original["id"])
    try:
        out = io.StringIO()
        with redirect_stdout(out):
            TapHubSpot(config=BASE_CONFIG).sync_all()
        messages = _messages(out.getvalue())
    finally:
        contacts[index] = original
        hubspot._archived.discard(("contacts", original["id"]))
    synced = SyncResult(messages)
    assert original["id"] not in synced.ids("contacts")
    assert len(synced.ids("contacts")) == len(contacts) - 1
    versions = [m for m in messages if m["type"] == "ACTIVATE_VERSION"]
    assert "contacts" in {m["stream"] for m in versions}
    stamped = {
        m["version"] for m in messages if m["type"] == "RECORD" and m["stream"] == "contacts"
    }
    assert stamped == {m["version"] for m in versions if m["stream"] == "contacts"}


def test_incremental_syncs_search_and_carry_the_same_associations(
    world: World, hubspot: HubSpotEmulator
) -> None:
    first = sync()
    bookmarks = first.state["bookmarks"]
    portal = world.slices["hubspot"]
    for stream in STREAMS:
        latest = max(r["updated_at"] for r in first.records[stream])
        assert bookmarks[stream]["replication_key_value"] == latest, stream

    before = hubspot.request_count
    second = sync({"search_page_size": 5}, state=first.state)
    # inclusive search: at most the records on each bookmark come back
    assert sum(len(r) for r in second.records.values()) <= 2 * len(STREAMS)
    assert hubspot.request_count - before < 4 * len(STREAMS)

    contact = portal.objects["contacts"][4]
    call = next(
        c for c in portal.objects["calls"] if expected_links(world, "calls", c["id"], "deals")
    )
    hubspot.touch("contacts", contact["id"], hs_additional_emails="segundo@exemplo.com.br")
    hubspot.touch("calls", call["id"], hs_call_status="COMPLETED")
    third = sync({"search_page_size": 5}, state=second.state)
    changed = next(c for c in third.records["contacts"] if c["id"] == contact["id"])
    assert changed["properties"]["hs_additional_emails"] == "segundo@exemplo.com.br"
    assert changed["associations"]["companies"] == expected_links(
        world, "contacts", contact["id"], "companies"
    )
    searched_call = next(c for c in third.records["calls"] if c["id"] == call["id"])
    listed_call = next(c for c in first.records["calls"] if c["id"] == call["id"])
    assert searched_call["associations"] == listed_call["associations"]  # batch read == list
    assert third.state["bookmarks"]["contacts"]["replication_key_value"] == changed["updated_at"]


def test_windows_walk_past_the_search_cap_without_a_400(
    world: World, hubspot: HubSpotEmulator
) -> None:
    """The cap lowered to 8: an incremental sync over everything still reads each once."""
    hubspot.search_cap = 8
    portal = world.slices["hubspot"]
    assert len(portal.objects["contacts"]) > 4 * 8 and len(portal.objects["notes"]) > 2 * 8
    before = hubspot.request_count
    result = sync(
        {"search_page_size": 3, "search_result_cap": 8},
        state=bookmarks_at(datetime(2000, 1, 1, tzinfo=UTC)),
    )
    for stream in STREAMS:
        ids = result.ids(stream)
        assert not [i for i, n in Counter(ids).items() if n > 1], stream
        assert set(ids) == {r["id"] for r in portal.objects[stream]}, stream
        stamps = [r["updated_at"] for r in result.records[stream]]
        assert stamps == sorted(stamps), stream
    # two pages of 3 a window (a third would cross 8): many windows, no 400 (it would fail)
    notes = len(portal.objects["notes"])
    assert hubspot.request_count - before > notes // 3


def test_a_crowded_instant_is_walked_by_id(world: World, hubspot: HubSpotEmulator) -> None:
    """50 meetings imported at the same millisecond, the cap at 20: all arrive once."""
    hubspot.search_cap = 20
    moment = AS_OF + timedelta(days=3)
    added = hubspot.add_records("meetings", 50, at=moment, hs_meeting_title="Importada")
    later = hubspot.touch("meetings", world.slices["hubspot"].objects["meetings"][0]["id"])
    result = sync(
        {"search_page_size": 7, "search_result_cap": 20},
        state=bookmarks_at(AS_OF + timedelta(days=1)),
    )
    ids = result.ids("meetings")
    assert Counter(ids).most_common(1)[0][1] == 1
    assert set(ids) == {r["id"] for r in added} | {later["id"]}
    assert result.state["bookmarks"]["meetings"]["replication_key_value"] == to_utc_iso(
        later["updatedAt"]
    )


def test_an_interrupted_incremental_sync_resumes_from_its_last_state(
    world: World, hubspot: HubSpotEmulator
) -> None:
    """The connection drops mid-search; the next run, from the last STATE, completes it
    without reading again what the first one checkpointed."""
    start = bookmarks_at(datetime(2000, 1, 1, tzinfo=UTC))
    real_send = requests.Session.send
    calls = {"n": 0}

    def flaky_send(session, request, **kwargs):
        calls["n"] += 1
        if calls["n"] > 9:
            raise requests.exceptions.ConnectionError("connection reset by peer")
        return real_send(session, request, **kwargs)

    out = io.StringIO()
    with (
        mock.patch.object(requests.Session, "send", flaky_send),
        mock.patch.object(HubSpotObjectStream, "STATE_MSG_FREQUENCY", 4),
        redirect_stdout(out),
        pytest.raises(HubSpotConnectionError),
    ):
        TapHubSpot(
            config={**BASE_CONFIG, "search_page_size": 4, "max_retries": 0}, state=start
        ).sync_all()
    interrupted = SyncResult(_messages(out.getvalue()))
    cut = [s for s in STREAMS if interrupted.records[s]]
    assert cut, "nothing synced before the failure"
    stream = cut[-1]  # the one the failure interrupted
    assert interrupted.state["bookmarks"][stream]["replication_key_value"] > "2000"

    resumed = sync({"search_page_size": 4}, state=interrupted.state)
    portal = world.slices["hubspot"]
    for name in STREAMS:
        got = set(interrupted.ids(name)) | set(resumed.ids(name))
        assert got == {r["id"] for r in portal.objects[name]}, name
    again = set(interrupted.ids(stream)) & set(resumed.ids(stream))
    assert len(again) < len(interrupted.ids(stream))  # resumed past what was checkpointed


def test_searches_are_paced_under_the_per_second_limit(
    world: World, hubspot: HubSpotEmulator
) -> None:
    hubspot.set_rate_limits(burst=None, search_per_second=5)
    started = time.monotonic()
    result = sync(
        {"search_page_size": 20, "search_requests_per_second": 4},
        state=bookmarks_at(AS_OF - timedelta(days=120)),
    )
    assert hubspot.throttled["SECONDLY"] == 0
    searched = sum(1 for s in STREAMS if result.records[s]) + 1
    assert time.monotonic() - started >= (searched - 1) / 4 * 0.9


def test_429_5xx_and_a_timeout_are_retried_and_the_sync_completes(
    world: World, hubspot: HubSpotEmulator
) -> None:
    hubspot.set_rate_limits(burst=4, search_per_second=None)
    hubspot.fail_next(1, 503)
    hubspot.fail_next(1, 500, hang_seconds=2.0)
    with (
        mock.patch("tap_hubspot.client.HubSpotStream.backoff_base_seconds", 0.05),
        mock.patch("tap_hubspot.client.HubSpotStream.rate_limit_base_seconds", 0.5),
        mock.patch("omnicanal.channels.hubspot.emulation.BURST_INTERVAL_MS", 1000),
    ):
        # the burst window is 10 s in HubSpot; a 1 s one keeps the test short
        result = sync({"request_timeout": 1, "max_retries": 8, "page_size": 50})
    assert hubspot.faults.pending == 0
    assert hubspot.throttled["TEN_SECONDLY_ROLLING"] > 0
    assert set(result.ids("contacts")) == {
        c["id"] for c in world.slices["hubspot"].objects["contacts"]
    }


def test_retries_have_a_limit(hubspot: HubSpotEmulator) -> None:
    hubspot.fail_next(3, 500)
    with (
        mock.patch("tap_hubspot.client.HubSpotStream.backoff_base_seconds", 0.01),
        pytest.raises(HubSpotRetriesExhaustedError, match=r"HTTP 500 .*internal error.*2 att"),
    ):
        sync({"max_retries": 1})


def test_an_expired_token_says_so(hubspot: HubSpotEmulator) -> None:
    hubspot.fail_next(1, expired=True)
    with pytest.raises(HubSpotAuthError, match="EXPIRED_AUTHENTICATION.*the token expired"):
        sync()


def test_the_daily_limit_ends_the_sync_without_retrying(hubspot: HubSpotEmulator) -> None:
    hubspot.set_rate_limits(burst=None, search_per_second=None, daily=3)
    with pytest.raises(HubSpotDailyLimitError, match=r"daily API allowance \(3 requests\)"):
        sync()
    assert hubspot.throttled["DAILY"] == 1


def test_bad_token_fails_with_a_clear_message_and_no_secret(tmp_path: Path) -> None:
    wrong = "pat-na1-wrong-0123456789abcdef"
    result = run_executable(tmp_path, {**BASE_CONFIG, "access_token": wrong})
    assert result.returncode == 1
    assert "HubSpot rejected the access token (HTTP 401 INVALID_AUTHENTICATION" in result.stderr
    assert "check the `access_token` setting" in result.stderr
    assert "Traceback" not in result.stderr
    assert wrong not in result.stderr + result.stdout


def test_server_down_fails_with_a_clear_message(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    result = run_executable(tmp_path, {**BASE_CONFIG, "api_url": down, "max_retries": 0})
    assert result.returncode == 1
    assert f"Could not connect to HubSpot at {down}/crm/v3/objects/" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"page_size": 101}, "page_size"),
        ({"search_page_size": 201}, "search_page_size"),
        ({"api_url": "api.hubapi.com"}, "api_url"),
        ({"api_url": "https://api.hubapi.com/crm/v3"}, "api_url"),
        ({"access_token": "Bearer pat-na1-x"}, "access_token"),
        ({"access_token": None}, "access_token"),
    ],
)
def test_bad_config_is_rejected_naming_the_setting(config: dict[str, Any], setting: str) -> None:
    merged = {k: v for k, v in {**BASE_CONFIG, **config}.items() if v is not None}
    with pytest.raises(ConfigValidationError) as raised:
        TapHubSpot(config=merged)
    assert any(setting in error for error in raised.value.errors), raised.value.errors
    assert all("pat-na1-x" not in error for error in raised.value.errors)


# --- units: request shapes, windows, backoff ------------------------------------------


def _stream(name: str, state: dict[str, Any] | None = None):
    tap = TapHubSpot(config=BASE_CONFIG, state=state)
    return tap.streams[name]


def test_search_bodies_by_window() -> None:
    deals = _stream("deals", bookmarks_at(datetime(2024, 3, 1, tzinfo=UTC)))
    deals._search_mode = True
    assert deals.http_method == "POST" and deals.path == "/crm/v3/objects/deals/search"
    body = deals.prepare_request_payload(None, Window(1709251200000))
    assert body["filterGroups"] == [
        {
            "filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "1709251200000"}
            ]
        }
    ]
    assert body["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert body["limit"] == 200 and "after" not in body
    assert "dealstage" in body["properties"] and "hs_lastmodifieddate" in body["properties"]
    paged = deals.prepare_request_payload(None, Window(1709251200000, after=400, strict=True))
    assert paged["after"] == "400"
    assert paged["filterGroups"][0]["filters"][0]["operator"] == "GT"
    tie = deals.prepare_request_payload(None, Window(1709251200000, tie_id=77))
    assert tie["filterGroups"][0]["filters"] == [
        {"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": "1709251200000"},
        {"propertyName": "hs_object_id", "operator": "GT", "value": "77"},
    ]
    assert tie["sorts"] == [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
    contacts = _stream("contacts")
    contacts._search_mode = False
    params = contacts.get_url_params(None, "513")
    assert params["after"] == "513" and params["associations"] == "companies"
    assert "lastmodifieddate" in params["properties"].split(",")
    assert contacts.http_method == "GET" and contacts.path == "/crm/v3/objects/contacts"


def _page(results: list[tuple[str, str]], following: str | None) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    body: dict[str, Any] = {
        "results": [{"id": i, "properties": {"hs_lastmodifieddate": s}} for i, s in results]
    }
    if following is not None:
        body["paging"] = {"next": {"after": following}}
    response._content = json.dumps(body).encode()
    return response


def test_window_paginator_restarts_before_the_cap_and_walks_ties_by_id() -> None:
    t0, t1 = "2025-01-01T00:00:00.000Z", "2025-01-02T00:00:00.000Z"
    paginator = WindowPaginator(
        Window(to_millis(t0)), page_size=10, cap=30, modified="hs_lastmodifieddate"
    )
    paginator.advance(_page([("1", t0), ("2", t1)], "10"))
    assert paginator.current_value == Window(to_millis(t0), after=10)
    paginator.advance(_page([("3", t1)], "20"))
    assert paginator.current_value == Window(to_millis(t0), after=20)
    paginator.advance(_page([("4", t1)], "30"))  # a page at 30 would cross the cap
    assert paginator.current_value == Window(to_millis(t1))
    paginator.advance(_page([("5", t1)], "10"))
    paginator.advance(_page([("6", t1)], "20"))
    paginator.advance(_page([("7", t1)], "30"))  # 30 results all at t1: walk it by id
    assert paginator.current_value == Window(to_millis(t1), tie_id=7)
    paginator.advance(_page([("8", t1)], None))  # the instant is done: strictly after it
    assert paginator.current_value == Window(to_millis(t1), strict=True)
    paginator.advance(_page([], None))
    assert paginator.finished


def test_backoff_starts_at_half_a_second_for_429_and_honours_retry_after() -> None:
    stream = _stream("contacts")
    waits = stream.backoff_wait_generator()
    assert next(waits) == 0.0
    response = requests.Response()
    response.status_code = 429
    first = waits.send(RetriableAPIError("429", response))
    assert 0.5 <= first < 0.56
    proxied = requests.Response()
    proxied.status_code = 429
    proxied.headers["Retry-After"] = "3"
    assert waits.send(RetriableAPIError("429", proxied)) == 3.0
    assert stream.backoff_max_tries() == 6


def test_records_are_conformed_once_per_schema_as_the_sdk_would(world: World) -> None:
    """Every stream conforms its records with tapkit's compiled conformance, and the
    records and state are the ones singer-sdk's own recursive conformance writes."""
    assert_conformed_as_the_sdk_would(TapHubSpot(config=BASE_CONFIG), sync)
