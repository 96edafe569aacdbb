"""Ground truth of HubSpot's syncs, from the sandbox World in plain Python.

``expected_recent_buyers_list(world)`` is what the ``hubspot__recent_buyers`` sync must
leave in its HubSpot list: one member per person with a non-cancelled online-store
order in the window before ``as_of`` who accepts email marketing, keyed by their
canonical (lower-case) email, with the contact properties the sync writes.
"""

from __future__ import annotations

from omnicanal.channels.channel import SyncTruth
from omnicanal.sandbox.world import World

#: The list the hubspot__recent_buyers exposure fills.
RECENT_BUYERS_LIST = "omnicanal: recent buyers"


def expected_recent_buyers_list(world: World, window_days: int = 90) -> dict[str, dict[str, str]]:
    """``{email: {"email", "firstname", "lastname"}}`` of the list's members."""
    return {
        email: {"email": email, "firstname": names["first_name"], "lastname": names["last_name"]}
        for email, names in world.expected_recent_buyers(window_days).items()
    }


def held_recent_buyers_list(emulator) -> dict[str, dict[str, str]]:
    """What the sandbox's HubSpot (``app.state.hubspot``) holds in that list, in the shape
    of :func:`expected_recent_buyers_list`, for the demo summary to compare."""
    return {
        email: {name: properties.get(name) for name in ("email", "firstname", "lastname")}
        for email, properties in emulator.writes.list_members(RECENT_BUYERS_LIST).items()
    }


def demo_truths(world: World, emulator) -> list[SyncTruth]:
    """The recent-buyers list against the world, by email."""
    return [
        SyncTruth(
            "hubspot__recent_buyers",
            f"contacts in the HubSpot list {RECENT_BUYERS_LIST!r}",
            frozenset(held_recent_buyers_list(emulator)),
            frozenset(expected_recent_buyers_list(world)),
        )
    ]
