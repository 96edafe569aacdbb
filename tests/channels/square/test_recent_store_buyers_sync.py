"""The Square recent-store-buyers group end to end: taps → warehouse → dbt → sync → Square.

The sync tests' pipeline (``tests/sync_pipeline.py``: a world of 200 people served by
the sandbox, extracted by the real taps into a fresh warehouse database, with dbt's
build of ``sync_square__recent_store_buyers``, identity, the customer marts and the
consent mart beneath it, and their tests, done once for every sync test) is in place;
``omnicanal sync`` runs the ``square__recent_store_buyers``
exposure over HTTP against the emulated seller. The seller must then hold exactly the
world's ground truth (``channels.square.truth``): those profiles in the group, no
others, each with its custom attribute; a group the merchant made (with Square's own
SDK) keeps its members; a second run sends nothing; a profile that leaves the segment
leaves our group and only our group.
"""

from __future__ import annotations

import pytest
from square import Square

from omnicanal.channels.square import SANDBOX_ACCESS_TOKEN
from omnicanal.channels.square.truth import (
    LAST_SALE_ATTRIBUTE,
    RECENT_STORE_BUYERS_GROUP,
    expected_recent_store_buyers,
    group_members,
)

SYNC = "square__recent_store_buyers"
MODEL = "sync_square__recent_store_buyers"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:square")


def _attributes(emulator, members: set[str]) -> dict[str, dict[str, str]]:
    return {
        customer_id: {
            key: attribute["value"]
            for key, attribute in (emulator.writes.attributes.get(customer_id) or {}).items()
        }
        for customer_id in members
    }


def test_the_till_sees_the_ground_truth_and_a_leaver_leaves_only_our_group(sync_pipeline):
    from omnicanal.activation.engine import run_sync
    from omnicanal.settings import get_settings

    emulator = sync_pipeline.sandbox.app.state.emulators["square"]
    expected = expected_recent_store_buyers(sync_pipeline.world)
    assert len(expected) > 10

    # the merchant's own group, made with Square's SDK, holding some of the same people
    sdk = Square(token=SANDBOX_ACCESS_TOKEN, base_url=sync_pipeline.sandbox.url)
    vip = sdk.customers.groups.create(group={"name": "Clientes VIP"}).group
    regulars = sorted(expected)[::3]
    for customer_id in regulars:
        sdk.customers.groups.add(customer_id=customer_id, group_id=vip.id)

    first = run_sync(get_settings(), SYNC)
    assert (first.inserted, first.failed, first.pending) == (len(expected), 0, 0), first
    assert group_members(emulator) == set(expected)
    assert _attributes(emulator, set(expected)) == expected
    ours = emulator.writes.group_named(RECENT_STORE_BUYERS_GROUP)
    profile = sdk.customers.get(customer_id=regulars[0]).customer
    assert set(profile.group_ids) == {vip.id, ours["id"]}

    # nothing changed: nothing is sent
    writes = emulator.writes.membership_writes, emulator.writes.attribute_writes
    second = run_sync(get_settings(), SYNC)
    assert second.sent == 0 and second.unchanged == len(expected)
    assert (emulator.writes.membership_writes, emulator.writes.attribute_writes) == writes

    # a shorter window: the profiles that leave go out of our group, and only ours
    sync_pipeline.dbt("run", "--select", MODEL, recent_store_buyers_window_days=30)
    narrower = expected_recent_store_buyers(sync_pipeline.world, window_days=30)
    leavers = set(expected) - set(narrower)
    assert leavers and set(narrower) < set(expected)
    third = run_sync(get_settings(), SYNC)
    assert (third.removed, third.inserted, third.failed) == (len(leavers), 0, 0), third
    assert group_members(emulator) == set(narrower)
    assert emulator.writes.members(vip.id) == set(regulars)
    assert leavers & set(regulars), "no leaver in the merchant's group to keep"
    for leaver in leavers:
        # the attribute stays: a removal takes away the membership, not what we recorded
        assert _attributes(emulator, {leaver})[leaver] == expected[leaver]
    assert LAST_SALE_ATTRIBUTE in next(iter(expected.values()))
