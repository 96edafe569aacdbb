"""tap-square against the Square emulator of the omnicanal sandbox, over real HTTP.

One ``SandboxServer`` (a 120-person world) serves the whole module. The SDK's standard
tap tests run against it with small pages so every cursor is followed; the behaviour
tests check what the pipeline relies on: every record once across pages (search bodies
included), per-location bookmarks that resume, the one-year default window Square would
apply without ``begin_time``, retries on 429/5xx/timeouts, and clear failures. Unit
tests pin the request bodies, the paginator and the backoff schedule.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
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
from requests.adapters import HTTPAdapter
from singer_sdk.exceptions import ConfigValidationError, RetriableAPIError
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from taprun import (
    assert_conformed_as_the_sdk_would,
    free_port,
    run_tap,
)

from omnicanal.channels.square import SANDBOX_ACCESS_TOKEN
from omnicanal.channels.square.emulation import SquareEmulator
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import World, generate_world
from tap_square.client import DEFAULT_API_VERSION, to_utc_iso
from tap_square.errors import SquareConnectionError, SquareRetriesExhaustedError
from tap_square.streams import CustomersStream, OrdersStream, PaymentsStream
from tap_square.tap import TapSquare

PEOPLE = 120
SEED = 20260916
AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TAP_EXECUTABLE = Path(sys.executable).with_name("tap-square")
STREAMS = ("locations", "customers", "orders", "payments", "refunds", "catalog_items")


# get_tap_test_class needs the config (hence the URL) when the class is built, at
# import; the server itself starts in the module fixture below, on that port.
SANDBOX_PORT = free_port()
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
BASE_CONFIG: dict[str, Any] = {"api_url": SANDBOX_URL, "access_token": SANDBOX_ACCESS_TOKEN}


@pytest.fixture(scope="module", autouse=True)
def sandbox() -> Iterator[SandboxServer]:
    world = generate_world(PEOPLE, seed=SEED, as_of=AS_OF)
    with SandboxServer(world, port=SANDBOX_PORT, square={"rate_limit": None}) as server:
        yield server


@pytest.fixture
def square(sandbox: SandboxServer) -> Iterator[SquareEmulator]:
    """The Square emulator, with no fault or limit left behind after the test."""
    emulator: SquareEmulator = sandbox.app.state.square
    yield emulator
    emulator.faults.clear()
    emulator.set_rate_limit(None)


@pytest.fixture
def world(sandbox: SandboxServer) -> World:
    return sandbox.app.state.world


# --- the SDK's standard tests ---------------------------------------------------------

# All standard tests run; none is skipped. Small pages make every stream follow cursors
# (customers and payments by 15, orders by 20).
TestTapSquareStandard = get_tap_test_class(
    TapSquare,
    config={**BASE_CONFIG, "page_size": 15, "orders_page_size": 20},
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


def sync(config: dict[str, Any] | None = None, state: dict[str, Any] | None = None) -> SyncResult:
    out = io.StringIO()
    with redirect_stdout(out):
        TapSquare(config={**BASE_CONFIG, **(config or {})}, state=state).sync_all()
    return SyncResult([json.loads(line) for line in out.getvalue().splitlines() if line])


def run_executable(
    tmp_path: Path, config: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return run_tap(TAP_EXECUTABLE, tmp_path, config, *args)


# --- behaviour -------------------------------------------------------------------------


def test_every_record_arrives_exactly_once_across_pages(
    tmp_path: Path, world: World, square: SquareEmulator
) -> None:
    """Through the executable, 7 records a page (orders 6): the whole shop, no duplicate."""
    before = square.request_count
    result = run_executable(tmp_path, {**BASE_CONFIG, "page_size": 7, "orders_page_size": 6})
    assert result.returncode == 0, result.stderr[-2000:]
    synced = SyncResult([json.loads(line) for line in result.stdout.splitlines() if line])
    shop = world.slices["square"]
    for stream, expected in (
        ("locations", shop.locations),
        ("customers", shop.customers),
        ("orders", shop.orders),
        ("payments", shop.payments),
        ("refunds", shop.refunds),
        ("catalog_items", shop.catalog_items),
    ):
        ids = synced.ids(stream)
        assert not [i for i, n in Counter(ids).items() if n > 1], stream
        assert set(ids) == {r["id"] for r in expected}, stream
    assert square.request_count - before >= len(shop.orders) // 6 + len(shop.customers) // 7
    # payments older than a year are there: begin_time was sent
    oldest = min(p["created_at"] for p in synced.records["payments"])
    assert (AS_OF - datetime.fromisoformat(oldest)).days > 365


def test_bookmarks_per_location_and_incremental_sync(world: World, square: SquareEmulator) -> None:
    exact = {"page_size": 50, "search_lookback_seconds": 0}  # what each bookmark alone reads
    first = sync(exact)
    bookmarks = first.state["bookmarks"]
    locations = {loc["id"] for loc in world.slices["square"].locations}
    for stream in ("orders", "payments"):
        partitions = bookmarks[stream]["partitions"]
        assert {p["context"]["location_id"] for p in partitions} == locations
        for partition in partitions:
            latest = max(
                r["updated_at"]
                for r in first.records[stream]
                if r["location_id"] == partition["context"]["location_id"]
            )
            assert partition["replication_key_value"] == latest
    orders = first.records["orders"]
    for location in locations:  # sorted within each location's search
        stamps = [o["updated_at"] for o in orders if o["location_id"] == location]
        assert stamps == sorted(stamps)
    assert all(o["updated_at"].endswith("+00:00") for o in orders)

    second = sync(exact, state=first.state)
    # inclusive filters: at most the records on each bookmark come back
    assert len(second.records["orders"]) <= len(locations)
    assert len(second.records["customers"]) <= 3

    order = world.slices["square"].orders[0]
    customer = world.slices["square"].customers[0]
    square.touch_order(order["id"], ticket_name="Retirada")
    square.touch_customer(customer["id"], note="CPF na nota: 529.982.247-25")
    third = sync(exact, state=second.state)
    assert order["id"] in third.ids("orders") and len(third.records["orders"]) <= len(locations) + 1
    changed = next(c for c in third.records["customers"] if c["id"] == customer["id"])
    assert changed["note"] == "CPF na nota: 529.982.247-25"
    new_value = next(
        p["replication_key_value"]
        for p in third.state["bookmarks"]["orders"]["partitions"]
        if p["context"]["location_id"] == order["location_id"]
    )
    assert new_value == to_utc_iso(square.shop.orders[0]["updated_at"])


def test_a_change_that_becomes_searchable_late_is_read_by_the_look_back(
    world: World, square: SquareEmulator
) -> None:
    """Square's search is eventually consistent: a change can surface after a sync with
    an ``updated_at`` below the bookmark that sync saved."""
    first = sync({"page_size": 50})
    shop = world.slices["square"]
    customer_bookmark = datetime.fromisoformat(
        first.state["bookmarks"]["customers"]["replication_key_value"]
    )
    # the oldest records: neither is the one its bookmark was taken from
    order = min(shop.orders, key=lambda o: o["updated_at"])
    order_bookmark = datetime.fromisoformat(
        next(
            p["replication_key_value"]
            for p in first.state["bookmarks"]["orders"]["partitions"]
            if p["context"]["location_id"] == order["location_id"]
        )
    )
    customer = min(shop.customers, key=lambda c: c["updated_at"])
    square.touch_customer(customer["id"], at=customer_bookmark - timedelta(seconds=90), note="late")
    square.touch_order(order["id"], at=order_bookmark - timedelta(seconds=90), ticket_name="late")

    without = sync({"page_size": 50, "search_lookback_seconds": 0}, state=first.state)
    assert customer["id"] not in without.ids("customers")
    assert order["id"] not in without.ids("orders")

    late = sync({"page_size": 50}, state=first.state)  # the default look-back, 300 s
    late_customer = next(c for c in late.records["customers"] if c["id"] == customer["id"])
    late_order = next(o for o in late.records["orders"] if o["id"] == order["id"])
    assert (late_customer["note"], late_order["ticket_name"]) == ("late", "late")
    # the bookmarks end where they were or later, never behind
    for partition in late.state["bookmarks"]["orders"]["partitions"]:
        before = next(
            p["replication_key_value"]
            for p in first.state["bookmarks"]["orders"]["partitions"]
            if p["context"] == partition["context"]
        )
        assert partition["replication_key_value"] >= before
    assert (
        late.state["bookmarks"]["customers"]["replication_key_value"]
        >= first.state["bookmarks"]["customers"]["replication_key_value"]
    )
    # a look-back one second short of the change misses it: the window is what it says
    short = sync({"page_size": 50, "search_lookback_seconds": 89}, state=first.state)
    assert order["id"] not in short.ids("orders")


def test_the_look_back_starts_before_the_bookmark_and_never_before_start_date() -> None:
    bookmark = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    state = {"replication_key": "updated_at", "replication_key_value": bookmark.isoformat()}
    customers = _stream(CustomersStream, {"search_lookback_seconds": 600})
    with (
        mock.patch.object(customers, "get_starting_timestamp", return_value=bookmark),
        mock.patch.object(customers, "get_context_state", return_value=state),
    ):
        assert customers.start_time(None) == bookmark - timedelta(minutes=10)
    floor = _stream(
        CustomersStream,
        {"search_lookback_seconds": 600, "start_date": "2024-03-01T11:55:00Z"},
    )
    with (
        mock.patch.object(floor, "get_starting_timestamp", return_value=bookmark),
        mock.patch.object(floor, "get_context_state", return_value=state),
    ):
        assert floor.start_time(None) == datetime(2024, 3, 1, 11, 55, tzinfo=UTC)
    # a first sync (no bookmark yet) starts at start_date itself, not before it
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with (
        mock.patch.object(floor, "get_starting_timestamp", return_value=start),
        mock.patch.object(floor, "get_context_state", return_value={}),
    ):
        assert floor.start_time(None) == start


def test_start_date_limits_the_first_sync(world: World) -> None:
    shop = world.slices["square"]
    stamps = sorted(o["updated_at"] for o in shop.orders)
    start = stamps[len(stamps) // 2]
    result = sync({"start_date": start})
    assert set(result.ids("orders")) == {o["id"] for o in shop.orders if o["updated_at"] >= start}
    assert set(result.ids("payments")) == {
        p["id"] for p in shop.payments if p["created_at"] >= start and p["updated_at"] >= start
    }


def test_429_5xx_and_a_timeout_are_retried_and_the_sync_completes(
    world: World, square: SquareEmulator
) -> None:
    square.fail_next(1, 429)
    square.fail_next(1, 503)
    square.fail_next(1, 504, hang_seconds=2.0)
    with mock.patch("tap_square.client.SquareStream.backoff_base_seconds", 0.05):
        result = sync({"request_timeout": 1})
    assert square.faults.pending == 0
    assert set(result.ids("orders")) == {o["id"] for o in world.slices["square"].orders}


def test_rate_limit_is_backed_off(world: World, square: SquareEmulator) -> None:
    square.set_rate_limit(4)
    with mock.patch("tap_square.client.SquareStream.backoff_base_seconds", 0.3):
        result = sync({"page_size": 40, "max_retries": 8})
    assert set(result.ids("customers")) == {c["id"] for c in world.slices["square"].customers}


def test_retries_have_a_limit(square: SquareEmulator) -> None:
    square.fail_next(3, 500)
    with (
        mock.patch("tap_square.client.SquareStream.backoff_base_seconds", 0.01),
        pytest.raises(
            SquareRetriesExhaustedError, match=r"HTTP 500 .*INTERNAL_SERVER_ERROR.*2 att"
        ),
    ):
        sync({"max_retries": 1})


def test_bad_token_fails_with_a_clear_message_and_no_secret(tmp_path: Path) -> None:
    wrong = "EAAAwrong0123456789abcdef"
    result = run_executable(tmp_path, {**BASE_CONFIG, "access_token": wrong})
    assert result.returncode == 1
    assert "Square rejected the access token (HTTP 401 UNAUTHORIZED" in result.stderr
    assert "check the `access_token` setting" in result.stderr
    assert "Traceback" not in result.stderr
    assert wrong not in result.stderr + result.stdout


def test_an_unsupported_version_names_the_setting(tmp_path: Path) -> None:
    result = run_executable(tmp_path, {**BASE_CONFIG, "api_version": "2099-01-01"})
    assert result.returncode == 1
    assert "API_VERSION_INCOMPATIBLE" in result.stderr and "`api_version`" in result.stderr


def test_server_down_fails_with_a_clear_message(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    result = run_executable(tmp_path, {**BASE_CONFIG, "api_url": down, "max_retries": 0})
    assert result.returncode == 1
    assert f"Could not connect to Square at {down}/v2/" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"page_size": 101}, "page_size"),
        ({"orders_page_size": 1001}, "orders_page_size"),
        ({"api_url": "connect.squareup.com"}, "api_url"),
        ({"api_url": "https://connect.squareup.com/v2"}, "api_url"),
        ({"api_version": "2026-09"}, "api_version"),
        ({"access_token": None}, "access_token"),
    ],
)
def test_bad_config_is_rejected_naming_the_setting(config: dict[str, Any], setting: str) -> None:
    merged = {k: v for k, v in {**BASE_CONFIG, **config}.items() if v is not None}
    with pytest.raises(ConfigValidationError) as raised:
        TapSquare(config=merged)
    assert any(setting in error for error in raised.value.errors), raised.value.errors


# --- units: request shapes, paging, backoff ------------------------------------------


def _stream(cls, config: dict[str, Any] | None = None):
    tap = TapSquare(config={**BASE_CONFIG, **(config or {})})
    return tap.streams[cls.name]


def test_search_bodies_repeat_the_query_and_carry_the_cursor() -> None:
    orders = _stream(OrdersStream)
    context = {"location_id": "L1"}
    bookmark = datetime(2024, 3, 1, tzinfo=UTC)  # what the state (or start_date) says
    with mock.patch.object(orders, "get_starting_timestamp", return_value=bookmark):
        first = orders.prepare_request_payload(context, None)
        following = orders.prepare_request_payload(context, "CURSOR-2")
    assert first == {
        "location_ids": ["L1"],
        "limit": 500,
        "query": {
            "filter": {
                "state_filter": {"states": ["OPEN", "COMPLETED", "CANCELED"]},
                "date_time_filter": {"updated_at": {"start_at": "2024-03-01T00:00:00.000Z"}},
            },
            "sort": {"sort_field": "UPDATED_AT", "sort_order": "ASC"},
        },
    }
    assert following == {**first, "cursor": "CURSOR-2"}
    assert orders.http_method == "POST"
    customers = _stream(CustomersStream, {"page_size": 20})
    with mock.patch.object(customers, "get_starting_timestamp", return_value=bookmark):
        body = customers.prepare_request_payload(None, None)
    assert body == {
        "limit": 20,
        "query": {
            "filter": {"updated_at": {"start_at": "2024-03-01T00:00:00.000Z"}},
            "sort": {"field": "CREATED_AT", "order": "ASC"},
        },
    }


def test_payments_params_always_send_begin_time() -> None:
    payments = _stream(PaymentsStream)
    params = payments.get_url_params({"location_id": "L1"}, "C2")
    assert params["begin_time"] == "2009-01-01T00:00:00.000Z"
    assert (params["location_id"], params["cursor"], params["sort_field"]) == (
        "L1",
        "C2",
        "UPDATED_AT",
    )
    assert payments.http_headers["Square-Version"] == DEFAULT_API_VERSION
    assert payments.authenticator.auth_headers["Authorization"] == f"Bearer {SANDBOX_ACCESS_TOKEN}"


def _response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None):
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


def test_the_next_page_is_asked_for_while_a_pages_records_are_handed_on() -> None:
    """Square answers while the tap processes the page before (omnicanal_tapkit's
    PrefetchedPages): one page ahead, the same query on every page."""
    customers = _stream(CustomersStream, {"page_size": 5})
    bodies: list[dict[str, Any]] = []
    second = threading.Event()

    class Noting(HTTPAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            bodies.append(json.loads(request.body or b"{}"))
            if len(bodies) == 2:
                second.set()
            return super().send(request, **kwargs)

    customers.requests_session.mount("http://", Noting())
    records = customers.request_records(None)
    first = next(records)
    assert second.wait(timeout=30)  # page 2 asked for, page 1's first record in hand
    assert len(bodies) == 2
    ids = [first["id"], *(record["id"] for record in records)]
    assert len(ids) == len(set(ids)) > 10
    assert bodies[0].get("cursor") is None and all(body["cursor"] for body in bodies[1:])
    assert all({k: v for k, v in body.items() if k != "cursor"} == bodies[0] for body in bodies)


def test_paginator_follows_the_body_cursor_until_it_is_gone() -> None:
    paginator = _stream(OrdersStream).get_new_paginator()
    paginator.advance(_response({"orders": [{"id": "a"}], "cursor": "C2"}))
    assert paginator.current_value == "C2" and not paginator.finished
    paginator.advance(_response({}))  # Square's empty last page
    assert paginator.finished


def test_backoff_is_exponential_and_honours_retry_after() -> None:
    # a server nothing was sent to: no request in its window to wait for
    stream = _stream(OrdersStream, {"api_url": "http://127.0.0.1:9"})
    waits = stream.backoff_wait_generator()
    assert next(waits) == 0.0
    no_header = RetriableAPIError("429", _response({}, 429))
    first, second, third = (waits.send(no_header) for _ in range(3))
    assert 0.25 <= first < 0.3 and 0.5 <= second < 0.6 and 1.0 <= third < 1.1
    outage_waits = stream.backoff_wait_generator()
    next(outage_waits)
    assert 1.0 <= outage_waits.send(RetriableAPIError("503", _response({}, 503))) < 1.1
    proxied = RetriableAPIError("429", _response({}, 429, {"Retry-After": "7"}))
    assert waits.send(proxied) == 7.0
    assert stream.backoff_max_tries() == 6


def test_timeouts_become_a_connection_error(square: SquareEmulator) -> None:
    square.fail_next(2, 504, hang_seconds=1.5)
    started = time.monotonic()
    with (
        mock.patch("tap_square.client.SquareStream.backoff_base_seconds", 0.01),
        pytest.raises(
            SquareConnectionError, match=r"did not answer .*/v2/.* within 1 s \(2 attempt"
        ),
    ):
        sync({"request_timeout": 1, "max_retries": 1})
    assert time.monotonic() - started < 10


def test_an_interrupted_sync_resumes_from_its_last_state(world: World) -> None:
    """The connection drops mid-sync; the next run, from the last STATE, completes it."""
    real_send = requests.Session.send
    calls = {"n": 0}

    def flaky_send(session, request, **kwargs):
        calls["n"] += 1
        if calls["n"] > 12:
            raise requests.exceptions.ConnectionError("connection reset by peer")
        return real_send(session, request, **kwargs)

    out = io.StringIO()
    with (
        mock.patch.object(requests.Session, "send", flaky_send),
        redirect_stdout(out),
        pytest.raises(SquareConnectionError),
    ):
        TapSquare(config={**BASE_CONFIG, "page_size": 10, "max_retries": 0}).sync_all()
    interrupted = SyncResult([json.loads(line) for line in out.getvalue().splitlines() if line])
    assert interrupted.state, "no STATE before the failure"

    resumed = sync({"page_size": 10}, state=interrupted.state)
    shop = world.slices["square"]
    for stream, expected in (("orders", shop.orders), ("payments", shop.payments)):
        got = set(interrupted.ids(stream)) | set(resumed.ids(stream))
        assert got == {r["id"] for r in expected}, stream
    # what the first run finished is not read again, beyond the records on its bookmarks
    done = [s for s in ("orders", "payments") if interrupted.records[s]]
    assert done
    for stream in done:
        again = set(interrupted.ids(stream)) & set(resumed.ids(stream))
        assert len(again) <= len(shop.locations), stream


def test_records_are_conformed_once_per_schema_as_the_sdk_would(world: World) -> None:
    """Every stream conforms its records with tapkit's compiled conformance, and the
    records and state are the ones singer-sdk's own recursive conformance writes."""
    assert_conformed_as_the_sdk_would(TapSquare(config=BASE_CONFIG), sync)


