"""tap-shopify on the GraphQL Admin API: against the sandbox over HTTP, and in units.

The first half runs the tap against the omnicanal sandbox (a ``SandboxServer`` over a
60-person world, real HTTP): the SDK's standard tap tests, then what the pipeline
relies on. Bulk operations and paginated queries give the same records; every record
once; incremental state; cost-budget pacing that never trips the throttle; retries;
the 60-day order window; clear failures for a bad token, a bad config and a server
that is down. Some runs go through the ``tap-shopify`` executable, as the pipeline
calls it.

The second half tests the tap's parts over Shopify-shaped answers from a fake
transport (a ``requests`` adapter) with a fake clock: bulk JSONL reassembly from
``__parentId`` lines in any order, the cost throttle's waits, THROTTLED/429/5xx
retries, paging with nested connections, bulk operation states and the
``read_all_orders`` check, without sleeping.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import typing as t
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests
from requests.adapters import BaseAdapter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from taprun import (
    assert_conformed_as_the_sdk_would,
    free_port,
    run_tap,
)

from omnicanal.channels.shopify import SANDBOX_ACCESS_TOKEN as DEFAULT_SHOPIFY_TOKEN
from omnicanal.channels.shopify import SANDBOX_RECENT_ORDERS_TOKEN
from omnicanal.channels.shopify.emulation import ShopifyEmulator
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import World, generate_world
from tap_shopify import queries, shapes
from tap_shopify.bulk import reassemble
from tap_shopify.errors import (
    ShopifyAuthError,
    ShopifyBulkOperationError,
    ShopifyConnectionError,
    ShopifyError,
    ShopifyGraphQLError,
    ShopifyRetriesExhaustedError,
)
from tap_shopify.graphql import DEFAULT_API_VERSION, ShopifyGraphQL, ThrottleStatus
from tap_shopify.shapes import numeric_id, snake_case, to_record
from tap_shopify.tap import TapShopify

PEOPLE = 60
SEED = 20241001
AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TAP_EXECUTABLE = Path(sys.executable).with_name("tap-shopify")
# A roomy cost budget for the module; the pacing test narrows it on purpose.
ROOMY_COST = {"maximum_available": 100_000, "restore_rate": 100_000.0}
STREAMS = ("customers", "orders", "abandoned_checkouts", "products", "locations")


# get_tap_test_class needs the config (hence the URL) when the class is built, at
# import; the server itself starts in the module fixture below, on that port.
SANDBOX_PORT = free_port()
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
BASE_CONFIG: dict[str, Any] = {
    "api_url": SANDBOX_URL,
    "access_token": DEFAULT_SHOPIFY_TOKEN,
    "bulk_poll_interval": 0.1,
}


# autouse: tests that reach the server through BASE_CONFIG alone (a bad token, a
# version served forward) need it up too, even when xdist has run another module's
# tests on this worker in between and pytest has torn the module's fixtures down.
@pytest.fixture(scope="module", autouse=True)
def sandbox() -> Iterator[SandboxServer]:
    """The sandbox serving a fresh world on ``SANDBOX_PORT`` for this module."""
    world = generate_world(PEOPLE, seed=SEED, as_of=AS_OF)
    with SandboxServer(world, port=SANDBOX_PORT) as server:
        emulator: ShopifyEmulator = server.app.state.shopify
        emulator.set_cost_limit(**ROOMY_COST)
        emulator.bulk.delay = 0.05
        yield server


@pytest.fixture
def shopify(sandbox: SandboxServer) -> Iterator[ShopifyEmulator]:
    """The Shopify emulator, with no fault left queued after the test."""
    emulator: ShopifyEmulator = sandbox.app.state.shopify
    yield emulator
    emulator.faults.clear()
    emulator.set_cost_limit(**ROOMY_COST)


@pytest.fixture
def world(sandbox: SandboxServer) -> World:
    return sandbox.app.state.world


# --- the SDK's standard tests ---------------------------------------------------------

# All standard tests run; none is skipped. No start_date and no state: every stream is
# read with a bulk operation, the first-sync path.
_StandardTests = get_tap_test_class(
    TapShopify,
    config=BASE_CONFIG,
    suite_config=SuiteConfig(max_records_limit=None),
)


@pytest.mark.usefixtures("sandbox")
class TestTapShopifyStandard(_StandardTests):  # type: ignore[misc,valid-type]
    """The SDK's suite, with the module's sandbox running."""


# --- helpers ---------------------------------------------------------------------------


class SyncResult:
    """What one tap run wrote: records per stream, and the last STATE."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages
        self.records: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAMS}
        self.state: dict[str, Any] = {}
        for message in messages:
            if message["type"] == "RECORD":
                self.records.setdefault(message["stream"], []).append(message["record"])
            elif message["type"] == "STATE":
                self.state = message["value"]

    def ids(self, stream: str) -> list[int]:
        return [record["id"] for record in self.records[stream]]

    def versions(self, stream: str) -> set[tuple[int, str]]:
        return {(record["id"], record["updated_at"]) for record in self.records[stream]}

    def bookmark(self, stream: str) -> str:
        return self.state["bookmarks"][stream]["replication_key_value"]


def sync(
    config: dict[str, Any], state: dict[str, Any] | None = None
) -> tuple[SyncResult, TapShopify]:
    """Run the tap in this process and parse the Singer messages it printed."""
    out = io.StringIO()
    shop = TapShopify(config={**BASE_CONFIG, **config}, state=state)
    with redirect_stdout(out):
        shop.sync_all()
    return SyncResult([json.loads(line) for line in out.getvalue().splitlines() if line]), shop


