"""Square's official Python SDK (``squareup``, the ``from square import Square`` client)
drives the sandbox's emulation.

The SDK's typed responses, its pagers (which follow ``cursor`` for list endpoints), its
``Square-Version`` header and its ``ApiError`` must work unchanged against the emulated
seller, as they do against ``connect.squareup.com``; only ``base_url`` differs.
"""

from __future__ import annotations

import httpx
import pytest
from square import Square
from square.core.api_error import ApiError

from omnicanal.channels.square import API_VERSION, SANDBOX_ACCESS_TOKEN

BEGIN = "2020-01-01T00:00:00Z"

# The SDK's own models read a pydantic attribute that pydantic 2 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:square")


@pytest.fixture
def client(server) -> Square:
    return Square(token=SANDBOX_ACCESS_TOKEN, base_url=server.url)


def test_the_sdk_sends_the_version_the_sandbox_serves(client) -> None:
    raw = client.locations.with_raw_response.list()
    assert raw.headers["square-version"] == API_VERSION
    names = {location.name for location in raw.data.locations}
    assert names == {"Loja Paulista", "Loja Copacabana", "Loja Savassi"}
    assert all(location.currency == "BRL" for location in raw.data.locations)


def test_customers_pager_walks_every_profile(client, world) -> None:
    customers = list(client.customers.list(limit=9, sort_field="CREATED_AT"))
    shop = world.slices["square"]
    assert [c.id for c in customers] == [
        c["id"] for c in sorted(shop.customers, key=lambda c: (c["created_at"], c["id"]))
    ]
    profile = next(c for c in customers if c.reference_id)
    assert profile.created_at and profile.preferences is not None


def test_customer_search_by_updated_at(client, world) -> None:
    shop = world.slices["square"]
    stamps = sorted(c["updated_at"] for c in shop.customers)
    start = stamps[-5]
    found, cursor = [], None
    while True:
        page = client.customers.search(
            limit=2,
            cursor=cursor,
            query={"filter": {"updated_at": {"start_at": start}}, "sort": {"field": "CREATED_AT"}},
        )
        found += page.customers or []
        cursor = page.cursor
        if not cursor:
            break
    assert sorted(c.id for c in found) == sorted(
        c["id"] for c in shop.customers if c["updated_at"] >= start
    )


def test_orders_search_pages_with_the_cursor(client, world) -> None:
    shop = world.slices["square"]
    locations = [shop.locations[0]["id"]]
    query = {
        "filter": {"date_time_filter": {"updated_at": {"start_at": BEGIN}}},
        "sort": {"sort_field": "UPDATED_AT", "sort_order": "ASC"},
    }
    orders, cursor = [], None
    while True:
        page = client.orders.search(location_ids=locations, query=query, limit=25, cursor=cursor)
        orders += page.orders or []
        cursor = page.cursor
        if not cursor:
            break
    assert sorted(o.id for o in orders) == sorted(
        o["id"] for o in shop.orders if o["location_id"] in locations
    )
    returned = [o for o in orders if o.id in shop.online_returns]
    assert returned and all(o.returns[0].source_order_id is None for o in returned)
    assert all(o.returns[0].return_line_items[0].total_money.currency == "BRL" for o in returned)


def test_payments_and_refunds_pagers(client, world) -> None:
    shop = world.slices["square"]
    main = shop.locations[0]["id"]
    payments = list(client.payments.list(begin_time=BEGIN, location_id=main, limit=25))
    assert sorted(p.id for p in payments) == sorted(
        p["id"] for p in shop.payments if p["location_id"] == main
    )
    assert all(isinstance(p.total_money.amount, int) for p in payments)
    refunds = list(client.refunds.list(begin_time=BEGIN, limit=5))
    assert sorted(r.id for r in refunds) == sorted(r["id"] for r in shop.refunds)
    assert any(r.unlinked for r in refunds)


