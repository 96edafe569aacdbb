"""The Shopify recent-buyers tag end to end: taps → warehouse → dbt → sync → the shop.

The sync tests' pipeline (``tests/sync_pipeline.py``: a world of 200 people served by
the sandbox, extracted by the real taps into a fresh warehouse database, with dbt's
build of ``sync_shopify__recent_buyers``, identity and the customer marts beneath it,
and their tests, done once for every sync test) is in place; ``omnicanal sync`` runs the
``shopify__recent_buyers`` exposure over HTTP against the emulated shop. The shop must
then hold exactly the world's ground truth (``channels.shopify.truth``): the tag on
those accounts and no others, their metafield, every other tag untouched; a second run
sends nothing; an account that leaves the segment loses our tag and only our tag.
"""

from __future__ import annotations

from omnicanal.channels.shopify.truth import (
    LAST_ORDER_METAFIELD,
    RECENT_BUYER_TAG,
    expected_recent_buyers,
    tagged,
)
from omnicanal.channels.shopify.writes import split_tags

SYNC = "shopify__recent_buyers"
MODEL = "sync_shopify__recent_buyers"


def _tags(store) -> dict[int, list[str]]:
    return {c["id"]: split_tags([c.get("tags") or ""]) for c in store.customers}


def _metafields(emulator) -> dict[str, dict[str, str]]:
    return {
        f"gid://shopify/Customer/{owner}": {
            f"{ns}.{key}": m["value"] for (ns, key), m in held.items()
        }
        for owner, held in emulator.graph.metafields.items()
        if held
    }


def test_the_shop_holds_the_ground_truth_and_a_leaver_loses_only_our_tag(sync_pipeline):
    from omnicanal.activation.engine import run_sync
    from omnicanal.settings import get_settings

    emulator = sync_pipeline.sandbox.app.state.emulators["shopify"]
    store = emulator.store
    before = _tags(store)
    expected = expected_recent_buyers(sync_pipeline.world)
    assert len(expected) > 10
    assert any(before[int(g.rsplit("/", 1)[1])] for g in expected), "no tagged buyer to keep"

    first = run_sync(get_settings(), SYNC)
    assert (first.inserted, first.failed, first.pending) == (len(expected), 0, 0), first
    assert tagged(store) == set(expected)
    assert _metafields(emulator) == expected
    after = _tags(store)
    for customer_id, tags in before.items():
        ours = [RECENT_BUYER_TAG] if f"gid://shopify/Customer/{customer_id}" in expected else []
        assert after[customer_id] == tags + ours, (customer_id, tags, after[customer_id])

    # nothing changed: nothing is sent
    writes = emulator.writes.tag_writes, emulator.writes.metafield_writes
    second = run_sync(get_settings(), SYNC)
    assert second.sent == 0 and second.unchanged == len(expected)
    assert (emulator.writes.tag_writes, emulator.writes.metafield_writes) == writes

    # a shorter window: the accounts that leave lose our tag, and only our tag
    sync_pipeline.dbt("run", "--select", MODEL, recent_buyers_window_days=30)
    narrower = expected_recent_buyers(sync_pipeline.world, window_days=30)
    leavers = set(expected) - set(narrower)
    assert leavers and set(narrower) < set(expected)
    third = run_sync(get_settings(), SYNC)
    assert (third.removed, third.inserted, third.failed) == (len(leavers), 0, 0), third
    assert tagged(store) == set(narrower)
    final = _tags(store)
    for customer_id, tags in before.items():
        ours = [RECENT_BUYER_TAG] if f"gid://shopify/Customer/{customer_id}" in narrower else []
        assert final[customer_id] == tags + ours, (customer_id, tags, final[customer_id])
    for leaver in leavers:
        # the metafield stays: a removal takes away the membership, not what we recorded
        assert _metafields(emulator)[leaver] == expected[leaver]
    assert LAST_ORDER_METAFIELD in next(iter(_metafields(emulator).values()))
