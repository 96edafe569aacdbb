"""Ground truth of the Square syncs, from the sandbox world alone (plain Python).

What a correct pipeline leaves at the seller, computed from the world's records and
the people they belong to, never from the warehouse: the demo summary and the
end-to-end tests compare the emulation against it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from omnicanal.channels.channel import SyncTruth

#: The group and custom attribute the ``square__recent_store_buyers`` exposure writes.
RECENT_STORE_BUYERS_GROUP = "Compradores recentes na loja"
LAST_SALE_ATTRIBUTE = "omnicanal.last_store_sale"


def expected_recent_store_buyers(world: Any, window_days: int = 90) -> dict[str, dict[str, str]]:
    """The Square profiles ``sync_square__recent_store_buyers`` puts in its group.

    Every customer profile (not deleted) with a completed sale that is not a return,
    created in the ``window_days`` before the world's ``as_of``, whose owner accepts
    email marketing as a record tied to this profile says (``World.consenting_groups``:
    the profile's own, or one sharing an identifier with it; a profile holding a name
    alone is tied to nothing, whatever its owner said elsewhere), keyed by its Square id,
    with the profile's latest such sale (UTC, ISO-8601, ``Z``) under
    ``omnicanal.last_store_sale``.
    """
    cutoff = world.as_of - timedelta(days=window_days)
    shop = world.slices["square"]
    groups = world.record_groups()
    consenting = world.consenting_groups(groups)
    profiles = {c["id"] for c in shop.customers}
    latest: dict[str, datetime] = {}
    for order in shop.orders:
        customer_id = order.get("customer_id")
        if customer_id not in profiles or order["state"] != "COMPLETED" or order.get("returns"):
            continue
        created = datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
        if not cutoff <= created <= world.as_of:
            continue
        if groups.get(f"square:{customer_id}") not in consenting:
            continue
        latest[customer_id] = max(created, latest.get(customer_id, created))
    return {
        customer_id: {LAST_SALE_ATTRIBUTE: moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        for customer_id, moment in sorted(latest.items())
    }


def group_members(emulator: Any, name: str = RECENT_STORE_BUYERS_GROUP) -> set[str]:
    """The ids of the profiles in the seller's group called ``name`` now."""
    group = emulator.writes.group_named(name)
    return emulator.writes.members(group["id"]) if group else set()


def demo_truths(world: Any, emulator: Any) -> list[SyncTruth]:
    """The recent store buyers' group against the world, by Square profile id."""
    return [
        SyncTruth(
            "square__recent_store_buyers",
            f"Square profiles in the group {RECENT_STORE_BUYERS_GROUP!r}",
            frozenset(group_members(emulator)),
            frozenset(expected_recent_store_buyers(world)),
        )
    ]
