"""The GraphQL Admin API emulation over real HTTP: paging, search, cost, throttle, bulk
operations, the 60-day order window, version fall-forward and Shopify's error bodies.

Each behaviour is checked the way a client (the GraphQL tap) sees it.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from omnicanal.channels.shopify import SANDBOX_ACCESS_TOKEN, SANDBOX_RECENT_ORDERS_TOKEN
from omnicanal.channels.shopify.versions import (
    VERSION_HEADER,
    release_candidate,
    served_version,
    supported_versions,
)
from omnicanal.sandbox import SandboxServer, World

VERSION = supported_versions()[-1]
AUTH = {"X-Shopify-Access-Token": SANDBOX_ACCESS_TOKEN}
RECENT = {"X-Shopify-Access-Token": SANDBOX_RECENT_ORDERS_TOKEN}

CUSTOMERS_PAGE = """
query Page($first: Int!, $after: String, $query: String, $sortKey: CustomerSortKeys) {
  customers(first: $first, after: $after, query: $query, sortKey: $sortKey) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id legacyResourceId updatedAt email } }
  }
}"""


def _post(
    server: SandboxServer,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] = AUTH,
    version: str = VERSION,
    timeout: float = 5.0,
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/admin/api/{version}/graphql.json",
        json={"query": query, "variables": variables},
        headers=headers,
        timeout=timeout,
    )


def _gql(server: SandboxServer, document: str, **variables: Any) -> dict[str, Any]:
    response = _post(server, document, variables or None)
    assert response.status_code == 200, response.text
    return response.json()


def _walk_customers(server: SandboxServer, first: int, **variables: Any) -> tuple[list, int]:
    nodes: list[dict[str, Any]] = []
    after, pages = None, 0
    while True:
        body = _gql(server, CUSTOMERS_PAGE, first=first, after=after, **variables)
        page = body["data"]["customers"]
        nodes += [edge["node"] for edge in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            return nodes, pages
        after = page["pageInfo"]["endCursor"]


# -- paging and search -------------------------------------------------------------------


def test_customers_page_by_cursor_through_the_whole_store(server, world: World) -> None:
    nodes, pages = _walk_customers(server, 37)
    customers = world.slices["shopify"].customers
    ids = [int(n["legacyResourceId"]) for n in nodes]
    assert ids == sorted(c["id"] for c in customers)  # default sortKey ID
    assert pages == -(-len(customers) // 37)
    assert all(n["id"] == f"gid://shopify/Customer/{n['legacyResourceId']}" for n in nodes)
    assert all(n["updatedAt"].endswith("Z") for n in nodes)


def test_updated_at_filter_and_sort_for_incremental_sync(server, world: World) -> None:
    customers = world.slices["shopify"].customers
    stamps = sorted(datetime.fromisoformat(c["updated_at"]) for c in customers)
    pivot = stamps[len(stamps) // 2].astimezone(UTC)
    since = pivot.strftime("%Y-%m-%dT%H:%M:%SZ")
    nodes, _ = _walk_customers(server, 25, query=f"updated_at:>='{since}'", sortKey="UPDATED_AT")
    expected = {c["id"] for c in customers if datetime.fromisoformat(c["updated_at"]) >= pivot}
    assert {int(n["legacyResourceId"]) for n in nodes} == expected
    keys = [(n["updatedAt"], int(n["legacyResourceId"])) for n in nodes]
    assert keys == sorted(keys)


def test_last_and_before_page_backwards(server) -> None:
    first = _gql(server, CUSTOMERS_PAGE, first=10)["data"]["customers"]
    second = _gql(server, CUSTOMERS_PAGE, first=10, after=first["pageInfo"]["endCursor"])
    cursor = second["data"]["customers"]["edges"][0]["cursor"]
    back = _gql(
        server,
        "query($before: String) { customers(last: 10, before: $before) "
        "{ pageInfo { hasPreviousPage hasNextPage } nodes { id } } }",
        before=cursor,
    )["data"]["customers"]
    assert [n["id"] for n in back["nodes"]] == [e["node"]["id"] for e in first["edges"]]
    assert back["pageInfo"] == {"hasPreviousPage": False, "hasNextPage": True}


def test_orders_search_by_status_source_and_id(server, world: World) -> None:
    orders = world.slices["shopify"].orders
    query = (
        "query($q: String) { orders(first: 250, query: $q) "
        "{ pageInfo { hasNextPage } nodes { legacyResourceId closed sourceName } } }"
    )
    closed = _gql(server, query, q="status:closed")["data"]["orders"]["nodes"]
    assert closed and {int(n["legacyResourceId"]) for n in closed} == {
        o["id"] for o in orders if o["closed_at"]
    }
    pos = _gql(server, query, q="source_name:pos -status:closed")["data"]["orders"]["nodes"]
    assert pos and all(n["sourceName"] == "pos" and not n["closed"] for n in pos)
    pivot = sorted(o["id"] for o in orders)[100]
    above = _gql(server, query, q=f"id:>{pivot}")["data"]["orders"]
    assert len(above["nodes"]) == sum(1 for o in orders if o["id"] > pivot)


def test_connections_require_first_or_last_and_cap_at_250(server) -> None:
    missing = _gql(server, "{ customers { nodes { id } } }")
    assert missing["errors"][0]["message"] == "you must provide one of first or last"
    assert missing["errors"][0]["path"] == ["customers"]
    too_many = _gql(server, "{ customers(first: 251) { nodes { id } } }")
    assert "250" in too_many["errors"][0]["message"]


def test_order_shape_for_the_tap(server, world: World) -> None:
    store = world.slices["shopify"]
    order = next(o for o in store.orders if o["refunds"] and o["source_name"] == "web")
    body = _gql(
        server,
        """query($id: ID!) { order(id: $id) { id name sourceName displayFinancialStatus
          totalPriceSet { shopMoney { amount currencyCode } }
          customer { id } lineItems(first: 10) { nodes { id quantity currentQuantity } }
          refunds { id totalRefundedSet { shopMoney { amount } }
                    refundLineItems(first: 5) { nodes { quantity location { name } } } }
          fulfillmentOrders(first: 2) { nodes { deliveryMethod { methodType } } } } }""",
        id=f"gid://shopify/Order/{order['id']}",
    )["data"]["order"]
    assert body["name"] == order["name"] and body["sourceName"] == "web"
    assert body["displayFinancialStatus"] == order["financial_status"].upper()
    total = body["totalPriceSet"]["shopMoney"]
    assert total["currencyCode"] == "BRL"
    assert float(total["amount"]) == float(order["total_price"])  # Decimal sent as a string
    assert isinstance(total["amount"], str)
    assert body["customer"]["id"] == f"gid://shopify/Customer/{order['customer']['id']}"
    assert len(body["lineItems"]["nodes"]) == len(order["line_items"])
    assert len(body["refunds"]) == len(order["refunds"])
    method = body["fulfillmentOrders"]["nodes"][0]["deliveryMethod"]["methodType"]
    assert method in ("SHIPPING", "PICK_UP")


def test_the_shop_around_the_orders(server, world: World) -> None:
    store = world.slices["shopify"]
    pos = next(o for o in store.orders if o["source_name"] == "pos")
    pickup_id = next(i for i, d in store.order_details.items() if d["delivery_method"] == "PICK_UP")
    body = _gql(
        server,
        """query($ids: [ID!]!) { nodes(ids: $ids) { __typename ... on Order { id
             retailLocation { name } channelInformation { channelDefinition { handle } }
             fulfillments { location { name } displayStatus }
             shippingLine { title } } } }""",
        ids=[f"gid://shopify/Order/{pos['id']}", f"gid://shopify/Order/{pickup_id}"],
    )["data"]["nodes"]
    assert body[0]["retailLocation"]["name"] == "Loja Paulista"
    assert body[0]["channelInformation"]["channelDefinition"]["handle"] == "pos"
    assert body[1]["retailLocation"] is None
    assert body[1]["shippingLine"]["title"] == "Retirada na loja"
    if body[1]["fulfillments"]:
        assert body[1]["fulfillments"][0]["displayStatus"] == "PICKED_UP"
        assert body[1]["fulfillments"][0]["location"]["name"].startswith("Loja")
    assert any(d["returns"] for d in store.order_details.values())
    assert all(o["closed_at"] in (None, o["updated_at"]) for o in store.orders)
    checkouts = _gql(
        server,
        "{ abandonedCheckouts(first: 100) { nodes { id customer { id } "
        "lineItems(first: 3) { nodes { sku } } } } }",
    )["data"]["abandonedCheckouts"]["nodes"]
    assert len(checkouts) == len(store.abandoned_checkouts) > 0
    products = _gql(
        server,
        "{ products(first: 50) { nodes { title variants(first: 5) { nodes { sku price } } } } }",
    )["data"]["products"]["nodes"]
    ordered_skus = {i["sku"] for o in store.orders for i in o["line_items"]}
    served_skus = {v["sku"] for p in products for v in p["variants"]["nodes"]}
    assert ordered_skus <= served_skus
    everywhere = _gql(
        server, "{ locations(first: 10, includeInactive: true) { nodes { isActive } } }"
    )
    active = _gql(server, "{ locations(first: 10) { nodes { isActive } } }")
    assert (
        len(everywhere["data"]["locations"]["nodes"])
        == len(active["data"]["locations"]["nodes"]) + 1
    )


# -- cost and throttle ---------------------------------------------------------------------


def test_cost_extensions_requested_and_actual(server) -> None:
    body = _gql(
        server,
        "{ customers(first: 10) { edges { node { id defaultAddress { city } "
        "amountSpent { amount } } } } }",
    )
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2 + 10 * (1 + 1 + 1)
    nulls = sum(
        1 for e in body["data"]["customers"]["edges"] if e["node"]["defaultAddress"] is None
    )
    assert cost["actualQueryCost"] == 2 + 10 * 3 - nulls
    status = cost["throttleStatus"]
    assert status["maximumAvailable"] == 2000.0 and status["restoreRate"] == 100.0
    empty = _gql(
        server, '{ customers(first: 50, query: "email:nobody@nowhere.invalid") { nodes { id } } }'
    )
    assert empty["extensions"]["cost"] == {
        **empty["extensions"]["cost"],
        "requestedQueryCost": 52,
        "actualQueryCost": 2,
    }


def test_max_cost_exceeded(server) -> None:
    response = _post(
        server, "{ orders(first: 250) { nodes { id lineItems(first: 10) { nodes { id } } } } }"
    )
    assert response.status_code == 200
    body = response.json()
    error = body["errors"][0]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert (
        error["extensions"]["cost"] == 2 + 250 * (1 + 2 + 10)
        and error["extensions"]["maxCost"] == 1000
    )
    assert error["message"].startswith(f"Query cost is {2 + 250 * 13}, which exceeds")
    assert "data" not in body and body["extensions"]["cost"]["actualQueryCost"] is None


def test_throttled_at_http_200_then_restored(fresh_server) -> None:
    # restored slowly enough (50 a second: ~0.9 s to afford the query again) that the
    # second request is throttled even on a loaded machine
    fresh_server.app.state.shopify.set_cost_limit(maximum_available=60, restore_rate=50)
    query = "{ customers(first: 25) { nodes { id defaultAddress { city } } } }"  # 52 points
    first = _post(fresh_server, query)
    assert first.status_code == 200 and "data" in first.json()
    refund = first.json()["extensions"]["cost"]
    throttled = _post(fresh_server, query)
    assert throttled.status_code == 200
    body = throttled.json()
    assert body["errors"] == [
        {
            "message": "Throttled",
            "extensions": {
                "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits",
            },
        }
    ]
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] < 52
    assert refund["requestedQueryCost"] == 52 and refund["actualQueryCost"] <= 52
    time.sleep(1.3)  # restores 60 points at 50 a second
    assert "data" in _post(fresh_server, query).json()


def test_validation_errors_as_shopify_words_them(server) -> None:
    body = _gql(server, "{ customers(first: 1) { nodes { id nope } } }")
    assert body["errors"][0]["message"] == "Field 'nope' doesn't exist on type 'Customer'"
    assert body["errors"][0]["extensions"] == {
        "code": "undefinedField",
        "typeName": "Customer",
        "fieldName": "nope",
    }
    assert body["errors"][0]["path"] == ["query", "customers", "nodes", "nope"]
    assert "data" not in body
    missing = _gql(server, "{ customer { id } }")
    assert missing["errors"][0]["message"] == "Field 'customer' is missing required arguments: id"
    unknown = _gql(server, "{ customers(first: 1, colour: 2) { nodes { id } } }")
    assert unknown["errors"][0]["extensions"]["code"] == "argumentNotAccepted"
    unparsable = _gql(server, "shop { name }")
    assert unparsable["errors"] == [
        {
            "message": 'Parse error on "shop" (IDENTIFIER) at [1, 1]',
            "locations": [{"line": 1, "column": 1}],
        }
    ]
    cut_short = _gql(server, "{ shop { name }")
    assert cut_short["errors"][0]["message"] == "Unexpected end of document"


def test_bad_token_and_missing_query(server) -> None:
    wrong = _post(server, "{ shop { name } }", headers={"X-Shopify-Access-Token": "shpat_no"})
    assert wrong.status_code == 401
    assert wrong.json() == {
        "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
    }
    empty = httpx.post(f"{server.url}/admin/api/{VERSION}/graphql.json", json={}, headers=AUTH)
    assert empty.status_code == 400
    assert empty.json() == {"errors": {"query": "Required parameter missing or invalid"}}


# -- bulk operations ---------------------------------------------------------------------------

RUN = (
    "mutation($q: String!) { bulkOperationRunQuery(query: $q) "
    "{ bulkOperation { id status } userErrors { field message code } } }"
)
POLL = (
    "query($id: ID!) { node(id: $id) { ... on BulkOperation { id status errorCode objectCount "
    "rootObjectCount fileSize url partialDataUrl createdAt completedAt } } }"
)
ORDERS_BULK = (
    "{ orders(sortKey: UPDATED_AT) { edges { node { id name "
    "lineItems { edges { node { __typename id quantity } } } } } } }"
)


def _wait(server: SandboxServer, operation_id: str) -> dict[str, Any]:
    for _ in range(200):
        node = _gql(server, POLL, id=operation_id)["data"]["node"]
        if node["status"] not in ("CREATED", "RUNNING", "CANCELING"):
            return node
        time.sleep(0.05)
    raise AssertionError("the bulk operation never finished")


def _bulk_lines(url: str) -> tuple[list[dict[str, Any]], bytes]:
    download = httpx.get(url)
    assert download.status_code == 200
    return [json.loads(line) for line in download.text.splitlines()], download.content


def test_bulk_operation_lifecycle_and_ungrouped_jsonl(fresh_server) -> None:
    # long enough that the first poll still finds it running on a busy machine
    fresh_server.app.state.shopify.bulk.delay = 2.0
    started = _gql(fresh_server, RUN, q=ORDERS_BULK)["data"]["bulkOperationRunQuery"]
    assert started["userErrors"] == [] and started["bulkOperation"]["status"] == "CREATED"
    operation_id = started["bulkOperation"]["id"]
    running = _gql(fresh_server, POLL, id=operation_id)["data"]["node"]
    assert running["status"] in ("CREATED", "RUNNING") and running["url"] is None

    done = _wait(fresh_server, operation_id)
    assert done["status"] == "COMPLETED" and done["completedAt"] and done["partialDataUrl"] is None
    current = _gql(fresh_server, "{ currentBulkOperation { id status } }")
    assert current["data"]["currentBulkOperation"] == {"id": operation_id, "status": "COMPLETED"}

    lines, content = _bulk_lines(done["url"])
    orders = fresh_server.app.state.world.slices["shopify"].orders
    roots = [line for line in lines if "__parentId" not in line]
    children = [line for line in lines if "__parentId" in line]
    assert len(roots) == len(orders) == int(done["rootObjectCount"])
    assert (
        len(lines)
        == int(done["objectCount"])
        == len(orders) + sum(len(o["line_items"]) for o in orders)
    )
    assert int(done["fileSize"]) == len(content)
    assert all("lineItems" not in root for root in roots)
    assert all(c["__typename"] == "LineItem" for c in children)
    # ungrouped (the default since 2026-01): children are not next to their parent
    assert lines.index(children[0]) == len(roots)
    by_order = {f"gid://shopify/Order/{o['id']}": len(o["line_items"]) for o in orders}
    assert {p: sum(1 for c in children if c["__parentId"] == p) for p in by_order} == by_order


def test_bulk_grouped_objects_follow_their_parent(fresh_server) -> None:
    fresh_server.app.state.shopify.bulk.delay = 0.0
    grouped = (
        "mutation($q: String!) { bulkOperationRunQuery(query: $q, groupObjects: true) "
        "{ bulkOperation { id } userErrors { message } } }"
    )
    started = _gql(fresh_server, grouped, q=ORDERS_BULK)["data"]["bulkOperationRunQuery"]
    lines, _ = _bulk_lines(_wait(fresh_server, started["bulkOperation"]["id"])["url"])
    parent = None
    for line in lines:
        if "__parentId" in line:
            assert line["__parentId"] == parent
        else:
            parent = line["id"]


def test_five_bulk_operations_at_once_since_2026_01(fresh_server) -> None:
    bulk = fresh_server.app.state.shopify.bulk
    bulk.delay = 5.0
    assert bulk.concurrency("2026-01") == 5 and bulk.concurrency("2025-10") == 1
    started = [
        _gql(fresh_server, RUN, q=ORDERS_BULK)["data"]["bulkOperationRunQuery"] for _ in range(5)
    ]
    assert all(s["userErrors"] == [] for s in started)
    sixth = _gql(fresh_server, RUN, q=ORDERS_BULK)["data"]["bulkOperationRunQuery"]
    assert sixth["bulkOperation"] is None
    assert sixth["userErrors"][0]["code"] == "LIMIT_REACHED"
    cancel = "mutation($id: ID!) { bulkOperationCancel(id: $id) { userErrors { message } } }"
    for s in started:
        _gql(fresh_server, cancel, id=s["bulkOperation"]["id"])


def test_bulk_cancel_and_invalid_queries(fresh_server) -> None:
    fresh_server.app.state.shopify.bulk.delay = 5.0
    started = _gql(fresh_server, RUN, q=ORDERS_BULK)["data"]["bulkOperationRunQuery"]
    operation_id = started["bulkOperation"]["id"]
    cancel = (
        "mutation($id: ID!) { bulkOperationCancel(id: $id) "
        "{ bulkOperation { id status } userErrors { field message } } }"
    )
    canceling = _gql(fresh_server, cancel, id=operation_id)["data"]["bulkOperationCancel"]
    assert canceling["userErrors"] == [] and canceling["bulkOperation"]["status"] == "CANCELING"
    assert _wait(fresh_server, operation_id)["status"] == "CANCELED"
    again = _gql(fresh_server, cancel, id=operation_id)["data"]["bulkOperationCancel"]
    assert again["userErrors"][0]["message"].startswith("A bulk operation cannot be canceled")

    no_connection = _gql(fresh_server, RUN, q="{ shop { name } }")["data"]["bulkOperationRunQuery"]
    assert "at least one connection" in no_connection["userErrors"][0]["message"]
    invalid = _gql(fresh_server, RUN, q="{ orders { edges { node { nope } } } }")
    assert invalid["data"]["bulkOperationRunQuery"]["userErrors"][0]["field"] == ["query"]
    too_deep = (
        "{ customers { edges { node { id orders { edges { node { id "
        "lineItems { edges { node { id } } } } } } } } } }"
    )
    deep = _gql(fresh_server, RUN, q=too_deep)["data"]["bulkOperationRunQuery"]
    assert "nesting depth" in deep["userErrors"][0]["message"]


def test_bulk_refuses_a_connection_inside_a_list_field(server) -> None:
    """``refunds`` is a list, ``refundLineItems`` a connection: Shopify refuses the pair
    in a bulk query, with this user error, and starts nothing. (A connection inside a
    connection's ``edges``/``nodes`` is the normal case, run by the tests above.)"""
    query = (
        "{ orders { edges { node { id refunds { id "
        "refundLineItems { edges { node { id quantity } } } } } } } }"
    )
    answer = _gql(server, RUN, q=query)["data"]["bulkOperationRunQuery"]
    assert answer == {
        "bulkOperation": None,
        "userErrors": [
            {
                "field": ["query"],
                "message": "Queries that contain a connection field within a list field are "
                "not currently supported.",
                "code": "INVALID",
            }
        ],
    }


REFUND_ITEMS = """query($ids: [ID!]!) { nodes(ids: $ids) { ... on Refund { id
  refundLineItems(first: 5) { nodes { quantity restockType restocked location { id } } } } } }"""


def test_refunds_by_id_say_where_their_items_went_back(server, world: World) -> None:
    """``nodes(ids:)`` answers refunds (what a bulk export could not nest) with the
    location their items were restocked at, one object per id in the cost."""
    store = world.slices["shopify"]
    refunds = [(o, r) for o in store.orders for r in o["refunds"]][:6]
    ids = [f"gid://shopify/Refund/{refund['id']}" for _, refund in refunds]
    body = _gql(server, REFUND_ITEMS, ids=[*ids, "gid://shopify/Refund/1"])
    nodes = body["data"]["nodes"]
    assert nodes[-1] is None  # no such refund
    for node, (order, refund) in zip(nodes, refunds, strict=False):
        back_at = store.order_details[order["id"]]["refund_locations"][str(refund["id"])]
        lines = node["refundLineItems"]["nodes"]
        assert len(lines) == len(refund["refund_line_items"])
        assert all(line["restockType"] == "RETURN" and line["restocked"] for line in lines)
        assert {line["location"]["id"] for line in lines} == {f"gid://shopify/Location/{back_at}"}
    # each id costs its refund (1) and the connection (2 + 5 × (line 1 + location 1))
    assert body["extensions"]["cost"]["requestedQueryCost"] == (len(ids) + 1) * (1 + 2 + 5 * 2)

    # a refund of an order older than 60 days is hidden like its order
    cutoff = world.as_of - timedelta(days=60)
    old = next(
        o for o in store.orders if o["refunds"] and datetime.fromisoformat(o["created_at"]) < cutoff
    )
    old_refund = f"gid://shopify/Refund/{old['refunds'][0]['id']}"
    hidden = _post(server, REFUND_ITEMS, {"ids": [old_refund]}, headers=RECENT).json()
    assert hidden["data"]["nodes"] == [None]


# -- fidelity: 60 days of orders, versions, unknown paths ---------------------------------------


def test_orders_older_than_60_days_need_read_all_orders(server, world: World) -> None:
    orders = world.slices["shopify"].orders
    cutoff = world.as_of - timedelta(days=60)
    recent = {o["id"] for o in orders if datetime.fromisoformat(o["created_at"]) >= cutoff}
    assert 0 < len(recent) < len(orders)
    query = (
        "query($after: String) { orders(first: 250, after: $after) "
        "{ pageInfo { hasNextPage endCursor } nodes { legacyResourceId } } }"
    )

    def ids(headers: dict[str, str]) -> set[int]:
        found: set[int] = set()
        after = None
        while True:
            page = _post(server, query, {"after": after}, headers).json()["data"]["orders"]
            found |= {int(n["legacyResourceId"]) for n in page["nodes"]}
            if not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]

    assert ids(AUTH) == {o["id"] for o in orders}
    assert ids(RECENT) == recent
    old = next(o for o in orders if o["id"] not in recent)
    node = _post(
        server, f'{{ order(id: "gid://shopify/Order/{old["id"]}") {{ id }} }}', headers=RECENT
    )
    assert node.json()["data"]["order"] is None
    count = _post(server, "{ ordersCount { count precision } }", headers=RECENT).json()
    assert count["data"]["ordersCount"] == {"count": len(recent), "precision": "EXACT"}

    scopes = "{ currentAppInstallation { accessScopes { handle } } }"

    def handles(headers: dict[str, str]) -> set[str]:
        body = _post(server, scopes, headers=headers).json()["data"]
        return {s["handle"] for s in body["currentAppInstallation"]["accessScopes"]}

    assert "read_all_orders" in handles(AUTH) and "read_all_orders" not in handles(RECENT)
    assert "read_orders" in handles(RECENT)

    rest = f"{server.url}/admin/api/{VERSION}/orders/count.json?status=any"
    assert httpx.get(rest, headers=RECENT).json() == {"count": len(recent)}
    assert httpx.get(rest, headers=AUTH).json() == {"count": len(orders)}
    one = httpx.get(f"{server.url}/admin/api/{VERSION}/orders/{old['id']}.json", headers=RECENT)
    assert one.status_code == 404


