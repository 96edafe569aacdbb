"""Customer tags and metafields through the GraphQL Admin API, and the destination on them.

The emulation's ``tagsAdd``, ``tagsRemove`` and ``metafieldsSet`` are driven with
Shopify's official client (``shopify.GraphQL()``) and must answer as Shopify does:
tags added and removed one by one, the others left alone; unknown customers as user
errors; ``metafieldsSet`` atomic, at most 25 a call, with its error codes; 10 points a
mutation. Then omnicanal's destination: refused rows fail alone with Shopify's reason,
the cost bucket paces it (a THROTTLED answer is waited out and sent again), and a bad
token stops it naming the setting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from urllib.parse import urlsplit

import httpx
import pytest
import shopify

from omnicanal.activation.destination import Row
from omnicanal.channels.shopify import API_VERSION, SANDBOX_ACCESS_TOKEN
from omnicanal.channels.shopify.destination import ShopifyDestination
from omnicanal.channels.shopify.writes import split_tags
from omnicanal.errors import SyncError


@pytest.fixture
def shop(fresh_server) -> Iterator[SimpleNamespace]:
    session = SimpleNamespace(
        site=f"{fresh_server.url}/admin/api/{API_VERSION}",
        url=urlsplit(fresh_server.url).netloc,
        api_version=SimpleNamespace(name=API_VERSION),
        token=SANDBOX_ACCESS_TOKEN,
    )
    shopify.ShopifyResource.activate_session(session)
    emulator = fresh_server.app.state.emulators["shopify"]
    yield SimpleNamespace(server=fresh_server, emulator=emulator, client=shopify.GraphQL())
    shopify.ShopifyResource.clear_session()


def run(client, query: str, **variables) -> dict:
    return json.loads(client.execute(query, variables=variables))


def gid(customer: dict) -> str:
    return f"gid://shopify/Customer/{customer['id']}"


def tagged_customer(emulator) -> dict:
    return next(c for c in emulator.store.customers if c.get("tags"))


TAGS = """
mutation Tag($id: ID!, $other: ID!, $tags: [String!]!) {
  mine: tagsAdd(id: $id, tags: $tags) {
    node { id ... on Customer { tags updatedAt } }
    userErrors { field message }
  }
  nobody: tagsAdd(id: $other, tags: $tags) { node { id } userErrors { field message } }
}"""


def test_tags_add_and_remove_touch_only_the_named_tags(shop):
    customer = tagged_customer(shop.emulator)
    theirs = split_tags([customer["tags"]])
    body = run(
        shop.client,
        TAGS,
        id=gid(customer),
        other="gid://shopify/Customer/1",
        tags=["omnicanal-vip, omnicanal-loja", "omnicanal-vip", theirs[0]],
    )
    mine = body["data"]["mine"]
    assert mine["userErrors"] == []
    assert mine["node"]["tags"] == [*theirs, "omnicanal-vip", "omnicanal-loja"]
    assert mine["node"]["updatedAt"] > customer["updated_at"][:10]
    assert body["data"]["nobody"] == {
        "node": None,
        "userErrors": [{"field": ["id"], "message": "Customer does not exist"}],
    }
    # two mutations, 10 points each
    assert body["extensions"]["cost"]["requestedQueryCost"] == 20

    removed = run(
        shop.client,
        """mutation($id: ID!) { tagsRemove(id: $id, tags: ["omnicanal-vip", "never-there"]) {
             node { ... on Customer { tags } } userErrors { message } } }""",
        id=gid(customer),
    )["data"]["tagsRemove"]
    assert removed == {"node": {"tags": [*theirs, "omnicanal-loja"]}, "userErrors": []}

    bad = run(shop.client, 'mutation { tagsAdd(id: "42", tags: ["x"]) { userErrors { message } } }')
    assert bad["data"]["tagsAdd"] is None
    assert bad["errors"][0]["message"] == "Invalid global id '42'"


SET = """
mutation Set($metafields: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $metafields) {
    metafields { key namespace type value }
    userErrors { code elementIndex field message }
  }
}"""
READ = """
query Read($id: ID!) {
  customer(id: $id) {
    metafield(namespace: "omnicanal", key: "visits") { type value }
    metafields(first: 10, namespace: "omnicanal") { nodes { key value } }
  }
}"""


def test_metafields_set_is_atomic_limited_and_validated(shop):
    owner = gid(shop.emulator.store.customers[0])

    def field(key: str, value: str, kind: str | None = "number_integer", **extra) -> dict:
        item = {"ownerId": owner, "namespace": "omnicanal", "key": key, "value": value}
        return {**item, **({"type": kind} if kind else {}), **extra}

    # one bad input among good ones: nothing is written, each problem reported
    refused = run(
        shop.client,
        SET,
        metafields=[
            field("visits", "3"),
            field("since", "ontem", "date"),
            field("x", "1"),
            field("tier", "gold", None),
            field("ok", "1", namespace="om"),
            {**field("visits", "4"), "ownerId": "gid://shopify/Customer/1"},
        ],
    )["data"]["metafieldsSet"]
    assert refused["metafields"] == []
    assert [(e["code"], e["elementIndex"], e["field"]) for e in refused["userErrors"]] == [
        ("INVALID_VALUE", 1, ["metafields", "1", "value"]),
        ("TOO_SHORT", 2, ["metafields", "2", "key"]),
        ("BLANK", 3, ["metafields", "3", "type"]),
        ("TOO_SHORT", 4, ["metafields", "4", "namespace"]),
        ("INVALID", 5, ["metafields", "5", "ownerId"]),
    ]
    assert refused["userErrors"][0]["message"] == "Value must be in YYYY-MM-DD format."
    assert run(shop.client, READ, id=owner)["data"]["customer"]["metafield"] is None

    over = run(shop.client, SET, metafields=[field(f"k{n}", str(n)) for n in range(26)])
    assert over["data"]["metafieldsSet"]["userErrors"] == [
        {
            "code": "LESS_THAN_OR_EQUAL_TO",
            "elementIndex": None,
            "field": ["metafields"],
            "message": "Exceeded the maximum metafields input limit of 25.",
        }
    ]
    assert over["extensions"]["cost"]["requestedQueryCost"] == 10

    done = run(shop.client, SET, metafields=[field(f"k{n}", str(n)) for n in range(24)])
    assert done["data"]["metafieldsSet"]["userErrors"] == []
    assert run(shop.client, SET, metafields=[field("visits", "3")])["data"]["metafieldsSet"][
        "metafields"
    ] == [{"key": "visits", "namespace": "omnicanal", "type": "number_integer", "value": "3"}]
    # an existing metafield keeps its type: a value alone updates it, another type is refused
    assert (
        run(shop.client, SET, metafields=[field("visits", "5", None)])["data"]["metafieldsSet"][
            "userErrors"
        ]
        == []
    )
    changed = run(shop.client, SET, metafields=[field("visits", "5", "single_line_text_field")])
    assert changed["data"]["metafieldsSet"]["userErrors"][0]["code"] == "INVALID_TYPE"
    read = run(shop.client, READ, id=owner)["data"]["customer"]
    assert read["metafield"] == {"type": "number_integer", "value": "5"}
    assert len(read["metafields"]["nodes"]) == 10


def destination(server, **options) -> ShopifyDestination:
    return ShopifyDestination(server.url, SANDBOX_ACCESS_TOKEN, **options)


def test_a_refused_row_fails_alone_with_shopifys_reason(shop):
    customers = shop.emulator.store.customers
    dest = destination(
        shop.server, tag="omnicanal-teste", metafield_types={"omnicanal.visits": "number_integer"}
    )
    try:
        dest.check()
        outcomes = dest.upsert(
            [
                Row(gid(customers[0]), {"omnicanal.visits": 3}),
                Row(gid(customers[1]), {"omnicanal.visits": "três"}),
                Row("gid://shopify/Customer/1", {"omnicanal.visits": 1}),
                Row(str(customers[2]["id"]), {"omnicanal.visits": None}),
            ]
        )
    finally:
        dest.close()
    assert [o.ok for o in outcomes] == [True, False, False, True]
    assert outcomes[1].error == "INVALID_VALUE: Value must be an integer. (metafields.0.value)"
    assert "Customer does not exist (id)" in outcomes[2].error
    assert "omnicanal-teste" in split_tags([customers[0]["tags"]])
    # metafieldsSet is per customer: the refused value did not block its neighbour
    assert (
        shop.emulator.graph.metafields[customers[0]["id"]][("omnicanal", "visits")]["value"] == "3"
    )
    assert customers[1]["id"] not in shop.emulator.graph.metafields
    assert customers[2]["id"] not in shop.emulator.graph.metafields  # null: left out


def test_the_cost_bucket_paces_the_destination_and_throttled_answers_are_retried(shop):
    shop.emulator.set_cost_limit(100, 200)
    customers = shop.emulator.store.customers[:16]
    rows = [Row(gid(c), {}) for c in customers]
    dest = destination(shop.server, tag="omnicanal-ritmo")
    try:
        dest.check()
        # the whole bucket is 100 points: requests of 10 rows, spaced by the restore rate
        assert all(o.ok for o in dest.upsert(rows))
        assert dest.throttled == 0 and dest.throttle.waited > 0
        assert dest.requests == 1 + 2
        # someone else empties the bucket behind our back: THROTTLED, waited out, resent
        with httpx.Client(base_url=shop.server.url) as other:
            for _ in range(10):
                other.post(
                    f"/admin/api/{API_VERSION}/graphql.json",
                    headers={"X-Shopify-Access-Token": SANDBOX_ACCESS_TOKEN},
                    json={"query": "{ customers(first: 4) { nodes { id } } }"},
                )
        assert all(o.ok for o in dest.remove(rows[:10]))
        assert dest.throttled >= 1
    finally:
        dest.close()
    held = [c for c in shop.emulator.store.customers if "omnicanal-ritmo" in (c["tags"] or "")]
    assert sorted(c["id"] for c in held) == sorted(c["id"] for c in customers[10:])


def test_a_bad_token_names_the_setting(shop):
    dest = ShopifyDestination(shop.server.url, "shpat_wrong")
    try:
        with pytest.raises(SyncError, match="OMNICANAL_SHOPIFY_ACCESS_TOKEN"):
            dest.check()
        with pytest.raises(SyncError, match="OMNICANAL_SHOPIFY_ACCESS_TOKEN"):
            dest.upsert([Row(gid(shop.emulator.store.customers[0]), {})])
    finally:
        dest.close()
    with pytest.raises(SyncError, match="tag"):
        ShopifyDestination(shop.server.url, SANDBOX_ACCESS_TOKEN, tag="a, b")


def test_what_syncs_wrote_survives_a_sandbox_restart(tmp_path):
    from omnicanal.sandbox import SandboxServer, generate_world

    state = tmp_path / "shopify.json"
    rows = []
    with SandboxServer(generate_world(30, 5), shopify={"state_path": state}) as first:
        store = first.app.state.emulators["shopify"].store
        rows = [Row(gid(c), {"omnicanal.nota": f"n{c['id']}"}) for c in store.customers[:3]]
        dest = destination(first, tag="omnicanal-fica")
        try:
            dest.check()
            assert all(o.ok for o in dest.upsert(rows))
            assert all(o.ok for o in dest.remove(rows[2:]))
        finally:
            dest.close()
        first.app.state.emulators["shopify"].writes.flush()  # a save a second later, or now
        written = {c["id"]: (c["tags"], c["updated_at"]) for c in store.customers[:3]}
    with SandboxServer(generate_world(30, 5), shopify={"state_path": state}) as again:
        emulator = again.app.state.emulators["shopify"]
        customers = emulator.store.customers[:3]
        assert {c["id"]: (c["tags"], c["updated_at"]) for c in customers} == written
        assert ["omnicanal-fica" in split_tags([c["tags"]]) for c in customers] == [
            True,
            True,
            False,
        ]
        read = json.loads(
            shopify_graphql(
                again,
                f'{{ customer(id: "{rows[0].key}") {{ metafield(namespace: '
                '"omnicanal", key: "nota") { value } } }',
            )
        )
        assert read["data"]["customer"]["metafield"]["value"] == rows[0].payload["omnicanal.nota"]


def shopify_graphql(server, query: str) -> str:
    return httpx.post(
        f"{server.url}/admin/api/{API_VERSION}/graphql.json",
        headers={"X-Shopify-Access-Token": SANDBOX_ACCESS_TOKEN},
        json={"query": query},
    ).text


def test_429_and_5xx_are_retried_and_a_lasting_failure_stops_the_run(shop):
    customers = shop.emulator.store.customers[:2]
    dest = ShopifyDestination(
        shop.server.url,
        SANDBOX_ACCESS_TOKEN,
        tag="omnicanal-tempestade",
        max_attempts=3,
        backoff=0.01,
    )
    try:
        dest.check()
        shop.emulator.fail_next(1, 429)
        shop.emulator.fail_next(1, 503)
        assert [o.ok for o in dest.upsert([Row(gid(customers[0]), {})])] == [True]
        shop.emulator.fail_next(3, 500)
        with pytest.raises(SyncError, match="HTTP 500"):
            dest.upsert([Row(gid(customers[1]), {})])
    finally:
        dest.close()
    assert "omnicanal-tempestade" in split_tags([shop.emulator.store.customers[0]["tags"]])
    assert "omnicanal-tempestade" not in split_tags([shop.emulator.store.customers[1]["tags"]])


def test_an_app_without_write_customers_is_denied_and_the_run_stops(shop):
    from omnicanal.channels.shopify import SANDBOX_READ_ONLY_TOKEN

    customer = shop.emulator.store.customers[0]
    denied = httpx.post(
        f"{shop.server.url}/admin/api/{API_VERSION}/graphql.json",
        headers={"X-Shopify-Access-Token": SANDBOX_READ_ONLY_TOKEN},
        json={
            "query": 'mutation($id: ID!) { tagsAdd(id: $id, tags: ["x"]) { node { id } } }',
            "variables": {"id": gid(customer)},
        },
    ).json()
    assert denied["data"] == {"tagsAdd": None}
    (error,) = denied["errors"]
    assert error["extensions"]["code"] == "ACCESS_DENIED" and error["path"] == ["tagsAdd"]
    assert "write_customers" in error["message"]

    dest = ShopifyDestination(shop.server.url, SANDBOX_READ_ONLY_TOKEN, tag="omnicanal-negado")
    try:
        dest.check()  # reading the shop is allowed
        with pytest.raises(SyncError, match="OMNICANAL_SHOPIFY_ACCESS_TOKEN.*write_customers"):
            dest.upsert([Row(gid(customer), {})])
    finally:
        dest.close()
    assert "omnicanal-negado" not in (shop.emulator.store.customers[0]["tags"] or "")
