"""Shopify's case for the destination test kit (omnicanal.activation.testkit).

The rows are customers the sandbox's shop already has (a sync tags customers, it does
not create them): when the kit points the case at a sandbox (``env``), the case reads
that shop's customers through the GraphQL Admin API and ``row(n)`` is the n-th of
those without the sync's tag. Each row carries one metafield.
"""

from __future__ import annotations

from dataclasses import replace

import httpx

from omnicanal.activation.destination import Row
from omnicanal.activation.testkit import DestinationCase
from omnicanal.channels.shopify import API_VERSION, SANDBOX_ACCESS_TOKEN
from omnicanal.channels.shopify.destination import DEFAULT_TAG
from omnicanal.channels.shopify.writes import split_tags

FIELD = "omnicanal.segment_note"
SEGMENTS = ["recente", "fiel", "loja física", "alto valor"]
CUSTOMERS_QUERY = """
query KitCustomers($after: String) {
  customers(first: 250, after: $after, sortKey: ID) {
    pageInfo { hasNextPage endCursor }
    nodes { id tags }
  }
}"""


def _untagged_customers(sandbox_url: str) -> list[str]:
    found: list[str] = []
    after = None
    with httpx.Client(
        base_url=sandbox_url, headers={"X-Shopify-Access-Token": SANDBOX_ACCESS_TOKEN}
    ) as client:
        while True:
            response = client.post(
                f"/admin/api/{API_VERSION}/graphql.json",
                json={"query": CUSTOMERS_QUERY, "variables": {"after": after}},
            )
            response.raise_for_status()
            page = response.json()["data"]["customers"]
            found += [n["id"] for n in page["nodes"] if DEFAULT_TAG not in n["tags"]]
            if not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]


def _held(emulator) -> dict[str, dict]:
    held = {}
    for customer in emulator.store.customers:
        if DEFAULT_TAG in split_tags([customer.get("tags") or ""]):
            metafields = emulator.graph.metafields.get(customer["id"]) or {}
            held[f"gid://shopify/Customer/{customer['id']}"] = {
                f"{ns}.{key}": m["value"] for (ns, key), m in metafields.items()
            }
    return held


def destination_case() -> DestinationCase:
    customers: list[str] = []

    def env(url: str) -> dict[str, str]:
        customers[:] = _untagged_customers(url)
        return {"OMNICANAL_SHOPIFY_API_URL": url}

    def row(n: int) -> Row:
        if n >= len(customers):
            raise AssertionError(f"the sandbox's shop has {len(customers)} customers to tag")
        return Row(customers[n], {FIELD: f"{SEGMENTS[n % len(SEGMENTS)]} {n}"})

    return DestinationCase(
        row=row,
        change=lambda row: replace(row, payload={FIELD: row.payload[FIELD] + " (mudou)"}),
        # a customer the shop does not have: tagsAdd answers "Customer does not exist"
        refused=Row("gid://shopify/Customer/1", {FIELD: "ninguém"}),
        env=env,
        bad_credentials={"OMNICANAL_SHOPIFY_ACCESS_TOKEN": "shpat_wrong"},
        credential_setting="OMNICANAL_SHOPIFY_ACCESS_TOKEN",
        held=_held,
    )