def run_executable(
    tmp_path: Path, config: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return run_tap(TAP_EXECUTABLE, tmp_path, config, *args, timeout=60)


def utc(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp).astimezone(UTC)


def by_id(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {record["id"]: record for record in records}


# --- against the sandbox ---------------------------------------------------------------


def test_bulk_and_pages_give_the_same_records_each_once(
    tmp_path: Path, world: World, shopify: ShopifyEmulator
) -> None:
    """Through the executable: a bulk operation per stream, then paginated queries."""
    result = run_executable(tmp_path, BASE_CONFIG)
    assert result.returncode == 0, result.stderr
    bulk = SyncResult([json.loads(line) for line in result.stdout.splitlines() if line])
    pages, shop = sync({"extraction": "pages", "page_size": 7})
    assert shop.streams["orders"].extraction_used == "pages"

    store = world.slices["shopify"]
    for stream, expected in (
        ("customers", store.customers),
        ("orders", store.orders),
        ("abandoned_checkouts", store.abandoned_checkouts),
        ("products", store.products),
        ("locations", store.locations),
    ):
        ids = bulk.ids(stream)
        duplicates = [i for i, n in Counter(ids).items() if n > 1]
        assert not duplicates, f"{stream}: ids emitted more than once: {duplicates}"
        assert set(ids) == {record["id"] for record in expected}, stream
        assert expected, f"the world has no {stream}"
        # Children rebuilt from __parentId lines equal the nested pages, field by field.
        assert by_id(bulk.records[stream]) == by_id(pages.records[stream]), stream

    orders = bulk.records["orders"]
    # Cancelled orders come too (the GraphQL orders query has no open-only default).
    assert any(order["cancelled_at"] for order in orders)
    line_items = sum(len(order["line_items"]) for order in orders)
    assert line_items == sum(len(order["line_items"]) for order in store.orders)
    assert any(order["retail_location"] for order in orders), "no point-of-sale order"
    assert all(o["admin_graphql_api_id"] == f"gid://shopify/Order/{o['id']}" for o in orders)
    # what an order carries besides its lines (issue 10): its channel, discounts,
    # fulfilments and returns, as the world has them
    assert {o["id"]: o["source_name"] for o in orders} == {
        o["id"]: o["source_name"] for o in store.orders
    }
    assert {o["source_name"] for o in orders} == {"web", "pos"}
    assert all(o["channel_information"]["channel_id"] for o in orders)
    for field in ("discount_applications", "fulfillments", "returns"):
        assert any(order[field] for order in orders), f"no order carries {field}"
    # Each refund's line items and where they went back into stock: nested in the page
    # queries, asked for by nodes(ids:) after the bulk operation (which cannot nest them).
    world_refunds = {r["id"]: (o, r) for o in store.orders for r in o["refunds"]}
    refunds = [refund for order in orders for refund in order["refunds"]]
    assert refunds and len(refunds) == len(world_refunds)
    for refund in refunds:
        order, expected = world_refunds[numeric_id(refund["id"])]
        back_at = store.order_details[order["id"]]["refund_locations"][str(expected["id"])]
        lines = refund["refund_line_items"]
        assert len(lines) == len(expected["refund_line_items"])
        assert {line["location"]["id"] for line in lines} == {f"gid://shopify/Location/{back_at}"}
        assert all(line["restock_type"] == "RETURN" and line["restocked"] for line in lines)
    variants = sum(len(product["variants"]) for product in bulk.records["products"])
    assert variants == sum(len(product["variants"]) for product in store.products)


def test_customers_carry_their_consents_addresses_and_tags(world: World) -> None:
    """Email and SMS marketing consent with the time each changed, every address and
    the tags, as the shop holds them (issue 10's customers stream)."""
    result, _ = sync({"extraction": "pages"})
    got = by_id(result.records["customers"])
    store = world.slices["shopify"].customers
    assert set(got) == {c["id"] for c in store}

    def when(value: str | None) -> datetime | None:
        return utc(value) if value else None

    seen_sms = seen_email = 0
    for customer in store:
        record = got[customer["id"]]
        email, sms = customer["email_marketing_consent"], customer["sms_marketing_consent"]
        if customer["email"]:
            consent = record["default_email_address"]
            assert consent["email_address"] == customer["email"]
            assert consent["marketing_state"] == email["state"].upper()
            assert consent["marketing_opt_in_level"] == email["opt_in_level"].upper()
            assert when(consent["marketing_updated_at"]) == when(email["consent_updated_at"])
            seen_email += email["consent_updated_at"] is not None
        if customer["phone"] and sms:
            consent = record["default_phone_number"]
            assert consent["phone_number"] == customer["phone"]
            assert consent["marketing_state"] == sms["state"].upper()
            assert when(consent["marketing_updated_at"]) == when(sms["consent_updated_at"])
            seen_sms += sms["consent_updated_at"] is not None
        tags = [tag.strip() for tag in customer["tags"].split(",") if tag.strip()]
        assert sorted(record["tags"]) == sorted(tags)
        assert [a["address1"] for a in record["addresses"]] == [
            a["address1"] for a in customer["addresses"]
        ]
        assert [numeric_id(a["id"]) for a in record["addresses"]] == [
            a["id"] for a in customer["addresses"]
        ]
    assert seen_email and seen_sms, "the world has no dated consent to compare"


def test_incremental_sync_gets_only_what_changed(shopify: ShopifyEmulator) -> None:
    """Run 1 (bulk), run 2 from its state (pages): nothing new; then one customer changes."""
    first, _ = sync({})
    assert len(first.records["customers"]) > 1
    for stream in ("customers", "orders"):
        latest = max(utc(record["updated_at"]) for record in first.records[stream])
        assert utc(first.bookmark(stream)) == latest
        assert first.bookmark(stream).endswith("+00:00")

    # The world's records are weeks old: a day-old threshold would bulk again.
    incremental = {"bulk_threshold_days": 3650}
    second, shop = sync(incremental, state=first.state)
    assert shop.streams["customers"].extraction_used == "pages"
    for stream in STREAMS:
        # updated_at:>= is inclusive: only the record(s) on the bookmark come back,
        # versions already delivered (at-least-once, loaders upsert on id).
        assert second.versions(stream) <= first.versions(stream), stream
        bookmark = first.bookmark(stream)
        assert all(utc(r["updated_at"]) == utc(bookmark) for r in second.records[stream])

    changed_id = first.records["customers"][0]["id"]
    shopify.touch_customer(changed_id, note="Prefere contato por WhatsApp")
    third, _ = sync(incremental, state=second.state)
    new_customers = third.versions("customers") - first.versions("customers")
    assert [customer_id for customer_id, _ in new_customers] == [changed_id]
    changed = next(r for r in third.records["customers"] if r["id"] == changed_id)
    assert changed["note"] == "Prefere contato por WhatsApp"
    assert third.bookmark("customers") == changed["updated_at"]


def test_an_interrupted_sync_resumes_from_its_last_state(world: World) -> None:
    """The connection drops on the third page of orders (the second stream, after the
    customers); the next run, from the last STATE, reads every order and no customer
    again but those on the bookmark."""
    real_send = requests.Session.send
    order_pages = {"n": 0}

    def flaky_send(session, request, **kwargs):
        if b"query OrdersPage" in (request.body or b""):
            order_pages["n"] += 1
            if order_pages["n"] > 2:
                raise requests.exceptions.ConnectionError("connection reset by peer")
        return real_send(session, request, **kwargs)

    config = {"extraction": "pages", "page_size": 10, "max_retries": 0}
    out = io.StringIO()
    with (
        mock.patch.object(requests.Session, "send", flaky_send),
        redirect_stdout(out),
        pytest.raises(ShopifyConnectionError),
    ):
        TapShopify(config={**BASE_CONFIG, **config}).sync_all()
    interrupted = SyncResult([json.loads(line) for line in out.getvalue().splitlines() if line])
    store = world.slices["shopify"]
    orders = {o["id"] for o in store.orders}
    assert 0 < len(interrupted.ids("orders")) < len(orders)
    assert set(interrupted.ids("customers")) == {c["id"] for c in store.customers}

    resumed, _ = sync(config, state=interrupted.state)
    assert set(interrupted.ids("orders")) | set(resumed.ids("orders")) == orders
    on_bookmark = {
        r["id"]
        for r in interrupted.records["customers"]
        if utc(r["updated_at"]) == utc(interrupted.bookmark("customers"))
    }
    assert set(resumed.ids("customers")) <= on_bookmark


def test_start_date_limits_the_first_sync(world: World) -> None:
    orders = world.slices["shopify"].orders
    stamps = sorted(utc(order["updated_at"]) for order in orders)
    start = stamps[len(stamps) // 2].replace(microsecond=0)
    result, _ = sync({"start_date": start.isoformat()})
    expected = {o["id"] for o in orders if utc(o["updated_at"]) >= start}
    assert set(result.ids("orders")) == expected
    assert 0 < len(expected) < len(orders)


def test_pacing_by_the_cost_budget_never_trips_the_throttle(
    shopify: ShopifyEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A 100-point bucket refilling 200 points/s, and no retry allowed: any THROTTLED
    answer would end the sync, so every page must wait for its cost first."""
    shopify.set_cost_limit(maximum_available=100, restore_rate=200.0)
    shop = TapShopify(
        config={**BASE_CONFIG, "extraction": "pages", "page_size": 10, "max_retries": 0}
    )
    stream = shop.streams["customers"]
    out = io.StringIO()
    with caplog.at_level(logging.INFO), redirect_stdout(out):
        stream.sync()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len([m for m in records if m["type"] == "RECORD"]) == len(shopify.store.customers)
    assert "pausing" in caplog.text
    assert stream.client.throttle_wait_total > 0


def test_429_and_5xx_are_retried_and_the_sync_completes(
    world: World, shopify: ShopifyEmulator
) -> None:
    shopify.fail_next(1, status=429)  # answered with Retry-After: 1.0
    shopify.fail_next(1, status=503)
    result, _ = sync({"extraction": "pages"})
    assert shopify.faults.pending == 0
    assert set(result.ids("customers")) == {c["id"] for c in world.slices["shopify"].customers}
    assert set(result.ids("orders")) == {o["id"] for o in world.slices["shopify"].orders}


def test_a_timeout_is_retried_and_the_sync_completes(
    world: World, shopify: ShopifyEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """An answer held past ``request_timeout`` is a retry, as 429 and 5xx are."""
    shopify.stall_next(1, seconds=3.0)
    with caplog.at_level(logging.WARNING):
        result, _ = sync({"extraction": "pages", "request_timeout": 1})
    assert "no answer within 1 s" in caplog.text
    assert set(result.ids("customers")) == {c["id"] for c in world.slices["shopify"].customers}
    assert set(result.ids("orders")) == {o["id"] for o in world.slices["shopify"].orders}


def test_retries_have_a_limit(shopify: ShopifyEmulator) -> None:
    shopify.fail_next(3, status=500)
    with pytest.raises(ShopifyRetriesExhaustedError, match=r"stream '\w+'.*HTTP 500.*2 att"):
        sync({"max_retries": 1})


def test_without_read_all_orders_only_60_days_of_orders_come(
    world: World, shopify: ShopifyEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """An app token without read_all_orders: Shopify hides older orders; the tap says so."""
    with caplog.at_level(logging.WARNING):
        result, shop = sync({"access_token": SANDBOX_RECENT_ORDERS_TOKEN})
    cutoff = AS_OF - timedelta(days=60)
    orders = world.slices["shopify"].orders
    recent = {o["id"] for o in orders if datetime.fromisoformat(o["created_at"]) >= cutoff}
    assert set(result.ids("orders")) == recent
    assert 0 < len(recent) < len(orders)
    assert "read_all_orders" in caplog.text and "last 60 days" in caplog.text
    assert result.state["bookmarks"]["orders"]["order_history"]["read_all_orders"] is False


def test_an_unsupported_version_is_served_forward_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Shopify answers an expired version with the oldest supported one, and says so."""
    shop = TapShopify(config={**BASE_CONFIG, "api_version": "2024-10"})
    stream = shop.streams["locations"]
    with caplog.at_level(logging.WARNING), redirect_stdout(io.StringIO()):
        stream.sync()
    served = stream.client.served_version
    assert served and served != "2024-10"
    assert f"served Admin API version {served} instead of the requested 2024-10" in caplog.text

    caplog.clear()
    current = TapShopify(config=BASE_CONFIG).streams["locations"]
    with caplog.at_level(logging.WARNING), redirect_stdout(io.StringIO()):
        current.sync()
    assert current.client.served_version == DEFAULT_API_VERSION
    assert "served Admin API version" not in caplog.text


def test_bad_token_fails_with_a_clear_message_and_no_secret(tmp_path: Path) -> None:
    wrong_token = "shpat_wrong_0123456789abcdef"
    result = run_executable(tmp_path, {**BASE_CONFIG, "access_token": wrong_token})
    assert result.returncode != 0
    assert (
        "Shopify rejected the access token (HTTP 401) — check the `access_token` setting"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert wrong_token not in result.stderr + result.stdout
    assert "wrong_0123456789" not in result.stderr + result.stdout


def test_server_down_fails_with_a_clear_message_naming_the_url(tmp_path: Path) -> None:
    down_url = f"http://127.0.0.1:{free_port()}"
    result = run_executable(tmp_path, {**BASE_CONFIG, "api_url": down_url, "max_retries": 0})
    assert result.returncode != 0
    assert (
        f"could not connect to Shopify at {down_url}/admin/api/{DEFAULT_API_VERSION}/graphql.json"
        in result.stderr
    )
    assert "connection refused" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"page_size": 251}, "page_size"),
        ({"page_size": 0}, "page_size"),
        ({"api_url": None}, "api_url"),
        ({"api_url": "127.0.0.1:8787"}, "api_url"),
        ({"api_version": "2026-11"}, "api_version"),
        ({"api_url": None, "shop": "not a shop!"}, "shop"),
        ({"access_token": None}, "access_token"),
        ({"extraction": "sometimes"}, "extraction"),
    ],
)
def test_bad_config_is_rejected_naming_the_setting(config: dict[str, Any], setting: str) -> None:
    merged = {k: v for k, v in {**BASE_CONFIG, **config}.items() if v is not None}
    with pytest.raises(ConfigValidationError) as raised:
        TapShopify(config=merged)
    assert any(setting in error for error in raised.value.errors), raised.value.errors


def test_bad_config_fails_at_start_up_from_the_command_line(tmp_path: Path) -> None:
    result = run_executable(tmp_path, {**BASE_CONFIG, "page_size": 1000})
    assert result.returncode == 1
    assert "config['page_size']" in result.stderr
    assert DEFAULT_SHOPIFY_TOKEN not in result.stderr + result.stdout
    assert not result.stdout.strip()


def test_about_markdown_describes_every_setting() -> None:
    result = subprocess.run(
        [str(TAP_EXECUTABLE), "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for name, schema in TapShopify.config_jsonschema["properties"].items():
        assert schema.get("description"), f"setting {name} has no description"
        assert f"| {name} |" in result.stdout
    assert TapShopify.config_jsonschema["properties"]["access_token"].get("secret") is True
    assert f"| api_version | False | {DEFAULT_API_VERSION} |" in result.stdout


# === units, over Shopify-shaped answers ================================================

API = "https://acme.myshopify.com"
GRAPHQL_URL = f"{API}/admin/api/2026-10/graphql.json"
RESULT_URL = "https://storage.googleapis.com/shopify-tiers-assets/bulk/result.jsonl?sig=abc"
CONFIG = {"shop": "acme", "access_token": "shpat_test_token"}


def cost(requested: float = 10, available: float = 1990, restore: float = 100) -> dict:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": requested,
            "throttleStatus": {
                "maximumAvailable": 2000.0,
                "currentlyAvailable": available,
                "restoreRate": restore,
            },
        }
    }


def ok(data: dict, **cost_args: float) -> tuple[int, dict, dict]:
    return 200, {"data": data, "extensions": cost(**cost_args)}, {}


THROTTLED = (
    200,
    {
        "errors": [
            {
                "message": "Throttled",
                "extensions": {
                    "code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits",
                },
            }
        ],
        "extensions": cost(requested=300, available=100, restore=100),
    },
    {},
)


class FakeShopify(BaseAdapter):
    """Answers requests from a script: a queue of answers per kind of request.

    ``graphql`` answers are chosen by a predicate on the query text, first match
    first; ``files`` maps a download URL to its body. Every request is recorded.
    """

    def __init__(self) -> None:
        super().__init__()
        self.routes: list[tuple[t.Callable[[str], bool], deque]] = []
        self.files: dict[str, str] = {}
        self.requests: list[dict[str, t.Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        #: What the session passed to the adapter besides the request (proxies, verify…).
        self.send_options: list[dict[str, t.Any]] = []
        self.bodies: list[bytes] = []

    def on(self, needle: str, *answers: tuple[int, t.Any, dict]) -> FakeShopify:
        self.routes.append((lambda query: needle in query, deque(answers)))
        return self

    def send(self, request, **kwargs):  # type: ignore[override]
        response = requests.Response()
        response.request = request
        response.url = request.url
        self.headers_seen.append(dict(request.headers))
        self.send_options.append(kwargs)
        if request.method == "GET":
            response.status_code = 200 if request.url in self.files else 403
            response.raw = io.BytesIO(self.files.get(request.url, "denied").encode())
            return response
        body = json.loads(request.body)
        self.requests.append(body)
        self.bodies.append(request.body)
        for matches, answers in self.routes:
            if matches(body["query"]) and answers:
                status, payload, headers = answers.popleft() if len(answers) > 1 else answers[0]
                break
        else:
            msg = f"unexpected query: {body['query'][:80]}"
            raise AssertionError(msg)
        response.status_code = status
        response.headers.update({"Content-Type": "application/json", **headers})
        response.raw = io.BytesIO(json.dumps(payload).encode())
        return response

    def close(self) -> None:
        pass


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeShopify:
    return FakeShopify()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def patched_requests(fake: FakeShopify, monkeypatch: pytest.MonkeyPatch) -> FakeShopify:
    """Every requests.Session (the client's and the download's) goes to the fake."""
    original = requests.Session.__init__

    def init(self: requests.Session) -> None:
        original(self)
        self.mount("https://", fake)

    monkeypatch.setattr(requests.Session, "__init__", init)
    return fake


def client(fake: FakeShopify, fake_time: FakeTime, **config: t.Any) -> ShopifyGraphQL:
    session = requests.Session()
    session.mount("https://", fake)
    return ShopifyGraphQL(
        {**CONFIG, **config},
        logging.getLogger("test"),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        session=session,
    )


def tap(
    fake_time: FakeTime, config: dict[str, t.Any] | None = None, state: dict | None = None
) -> TapShopify:
    shop = TapShopify(config={**CONFIG, **(config or {})}, state=state)
    for stream in shop.streams.values():
        stream.client.sleep = fake_time.sleep
        stream.client.clock = fake_time.clock
    return shop


def records(shop: TapShopify, stream: str) -> list[dict[str, t.Any]]:
    """Sync one stream as the SDK does (bookmarks, post-processing) and return its records."""
    out = io.StringIO()
    with redirect_stdout(out):
        shop.streams[stream].sync()
    messages = [json.loads(line) for line in out.getvalue().splitlines() if line]
    return [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == stream]


# --- record shapes ------------------------------------------------------------------


FUSED_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": ["integer", "null"]},
        "admin_graphql_api_id": {"type": ["string", "null"]},
        "updated_at": {"type": ["string", "null"], "format": "date-time"},
        "number_of_orders": {"type": ["integer", "null"]},
        "accepts": {"type": ["boolean", "null"]},
        "ratio": {"type": ["number", "null"]},
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        "flags": {"type": ["array", "null"], "items": {"type": "boolean"}},
        "total": {
            "type": ["object", "null"],
            "additionalProperties": True,
            "properties": {
                "shop_money": {
                    "type": ["object", "null"],
                    "properties": {"amount": {"type": ["string", "null"]}},
                },
                "paid": {"type": ["boolean", "null"]},
            },
        },
        "lines": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": ["string", "null"]},
                    "created_at": {"type": ["string", "null"]},
                    "gift": {"type": ["boolean", "null"]},
                },
            },
        },
        "notes": {"type": ["array", "null"], "items": {}},
        "address": {"type": ["object", "null"]},
    },
}


