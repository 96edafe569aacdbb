"""Shopify's official Python client (ShopifyAPI) drives the sandbox's emulation.

The library's GraphQL client (``shopify.GraphQL()``, what current apps use), its REST
resources (``Customer``, ``Order``), cursor pagination and error classes must work
unchanged against the emulated shop, as they do against a real one.
Only the address differs: a ShopifyAPI ``Session`` always builds
``https://<shop>.myshopify.com``, so the session handed to ``activate_session`` names
the sandbox's URL instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from urllib.error import HTTPError
from urllib.parse import urlsplit

import pytest
import shopify
from pyactiveresource.connection import UnauthorizedAccess

from omnicanal.channels.shopify import API_VERSION, SANDBOX_ACCESS_TOKEN


def _session(url: str, token: str) -> SimpleNamespace:
    return SimpleNamespace(
        site=f"{url}/admin/api/{API_VERSION}",
        url=urlsplit(url).netloc,
        api_version=SimpleNamespace(name=API_VERSION),
        token=token,
    )


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