def test_supported_versions_follow_the_calendar() -> None:
    at = datetime(2026, 11, 29, tzinfo=UTC)
    assert supported_versions(at) == ("2026-01", "2026-04", "2026-07", "2026-10")
    assert release_candidate(at) == "2027-01"
    # a new version goes live at 17:00 UTC on the first day of its quarter
    assert supported_versions(datetime(2027, 1, 1, 16, tzinfo=UTC))[-1] == "2026-10"
    assert supported_versions(datetime(2027, 1, 1, 17, tzinfo=UTC)) == (
        "2026-04",
        "2026-07",
        "2026-10",
        "2027-01",
    )
    assert served_version("1999-01", at) == "2026-01"
    assert served_version("2025-10", at) == "2026-01"  # retired in October 2026
    assert served_version("2026-07", at) == "2026-07"
    assert served_version("2027-01", at) == "2027-01"
    assert served_version("unstable", at) == "unstable"
    assert served_version("latest", at) is None


@pytest.mark.parametrize("api", ["graphql", "rest"])
def test_unsupported_versions_fall_forward(server, api: str) -> None:
    oldest = supported_versions()[0]
    for asked, served in (("1999-01", oldest), ("2024-10", oldest), (VERSION, VERSION)):
        if api == "graphql":
            response = _post(server, "{ shop { name } }", version=asked)
        else:
            response = httpx.get(
                f"{server.url}/admin/api/{asked}/customers/count.json", headers=AUTH
            )
        assert response.status_code == 200
        assert response.headers[VERSION_HEADER] == served