def fused_nodes() -> list[dict[str, t.Any]]:
    """GraphQL nodes that reach every rule of ``to_record`` and of the conformance."""
    full = {
        "id": "gid://shopify/Customer/42",
        "updatedAt": "2026-01-02T03:04:05-03:00",
        "numberOfOrders": "12",
        "accepts": 1,
        "ratio": float("nan"),
        "tags": ["vip", "2026-01-02T03:04:05-03:00", None],
        "flags": [0, 1, None, True],
        "total": {
            "shopMoney": {"amount": "10.50", "currencyCode": "BRL"},
            "paid": 0,
            "extraThing": {"deepName": "2026-01-02T03:04:05-03:00", "listOf": [{"aB": 1}]},
            "at": "2026-05-06T07:08:09Z",
        },
        "lines": [
            {"id": "gid://shopify/LineItem/1", "createdAt": "2026-01-02T03:04:05Z", "gift": 0},
            {"id": "x", "unknownField": {"a": 1}, "gift": None, "moreUnknown": 3},
            "not an object",
            None,
        ],
        "notes": [{"noteText": "2026-01-02T03:04:05+01:00"}, ["a"], 1.5],
        "address": {"firstName": "Ana", "when": "2026-01-02T03:04:05+01:00"},
        "unknownTop": {"someKey": 1},
        "__typename": "Customer",
    }
    return [
        full,
        {**full, "id": "not-a-gid", "numberOfOrders": "twelve"},
        {**full, "id": 7, "numberOfOrders": None},
        {k: v for k, v in full.items() if k != "id"},  # no id: to_record appends it
        {**full, "adminGraphqlApiId": "own"},
        {**full, "id": {"odd": "object"}},
        {"id": None},
        {"id": "gid://shopify/Order/1", "total": None, "lines": None, "tags": "one"},
    ]


