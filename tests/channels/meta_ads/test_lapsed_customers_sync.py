"""The lapsed-customers audience end to end: world → taps → dbt → sync → Meta, against the truth.

The sync tests' pipeline (``tests/sync_pipeline.py``: a sandbox world extracted by the
real taps, among them the commerce platforms, whose orders say who lapsed, and
Mailchimp, whose members feed the consent mart, into a fresh warehouse, with dbt's
build of ``sync_meta_ads__lapsed_customers`` and ``customer_consent`` with their
ancestors and the tests on them, done once for every sync test) is in place;
``omnicanal sync`` pushes the segment over HTTP to the emulated Marketing
API, which must then hold exactly the hashes :func:`expected_lapsed_customers` computes
from the world in plain Python, for every person identity resolution kept whole (the
few it cannot, e.g. a till profile with only a phone no other record of theirs has, are
identity's question and bounded here). A second run sends nothing; a person who leaves
the segment is taken out of the audience by the next.
"""

from __future__ import annotations

import psycopg

from omnicanal.activation.engine import run_sync
from omnicanal.activation.hashing import sha256_hex
from omnicanal.channels.meta_ads.truth import (
    LAPSED_CUSTOMERS_AUDIENCE,
    LAPSED_FIELDS,
    audience_rows,
    expected_lapsed_customers,
    person_orders,
)
from omnicanal.settings import get_settings

SYNC = "meta_ads__lapsed_customers"


def kept_whole(url: str, world) -> set[str]:
    """The people identity resolution kept whole: every order of theirs and their own
    email in one customer, which holds no one else's."""
    with psycopg.connect(url) as conn:
        order_customer = dict(conn.execute("select order_key, customer_id from marts.fct_orders"))
        email_customer = dict(
            conn.execute("select email, customer_id from marts.dim_customers where email > ''")
        )
    customers: dict[str, set] = {p.person_id: {email_customer.get(p.email)} for p in world.people}
    for order_key, (person_id, _) in person_orders(world).items():
        customers[person_id].add(order_customer.get(order_key))
    people_of: dict[str, set[str]] = {}
    for person_id, found in customers.items():
        for customer_id in found:
            people_of.setdefault(customer_id, set()).add(person_id)
    return {
        person_id
        for person_id, found in customers.items()
        if len(found) == 1 and None not in found and people_of[next(iter(found))] == {person_id}
    }


def test_the_audience_holds_the_worlds_lapsed_customers_and_a_rerun_sends_nothing(
    sync_pipeline,
) -> None:
    world, warehouse_env = sync_pipeline.world, sync_pipeline.url
    expected = expected_lapsed_customers(world)
    assert len(expected) >= 10, "the world must have lapsed customers to sync"

    emulator = sync_pipeline.sandbox.app.state.meta_ads
    first = run_sync(get_settings(), SYNC)
    assert first.failed == 0 and first.pending == 0, first.errors
    held = audience_rows(emulator, LAPSED_CUSTOMERS_AUDIENCE)
    whole = kept_whole(warehouse_env, world)
    person_of = {sha256_hex(p.email): p.person_id for p in world.people}
    # a person identity split (a till profile with only a phone no other record has)
    # or merged is a question for identity, not for the sync: the rest must be exact
    judged = {k for k in set(expected) | set(held) if person_of.get(k) in whole}
    assert len(set(expected) | set(held)) - len(judged) <= max(3, len(expected) // 7)
    assert {k for k in held if k in judged} == {k for k in expected if k in judged}
    for key in judged:
        row, truth = held[key], expected[key]
        assert set(row) <= set(LAPSED_FIELDS) and row["COUNTRY"] == truth["COUNTRY"]
        assert row.get("PHONE") in (None, truth["PHONE"]), key
    # the golden record may keep another record's spelling ('Cecilia') or no address
    exact = sum(held[key] == expected[key] for key in judged)
    assert exact >= 0.85 * len(judged), (exact, len(judged))
    assert first.inserted == len(held)
    assert first.destination_stats["num_received"] == len(held)
    assert first.destination_stats["num_invalid_entries"] == 0

    emulator.reset_log()
    second = run_sync(get_settings(), SYNC)
    assert second.sent == 0 and second.inserted == 0 and second.removed == 0
    assert emulator.write_log == []
    assert audience_rows(emulator, LAPSED_CUSTOMERS_AUDIENCE) == held

    # someone buys again (leaves the segment): the next run takes them out, only them
    with psycopg.connect(warehouse_env) as conn:
        email = conn.execute(
            "delete from activation.sync_meta_ads__lapsed_customers where customer_id = "
            "(select min(record_key) from omnicanal_activation.sync_ledger "
            "where sync_name = %s and present and payload->>'EMAIL' is not null) "
            "returning email",
            (SYNC,),
        ).fetchone()[0]
    third = run_sync(get_settings(), SYNC)
    assert (third.removed, third.inserted, third.sent) == (1, 0, 1)
    gone = sha256_hex(email)
    assert audience_rows(emulator, LAPSED_CUSTOMERS_AUDIENCE) == {
        k: v for k, v in held.items() if k != gone
    }

    with psycopg.connect(warehouse_env) as conn:
        stats = conn.execute(
            "select destination_stats from omnicanal_activation.sync_runs "
            "where sync_name = %s order by run_id",
            (SYNC,),
        ).fetchall()
    assert stats[0][0]["num_received"] == len(held)  # the run row keeps Meta's counts
