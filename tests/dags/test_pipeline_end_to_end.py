"""The whole pipeline under Airflow: sandbox → taps → warehouse → dbt → every destination.

A real ``dag.test()`` run of ``omnicanal_pipeline`` (every task, Cosmos's dbt tasks
included) against a fresh warehouse database and a sandbox over real HTTP; the
sandbox's Mailchimp list must then hold exactly the recent buyers of the world's
ground truth, and every other destination its segment's truth; every online
(Shopify) order that a shop took back at its Square till must be in the warehouse from
both systems and attached to one ``customer_id``. A second run must load no duplicates
and send nothing anywhere.
"""

from __future__ import annotations

from contextlib import ExitStack

import psycopg

from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import generate_world
from omnicanal.settings import get_settings

LIST = "omnicanal-demo"


def test_pipeline_delivers_the_ground_truth_audience(
    airflow_db, warehouse_env, monkeypatch, webhook_emulations
):
    from omnicanal.demo import load_dag, start_webhooks, sync_truths

    world = generate_world(150, seed=11)
    # Webhook-fed sources (WhatsApp) read a receiver: one of this test's, on a free port,
    # which their emulations post to before the run, as the demo does.
    pushed = webhook_emulations
    with ExitStack() as stack:
        sandbox = stack.enter_context(SandboxServer(world, **pushed))
        # Every channel's default API URL is the sandbox's: point them all at this one.
        monkeypatch.setenv("OMNICANAL_SANDBOX_PORT", str(sandbox.port))
        settings = get_settings()
        start_webhooks(settings, sandbox, stack)
        dag = load_dag(settings)

        first = dag.test()
        assert str(first.state) == "success", [
            (ti.task_id, ti.state) for ti in first.get_task_instances()
        ]
        mailchimp = sandbox.app.state.mailchimp
        expected = world.expected_recent_buyers()
        assert len(expected) > 10
        held = {m["email_address"]: m for m in mailchimp.members(LIST, status="subscribed")}
        # The right people, each once, under their real names, at one of their own
        # addresses: someone who shops on VTEX with a second address may be reached there
        # when that profile is their newest (survivorship: most recent).
        owner = addresses_by_person(world)
        canonical = {world.person(pid).email: pid for pid in {*owner.values()}}
        reached = [owner.get(email.lower()) for email in held]
        assert None not in reached, [e for e in held if owner.get(e.lower()) is None]
        assert sorted(reached) == sorted(canonical[email] for email in expected)
        for email, member in held.items():
            person = world.person(owner[email.lower()])
            merge = member["merge_fields"]
            assert (merge["FNAME"], merge["LNAME"]) == (person.first_name, person.last_name)

        # every destination holds its segment: what the world's truth says it should
        truths = {t.sync: t for t in sync_truths(sandbox)}
        assert set(truths) == {
            "mailchimp__recent_buyers",
            "meta_ads__lapsed_customers",
            "hubspot__recent_buyers",
            "zendesk__recent_buyers",
            "shopify__recent_buyers",
            "square__recent_store_buyers",
            "whatsapp__abandoned_checkout",
        }
        report = {n: (len(t.held), len(t.expected), t.both) for n, t in truths.items()}
        print(report)
        # exact everywhere: the truths judge each record by what ties to it (a person
        # identity rightly split is two customers there too; omnicanal.sandbox.linkage)
        for name, truth in truths.items():
            assert truth.expected, f"{name}: the world gives this segment nobody"
            assert truth.held == truth.expected, (name, report[name])

        with psycopg.connect(warehouse_env) as conn:
            customers = conn.execute("select count(*) from raw_shopify.customers").fetchone()[0]
            orders = conn.execute("select count(*) from raw_shopify.orders").fetchone()[0]
            till = conn.execute("select count(*) from raw_square.orders").fetchone()[0]
            vtex = conn.execute("select count(*) from raw_vtex.orders").fetchone()[0]
        assert customers == len(world.slices["shopify"].customers)
        assert orders == len(world.slices["shopify"].orders)
        # the till (Square) and the marketplace store (VTEX) are extracted whole too
        assert till == len(world.slices["square"].orders) > 0
        assert vtex == len(world.slices["vtex"].orders) > 0
        assert_online_orders_returned_in_a_shop_are_one_customers(world, warehouse_env)

        # Second run: incremental extract adds no duplicates, the sync sends nothing.
        mailchimp.reset_counters()
        second = dag.test()
        assert str(second.state) == "success"
        assert mailchimp.write_calls == 0
        with psycopg.connect(warehouse_env) as conn:
            assert conn.execute("select count(*) from raw_shopify.customers").fetchone()[0] == (
                customers
            )
            assert conn.execute("select count(*) from raw_shopify.orders").fetchone()[0] == orders
            assert conn.execute("select count(*) from raw_square.orders").fetchone()[0] == till
            assert conn.execute("select count(*) from raw_vtex.orders").fetchone()[0] == vtex
            runs = conn.execute(
                "select inserted, updated, removed, unchanged from "
                "omnicanal_activation.sync_runs where sync_name = 'mailchimp__recent_buyers' "
                "order by run_id"
            ).fetchall()
            # nobody joins or leaves a segment on unchanged data; an update may follow
            # when the syncs' own writes (a tag, a group) bumped a platform record's
            # updated_at and the golden record's "most recent" value moved with it
            resent = conn.execute(
                "select sync_name, inserted + removed + failed + pending from "
                "omnicanal_activation.sync_runs where run_id in (select max(run_id) from "
                "omnicanal_activation.sync_runs group by sync_name)"
            ).fetchall()
            outcomes = conn.execute(
                "select r.sync_name, o.record_key, o.action, o.status, o.error from "
                "omnicanal_activation.sync_row_outcomes o join omnicanal_activation.sync_runs r "
                "using (run_id) where r.run_id in (select max(run_id) from "
                "omnicanal_activation.sync_runs group by sync_name)"
            ).fetchall()
        assert runs == [(len(expected), 0, 0, 0), (0, 0, 0, len(expected))]
        # every sync ran again (hubspot__customer_attributes has no world truth) and sent
        # nothing
        assert {name for name, _ in resent} >= set(truths), resent
        # hubspot__customer_attributes writes every customer to HubSpot, and the next
        # extract reads those contacts back as records: identity may then count a
        # customer more (a known feedback loop, issue 13's notes), so it is left out here
        assert all(sent == 0 for name, sent in resent if name in truths), (resent, outcomes)


