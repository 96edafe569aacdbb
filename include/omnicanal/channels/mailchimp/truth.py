"""Ground truth of the Mailchimp sync, from the sandbox world alone (plain Python).

``World.expected_recent_buyers`` is what ``mailchimp__recent_buyers`` must leave
subscribed in the sync audience: the people with a recent online-store order who accept
email marketing, by their canonical email.
"""

from __future__ import annotations

from typing import Any

from omnicanal.channels.channel import SyncTruth
from omnicanal.channels.mailchimp import DEFAULT_LIST_ID


def subscribed(emulator: Any, list_id: str = DEFAULT_LIST_ID) -> set[str]:
    """The lower-cased emails of the audience's subscribed members now."""
    return {
        m["email_address"].strip().lower() for m in emulator.members(list_id, status="subscribed")
    }


def demo_truths(world: Any, emulator: Any) -> list[SyncTruth]:
    return [
        SyncTruth(
            "mailchimp__recent_buyers",
            f"subscribed members of the Mailchimp audience {DEFAULT_LIST_ID}",
            frozenset(subscribed(emulator)),
            frozenset(world.expected_recent_buyers()),
        )
    ]
