"""Ground truth of the Shopify syncs, from the sandbox world alone (plain Python).

What a correct pipeline leaves in the shop, computed from the world's records and the
people they belong to, never from the warehouse: the demo summary and the end-to-end
tests compare the emulation's customers against it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from omnicanal.channels.channel import SyncTruth

#: The tag and metafield the ``shopify__recent_buyers`` exposure writes.
RECENT_BUYER_TAG = "omnicanal-recent-buyer"
LAST_ORDER_METAFIELD = "omnicanal.last_order_at"


def expected_recent_buyers(world: Any, window_days: int = 90) -> dict[str, dict[str, str]]:
    """The Shopify accounts ``sync_shopify__recent_buyers`` tags, with their metafield.

    Every customer account with a non-cancelled order created in the ``window_days``
    before the world's ``as_of`` whose owner (the ``Person``) accepts email marketing,
    keyed by its global id, with the account's latest such order (UTC, ISO-8601, ``Z``)
    under ``omnicanal.last_order_at``. Read from the current orders, so it follows
    changes made through the emulator.
    """
    cutoff = world.as_of - timedelta(days=window_days)
    store = world.slices["shopify"]
    latest: dict[int, datetime] = {}
    for order in store.orders:
        customer_id = (order.get("customer") or {}).get("id")
        if customer_id is None or order.get("cancelled_at"):
            continue
        created = datetime.fromisoformat(order["created_at"])
        if not cutoff <= created <= world.as_of:
            continue
        person_id = store.customer_person.get(customer_id)
        if person_id is None or not world.person(person_id).accepts_email_marketing:
            continue
        latest[customer_id] = max(created, latest.get(customer_id, created))
    return {
        f"gid://shopify/Customer/{customer_id}": {
            LAST_ORDER_METAFIELD: moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        }
        for customer_id, moment in sorted(latest.items())
    }


def tagged(store: Any, tag: str = RECENT_BUYER_TAG) -> set[str]:
    """The global ids of the shop's customers holding ``tag`` now."""
    from omnicanal.channels.shopify.writes import split_tags

    return {
        f"gid://shopify/Customer/{c['id']}"
        for c in store.customers
        if tag in split_tags([c.get("tags") or ""])
    }


def demo_truths(world: Any, emulator: Any) -> list[SyncTruth]:
    """The customers tagged as recent buyers against the world, by global id."""
    return [
        SyncTruth(
            "shopify__recent_buyers",
            f"Shopify customers tagged {RECENT_BUYER_TAG}",
            frozenset(tagged(world.slices["shopify"])),
            frozenset(expected_recent_buyers(world)),
        )
    ]
