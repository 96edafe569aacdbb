"""The Shopify emulator over real HTTP: auth, filters, Link pagination, throttle, faults.

These are the behaviours the tap's paginator, incremental cursor and back-off are
written against, so each one is checked the way a client sees it.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from omnicanal.channels.shopify import SANDBOX_ACCESS_TOKEN
from omnicanal.sandbox import SandboxServer, World
from omnicanal.sandbox.throttle import LeakyBucket

ADMIN = "/admin/api/2024-10"
AUTH = {"X-Shopify-Access-Token": SANDBOX_ACCESS_TOKEN}
LINK = re.compile(r'<([^>]+)>; rel="(next|previous)"')


def _links(response: httpx.Response) -> dict[str, str]:
    return {rel: url for url, rel in LINK.findall(response.headers.get("Link", ""))}


def _walk(url: str, params: dict[str, Any] | None = None) -> tuple[list[dict], int]:
    """Follow rel="next" links from ``url``; return every record and the page count."""
    records: list[dict] = []
    pages = 0
    next_url: str | None = url
    while next_url:
        response = httpx.get(next_url, params=params if pages == 0 else None, headers=AUTH)
        assert response.status_code == 200, response.text
        pages += 1
        body = response.json()
        records.extend(body[next(iter(body))])
        next_url = _links(response).get("next")
    return records, pages


def test_requires_the_access_token(server: SandboxServer) -> None:
    for headers in ({}, {"X-Shopify-Access-Token": "shpat_wrong"}):
        response = httpx.get(f"{server.url}{ADMIN}/customers.json", headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
        }


def test_first_page_shape_and_headers(server: SandboxServer, world: World) -> None:
    response = httpx.get(f"{server.url}{ADMIN}/customers.json", headers=AUTH)
    assert response.status_code == 200
    customers = response.json()["customers"]
    assert len(customers) == 50
    assert [c["id"] for c in customers] == sorted(
        c["id"] for c in world.slices["shopify"].customers
    )[:50]
    assert re.match(r"^\d+/40$", response.headers["X-Shopify-Shop-Api-Call-Limit"])
    links = _links(response)
    assert set(links) == {"next"}
    assert links["next"].startswith(f"{server.url}{ADMIN}/customers.json?")
    assert "limit=50" in links["next"] and "page_info=" in links["next"]


def test_pagination_walks_every_customer_exactly_once(server: SandboxServer, world: World) -> None:
    records, pages = _walk(f"{server.url}{ADMIN}/customers.json", {"limit": 37})
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == ids == sorted(c["id"] for c in world.slices["shopify"].customers)
    assert pages == -(-len(world.slices["shopify"].customers) // 37)


def test_previous_link_returns_the_page_before(server: SandboxServer) -> None:
    first = httpx.get(f"{server.url}{ADMIN}/customers.json?limit=20", headers=AUTH)
    second = httpx.get(_links(first)["next"], headers=AUTH)
    assert set(_links(second)) == {"next", "previous"}
    back = httpx.get(_links(second)["previous"], headers=AUTH)
    assert back.json() == first.json()


def test_orders_exclude_cancelled_unless_status_any(server: SandboxServer, world: World) -> None:
    open_orders, _ = _walk(f"{server.url}{ADMIN}/orders.json", {"limit": 250})
    every_order, _ = _walk(f"{server.url}{ADMIN}/orders.json", {"limit": 250, "status": "any"})
    cancelled = {o["id"] for o in world.slices["shopify"].orders if o["cancelled_at"]}
    assert cancelled, "the shared world should hold cancelled orders"
    assert {o["id"] for o in every_order} == {o["id"] for o in world.slices["shopify"].orders}
    closed = {o["id"] for o in world.slices["shopify"].orders if o["closed_at"]}
    assert closed, "the shared world should hold closed orders"
    assert {o["id"] for o in open_orders} == {o["id"] for o in every_order} - cancelled - closed
    count = httpx.get(f"{server.url}{ADMIN}/orders/count.json?status=any", headers=AUTH)
    assert count.json() == {"count": len(world.slices["shopify"].orders)}


def test_updated_at_min_is_inclusive(server: SandboxServer, world: World) -> None:
    stamps = sorted(c["updated_at"] for c in world.slices["shopify"].customers)
    pivot = stamps[len(stamps) // 2]
    expected = {
        c["id"]
        for c in world.slices["shopify"].customers
        if datetime.fromisoformat(c["updated_at"]) >= datetime.fromisoformat(pivot)
    }
    records, _ = _walk(
        f"{server.url}{ADMIN}/customers.json", {"updated_at_min": pivot, "limit": 30}
    )
    assert {r["id"] for r in records} == expected
    in_utc = datetime.fromisoformat(pivot).astimezone(tz=None).isoformat()
    same, _ = _walk(f"{server.url}{ADMIN}/customers.json", {"updated_at_min": in_utc})
    assert {r["id"] for r in same} == expected


def test_order_by_updated_at_for_incremental_taps(server: SandboxServer) -> None:
    records, _ = _walk(
        f"{server.url}{ADMIN}/orders.json",
        {"status": "any", "order": "updated_at asc", "limit": 40},
    )
    keys = [(datetime.fromisoformat(r["updated_at"]), r["id"]) for r in records]
    assert keys == sorted(keys)


def test_fields_selects_keys_and_survives_pagination(server: SandboxServer) -> None:
    first = httpx.get(
        f"{server.url}{ADMIN}/customers.json",
        params={"fields": "id,email", "limit": 5},
        headers=AUTH,
    )
    assert all(set(c) == {"id", "email"} for c in first.json()["customers"])
    second = httpx.get(_links(first)["next"], headers=AUTH)
    assert all(set(c) == {"id", "email"} for c in second.json()["customers"])


@pytest.mark.parametrize(
    "params",
    [{"limit": 251}, {"limit": 0}, {"limit": "ten"}, {"updated_at_min": "yesterday"}],
)
def test_bad_parameters_are_400(server: SandboxServer, params: dict[str, Any]) -> None:
    response = httpx.get(f"{server.url}{ADMIN}/customers.json", params=params, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["errors"]


def test_limit_250_is_allowed(server: SandboxServer) -> None:
    response = httpx.get(f"{server.url}{ADMIN}/orders.json?limit=250&status=any", headers=AUTH)
    assert response.status_code == 200 and len(response.json()["orders"]) == 250


def test_page_info_refuses_other_filters(server: SandboxServer) -> None:
    first = httpx.get(f"{server.url}{ADMIN}/customers.json?limit=10", headers=AUTH)
    next_url = _links(first)["next"]
    mixed = httpx.get(next_url + "&updated_at_min=2024-01-01T00:00:00-03:00", headers=AUTH)
    assert mixed.status_code == 400 and "updated_at_min" in mixed.json()["errors"]
    other_limit = httpx.get(next_url.replace("limit=10", "limit=25"), headers=AUTH)
    assert other_limit.status_code == 200 and len(other_limit.json()["customers"]) == 25
    garbage = httpx.get(f"{server.url}{ADMIN}/customers.json?page_info=nope", headers=AUTH)
    assert garbage.status_code == 400


def test_leaky_bucket_answers_429_with_retry_after(fresh_server: SandboxServer) -> None:
    fresh_server.app.state.shopify.set_rate_limit(bucket_size=3, leak_rate=0.0)
    url = f"{fresh_server.url}{ADMIN}/customers.json?limit=1"
    responses = [httpx.get(url, headers=AUTH) for _ in range(3)]
    levels = [r.headers["X-Shopify-Shop-Api-Call-Limit"] for r in responses]
    assert levels == ["1/3", "2/3", "3/3"]
    throttled = httpx.get(url, headers=AUTH)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1.0"
    assert throttled.headers["X-Shopify-Shop-Api-Call-Limit"] == "3/3"


def test_bucket_leaks_over_time(fresh_server: SandboxServer) -> None:
    fresh_server.app.state.shopify.set_rate_limit(bucket_size=1, leak_rate=5.0)
    url = f"{fresh_server.url}{ADMIN}/customers.json?limit=1"
    assert httpx.get(url, headers=AUTH).status_code == 200
    time.sleep(0.25)  # leaks 1.25 calls: room again for a client that waited
    assert httpx.get(url, headers=AUTH).status_code == 200


def test_leaky_bucket_arithmetic() -> None:
    now = [0.0]
    bucket = LeakyBucket(size=2, leak_per_second=2.0, clock=lambda: now[0])
    assert [bucket.try_take() for _ in range(3)] == [(True, 1), (True, 2), (False, 2)]
    now[0] = 0.5  # one call leaked
    assert bucket.try_take() == (True, 2)
    now[0] = 10.0
    assert bucket.level == 0


def test_fault_injection(fresh_server: SandboxServer) -> None:
    fresh_server.app.state.shopify.fail_next(2, status=503)
    url = f"{fresh_server.url}{ADMIN}/orders.json?limit=1"
    assert [httpx.get(url, headers=AUTH).status_code for _ in range(3)] == [503, 503, 200]


def test_touched_customer_is_picked_up_incrementally(fresh_server: SandboxServer) -> None:
    shopify = fresh_server.app.state.shopify
    url = f"{fresh_server.url}{ADMIN}/customers.json"
    records, _ = _walk(url, {"limit": 250})
    bookmark = max(r["updated_at"] for r in records)
    target = records[0]
    touched = shopify.touch_customer(target["id"], note="Mudou de endereço")
    assert datetime.fromisoformat(touched["updated_at"]) > datetime.fromisoformat(bookmark)

    via_http = httpx.post(
        f"{fresh_server.url}/_sandbox/shopify/customers/{records[1]['id']}/touch",
        json={"tags": "vip"},
    )
    assert via_http.status_code == 200 and via_http.json()["tags"] == "vip"

    after = (datetime.fromisoformat(bookmark) + timedelta(seconds=1)).isoformat()
    changed, _ = _walk(url, {"updated_at_min": after, "order": "updated_at asc"})
    assert [c["id"] for c in changed] == [target["id"], records[1]["id"]]
    assert changed[0]["note"] == "Mudou de endereço"
    missing = httpx.post(f"{fresh_server.url}/_sandbox/shopify/customers/1/touch", json={})
    assert missing.status_code == 404


def test_single_record_and_count(server: SandboxServer, world: World) -> None:
    customer = world.slices["shopify"].customers[0]
    one = httpx.get(f"{server.url}{ADMIN}/customers/{customer['id']}.json", headers=AUTH)
    assert one.json()["customer"] == customer
    assert httpx.get(f"{server.url}{ADMIN}/customers/1.json", headers=AUTH).status_code == 404
    count = httpx.get(f"{server.url}{ADMIN}/customers/count.json", headers=AUTH)
    assert count.json() == {"count": len(world.slices["shopify"].customers)}