def test_a_property_deselected_in_the_catalog_is_not_written(world: World) -> None:
    """singer-sdk's walk against the selection runs only when the catalog deselects
    something (tapkit skips it otherwise): then it still drops what was deselected."""
    tap = TapSquare(config=BASE_CONFIG)
    catalog = tap.catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if entry["tap_stream_id"] == "customers" and item["breadcrumb"] in (
                ["properties", "email_address"],
                ["properties", "address"],
            ):
                item["metadata"]["selected"] = False
    out = io.StringIO()
    with redirect_stdout(out):
        TapSquare(config=BASE_CONFIG, catalog=catalog).sync_all()
    records = [
        message["record"]
        for message in map(json.loads, out.getvalue().splitlines())
        if message["type"] == "RECORD" and message["stream"] == "customers"
    ]
    everything = sync().records["customers"]
    assert len(records) == len(everything) > 0
    assert any("email_address" in r for r in everything) and any("address" in r for r in everything)
    assert not any("email_address" in r or "address" in r for r in records)
    assert records == [
        {k: v for k, v in r.items() if k not in ("email_address", "address")} for r in everything
    ]


def test_records_are_read_without_building_a_jsonpath_parser() -> None:
    """Pages' records come from tapkit's ``records_at``: a sync compiles no JSONPath
    expression (each of the six built jsonpath-ng's parser tables at every start)."""
    from singer_sdk.helpers import jsonpath

    jsonpath._compile_jsonpath.cache_clear()
    result = sync()
    assert result.records["orders"] and result.records["customers"]
    assert jsonpath._compile_jsonpath.cache_info().currsize == 0