def test_records_are_shaped_and_conformed_in_one_pass_as_in_two(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``conformed_record`` gives what ``to_record`` then the compiled conformance give:
    the same record, key order included, and the same dropped properties, in order."""
    from omnicanal_tapkit.conform import SchemaConformer

    monkeypatch.setattr(shapes, "_NAMES", shapes._SnakeNames())
    conformer = SchemaConformer(FUSED_SCHEMA)
    for node in fused_nodes():
        expected = conformer.conform(to_record(node, ("number_of_orders",)))
        got = shapes.conformed_record(node, conformer, ("number_of_orders",))
        assert json.dumps(got) == json.dumps(expected), node
        if "unknownTop" in node:
            assert "unknown_top" in got[1], "the unknown properties are reported"
    assert not shapes._NAMES.ambiguous
    # two names that become one: the two passes decide which value stays
    clash = {"id": "gid://shopify/Customer/1", "totalPrice": "1", "total_price": "2"}
    got = shapes.conformed_record(clash, conformer)
    assert shapes._NAMES.ambiguous
    assert got == conformer.conform(to_record(clash))


def test_a_paged_sync_shapes_each_node_in_one_pass(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records are built by ``conformed_record``, with no separate ``to_record``
    copy nor conformance walk (most of the tap's CPU per record); the records
    themselves are the SDK's (test_records_are_conformed_once_per_schema_as_the_sdk_would)."""
    from omnicanal_tapkit.conform import SchemaConformer

    calls: Counter[str] = Counter()
    for owner, name in ((shapes, "to_record"), (SchemaConformer, "conform")):
        original = getattr(owner, name)

        def counted(*args: t.Any, _f=original, _n=name, **kwargs: t.Any) -> t.Any:
            calls[_n] += 1
            return _f(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)
    out, _ = sync({"extraction": "pages"})
    assert sum(map(len, out.records.values())) > 0
    assert calls == {}


def test_names_and_ids_follow_graphql() -> None:
    assert snake_case("displayFinancialStatus") == "display_financial_status"
    assert snake_case("countryCodeV2") == "country_code_v2"
    assert snake_case("address1") == "address1"
    assert numeric_id("gid://shopify/Order/450789469") == 450789469
    assert numeric_id("gid://shopify/Customer/7?owner=x") == 7
    record = to_record(
        {
            "id": "gid://shopify/Customer/207119551",
            "numberOfOrders": "12",
            "updatedAt": "2026-10-01T12:00:00-03:00",
            "defaultAddress": {"id": "gid://shopify/MailingAddress/1", "countryCodeV2": "BR"},
        },
        integer_fields=("number_of_orders",),
    )
    assert record == {
        "id": 207119551,
        "admin_graphql_api_id": "gid://shopify/Customer/207119551",
        "number_of_orders": 12,
        "updated_at": "2026-10-01T15:00:00+00:00",
        "default_address": {"id": "gid://shopify/MailingAddress/1", "country_code_v2": "BR"},
    }


def test_each_distinct_timestamp_is_converted_once_and_the_cache_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records of one extract repeat timestamps (an order's and its lines' updatedAt):
    each distinct one is re-expressed in UTC once, nested in objects and lists alike,
    with the same records; past ``UTC_CACHE_SIZE`` values the cache starts again."""
    converted: list[str] = []
    real = shapes.to_utc

    def counting(value: t.Any) -> t.Any:
        converted.append(value)
        return real(value)

    monkeypatch.setattr(shapes, "to_utc", counting)
    shapes._UTC.clear()
    node = {
        "id": "gid://shopify/Order/1",
        "updatedAt": "2026-10-01T12:00:00-03:00",
        "note": "not a timestamp, but long enough",
        "lineItems": [{"id": "gid://shopify/LineItem/1", "updatedAt": "2026-10-01T12:00:00-03:00"}],
        "customer": {"createdAt": "2026-09-01T00:00:00Z", "tags": ["2026-09-01T00:00:00Z"]},
    }
    first, second = to_record(dict(node)), to_record(dict(node))
    assert first == second
    assert (
        first["updated_at"] == first["line_items"][0]["updated_at"] == "2026-10-01T15:00:00+00:00"
    )
    assert first["customer"] == {
        "created_at": "2026-09-01T00:00:00+00:00",
        "tags": ["2026-09-01T00:00:00+00:00"],
    }
    # the tags list's item goes through _snake (a call per leaf), the others are cached
    assert sorted(set(converted)) == ["2026-09-01T00:00:00Z", "2026-10-01T12:00:00-03:00"]
    assert converted.count("2026-10-01T12:00:00-03:00") == 1
    monkeypatch.setattr(shapes, "UTC_CACHE_SIZE", 2)
    for second_ in range(3):
        to_record({"updatedAt": f"2026-10-01T12:00:0{second_}Z"})
    assert len(shapes._UTC) <= 2


# --- bulk JSONL reassembly ----------------------------------------------------------


def jsonl(*lines: dict) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(line) + "\n" for line in lines).encode())


def test_bulk_children_are_put_back_under_their_parent_in_any_order() -> None:
    """Ungrouped output (the 2026-01+ default): a child may come before its parent."""
    order_1, order_2 = "gid://shopify/Order/1", "gid://shopify/Order/2"
    file = jsonl(
        {"__typename": "LineItem", "id": "gid://shopify/LineItem/21", "__parentId": order_2},
        {"id": order_1, "name": "#1001"},
        {"__typename": "LineItem", "id": "gid://shopify/LineItem/11", "__parentId": order_1},
        {
            "__typename": "DiscountCodeApplication",
            "code": "BEMVINDO10",
            "index": 0,
            "__parentId": order_1,
        },
        {"id": order_2, "name": "#1002"},
        {"__typename": "LineItem", "id": "gid://shopify/LineItem/12", "__parentId": order_1},
        {"__typename": "Return", "id": "gid://shopify/Return/5", "__parentId": order_2},
    )
    rebuilt = list(reassemble(file, queries.ORDERS, stream="orders"))
    assert [order["name"] for order in rebuilt] == ["#1001", "#1002"]
    first, second = rebuilt
    assert [item["id"] for item in first["lineItems"]] == [
        "gid://shopify/LineItem/11",
        "gid://shopify/LineItem/12",
    ]
    assert first["lineItems"][0] == {"id": "gid://shopify/LineItem/11"}  # no __parentId/type
    assert first["discountApplications"] == [
        {"__typename": "DiscountCodeApplication", "code": "BEMVINDO10", "index": 0}
    ]
    assert first["returns"] == [] and first["fulfillmentOrders"] == []
    assert [item["id"] for item in second["lineItems"]] == ["gid://shopify/LineItem/21"]
    assert [r["id"] for r in second["returns"]] == ["gid://shopify/Return/5"]


def test_bulk_parent_is_the_lines_key_not_text_that_looks_like_it() -> None:
    """The parent is found without parsing the line: a note quoting the key stays text."""
    order = "gid://shopify/Order/1"
    trick = '{"__parentId": "gid://shopify/Order/404"}'
    file = io.BytesIO(
        (
            json.dumps({"id": order, "note": trick})
            + "\n"
            + json.dumps({"__typename": "LineItem", "id": "li", "__parentId": order}, indent=None)
            + "\n"
            + '{"__typename":"LineItem","id":"l2","__parentId":"gid://shopify/Order/1"}\n'
        ).encode()
    )
    (rebuilt,) = reassemble(file, queries.ORDERS, stream="orders")
    assert rebuilt["note"] == trick
    assert [item["id"] for item in rebuilt["lineItems"]] == ["li", "l2"]


def test_bulk_child_without_its_parent_fails_loudly() -> None:
    file = jsonl(
        {"id": "gid://shopify/Order/1"},
        {"__typename": "LineItem", "id": "x", "__parentId": "gid://shopify/Order/404"},
    )
    with pytest.raises(ShopifyBulkOperationError, match="1 bulk result line"):
        list(reassemble(file, queries.ORDERS, stream="orders"))


def test_bulk_line_that_is_not_json_names_its_line() -> None:
    file = io.BytesIO(b'{"id": "gid://shopify/Order/1"}\n{"id": \n')
    with pytest.raises(ShopifyBulkOperationError, match="line 2"):
        list(reassemble(file, queries.ORDERS, stream="orders"))


# --- cost throttle and retries ------------------------------------------------------


def test_throttle_status_refills_at_the_restore_rate() -> None:
    status = ThrottleStatus(2000, 100, 100, observed_at=0)
    assert status.available_at(1.5) == 250
    assert status.available_at(100) == 2000
    assert status.wait_for(300, 0) == pytest.approx(2.0)
    assert status.wait_for(50, 0) == 0
    # A cost above the bucket waits for a full bucket, not forever.
    assert status.wait_for(5000, 0) == pytest.approx(19.0)


def test_a_query_waits_until_the_budget_holds_its_requested_cost(
    fake: FakeShopify, fake_time: FakeTime
) -> None:
    fake.on("shop", ok({"shop": {"name": "Acme"}}, requested=500, available=200, restore=100))
    graphql = client(fake, fake_time)
    graphql.execute("{ shop { name } }")
    assert fake_time.sleeps == []  # nothing known before the first answer
    graphql.execute("{ shop { name } }")
    # 200 points left, the query asks 500, 100 points/s come back: 3 s.
    assert fake_time.sleeps == [pytest.approx(3.0)]
    assert graphql.throttle_wait_total == pytest.approx(3.0)


def test_throttled_answer_waits_for_the_missing_points_and_retries(
    fake: FakeShopify, fake_time: FakeTime
) -> None:
    fake.on("shop", THROTTLED, ok({"shop": {"name": "Acme"}}))
    graphql = client(fake, fake_time)
    assert graphql.execute("{ shop { name } }") == {"shop": {"name": "Acme"}}
    # requested 300, available 100, restore 100/s: 2 s, then the retry succeeds.
    assert fake_time.sleeps == [pytest.approx(2.0)]
    assert len(fake.requests) == 2


def test_throttled_without_cost_figures_backs_off(fake: FakeShopify, fake_time: FakeTime) -> None:
    bare = (200, {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}, {})
    fake.on("shop", bare, ok({"shop": {"name": "Acme"}}))
    graphql = client(fake, fake_time)
    assert graphql.execute("{ shop { name } }") == {"shop": {"name": "Acme"}}
    assert 1.0 <= fake_time.sleeps[0] <= 1.1  # first step of the exponential backoff


def test_429_and_5xx_are_retried_honouring_retry_after(
    fake: FakeShopify, fake_time: FakeTime
) -> None:
    fake.on(
        "shop",
        (429, {"errors": "Exceeded 2 calls per second"}, {"Retry-After": "1.5"}),
        (503, {"errors": "Service Unavailable"}, {}),
        ok({"shop": {"name": "Acme"}}),
    )
    graphql = client(fake, fake_time)
    assert graphql.execute("{ shop { name } }") == {"shop": {"name": "Acme"}}
    assert fake_time.sleeps[0] == 1.5
    assert 2.0 <= fake_time.sleeps[1] <= 2.2  # second retry: 2 s of the exponential backoff


def test_retries_have_a_limit_and_name_the_stream(fake: FakeShopify, fake_time: FakeTime) -> None:
    fake.on("shop", THROTTLED)
    graphql = client(fake, fake_time, max_retries=2)
    with pytest.raises(ShopifyRetriesExhaustedError, match=r"stream 'orders'.*THROTTLED.*3 att"):
        graphql.execute("{ shop { name } }", stream="orders")


def test_each_query_is_a_copy_of_one_prepared_post_and_the_environment_is_read_once(
    fake: FakeShopify, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query costs no ``Session.prepare_request`` (merging headers, cookies, hooks,
    ``.netrc``, about 1 ms) nor an environment walk for proxies: the POST is prepared
    once and copied, the environment read once; what goes out is what ``Session.post``
    would send, the environment's proxy and CA bundle included."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/acme-ca.pem")
    calls: Counter[str] = Counter()
    for name in ("prepare_request", "merge_environment_settings"):
        original = getattr(requests.Session, name)

        def counted(self: requests.Session, *args: t.Any, _f=original, _n=name, **kw: t.Any):
            calls[_n] += 1
            return _f(self, *args, **kw)

        monkeypatch.setattr(requests.Session, name, counted)
    fake.on("shop", ok({"shop": {"name": "Acme"}}))
    graphql = client(fake, fake_time)
    for page in range(5):
        assert graphql.execute("{ shop { name } }", {"page": page}) == {"shop": {"name": "Acme"}}
    assert calls == {"prepare_request": 1, "merge_environment_settings": 1}
    assert fake.requests == [
        {"query": "{ shop { name } }", "variables": {"page": page}} for page in range(5)
    ]
    reference = requests.Session()
    reference.headers.update(graphql.session.headers)
    expected = reference.prepare_request(
        requests.Request("POST", GRAPHQL_URL, json=fake.requests[-1])
    )
    for headers in fake.headers_seen:
        assert headers.keys() == expected.headers.keys()
        assert headers["X-Shopify-Access-Token"] == "shpat_test_token"
        assert headers["Content-Type"] == "application/json"
    assert [int(h["Content-Length"]) for h in fake.headers_seen] == [len(b) for b in fake.bodies]
    for options in fake.send_options:
        assert options["proxies"]["https"] == "http://proxy.example:3128"
        assert options["verify"] == "/etc/ssl/acme-ca.pem"
        assert options["timeout"] == graphql.timeout


def test_a_cookie_the_session_holds_goes_with_every_later_query(
    fake: FakeShopify, fake_time: FakeTime
) -> None:
    fake.on("shop", ok({"shop": {"name": "Acme"}}))
    graphql = client(fake, fake_time)
    graphql.execute("{ shop { name } }")
    graphql.session.cookies.set("_shopify_s", "abc123", domain="acme.myshopify.com")
    graphql.execute("{ shop { name } }", {"after": "x"})
    graphql.execute("{ shop { name } }", {"after": "y"})
    assert "Cookie" not in fake.headers_seen[0]
    assert [h.get("Cookie") for h in fake.headers_seen[1:]] == ["_shopify_s=abc123"] * 2
    assert fake.requests[2] == {"query": "{ shop { name } }", "variables": {"after": "y"}}


def test_answers_are_decoded_without_requests_json_and_a_non_json_body_fails_clearly(
    fake: FakeShopify, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages are decoded by msgspec (``json_body``), not ``Response.json`` (simplejson:
    about twice the time); a body that is not JSON still fails with the same message."""
    decoded_by_requests: list[str] = []
    original = requests.Response.json

    def spied(self: requests.Response, **kwargs: t.Any) -> t.Any:
        decoded_by_requests.append(self.url)
        return original(self, **kwargs)

    monkeypatch.setattr(requests.Response, "json", spied)
    answer = {"shop": {"name": "Ação", "count": 12345678901234567890, "ratio": 0.1}}
    fake.on("shop", ok(answer))
    graphql = client(fake, fake_time)
    assert graphql.execute("{ shop { name } }") == answer
    assert decoded_by_requests == []
    fake.on("broken", (200, None, {}))
    original_send = fake.send

    def not_json(request, **kwargs):  # type: ignore[no-untyped-def]
        response = original_send(request, **kwargs)
        response.raw = io.BytesIO(b"<html>maintenance</html>")
        return response

    monkeypatch.setattr(fake, "send", not_json)
    with pytest.raises(ShopifyError, match=r"stream 'orders'.*HTTP 200 with a body that is not"):
        graphql.execute("{ broken }", stream="orders")


def test_graphql_errors_fail_clearly_naming_the_stream(
    fake: FakeShopify, fake_time: FakeTime
) -> None:
    fake.on(
        "orders",
        (
            200,
            {
                "errors": [
                    {
                        "message": "Field 'nope' doesn't exist on type 'Order'",
                        "locations": [{"line": 1, "column": 20}],
                        "path": ["query", "orders", "nodes", "nope"],
                        "extensions": {"code": "undefinedField", "typeName": "Order"},
                    }
                ]
            },
            {},
        ),
    )
    graphql = client(fake, fake_time)
    with pytest.raises(ShopifyGraphQLError, match=r"stream 'orders'.*'nope' doesn't exist"):
        graphql.execute("{ orders { nodes { nope } } }", stream="orders")


def test_access_denied_and_401_are_auth_errors(fake: FakeShopify, fake_time: FakeTime) -> None:
    fake.on(
        "customers",
        (
            200,
            {
                "errors": [
                    {
                        "message": "Access denied for customers field. Required access: "
                        "`read_customers` access scope.",
                        "extensions": {"code": "ACCESS_DENIED"},
                    }
                ]
            },
            {},
        ),
    )
    fake.on("shop", (401, {"errors": "[API] Invalid API key or access token"}, {}))
    graphql = client(fake, fake_time)
    with pytest.raises(ShopifyAuthError, match="read_customers"):
        graphql.execute("{ customers { nodes { id } } }", stream="customers")
    with pytest.raises(ShopifyAuthError, match="HTTP 401") as raised:
        graphql.execute("{ shop { name } }")
    assert "shpat_test_token" not in str(raised.value)
    assert fake.headers_seen[0]["X-Shopify-Access-Token"] == "shpat_test_token"


# --- paginated queries --------------------------------------------------------------


def order_node(number: int, updated: str, line_items: list[str], more: bool = False) -> dict:
    return {
        "id": f"gid://shopify/Order/{number}",
        "name": f"#{number}",
        "updatedAt": updated,
        "customer": {"id": "gid://shopify/Customer/77"},
        "totalPriceSet": {
            "shopMoney": {"amount": "199.9", "currencyCode": "BRL"},
            "presentmentMoney": {"amount": "199.9", "currencyCode": "BRL"},
        },
        "lineItems": {
            "pageInfo": {"hasNextPage": more, "endCursor": "li-cursor" if more else None},
            "nodes": [{"__typename": "LineItem", "id": gid} for gid in line_items],
        },
        "discountApplications": {"pageInfo": {"hasNextPage": False}, "nodes": []},
        "fulfillmentOrders": {"pageInfo": {"hasNextPage": False}, "nodes": []},
        "returns": {"pageInfo": {"hasNextPage": False}, "nodes": []},
        "refunds": [],
    }


SCOPES_ALL = ok(
    {
        "currentAppInstallation": {
            "accessScopes": [
                {"handle": "read_orders"},
                {"handle": "read_all_orders"},
                {"handle": "read_customers"},
            ]
        }
    }
)
SCOPES_60_DAYS = ok({"currentAppInstallation": {"accessScopes": [{"handle": "read_orders"}]}})


def test_pages_follow_cursors_and_complete_nested_connections(
    patched_requests: FakeShopify, fake_time: FakeTime
) -> None:
    fake = patched_requests
    fake.on("AccessScopes", SCOPES_ALL)
    refunded = order_node(1, "2026-11-28T10:00:00Z", ["gid://shopify/LineItem/1"], True)
    # a refund's line items (a connection inside the refunds list) come nested, paged on
    refunded["refunds"] = [
        {"id": "gid://shopify/Refund/5", "refundLineItems": refund_lines(1, more=True)}
    ]
    fake.on(
        "OrdersPage",
        ok(
            {
                "orders": {
                    "pageInfo": {"hasNextPage": True, "endCursor": "page-2"},
                    "nodes": [refunded],
                }
            }
        ),
        ok(
            {
                "orders": {
                    "pageInfo": {"hasNextPage": False, "endCursor": "end"},
                    "nodes": [order_node(2, "2026-11-28T11:00:00Z", [])],
                }
            }
        ),
    )
    fake.on(
        "OrdersMoreLineItems",
        ok(
            {
                "node": {
                    "lineItems": {
                        "pageInfo": {"hasNextPage": False, "endCursor": "x"},
                        "nodes": [{"__typename": "LineItem", "id": "gid://shopify/LineItem/2"}],
                    }
                }
            }
        ),
    )
    fake.on("RefundsMoreRefundLineItems", ok({"node": {"refundLineItems": refund_lines(2)}}))
    bookmark = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0)
    state = {
        "bookmarks": {
            "orders": {
                "replication_key": "updated_at",
                "replication_key_value": bookmark.isoformat(),
            }
        }
    }
    shop = tap(fake_time, {"extraction": "auto"}, state=state)
    synced = records(shop, "orders")

    assert [order["id"] for order in synced] == [1, 2]
    assert synced[0]["admin_graphql_api_id"] == "gid://shopify/Order/1"
    assert [item["id"] for item in synced[0]["line_items"]] == [
        "gid://shopify/LineItem/1",
        "gid://shopify/LineItem/2",
    ]
    assert synced[0]["total_price_set"]["shop_money"] == {"amount": "199.9", "currency_code": "BRL"}
    assert synced[0]["customer"] == {"id": "gid://shopify/Customer/77"}
    assert synced[0]["updated_at"] == "2026-11-28T10:00:00+00:00"

    pages = [r for r in fake.requests if "OrdersPage" in r["query"]]
    assert [page["variables"].get("after") for page in pages] == [None, "page-2"]
    since = bookmark.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert {page["variables"]["query"] for page in pages} == {f"updated_at:>='{since}'"}
    assert "sortKey: UPDATED_AT" in pages[0]["query"]
    # The page size keeps the requested cost under Shopify's 1000-point cap.
    assert queries.ORDERS.page_cost(pages[0]["variables"]["first"]) <= queries.MAX_QUERY_COST
    assert [line["id"] for line in synced[0]["refunds"][0]["refund_line_items"]] == [
        "gid://shopify/RefundLineItem/1",
        "gid://shopify/RefundLineItem/2",
    ]
    assert synced[1]["refunds"] == []
    assert "refunds(first: 20) { id" in pages[0]["query"]
    assert "refundLineItems(first: 5) { pageInfo" in pages[0]["query"]
    refund_more = next(r for r in fake.requests if "RefundsMoreRefundLineItems" in r["query"])
    assert refund_more["variables"] == {"id": "gid://shopify/Refund/5", "after": "rli-cursor"}
    assert not any("RefundsItems" in r["query"] for r in fake.requests)
    more = next(r for r in fake.requests if "OrdersMoreLineItems" in r["query"])
    assert more["variables"] == {"id": "gid://shopify/Order/1", "after": "li-cursor"}
    assert shop.streams["orders"].extraction_used == "pages"