def test_unknown_paths_answer_shopifys_body(server) -> None:
    for path in (f"/admin/api/{VERSION}/nothing.json", "/admin/api/latest/customers.json"):
        response = httpx.get(f"{server.url}{path}", headers=AUTH)
        assert response.status_code == 404
        assert response.json() == {"errors": "Not Found"}
    posted = httpx.post(f"{server.url}/admin/oauth/unknown", headers=AUTH)
    assert posted.status_code == 404 and posted.json() == {"errors": "Not Found"}


def test_faults_reach_graphql_too(fresh_server) -> None:
    shopify = fresh_server.app.state.shopify
    shopify.fail_next(1, status=429)
    shopify.fail_next(1, status=503)
    throttled = _post(fresh_server, "{ shop { name } }")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1.0"
    assert _post(fresh_server, "{ shop { name } }").status_code == 503
    assert _post(fresh_server, "{ shop { name } }").status_code == 200
    shopify.stall_next(1, seconds=1.0)
    with pytest.raises(httpx.ReadTimeout):
        _post(fresh_server, "{ shop { name } }", timeout=0.2)
    assert _post(fresh_server, "{ shop { name } }").status_code == 200


def test_the_faults_knob_over_http_reaches_both_apis(fresh_server) -> None:
    """A sandbox served from the command line takes its faults over HTTP, as VTEX's does:
    429 (with ``Retry-After``) and 5xx for the next requests, or answers held past a
    client's timeout; the request after them is served."""
    knob = f"{fresh_server.url}/_sandbox/shopify/faults"
    rest = f"{fresh_server.url}/admin/api/{VERSION}/customers/count.json"
    set_up = httpx.post(knob, json={"n": 2, "status": 429})
    assert set_up.json() == {"pending_failures": 2, "pending_stalls": 0}
    throttled = _post(fresh_server, "{ shop { name } }")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1.0"
    assert httpx.get(rest, headers=AUTH).status_code == 429
    httpx.post(knob, json={"n": 1, "status": 502})
    assert _post(fresh_server, "{ shop { name } }").status_code == 502
    assert httpx.post(knob, json={"n": 2, "timeout_seconds": 1.0}).json()["pending_stalls"] == 2
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(rest, headers=AUTH, timeout=0.2)
    with pytest.raises(httpx.ReadTimeout):
        _post(fresh_server, "{ shop { name } }", timeout=0.2)
    assert _post(fresh_server, "{ shop { name } }").status_code == 200
    assert httpx.get(rest, headers=AUTH).status_code == 200


