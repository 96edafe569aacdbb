"""Shopify's official Python client (ShopifyAPI) drives the sandbox's emulation.

The library's GraphQL client (``shopify.GraphQL()``, what current apps use), its REST
resources (``Customer``, ``Order``), cursor pagination and error classes must work
unchanged against the emulated shop, as they do against a real one, and show it behave
as Shopify documents where the emulation once did not: 60 days of orders for an app
without ``read_all_orders``, a bulk operation run, polled and downloaded, a retired API
version served forward (and named in ``X-Shopify-API-Version``), and Shopify's own body
for an unknown path.
Only the address differs: a ShopifyAPI ``Session`` always builds
``https://<shop>.myshopify.com``, so the session handed to ``activate_session`` names
the sandbox's URL instead.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from types import SimpleNamespace
from urllib.error import HTTPError
from urllib.parse import urlsplit

import pytest
import shopify
from pyactiveresource.connection import ResourceNotFound, UnauthorizedAccess

from omnicanal.channels.shopify import (
    API_VERSION,
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_RECENT_ORDERS_TOKEN,
)
from omnicanal.channels.shopify.versions import VERSION_HEADER, supported_versions


def _session(url: str, token: str, version: str = API_VERSION) -> SimpleNamespace:
    return SimpleNamespace(
        site=f"{url}/admin/api/{version}",
        url=urlsplit(url).netloc,
        api_version=SimpleNamespace(name=version),
        token=token,
    )


@contextmanager
def _activated(url: str, token: str, version: str = API_VERSION) -> Iterator[None]:
    shopify.ShopifyResource.activate_session(_session(url, token, version))
    try:
        yield
    finally:
        shopify.ShopifyResource.clear_session()


@pytest.fixture
def shop(server) -> Iterator[None]:
    shopify.ShopifyResource.activate_session(_session(server.url, SANDBOX_ACCESS_TOKEN))
    yield
    shopify.ShopifyResource.clear_session()


def test_customers_page_by_cursor_to_the_whole_store(shop, world):
    page = shopify.Customer.find(limit=50)
    ids = [customer.id for customer in page]
    while page.has_next_page():
        page = page.next_page()
        ids += [customer.id for customer in page]
    assert sorted(ids) == sorted(c["id"] for c in world.slices["shopify"].customers)
    assert len(ids) == len(set(ids))
    assert shopify.Customer.count() == len(ids)


def test_orders_with_status_any_and_one_by_id(shop, world):
    orders = world.slices["shopify"].orders
    page = shopify.Order.find(status="any", limit=250)
    seen = [order.id for order in page]
    while page.has_next_page():
        page = page.next_page()
        seen += [order.id for order in page]
    assert sorted(seen) == sorted(o["id"] for o in orders)
    one = shopify.Order.find(orders[0]["id"])
    assert (one.id, one.email, one.total_price) == (
        orders[0]["id"],
        orders[0]["email"],
        orders[0]["total_price"],
    )


def test_a_wrong_token_is_the_clients_unauthorized_error(server):
    shopify.ShopifyResource.activate_session(_session(server.url, "shpat_wrong"))
    try:
        with pytest.raises(UnauthorizedAccess):
            shopify.Customer.find(limit=1)
    finally:
        shopify.ShopifyResource.clear_session()


# -- the GraphQL Admin API through the client's GraphQL() -------------------------------

CUSTOMERS_QUERY = """
query Customers($after: String) {
  customers(first: 50, after: $after, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes { id email defaultEmailAddress { emailAddress marketingState } updatedAt }
  }
}"""


def test_graphql_client_pages_customers_and_reads_cost(shop, world):
    client = shopify.GraphQL()
    ids, after, costs = [], None, []
    while True:
        body = json.loads(client.execute(CUSTOMERS_QUERY, variables={"after": after}))
        page = body["data"]["customers"]
        ids += [node["id"] for node in page["nodes"]]
        costs.append(body["extensions"]["cost"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    expected = sorted(
        f"gid://shopify/Customer/{c['id']}" for c in world.slices["shopify"].customers
    )
    assert sorted(ids) == expected and len(ids) == len(set(ids))
    assert all(c["requestedQueryCost"] == 2 + 50 * 2 for c in costs)
    assert costs[-1]["throttleStatus"]["maximumAvailable"] == 2000.0


def test_graphql_client_gets_orders_with_operation_name_and_errors(shop, world):
    order = world.slices["shopify"].orders[0]
    client = shopify.GraphQL()
    document = """
    query One($id: ID!) { order(id: $id) { name totalPriceSet { shopMoney { amount } } } }
    query Other { shop { name } }"""
    body = json.loads(
        client.execute(
            document, variables={"id": f"gid://shopify/Order/{order['id']}"}, operation_name="One"
        )
    )
    assert body["data"]["order"]["name"] == order["name"]
    assert float(body["data"]["order"]["totalPriceSet"]["shopMoney"]["amount"]) == float(
        order["total_price"]
    )
    invalid = json.loads(client.execute("{ order(id: 1) { nope } }"))
    assert invalid["errors"][0]["extensions"]["code"] == "undefinedField"


def test_graphql_client_raises_on_a_wrong_token(server):
    shopify.ShopifyResource.activate_session(_session(server.url, "shpat_wrong"))
    try:
        with pytest.raises(HTTPError) as caught:
            shopify.GraphQL().execute("{ shop { name } }")
        assert caught.value.code == 401
    finally:
        shopify.ShopifyResource.clear_session()


ORDERS_QUERY = """
query Orders($after: String) {
  orders(first: 250, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { legacyResourceId }
  }
}"""


def _graphql_order_ids() -> set[int]:
    client, ids, after = shopify.GraphQL(), set(), None
    while True:
        body = json.loads(client.execute(ORDERS_QUERY, variables={"after": after}))
        page = body["data"]["orders"]
        ids |= {int(node["legacyResourceId"]) for node in page["nodes"]}
        if not page["pageInfo"]["hasNextPage"]:
            return ids
        after = page["pageInfo"]["endCursor"]


def test_graphql_client_sees_60_days_of_orders_without_read_all_orders(server, world):
    orders = world.slices["shopify"].orders
    cutoff = world.as_of - timedelta(days=60)
    recent = {o["id"] for o in orders if datetime.fromisoformat(o["created_at"]) >= cutoff}
    assert 0 < len(recent) < len(orders)
    with _activated(server.url, SANDBOX_RECENT_ORDERS_TOKEN):
        assert _graphql_order_ids() == recent
        assert shopify.Order.count(status="any") == len(recent)
    with _activated(server.url, SANDBOX_ACCESS_TOKEN):
        assert _graphql_order_ids() == {o["id"] for o in orders}


BULK_RUN = """
mutation Run($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message }
  }
}"""
BULK_POLL = """
query Poll($id: ID!) {
  node(id: $id) { ... on BulkOperation { id status errorCode objectCount url } }
}"""


def test_graphql_client_runs_a_bulk_operation_and_downloads_its_jsonl(shop, world):
    client = shopify.GraphQL()
    query = "{ customers { edges { node { id email } } } }"
    run = json.loads(client.execute(BULK_RUN, variables={"query": query}))
    started = run["data"]["bulkOperationRunQuery"]
    assert started["userErrors"] == [] and started["bulkOperation"]["status"] == "CREATED"
    for _ in range(600):  # polled as an app polls, until it ends
        poll = json.loads(
            client.execute(BULK_POLL, variables={"id": started["bulkOperation"]["id"]})
        )
        operation = poll["data"]["node"]
        if operation["status"] not in ("CREATED", "RUNNING"):
            break
        time.sleep(0.05)
    assert operation["status"] == "COMPLETED" and operation["errorCode"] is None
    with urllib.request.urlopen(operation["url"]) as download:  # noqa: S310 - the sandbox's URL
        lines = [json.loads(line) for line in download.read().decode().splitlines()]
    customers = world.slices["shopify"].customers
    assert int(operation["objectCount"]) == len(lines) == len(customers)
    assert {line["id"] for line in lines} == {
        f"gid://shopify/Customer/{c['id']}" for c in customers
    }
    assert {line["email"] for line in lines} == {c["email"] for c in customers}


def test_rest_client_is_served_forward_from_a_retired_version(server, world):
    oldest = supported_versions()[0]
    with _activated(server.url, SANDBOX_ACCESS_TOKEN, version="1999-01"):
        assert shopify.Customer.count() == len(world.slices["shopify"].customers)
        answered = shopify.ShopifyResource.connection.response
        headers = {name.lower(): value for name, value in answered.headers.items()}
        assert answered.code == 200 and headers[VERSION_HEADER.lower()] == oldest


def test_rest_client_gets_shopifys_body_for_an_unknown_path(shop):
    with pytest.raises(ResourceNotFound) as caught:
        shopify.ShopifyResource.connection.get(f"/admin/api/{API_VERSION}/nothing.json")
    assert caught.value.response.code == 404
    assert json.loads(caught.value.response.body) == {"errors": "Not Found"}


def test_graphql_client_is_throttled_at_http_200_by_the_cost_bucket(fresh_server):
    """Shopify's cost limit through the client: a query the bucket cannot afford is
    answered HTTP 200 with a THROTTLED error (the client raises nothing) and the bucket's
    state in ``extensions.cost.throttleStatus``; once restored, the query runs again."""
    # restored slowly enough (50 a second) that the second query is throttled even on a
    # loaded machine
    fresh_server.app.state.shopify.set_cost_limit(maximum_available=60, restore_rate=50)
    query = "{ customers(first: 25) { nodes { id defaultAddress { city } } } }"  # 52 points
    with _activated(fresh_server.url, SANDBOX_ACCESS_TOKEN):
        client = shopify.GraphQL()
        first = json.loads(client.execute(query))
        assert len(first["data"]["customers"]["nodes"]) == 25
        throttled = json.loads(client.execute(query))
        assert "data" not in throttled or throttled["data"] is None
        assert [e["extensions"]["code"] for e in throttled["errors"]] == ["THROTTLED"]
        bucket = throttled["extensions"]["cost"]["throttleStatus"]
        assert (bucket["maximumAvailable"], bucket["restoreRate"]) == (60, 50)
        assert bucket["currentlyAvailable"] < 52
        time.sleep(1.3)  # restores 60 points at 50 a second
        assert len(json.loads(client.execute(query))["data"]["customers"]["nodes"]) == 25


def test_graphql_client_is_served_forward_from_a_retired_version(server, world):
    """The GraphQL endpoint of a retired version answers as the oldest supported one
    (the client sees the data; the REST test above reads the version header)."""
    with _activated(server.url, SANDBOX_ACCESS_TOKEN, version="1999-01"):
        body = json.loads(shopify.GraphQL().execute("{ customersCount { count } }"))
    assert body["data"]["customersCount"]["count"] == len(world.slices["shopify"].customers)