# --- bulk operations ----------------------------------------------------------------


def bulk_started(gid: str = "gid://shopify/BulkOperation/1") -> tuple[int, dict, dict]:
    return ok(
        {
            "bulkOperationRunQuery": {
                "bulkOperation": {"id": gid, "status": "CREATED"},
                "userErrors": [],
            }
        }
    )


def bulk_status(status: str, **fields: t.Any) -> tuple[int, dict, dict]:
    node = {
        "id": "gid://shopify/BulkOperation/1",
        "status": status,
        "errorCode": None,
        "objectCount": "0",
        "rootObjectCount": "0",
        "url": None,
        "partialDataUrl": None,
    }
    return ok({"node": {**node, **fields}})


def test_first_sync_runs_a_bulk_operation_and_rebuilds_records(
    patched_requests: FakeShopify, fake_time: FakeTime
) -> None:
    fake = patched_requests
    fake.on("bulkOperationRunQuery", bulk_started())
    fake.on(
        "BulkOperationStatus",
        bulk_status("RUNNING"),
        bulk_status("COMPLETED", url=RESULT_URL, objectCount="3", rootObjectCount="2"),
    )
    fake.files[RESULT_URL] = "".join(
        json.dumps(line) + "\n"
        for line in (
            {
                "id": "gid://shopify/Product/1",
                "title": "Camiseta",
                "updatedAt": "2026-01-01T00:00:00Z",
            },
            {
                "__typename": "ProductVariant",
                "id": "gid://shopify/ProductVariant/9",
                "sku": "CAM-P",
                "price": "59.90",
                "__parentId": "gid://shopify/Product/1",
            },
            {"id": "gid://shopify/Product/2", "title": "Boné", "updatedAt": "2026-01-02T00:00:00Z"},
        )
    )
    shop = tap(fake_time, {"start_date": "2024-01-01T00:00:00Z", "bulk_poll_interval": 4})
    synced = records(shop, "products")

    assert [(p["id"], p["title"]) for p in synced] == [(1, "Camiseta"), (2, "Boné")]
    assert synced[0]["variants"] == [
        {"id": "gid://shopify/ProductVariant/9", "sku": "CAM-P", "price": "59.90"}
    ]
    assert synced[1]["variants"] == []
    started = next(r for r in fake.requests if "bulkOperationRunQuery" in r["query"])
    assert "groupObjects: false" in started["query"]
    bulk_query = started["variables"]["query"]
    assert (
        "products(query: \"updated_at:>='2024-01-01T00:00:00Z'\", sortKey: UPDATED_AT)"
        in bulk_query
    )
    assert "variants { edges { node { __typename" in bulk_query
    assert "first:" not in bulk_query  # bulk queries are not paginated
    assert fake_time.sleeps[:2] == [0.5, 0.75]  # polling backs off up to the interval
    # The signed result URL is fetched without the shop's access token.
    download = next(h for h in fake.headers_seen if "X-Shopify-Access-Token" not in h)
    assert download


