"""Square's case for the destination test kit (omnicanal.activation.testkit).

The rows are profiles the sandbox's seller already has (a sync puts customers in a
group, it does not create them): when the kit points the case at a sandbox (``env``),
the case lists that seller's customers with the Customers API and ``row(n)`` is the
n-th of them. Each row carries one custom attribute.
"""

from __future__ import annotations

from dataclasses import replace

import httpx

from omnicanal.activation.destination import Row
from omnicanal.activation.testkit import DestinationCase
from omnicanal.channels.square import API_VERSION, SANDBOX_ACCESS_TOKEN
from omnicanal.channels.square.destination import DEFAULT_GROUP

FIELD = "omnicanal.segment-note"
SEGMENTS = ["recente", "fiel", "loja física", "alto valor"]


def _customers(sandbox_url: str) -> list[str]:
    found: list[str] = []
    cursor = None
    headers = {"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}", "Square-Version": API_VERSION}
    with httpx.Client(base_url=sandbox_url, headers=headers) as client:
        while True:
            params = {"sort_field": "CREATED_AT", **({"cursor": cursor} if cursor else {})}
            response = client.get("/v2/customers", params=params)
            response.raise_for_status()
            body = response.json()
            found += [c["id"] for c in body.get("customers") or []]
            cursor = body.get("cursor")
            if not cursor:
                return found


def _held(emulator) -> dict[str, dict]:
    group = emulator.writes.group_named(DEFAULT_GROUP)
    if group is None:
        return {}
    return {
        customer_id: {
            key: attribute["value"]
            for key, attribute in (emulator.writes.attributes.get(customer_id) or {}).items()
        }
        for customer_id in emulator.writes.members(group["id"])
    }


def destination_case() -> DestinationCase:
    customers: list[str] = []

    def env(url: str) -> dict[str, str]:
        customers[:] = _customers(url)
        return {"OMNICANAL_SQUARE_API_URL": url}

    def row(n: int) -> Row:
        if n >= len(customers):
            raise AssertionError(f"the sandbox's seller has {len(customers)} customers")
        return Row(customers[n], {FIELD: f"{SEGMENTS[n % len(SEGMENTS)]} {n}"})

    return DestinationCase(
        row=row,
        change=lambda row: replace(row, payload={FIELD: row.payload[FIELD] + " (mudou)"}),
        # a profile the seller does not have: 404 NOT_FOUND
        refused=Row("NO0SUCH0CUSTOMER0000000000", {FIELD: "ninguém"}),
        env=env,
        bad_credentials={"OMNICANAL_SQUARE_ACCESS_TOKEN": "EAAAwrong"},
        credential_setting="OMNICANAL_SQUARE_ACCESS_TOKEN",
        held=_held,
    )