def test_catalog_items(client, world) -> None:
    items = list(client.catalog.list(types="ITEM"))
    assert len(items) == len(world.slices["square"].catalog_items)
    assert {item.type for item in items} == {"ITEM"}


def test_errors_are_the_sdks_api_error_with_squares_codes(server, client, world) -> None:
    wrong = Square(token="EAAAwrong", base_url=server.url)
    with pytest.raises(ApiError) as unauthorised:
        wrong.locations.list()
    assert unauthorised.value.status_code == 401
    assert unauthorised.value.errors[0].code == "UNAUTHORIZED"
    assert unauthorised.value.errors[0].category == "AUTHENTICATION_ERROR"

    too_many = [location["id"] for location in world.slices["square"].locations] * 4
    with pytest.raises(ApiError) as invalid:
        client.orders.search(location_ids=too_many, request_options={"max_retries": 0})
    assert invalid.value.status_code == 400
    assert (invalid.value.errors[0].code, invalid.value.errors[0].field) == (
        "ARRAY_LENGTH_TOO_LONG",
        "location_ids",
    )


def test_the_sdk_retries_a_rate_limited_request(fresh_server) -> None:
    fresh_server.app.state.square.fail_next(1, 429)
    client = Square(token=SANDBOX_ACCESS_TOKEN, base_url=fresh_server.url)  # retries twice
    assert len(client.locations.list().locations) == 3
    assert fresh_server.app.state.square.faults.pending == 0


def test_the_sdk_pinned_to_a_release_is_served_it_and_a_future_one_refused(server) -> None:
    """Square serves the version a client pins (any release up to the newest) and names
    it; a version after the newest release is API_VERSION_INCOMPATIBLE, as the SDK sees
    it in its ApiError."""
    pinned = Square(token=SANDBOX_ACCESS_TOKEN, base_url=server.url, version="2024-01-18")
    raw = pinned.locations.with_raw_response.list()
    assert raw.headers["square-version"] == "2024-01-18"
    assert len(raw.data.locations) == 3
    future = Square(token=SANDBOX_ACCESS_TOKEN, base_url=server.url, version="2099-01-01")
    with pytest.raises(ApiError) as refused:
        future.locations.list()
    assert refused.value.status_code == 400
    assert refused.value.errors[0].code == "API_VERSION_INCOMPATIBLE"
    assert refused.value.errors[0].category == "INVALID_REQUEST_ERROR"


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "INTERNAL_SERVER_ERROR"), (503, "SERVICE_UNAVAILABLE"), (504, "GATEWAY_TIMEOUT")],
)
def test_a_server_fault_is_the_sdks_api_error_in_squares_body_then_recovers(
    fresh_server, status: int, code: str
) -> None:
    """The faults knob's 5xx reach the SDK as Square words them (category API_ERROR and
    the status's code), not as an empty or FastAPI body; the next request is served."""
    fresh_server.app.state.square.fail_next(1, status)
    client = Square(token=SANDBOX_ACCESS_TOKEN, base_url=fresh_server.url)
    with pytest.raises(ApiError) as failed:
        client.locations.list(request_options={"max_retries": 0})
    assert failed.value.status_code == status
    assert (failed.value.errors[0].category, failed.value.errors[0].code) == ("API_ERROR", code)
    assert len(client.locations.list().locations) == 3


def test_the_sdk_times_out_on_a_hung_answer(fresh_server) -> None:
    """The faults knob's hang: a client whose timeout is shorter than the hang gives up
    (the SDK raises httpx's timeout), and the answer after it is served."""
    fresh_server.app.state.square.fail_next(1, 503, hang_seconds=2.0)
    client = Square(token=SANDBOX_ACCESS_TOKEN, base_url=fresh_server.url, timeout=0.3)
    with pytest.raises(httpx.TimeoutException):
        client.locations.list(request_options={"max_retries": 0})
    patient = Square(token=SANDBOX_ACCESS_TOKEN, base_url=fresh_server.url)
    assert len(patient.locations.list().locations) == 3