def test_bulk_executor_answers_as_graphql_core_does(server) -> None:
    """The bulk path's own executor must shape every value as the real executor does."""
    from omnicanal.channels.shopify import graphql as admin_graphql
    from omnicanal.channels.shopify.bulk import BulkExecutor
    from omnicanal.channels.shopify.graph import Context

    shopify = server.app.state.shopify
    query = """
    fragment Money on MoneyBag { shopMoney { amount currencyCode } }
    { orders(sortKey: UPDATED_AT, query: "updated_at:>='2024-01-01'") { edges { node {
        __typename id name total: totalPriceSet { ...Money } displayFinancialStatus
        closed closedAt tags discountCodes customer { id numberOfOrders amountSpent { amount } }
        shippingLine { title deliveryCategory } retailLocation { name address { formatted } }
        fulfillments { status location { name } trackingInfo { number } }
        refunds { id totalRefundedSet { ...Money } }
        lineItems { edges { node {
          id quantity variant { price sku } originalTotalSet { ...Money } } } }
        discountApplications { nodes { __typename index value {
          ... on MoneyV2 { amount } ... on PricingPercentageValue { percentage } }
          ... on DiscountCodeApplication { code } } }
        returns { nodes { name status returnLineItems(first: 5) { nodes {
          ... on ReturnLineItem { quantity returnReason } } } } }
    } } } }"""
    prepared = admin_graphql.prepare(query, None, None)
    assert not isinstance(prepared, list), prepared
    context = Context(graph=shopify.graph, bulk=True, token=SANDBOX_ACCESS_TOKEN)
    expected, errors = admin_graphql.run(prepared, context)
    assert errors == []
    assert BulkExecutor(prepared, context).run() == expected
    assert len(expected["orders"]["edges"]) > 10


