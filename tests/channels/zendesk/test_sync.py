"""Zendesk's sync end to end: extract, dbt, ``run_sync`` over HTTP, the world's truth.

The sync tests' pipeline (``tests/sync_pipeline.py``: a world served by the sandbox,
extracted by the commerce taps and tap-zendesk into a fresh warehouse database, with
dbt's build of ``sync_zendesk__recent_buyers`` (identity resolution links help-desk
users to buyers) and its tests, done once for every sync test) is in place;
``run_sync`` pushes it to the sandbox's Zendesk. The help desk must then tag exactly
the users the world says (:func:`expected_recent_buyer_users`), with the date of the
last order, leave every other tag alone, and a second run sends nothing.
"""

from __future__ import annotations

import psycopg

from omnicanal.channels.zendesk.truth import (
    RECENT_BUYER_TAG,
    expected_recent_buyer_users,
    held_recent_buyer_users,
)

MODEL = "sync_zendesk__recent_buyers"


def test_the_help_desk_tags_the_worlds_recent_buyers(sync_pipeline) -> None:
    from omnicanal.activation.engine import run_sync
    from omnicanal.settings import get_settings

    url, world, sandbox = sync_pipeline.url, sync_pipeline.world, sync_pipeline.sandbox
    emulator = sandbox.app.state.zendesk
    truth = expected_recent_buyer_users(world)
    assert len(truth) >= 3, "the world must have recent buyers with a help-desk account"
    # an agent's own tag on one of them must survive the sync
    first_email = next(iter(truth))
    agent_tagged = emulator.writes.user_by_email(first_email)
    emulator.writes.tags(str(agent_tagged["id"]), "PUT", {"tags": ["cliente_reclamou"]})

    first = run_sync(get_settings(), "zendesk__recent_buyers")
    tagged = emulator.writes.tagged(RECENT_BUYER_TAG)
    with psycopg.connect(url) as conn:
        model = conn.execute(f"select * from activation.{MODEL}").fetchall()
    assert set(tagged) == set(truth), (sorted(set(truth) ^ set(tagged)), model)
    assert first.failed == 0 and first.pending == 0
    assert first.inserted == len(truth)
    assert held_recent_buyer_users(emulator) == truth
    assert "cliente_reclamou" in emulator.writes.user_by_email(first_email)["tags"]
    assert emulator.writes.users_created == 0  # they all had a help-desk account

    requests = emulator.request_count
    second = run_sync(get_settings(), "zendesk__recent_buyers")
    assert second.sent == 0 and second.unchanged == len(truth)
    assert emulator.request_count == requests  # nothing went over the wire
