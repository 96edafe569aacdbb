"""HubSpot's syncs end to end: extract, dbt, ``run_sync`` over HTTP, the world's truth.

The sync tests' pipeline (``tests/sync_pipeline.py``: a world served by the sandbox,
extracted by the real taps into a fresh warehouse database, with dbt's build of the two
HubSpot sync models and their tests, done once for every sync test) is in place;
``run_sync`` pushes them to the sandbox's HubSpot. Then the emulated portal must hold
exactly what the world says (the recent-buyers list, :func:`expected_recent_buyers_list`)
or what the model says (the customer attributes), and a second run sends nothing.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg

from omnicanal.channels.hubspot.truth import (
    RECENT_BUYERS_LIST,
    expected_recent_buyers_list,
    held_recent_buyers_list,
)


def test_the_recent_buyers_list_holds_the_worlds_truth(sync_pipeline) -> None:
    from omnicanal.activation.engine import run_sync
    from omnicanal.settings import get_settings

    world, sandbox = sync_pipeline.world, sync_pipeline.sandbox
    emulator = sandbox.app.state.hubspot
    truth = expected_recent_buyers_list(world)
    assert len(truth) >= 3, "the world must have recent buyers for this test to mean anything"

    first = run_sync(get_settings(), "hubspot__recent_buyers")
    assert first.failed == 0 and first.pending == 0
    assert first.inserted == len(truth)
    assert held_recent_buyers_list(emulator) == truth
    assert emulator.writes.list_by_name(RECENT_BUYERS_LIST).processing_type == "MANUAL"

    requests = emulator.request_count
    second = run_sync(get_settings(), "hubspot__recent_buyers")
    assert second.sent == 0 and second.unchanged == len(truth)
    assert emulator.request_count == requests  # nothing went over the wire


def test_customer_attributes_land_as_contact_properties(sync_pipeline) -> None:
    from omnicanal.activation.engine import run_sync
    from omnicanal.settings import get_settings

    url, sandbox = sync_pipeline.url, sync_pipeline.sandbox
    emulator = sandbox.app.state.hubspot
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select email, lifetime_value, orders_count, is_omnichannel, preferred_channel, "
            "last_order_date from activation.sync_hubspot__customer_attributes"
        ).fetchall()
    assert len(rows) >= 5

    first = run_sync(get_settings(), "hubspot__customer_attributes")
    assert (first.inserted, first.failed, first.pending) == (len(rows), 0, 0)
    contacts = emulator.writes.contacts()
    for email, value, orders, omni, preferred, last_date in rows:
        held = contacts[email]
        assert Decimal(held["omnicanal_lifetime_value"]) == value, email
        assert int(held["omnicanal_orders_count"]) == orders
        assert held["omnicanal_is_omnichannel"] == ("true" if omni else "false")
        assert held["omnicanal_preferred_channel"] == preferred
        assert held["omnicanal_last_order_date"] == last_date.isoformat()
    kinds = {name: spec["type"] for name, spec in emulator.writes.properties.items()}
    assert kinds["omnicanal_lifetime_value"] == "number"
    assert kinds["omnicanal_last_order_date"] == "date"

    second = run_sync(get_settings(), "hubspot__customer_attributes")
    assert second.sent == 0 and second.unchanged == len(rows)