def test_unknown_search_fields_are_ignored_with_a_warning(server, world: World) -> None:
    body = _gql(server, '{ customers(first: 250, query: "colour:blue") { nodes { id } } }')
    assert len(body["data"]["customers"]["nodes"]) == len(world.slices["shopify"].customers)
    assert body["extensions"]["search"] == [
        {
            "path": ["customers"],
            "query": "colour:blue",
            "warnings": [{"field": "colour", "message": "Invalid search field for this query."}],
        }
    ]
    assert "search" not in _gql(server, CUSTOMERS_PAGE, first=1)["extensions"]


def test_the_new_records_survive_a_world_file(tmp_path, world: World) -> None:
    path = tmp_path / "world.json"
    world.to_json(path)
    again = World.from_json(path).slices["shopify"]
    store = world.slices["shopify"]
    assert again.order_details == store.order_details and again.products == store.products
    assert again.locations == store.locations
    assert again.abandoned_checkouts == store.abandoned_checkouts


def test_a_touched_customer_comes_back_in_an_incremental_graphql_sync(fresh_server) -> None:
    shopify = fresh_server.app.state.shopify
    latest = (
        "{ customers(first: 2, sortKey: UPDATED_AT, reverse: true) "
        "{ nodes { legacyResourceId note updatedAt } } }"
    )
    before = _gql(fresh_server, latest)["data"]["customers"]["nodes"]  # primes the sorted copy
    target = shopify.store.customers[5]
    touched = shopify.touch_customer(target["id"], note="Prefere retirar na loja")
    after = _gql(fresh_server, latest)["data"]["customers"]["nodes"]
    assert int(after[0]["legacyResourceId"]) == target["id"] != int(before[0]["legacyResourceId"])
    assert after[0]["note"] == "Prefere retirar na loja"
    since = datetime.fromisoformat(touched["updated_at"]).astimezone(UTC)
    changed = _gql(
        fresh_server,
        CUSTOMERS_PAGE,
        first=50,
        query=f"updated_at:>='{since.strftime('%Y-%m-%dT%H:%M:%SZ')}'",
        sortKey="UPDATED_AT",
    )["data"]["customers"]["edges"]
    assert [int(e["node"]["legacyResourceId"]) for e in changed] == [target["id"]]