def refund_lines(*numbers: int, more: bool = False) -> dict[str, t.Any]:
    """A page of a refund's line items, each restocked at shop 10."""
    return {
        "pageInfo": {"hasNextPage": more, "endCursor": "rli-cursor" if more else None},
        "nodes": [
            {
                "id": f"gid://shopify/RefundLineItem/{number}",
                "quantity": 1,
                "restockType": "RETURN",
                "restocked": True,
                "location": {"id": "gid://shopify/Location/10", "name": "Loja Paulista"},
                "lineItem": {"id": f"gid://shopify/LineItem/{number}"},
            }
            for number in numbers
        ],
    }


def test_bulk_orders_get_their_refund_lines_by_id_in_batches_within_the_cost_budget(
    patched_requests: FakeShopify, fake_time: FakeTime
) -> None:
    """Shopify refuses refundLineItems (a connection) inside refunds (a list) in a bulk
    query: the tap asks nodes(ids:) for the refunds the result carried, as many ids a
    query as the 1000-point cap allows, paced by the cost budget, and pages the rest.
    The order whose second refund overflows the first batch waits for the next one."""
    fake = patched_requests
    batch = queries.REFUNDS.items_batch()
    assert queries.REFUNDS.items_cost(batch) <= queries.MAX_QUERY_COST
    assert queries.REFUNDS.items_cost(batch + 1) > queries.MAX_QUERY_COST
    count = batch + 3
    fake.on("AccessScopes", SCOPES_ALL)
    fake.on("bulkOperationRunQuery", bulk_started())
    fake.on("BulkOperationStatus", bulk_status("COMPLETED", url=RESULT_URL))
    fake.files[RESULT_URL] = "".join(
        json.dumps(line) + "\n"
        for number in range(1, count + 1)
        for line in (
            {
                "id": f"gid://shopify/Order/{number}",
                "updatedAt": "2026-11-01T00:00:00Z",
                "refunds": [
                    {"id": f"gid://shopify/Refund/{refund}", "note": None}
                    for refund in ((number, 5000) if number == batch else (number,))
                ],
            },
            {
                "__typename": "LineItem",
                "id": f"gid://shopify/LineItem/{number}",
                "__parentId": f"gid://shopify/Order/{number}",
            },
        )
    )
    first_ids = [f"gid://shopify/Refund/{n}" for n in range(1, batch + 1)]
    last_numbers = [5000, *range(batch + 1, count + 1)]
    last_ids = [f"gid://shopify/Refund/{n}" for n in last_numbers]
    fake.on(
        "RefundsItems",
        # the first batch leaves 10 points of 2000: the next one must wait for its cost
        ok(
            {
                "nodes": [
                    {"id": i, "refundLineItems": refund_lines(n)}
                    for n, i in enumerate(first_ids, start=1)
                ]
            },
            requested=queries.REFUNDS.items_cost(batch),
            available=10,
        ),
        ok(
            {
                "nodes": [
                    {"id": i, "refundLineItems": refund_lines(n, more=n == count)}
                    for n, i in zip(last_numbers, last_ids, strict=True)
                ]
            }
        ),
    )
    fake.on("RefundsMoreRefundLineItems", ok({"node": {"refundLineItems": refund_lines(999)}}))
    synced = records(tap(fake_time, {"extraction": "bulk"}), "orders")

    assert [order["id"] for order in synced] == list(range(1, count + 1))
    assert [r["id"] for r in synced[batch - 1]["refunds"]] == [first_ids[-1], last_ids[0]]
    assert synced[batch - 1]["refunds"][1]["refund_line_items"][0]["id"] == (
        "gid://shopify/RefundLineItem/5000"
    )
    for order in synced:
        refund = order["refunds"][0]
        assert refund["refund_line_items"][0] == {
            "id": f"gid://shopify/RefundLineItem/{order['id']}",
            "quantity": 1,
            "restock_type": "RETURN",
            "restocked": True,
            "location": {"id": "gid://shopify/Location/10", "name": "Loja Paulista"},
            "line_item": {"id": f"gid://shopify/LineItem/{order['id']}"},
        }
        assert order["line_items"] == [{"id": f"gid://shopify/LineItem/{order['id']}"}]
    assert [line["id"] for line in synced[-1]["refunds"][0]["refund_line_items"]] == [
        f"gid://shopify/RefundLineItem/{count}",
        "gid://shopify/RefundLineItem/999",
    ]

    started = next(r for r in fake.requests if "bulkOperationRunQuery" in r["query"])
    assert "refundLineItems" not in started["variables"]["query"]
    assert "refunds(first: 20) { id createdAt" in started["variables"]["query"]
    items = [r for r in fake.requests if "RefundsItems" in r["query"]]
    assert [r["variables"]["ids"] for r in items] == [first_ids, last_ids]
    assert "nodes(ids: $ids) { ... on Refund { id refundLineItems(first: 5)" in items[0]["query"]
    more = next(r for r in fake.requests if "RefundsMoreRefundLineItems" in r["query"])
    assert more["variables"] == {"id": f"gid://shopify/Refund/{count}", "after": "rli-cursor"}
    # 10 points left, 100 a second back: the second batch waited for its cost
    wait = (queries.REFUNDS.items_cost(batch) - 10) / 100
    assert any(abs(slept - wait) < 1e-6 for slept in fake_time.sleeps), fake_time.sleeps


