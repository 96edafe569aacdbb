"""The Square emulator over real HTTP, and the shops' slice of the world.

Auth, Square-Version, cursor paging, filters, validation errors, Square's error body
for unknown paths, the per-token rate limit and injected faults are checked the way a
client sees them; the world checks hold the till's data to what identity resolution is
tested against, above all a shop taking back an online order of the same person.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from omnicanal.channels.square import API_VERSION, SANDBOX_ACCESS_TOKEN
from omnicanal.channels.square.world import SquareShop, build_square_shop, parse_timestamp
from omnicanal.sandbox import SandboxServer, World
from omnicanal.sandbox.cpf import cpf_is_valid

AUTH = {"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}"}


def _shop(world: World) -> SquareShop:
    return world.slices["square"]


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The single error of a Square error body, after checking the status and shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1, body
    return body["errors"][0]


def _get_all(url: str, params: dict[str, Any], key: str) -> tuple[list[dict], int]:
    records, pages, cursor = [], 0, None
    while True:
        response = httpx.get(
            url, params={**params, **({"cursor": cursor} if cursor else {})}, headers=AUTH
        )
        assert response.status_code == 200, response.text
        body = response.json()
        records += body.get(key, [])
        pages += 1
        cursor = body.get("cursor")
        if not cursor:
            return records, pages


def _post_all(url: str, body: dict[str, Any], key: str) -> tuple[list[dict], int]:
    records, pages, cursor = [], 0, None
    while True:
        response = httpx.post(
            url, json={**body, **({"cursor": cursor} if cursor else {})}, headers=AUTH
        )
        assert response.status_code == 200, response.text
        page = response.json()
        records += page.get(key, [])
        pages += 1
        cursor = page.get("cursor")
        if not cursor:
            return records, pages


# -- auth, version, unknown paths --------------------------------------------------------


def test_requires_a_bearer_token(server: SandboxServer) -> None:
    url = f"{server.url}/v2/locations"
    missing = _error(httpx.get(url), 401)
    assert (missing["category"], missing["code"]) == ("AUTHENTICATION_ERROR", "UNAUTHORIZED")
    assert "Authorization" in missing["detail"]
    for headers in (
        {"Authorization": "Bearer EAAAwrong"},
        {"Authorization": SANDBOX_ACCESS_TOKEN},  # no scheme
        {"Authorization": f"Basic {SANDBOX_ACCESS_TOKEN}"},
    ):
        error = _error(httpx.get(url, headers=headers), 401)
        assert error == {
            "category": "AUTHENTICATION_ERROR",
            "code": "UNAUTHORIZED",
            "detail": "This request could not be authorized.",
        }


def test_square_version_is_served_and_named(server: SandboxServer) -> None:
    url = f"{server.url}/v2/locations"
    default = httpx.get(url, headers=AUTH)
    assert default.status_code == 200
    assert default.headers["Square-Version"] == API_VERSION  # the app's default version
    pinned = httpx.get(url, headers={**AUTH, "Square-Version": "2024-01-18"})
    assert pinned.headers["Square-Version"] == "2024-01-18"
    malformed = _error(httpx.get(url, headers={**AUTH, "Square-Version": "latest"}), 400)
    assert malformed["code"] == "INVALID_SQUARE_VERSION_FORMAT"
    future = _error(httpx.get(url, headers={**AUTH, "Square-Version": "2099-01-01"}), 400)
    assert future["code"] == "API_VERSION_INCOMPATIBLE"


def test_unknown_paths_and_methods_answer_squares_error_body(server: SandboxServer) -> None:
    for path in ("/v2/orders/unknown-thing", "/v2", "/v2/"):
        unknown = _error(httpx.get(f"{server.url}{path}", headers=AUTH), 404)
        assert (unknown["category"], unknown["code"]) == ("INVALID_REQUEST_ERROR", "NOT_FOUND")
    wrong_method = _error(httpx.get(f"{server.url}/v2/orders/search", headers=AUTH), 405)
    assert wrong_method["code"] == "METHOD_NOT_ALLOWED"
    not_json = httpx.post(
        f"{server.url}/v2/orders/search",
        content=b"location_ids=1",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert _error(not_json, 400)["code"] == "EXPECTED_JSON_BODY"


def test_locations_are_the_shops(server: SandboxServer, world: World) -> None:
    body = httpx.get(f"{server.url}/v2/locations", headers=AUTH).json()
    cities = {loc["address"]["locality"] for loc in body["locations"]}
    assert cities == {"São Paulo", "Rio de Janeiro", "Belo Horizonte"}
    assert all(loc["currency"] == "BRL" and loc["status"] == "ACTIVE" for loc in body["locations"])


# -- customers -----------------------------------------------------------------------------


def test_customers_page_by_cursor_to_every_profile_once(
    server: SandboxServer, world: World
) -> None:
    customers, pages = _get_all(f"{server.url}/v2/customers", {"limit": 7}, "customers")
    ids = [c["id"] for c in customers]
    assert sorted(ids) == sorted(c["id"] for c in _shop(world).customers)
    assert len(ids) == len(set(ids))
    assert pages == -(-len(ids) // 7)

    newest_first, _ = _get_all(
        f"{server.url}/v2/customers",
        {"limit": 100, "sort_field": "CREATED_AT", "sort_order": "DESC"},
        "customers",
    )
    stamps = [c["created_at"] for c in newest_first]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"limit": 0}, "VALUE_TOO_LOW", "limit"),
        ({"limit": 101}, "VALUE_TOO_HIGH", "limit"),
        ({"limit": "ten"}, "EXPECTED_INTEGER", "limit"),
        ({"sort_field": "UPDATED_AT"}, "INVALID_ENUM_VALUE", "sort_field"),
        ({"cursor": "not-a-cursor"}, "INVALID_CURSOR", "cursor"),
    ],
)
def test_list_customers_validation(server: SandboxServer, params, code, field) -> None:
    error = _error(httpx.get(f"{server.url}/v2/customers", params=params, headers=AUTH), 400)
    assert (error["category"], error["code"], error["field"]) == (
        "INVALID_REQUEST_ERROR",
        code,
        field,
    )


def test_a_cursor_only_goes_with_its_own_query(server: SandboxServer) -> None:
    first = httpx.get(f"{server.url}/v2/customers", params={"limit": 5}, headers=AUTH).json()
    other_query = {"limit": 5, "sort_field": "CREATED_AT", "cursor": first["cursor"]}
    error = _error(httpx.get(f"{server.url}/v2/customers", params=other_query, headers=AUTH), 400)
    assert error["code"] == "INVALID_CURSOR"


def test_search_customers_filters_on_updated_at_and_pages_in_the_body(
    server: SandboxServer, world: World
) -> None:
    stamps = sorted(c["updated_at"] for c in _shop(world).customers)
    start = stamps[len(stamps) // 2]
    body = {
        "limit": 4,
        "query": {
            "filter": {"updated_at": {"start_at": start}},
            "sort": {"field": "CREATED_AT", "order": "ASC"},
        },
    }
    found, pages = _post_all(f"{server.url}/v2/customers/search", body, "customers")
    expected = {c["id"] for c in _shop(world).customers if c["updated_at"] >= start}
    assert {c["id"] for c in found} == expected and len(found) == len(expected)
    assert pages > 1
    assert [c["created_at"] for c in found] == sorted(c["created_at"] for c in found)

    someone = next(c for c in _shop(world).customers if c.get("email_address"))
    exact = httpx.post(
        f"{server.url}/v2/customers/search",
        json={"query": {"filter": {"email_address": {"exact": someone["email_address"].upper()}}}},
        headers=AUTH,
    ).json()
    assert someone["id"] in {c["id"] for c in exact["customers"]}

    nothing = httpx.post(
        f"{server.url}/v2/customers/search",
        json={"query": {"filter": {"created_at": {"start_at": "2099-01-01T00:00:00Z"}}}},
        headers=AUTH,
    )
    assert nothing.json() == {}  # Square's empty result

    bad_time = httpx.post(
        f"{server.url}/v2/customers/search",
        json={"query": {"filter": {"updated_at": {"start_at": "yesterday"}}}},
        headers=AUTH,
    )
    assert _error(bad_time, 400) | {"detail": ""} == {
        "category": "INVALID_REQUEST_ERROR",
        "code": "INVALID_TIME",
        "detail": "",
        "field": "query.filter.updated_at.start_at",
    }


# -- orders --------------------------------------------------------------------------------


def test_search_orders_per_location_sorted_on_updated_at(
    server: SandboxServer, world: World
) -> None:
    shop = _shop(world)
    location = shop.locations[0]["id"]
    start = "2024-01-01T00:00:00.000Z"
    body = {
        "location_ids": [location],
        "limit": 9,
        "query": {
            "filter": {"date_time_filter": {"updated_at": {"start_at": start}}},
            "sort": {"sort_field": "UPDATED_AT", "sort_order": "ASC"},
        },
    }
    orders, pages = _post_all(f"{server.url}/v2/orders/search", body, "orders")
    expected = {
        o["id"] for o in shop.orders if o["location_id"] == location and o["updated_at"] >= start
    }
    assert [o["id"] for o in orders if o["id"] in expected] == [o["id"] for o in orders]
    assert {o["id"] for o in orders} == expected and len(orders) == len(expected)
    assert pages > 1
    assert [o["updated_at"] for o in orders] == sorted(o["updated_at"] for o in orders)
    assert all(isinstance(o["total_money"]["amount"], int) for o in orders)
    assert {o["total_money"]["currency"] for o in orders} == {"BRL"}


def test_search_orders_state_filter_and_entries(server: SandboxServer, world: World) -> None:
    shop = _shop(world)
    locations = [loc["id"] for loc in shop.locations]
    canceled = httpx.post(
        f"{server.url}/v2/orders/search",
        json={
            "location_ids": locations,
            "query": {"filter": {"state_filter": {"states": ["CANCELED"]}}},
        },
        headers=AUTH,
    ).json()
    expected = {o["id"] for o in shop.orders if o["state"] == "CANCELED"}
    assert expected and {o["id"] for o in canceled["orders"]} == expected

    entries = httpx.post(
        f"{server.url}/v2/orders/search",
        json={"location_ids": locations[:1], "limit": 3, "return_entries": True},
        headers=AUTH,
    ).json()
    assert set(entries) == {"order_entries", "cursor"}
    assert set(entries["order_entries"][0]) == {"order_id", "location_id", "version"}


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({}, "MISSING_REQUIRED_PARAMETER", "location_ids"),
        ({"location_ids": [f"L{i}" for i in range(11)]}, "ARRAY_LENGTH_TOO_LONG", "location_ids"),
        ({"location_ids": ["NOT-A-LOCATION"]}, "INVALID_VALUE", "location_ids[0]"),
        ({"limit": 1001}, "VALUE_TOO_HIGH", "limit"),
        ({"limit": 0}, "VALUE_TOO_LOW", "limit"),
        ({"shop": 1}, "UNKNOWN_BODY_PARAMETER", "shop"),
        ({"query": []}, "EXPECTED_OBJECT", "query"),
        ({"query": {"filter": "recent"}}, "EXPECTED_OBJECT", "query.filter"),
        (
            {
                "query": {
                    "filter": {
                        "date_time_filter": {"updated_at": {"start_at": "2024-01-01T00:00:00Z"}}
                    }
                }
            },
            "INVALID_SORT_ORDER",
            "query.sort.sort_field",
        ),
        (
            {"query": {"filter": {"state_filter": {"states": ["PAID"]}}}},
            "INVALID_ENUM_VALUE",
            "query.filter.state_filter.states[0]",
        ),
        (
            {
                "query": {
                    "filter": {
                        "date_time_filter": {
                            "created_at": {
                                "start_at": "2025-01-02T00:00:00Z",
                                "end_at": "2025-01-01T00:00:00Z",
                            }
                        }
                    }
                }
            },
            "INVALID_TIME_RANGE",
            "query.filter.date_time_filter.created_at",
        ),
    ],
)
def test_search_orders_validation(server: SandboxServer, world: World, body, code, field) -> None:
    location = _shop(world).locations[0]["id"]
    request = {"location_ids": [location], **body} if body else body
    error = _error(httpx.post(f"{server.url}/v2/orders/search", json=request, headers=AUTH), 400)
    assert (error["category"], error["code"], error["field"]) == (
        "INVALID_REQUEST_ERROR",
        code,
        field,
    )


# -- payments, refunds, catalog -------------------------------------------------------------


def test_payments_default_to_the_main_location_and_the_last_year(
    server: SandboxServer, world: World
) -> None:
    shop = _shop(world)
    url = f"{server.url}/v2/payments"
    # the world ends in 2025: a year back from the wall clock, nothing is visible
    assert httpx.get(url, headers=AUTH).json() == {}

    main, pages = _get_all(url, {"begin_time": "2020-01-01T00:00:00Z", "limit": 10}, "payments")
    assert {p["location_id"] for p in main} == {shop.locations[0]["id"]}
    assert pages > 1
    every = []
    for location in shop.locations:
        found, _ = _get_all(
            url,
            {"begin_time": "2020-01-01T00:00:00Z", "location_id": location["id"], "limit": 500},
            "payments",
        )  # a limit over 100 is ignored, not refused
        every += found
    assert sorted(p["id"] for p in every) == sorted(p["id"] for p in shop.payments)

    stamps = sorted(p["updated_at"] for p in main)
    since = stamps[len(stamps) // 2]
    recent, _ = _get_all(
        url,
        {
            "begin_time": "2020-01-01T00:00:00Z",
            "updated_at_begin_time": since,
            "sort_field": "UPDATED_AT",
            "sort_order": "ASC",
        },
        "payments",
    )
    assert [p["updated_at"] for p in recent] == sorted(s for s in stamps if s >= since)


def test_refunds_cover_every_location_and_online_returns_are_unlinked(
    server: SandboxServer, world: World
) -> None:
    shop = _shop(world)
    refunds, _ = _get_all(
        f"{server.url}/v2/refunds", {"begin_time": "2020-01-01T00:00:00Z", "limit": 4}, "refunds"
    )
    assert sorted(r["id"] for r in refunds) == sorted(r["id"] for r in shop.refunds)
    unlinked = [r for r in refunds if r["unlinked"]]
    assert unlinked and all("payment_id" not in r for r in unlinked)
    assert all(r["order_id"] in shop.online_returns for r in unlinked)
    assert all("payment_id" in r for r in refunds if not r["unlinked"])


def test_catalog_lists_items_by_type_with_a_cursor(world: World) -> None:
    with SandboxServer(world, square={"catalog_page_size": 5}) as sandbox:
        items, pages = _get_all(f"{sandbox.url}/v2/catalog/list", {"types": "item"}, "objects")
        assert len(items) == len(_shop(world).catalog_items) and pages == -(-len(items) // 5)
        assert {i["type"] for i in items} == {"ITEM"}
        price = items[0]["item_data"]["variations"][0]["item_variation_data"]["price_money"]
        assert isinstance(price["amount"], int) and price["currency"] == "BRL"
        error = _error(
            httpx.get(
                f"{sandbox.url}/v2/catalog/list", params={"types": "ITEM,SHOE"}, headers=AUTH
            ),
            400,
        )
        assert (error["code"], error["field"]) == ("INVALID_ENUM_VALUE", "types")


# -- throttling, faults, mutations ------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_per_token_answers_429_rate_limited(world: World) -> None:
    clock = _Clock()
    with SandboxServer(world, square={"rate_limit": 3, "clock": clock}) as sandbox:
        url = f"{sandbox.url}/v2/locations"
        assert [httpx.get(url, headers=AUTH).status_code for _ in range(3)] == [200] * 3
        error = _error(httpx.get(url, headers=AUTH), 429)
        assert (error["category"], error["code"]) == ("RATE_LIMIT_ERROR", "RATE_LIMITED")
        clock.now += 1.01
        assert httpx.get(url, headers=AUTH).status_code == 200
        # over HTTP the limit can be lifted
        httpx.post(f"{sandbox.url}/_sandbox/square/rate_limit", json={"per_second": None})
        assert all(httpx.get(url, headers=AUTH).status_code == 200 for _ in range(6))


def test_faults_503_429_and_timeouts_then_recovery(fresh_server: SandboxServer) -> None:
    emulator = fresh_server.app.state.square
    url = f"{fresh_server.url}/v2/locations"
    emulator.fail_next(1, 503)
    httpx.post(f"{fresh_server.url}/_sandbox/square/fail_next", json={"n": 1, "status": 429})
    assert _error(httpx.get(url, headers=AUTH), 503)["code"] == "SERVICE_UNAVAILABLE"
    assert _error(httpx.get(url, headers=AUTH), 429)["code"] == "RATE_LIMITED"
    emulator.fail_next(1, 504, hang_seconds=1.0)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, headers=AUTH, timeout=0.3)
    assert httpx.get(url, headers=AUTH).status_code == 200
    # the knob also takes the timeout body of Shopify's and VTEX's knobs
    httpx.post(f"{fresh_server.url}/_sandbox/square/fail_next", json={"timeout_seconds": 1.0})
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, headers=AUTH, timeout=0.3)
    assert httpx.get(url, headers=AUTH).status_code == 200
    assert emulator.faults.pending == 0
    # an unauthenticated request does not consume a fault
    emulator.fail_next(1, 500)
    assert httpx.get(url).status_code == 401
    assert emulator.faults.pending == 1


def test_touched_customer_is_found_by_its_new_updated_at(fresh_server: SandboxServer) -> None:
    shop = _shop(fresh_server.app.state.world)
    target = shop.customers[0]
    latest = max(c["updated_at"] for c in shop.customers)
    touched = httpx.post(
        f"{fresh_server.url}/_sandbox/square/customers/{target['id']}/touch",
        json={"note": "Prefere WhatsApp"},
    ).json()
    assert touched["updated_at"] > latest and touched["version"] == target["version"] + 1
    found = httpx.post(
        f"{fresh_server.url}/v2/customers/search",
        json={"query": {"filter": {"updated_at": {"start_at": touched["updated_at"]}}}},
        headers=AUTH,
    ).json()
    assert [c["id"] for c in found["customers"]] == [target["id"]]
    assert found["customers"][0]["note"] == "Prefere WhatsApp"
    missing = httpx.post(f"{fresh_server.url}/_sandbox/square/orders/NOPE/touch", json={})
    assert _error(missing, 404)["code"] == "NOT_FOUND"


# -- the world ---------------------------------------------------------------------------------


def test_a_shop_takes_back_online_orders_of_the_same_person(world: World) -> None:
    shop, store = _shop(world), world.slices["shopify"]
    online = {o["id"]: o for o in store.orders}
    orders = {o["id"]: o for o in shop.orders}
    refunds = {r["order_id"]: r for r in shop.refunds}
    assert len(shop.online_returns) >= 10
    kinds = Counter()
    for square_id, shopify_id in shop.online_returns.items():
        order, bought = orders[square_id], online[shopify_id]
        buyer = store.customer_person[bought["customer"]["id"]]
        assert shop.customer_person[order["customer_id"]] == buyer == shop.order_person[square_id]
        number = bought["name"].lstrip("#")
        assert number in order["reference_id"]
        assert parse_timestamp(order["created_at"]) > datetime.fromisoformat(bought["created_at"])
        (order_return,) = order["returns"]
        assert "source_order_id" not in order_return  # unlinked: Square never sold it
        titles = {line["title"] for line in bought["line_items"]}
        assert {line["name"] for line in order_return["return_line_items"]} <= titles
        returned = order["return_amounts"]["total_money"]["amount"]
        if order.get("line_items"):
            kinds["exchange"] += 1
            assert square_id not in refunds
        else:
            kinds["refund"] += 1
            refund = refunds[square_id]
            assert refund["unlinked"] and refund["amount_money"]["amount"] == returned
            assert bought["name"] in refund["reason"]
        customer = next(c for c in shop.customers if c["id"] == order["customer_id"])
        if not customer.get("email_address"):
            kinds["no_email"] += 1
    assert kinds["exchange"] and kinds["refund"]
    # the hard case: the only link between the till profile and the online buyer is the return
    assert kinds["no_email"]


def test_till_identifiers_are_what_identity_must_cope_with(world: World) -> None:
    shop = _shop(world)
    people = world.people_by_id
    anonymous = [o for o in shop.orders if "customer_id" not in o]
    assert anonymous and all(o["id"] in shop.order_person for o in anonymous)
    deleted = {entry["id"] for entry in shop.deleted}
    assert set(shop.customer_person) == {c["id"] for c in shop.customers} | deleted
    seen = Counter()
    for customer in shop.customers:
        person = people[shop.customer_person[customer["id"]]]
        if email := customer.get("email_address"):
            assert email.strip().lower() == person.email
            seen["email"] += 1
        if phone := customer.get("phone_number"):
            digits = "".join(ch for ch in phone if ch.isdigit()).removeprefix("55")
            national = person.phone.removeprefix("+55")
            assert digits in (national, national[:2] + national[3:])
            seen["no_ninth_digit" if len(digits) == 10 else "phone"] += 1
        for field in ("reference_id", "note"):
            if value := customer.get(field):
                digits = "".join(ch for ch in value if ch.isdigit())
                assert digits == person.cpf and cpf_is_valid(digits)
                seen[f"cpf_in_{field}"] += 1
        if not customer.get("email_address") and not customer.get("phone_number"):
            seen["cpf_or_name_only"] += 1
    assert {"email", "phone", "no_ninth_digit", "cpf_in_reference_id", "cpf_in_note"} <= set(seen)
    duplicated = Counter(shop.customer_person.values())
    assert any(n > 1 for n in duplicated.values()), "no person with two till profiles"
    pickups = [o for o in shop.orders if o.get("fulfillments")]
    assert pickups and all(o["fulfillments"][0]["type"] == "PICKUP" for o in pickups)


def test_the_slice_is_deterministic_and_round_trips(world: World) -> None:
    again = build_square_shop(
        random.Random(f"{world.seed}:square"),
        world.people,
        world.as_of,
        {"shopify": world.slices["shopify"]},
    )
    assert again.to_dict() == _shop(world).to_dict()
    assert SquareShop.from_dict(again.to_dict()).to_dict() == again.to_dict()
    assert "Square shops" in again.describe()
    alone = build_square_shop(random.Random(1), world.people[:50], world.as_of, {})
    assert alone.online_returns == {} and all(
        parse_timestamp(o["created_at"]) < world.as_of for o in alone.orders
    )
    assert all(
        parse_timestamp(o["updated_at"]) <= world.as_of + timedelta(minutes=1)
        for o in _shop(world).orders
    )
    assert all(o["created_at"].endswith("Z") for o in _shop(world).orders)
    assert datetime.fromisoformat(_shop(world).orders[0]["created_at"]).tzinfo == UTC
