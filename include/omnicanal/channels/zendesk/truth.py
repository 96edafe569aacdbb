"""Ground truth of Zendesk's syncs, from the sandbox World in plain Python.

``expected_recent_buyer_users(world)`` is what the ``zendesk__recent_buyers`` sync must
leave tagged in the help desk: every end-user with an email whose person has a
non-cancelled online-store (Shopify) order in the window before ``as_of``, keyed by the
user's lower-cased email, with the date (UTC) of that person's last such order.

Only users the records themselves tie to their person count: by the person's own email,
or by their phone. A user who wrote from a second address and gave no phone (an old
Hotmail, a work address) is that person in the world, but nothing in any platform's
data says so, and no sync can know it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from omnicanal.activation.hashing import normalize_phone
from omnicanal.channels.channel import SyncTruth
from omnicanal.sandbox.world import World

#: The tag the zendesk__recent_buyers exposure owns.
RECENT_BUYER_TAG = "omnicanal_recent_buyer"


def expected_recent_buyer_users(world: World, window_days: int = 90) -> dict[str, dict[str, str]]:
    """``{email: {"email", "omnicanal_last_order_date"}}`` of the users to tag."""
    cutoff = world.as_of - timedelta(days=window_days)
    store = world.slices["shopify"]
    last_order: dict[str, datetime] = {}
    for order in store.orders:
        if order.get("cancelled_at"):
            continue
        created = datetime.fromisoformat(order["created_at"])
        if not cutoff <= created <= world.as_of:
            continue
        person = store.customer_person.get((order.get("customer") or {}).get("id"))
        if person is not None and (person not in last_order or created > last_order[person]):
            last_order[person] = created
    desk = world.slices["zendesk"]
    expected: dict[str, dict[str, str]] = {}
    for user in desk.users:
        email = (user.get("email") or "").strip().lower()
        person = desk.user_person.get(user["id"])
        if user.get("role") != "end-user" or not email or person not in last_order:
            continue
        own = world.person(person)
        phone = normalize_phone(user.get("phone"))
        if email == own.email or (phone is not None and phone == normalize_phone(own.phone)):
            expected[email] = {
                "email": email,
                "omnicanal_last_order_date": last_order[person].astimezone(UTC).date().isoformat(),
            }
    return dict(sorted(expected.items()))


def held_recent_buyer_users(emulator) -> dict[str, dict[str, str]]:
    """What the sandbox's Zendesk (``app.state.zendesk``) holds tagged, in the shape of
    :func:`expected_recent_buyer_users`, for the demo summary to compare."""
    return {
        email: {
            "email": email,
            "omnicanal_last_order_date": (user.get("user_fields") or {}).get(
                "omnicanal_last_order_date"
            ),
        }
        for email, user in emulator.writes.tagged(RECENT_BUYER_TAG).items()
    }


def demo_truths(world: World, emulator) -> list[SyncTruth]:
    """The users tagged as recent buyers against the world, by email."""
    return [
        SyncTruth(
            "zendesk__recent_buyers",
            f"Zendesk users tagged {RECENT_BUYER_TAG}",
            frozenset(held_recent_buyer_users(emulator)),
            frozenset(expected_recent_buyer_users(world)),
        )
    ]