@pytest.mark.parametrize(
    ("final", "error", "message"),
    [
        (
            bulk_status("FAILED", errorCode="TIMEOUT"),
            ShopifyBulkOperationError,
            "FAILED with TIMEOUT",
        ),
        (bulk_status("FAILED", errorCode="ACCESS_DENIED"), ShopifyAuthError, "ACCESS_DENIED"),
        (bulk_status("EXPIRED"), ShopifyBulkOperationError, "ended EXPIRED"),
    ],
)
def test_a_failed_bulk_operation_fails_the_stream_clearly(
    patched_requests: FakeShopify,
    fake_time: FakeTime,
    final: tuple,
    error: type[Exception],
    message: str,
) -> None:
    patched_requests.on("bulkOperationRunQuery", bulk_started())
    patched_requests.on("BulkOperationStatus", final)
    shop = tap(fake_time, {"extraction": "bulk"})
    with pytest.raises(error, match=rf"stream 'customers'.*{message}"):
        records(shop, "customers")


def test_bulk_with_nothing_to_return_has_no_file_and_no_records(
    patched_requests: FakeShopify, fake_time: FakeTime
) -> None:
    patched_requests.on("bulkOperationRunQuery", bulk_started())
    patched_requests.on("BulkOperationStatus", bulk_status("COMPLETED"))
    assert records(tap(fake_time, {"extraction": "bulk"}), "customers") == []