ORDERS_PAGE = """
query Page($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: ID) {
    pageInfo { hasNextPage endCursor }
    nodes { legacyResourceId tags }
  }
}"""


def test_changes_between_pages_reach_the_next_page(fresh_server) -> None:
    """Pages are served from a filtered, sorted copy kept between requests; a touch, an
    addition or a deletion made through the emulator must show on the very next page."""
    shopify = fresh_server.app.state.shopify
    ids = sorted(c["id"] for c in shopify.store.customers)
    with_orders = {(o.get("customer") or {}).get("id") for o in shopify.store.orders}
    first = _gql(fresh_server, CUSTOMERS_PAGE, first=10)["data"]["customers"]
    assert [int(e["node"]["legacyResourceId"]) for e in first["edges"]] == ids[:10]
    assert _gql(fresh_server, CUSTOMERS_PAGE, first=10)["data"] == {"customers": first}  # cached
    touched = shopify.touch_customer(ids[10], email="trocou.de.email@example.com.br")
    gone = next(i for i in ids[11:] if i not in with_orders)
    shopify.delete_customer(gone)
    added = shopify.add_customer({"first_name": "Nova", "email": "nova.cliente@example.com.br"})
    after = first["pageInfo"]["endCursor"]
    page = _gql(fresh_server, CUSTOMERS_PAGE, first=250, after=after)["data"]["customers"]
    assert not page["pageInfo"]["hasNextPage"]
    rest = [edge["node"] for edge in page["edges"]]
    assert [int(n["legacyResourceId"]) for n in rest] == [i for i in ids[10:] if i != gone] + [
        added["id"]
    ]
    assert rest[0]["email"] == touched["email"] == "trocou.de.email@example.com.br"

    # a filtered connection: an order touched into the filter between pages is found
    orders = sorted(o["id"] for o in shopify.store.orders)
    for order_id in (orders[0], orders[2]):
        shopify.touch_order(order_id, tags="recheck")
    page = _gql(fresh_server, ORDERS_PAGE, first=1, query="tag:recheck")["data"]["orders"]
    assert [int(n["legacyResourceId"]) for n in page["nodes"]] == [orders[0]]
    shopify.touch_order(orders[1], tags="recheck")
    after = page["pageInfo"]["endCursor"]
    page = _gql(fresh_server, ORDERS_PAGE, first=5, after=after, query="tag:recheck")
    assert [int(n["legacyResourceId"]) for n in page["data"]["orders"]["nodes"]] == orders[1:3]


def test_a_repeated_document_is_parsed_once_and_bulk_gets_its_own() -> None:
    from omnicanal.channels.shopify import graphql as admin_graphql

    page = admin_graphql.prepare(CUSTOMERS_PAGE, {"first": 5}, None, reuse=True)
    again = admin_graphql.prepare(CUSTOMERS_PAGE, {"first": 9}, None, reuse=True)
    assert not isinstance(page, list) and not isinstance(again, list)
    assert again.document is page.document and again.variables == {"first": 9}
    own = admin_graphql.prepare(CUSTOMERS_PAGE, {"first": 5}, None)  # bulk edits its document
    assert not isinstance(own, list) and own.document is not page.document
    broken = admin_graphql.prepare("{ shop { nope } }", None, None, reuse=True)
    assert isinstance(broken, list)
    broken[0]["message"] = "changed by a caller"
    assert admin_graphql.prepare("{ shop { nope } }", None, None, reuse=True) != broken