def assert_online_orders_returned_in_a_shop_are_one_customers(world, warehouse_url: str) -> None:
    """Bought online, returned in a shop: the Square return names the Shopify order, and
    the buyer's Shopify account and the Square profile that brought it back are one
    customer."""
    square, shopify = world.slices["square"], world.slices["shopify"]
    truth = square.online_returns  # Square order id -> the Shopify order id it took back
    assert truth, "the world has no online order returned in a shop"
    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute(
            """
            select
                returns.square_order_id,
                orders.shopify_order_id,
                in_shop.customer_id,
                online.customer_id
            from staging.stg_square__online_order_returns as returns
            left join staging.stg_shopify__orders as orders
                on returns.shopify_order_name = orders.order_name
            left join intermediate.int_identity__record_customers as in_shop
                on in_shop.record_key = 'square:' || returns.square_customer_id
            left join intermediate.int_identity__record_customers as online
                on online.record_key = 'shopify:' || orders.shopify_customer_id
            """
        ).fetchall()
    found = {square_order: shopify_order for square_order, shopify_order, _, _ in rows}
    assert found == truth
    split = [r for r in rows if r[2] is None or r[2] != r[3]]
    assert not split, f"returns whose shop and online customers differ: {split}"
    # and that customer is the right person on both sides
    square_orders = {o["id"]: o for o in square.orders}
    online_orders = {o["id"]: o for o in shopify.orders}
    for square_order, shopify_order in truth.items():
        buyer = online_orders[shopify_order]["customer"]["id"]
        returner = square_orders[square_order]["customer_id"]
        assert shopify.customer_person[buyer] == square.customer_person[returner]


def addresses_by_person(world) -> dict[str, str]:
    """Every email address (trimmed, lower-case) a platform holds for a person, with
    whose it is: the world's ground truth across Shopify, VTEX and Square."""
    owner: dict[str, str] = {p.email: p.person_id for p in world.people}
    shopify, vtex, square = (world.slices[name] for name in ("shopify", "vtex", "square"))
    held = [
        *((c.get("email"), shopify.customer_person.get(c["id"])) for c in shopify.customers),
        *((p.get("email"), vtex.profile_person.get(p["id"])) for p in vtex.profiles),
        *((c.get("email_address"), square.customer_person.get(c["id"])) for c in square.customers),
    ]
    for email, person_id in held:
        if email and person_id:
            owner.setdefault(email.strip().lower(), person_id)
    return owner