def test_bulk_waits_when_too_many_operations_run(
    patched_requests: FakeShopify, fake_time: FakeTime
) -> None:
    busy = ok(
        {
            "bulkOperationRunQuery": {
                "bulkOperation": None,
                "userErrors": [
                    {
                        "field": None,
                        "message": "A bulk query operation for this app and shop is already "
                        "in progress",
                        "code": "OPERATION_IN_PROGRESS",
                    }
                ],
            }
        }
    )
    patched_requests.on("bulkOperationRunQuery", busy, bulk_started())
    patched_requests.on("BulkOperationStatus", bulk_status("COMPLETED"))
    assert (
        records(tap(fake_time, {"extraction": "bulk", "bulk_poll_interval": 5}), "customers") == []
    )
    assert fake_time.sleeps[0] == 5


@pytest.mark.parametrize(
    ("days_ago", "setting", "expected"),
    [
        (None, "auto", "bulk"),
        (1, "auto", "pages"),
        (10, "auto", "bulk"),
        (1, "bulk", "bulk"),
        (None, "pages", "pages"),
    ],
)
def test_bulk_for_large_extracts_pages_for_small_increments(
    days_ago: int | None, setting: str, expected: str
) -> None:
    stream = TapShopify(config={**CONFIG, "extraction": setting}).streams["orders"]
    start = None
    if days_ago is not None:
        start = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    assert stream.extraction_mode(start) == expected
    locations = TapShopify(config={**CONFIG, "extraction": "bulk"}).streams["locations"]
    assert locations.extraction_mode(None) == "pages"


def test_locations_are_read_whole_and_filtered_by_the_bookmark(
    patched_requests: FakeShopify, fake_time: FakeTime
) -> None:
    """Shopify's locations query cannot filter on updated_at: the stream does."""
    nodes = [
        {
            "id": "gid://shopify/Location/1",
            "name": "CD Barueri",
            "updatedAt": "2026-01-01T00:00:00Z",
        },
        {
            "id": "gid://shopify/Location/2",
            "name": "Loja Paulista",
            "updatedAt": "2026-06-01T00:00:00Z",
        },
    ]
    page = {"locations": {"pageInfo": {"hasNextPage": False, "endCursor": "x"}, "nodes": nodes}}
    patched_requests.on("LocationsPage", ok(page))
    state = {
        "bookmarks": {
            "locations": {
                "replication_key": "updated_at",
                "replication_key_value": "2026-03-01T00:00:00+00:00",
            }
        }
    }
    synced = records(tap(fake_time, state=state), "locations")
    assert [location["name"] for location in synced] == ["Loja Paulista"]
    sent = next(r for r in patched_requests.requests if "LocationsPage" in r["query"])
    assert "query" not in sent["variables"]  # no server-side filter to send
    assert "includeInactive: true" in sent["query"]


# --- the 60-day order window --------------------------------------------------------


def test_without_read_all_orders_the_tap_warns_and_records_it(
    patched_requests: FakeShopify, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    patched_requests.on("AccessScopes", SCOPES_60_DAYS)
    shop = tap(fake_time)
    stream = shop.streams["orders"]
    with caplog.at_level(logging.WARNING):
        assert stream.check_order_history() is False
    assert "read_all_orders" in caplog.text and "last 60 days" in caplog.text
    history = stream.stream_state["order_history"]
    assert history["read_all_orders"] is False
    since = datetime.fromisoformat(history["visible_since"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - since) - timedelta(days=60)) < timedelta(minutes=5)


def test_with_read_all_orders_there_is_no_warning(
    patched_requests: FakeShopify, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    patched_requests.on("AccessScopes", SCOPES_ALL)
    stream = tap(fake_time).streams["orders"]
    with caplog.at_level(logging.WARNING):
        assert stream.check_order_history() is True
    assert "read_all_orders" not in caplog.text
    assert stream.stream_state["order_history"] == {
        "read_all_orders": True,
        "visible_since": None,
    }


def test_records_are_conformed_once_per_schema_as_the_sdk_would(world: World) -> None:
    """Every stream conforms its records with tapkit's compiled conformance, and the
    records and state are the ones singer-sdk's own recursive conformance writes, read
    by bulk operations and by pages."""
    for extraction in ("bulk", "pages"):
        assert_conformed_as_the_sdk_would(
            TapShopify(config=BASE_CONFIG), lambda way=extraction: sync({"extraction": way})[0]
        )
