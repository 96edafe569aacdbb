"""The whole pipeline under Airflow: sandbox → tap → warehouse → dbt → Mailchimp.

A real ``dag.test()`` run of ``omnicanal_pipeline`` (every task, Cosmos's dbt tasks
included) against a fresh warehouse database and a sandbox over real HTTP; the
sandbox's Mailchimp list must then hold exactly the recent buyers of the world's
ground truth. A second run must load no duplicates and send nothing.
"""

from __future__ import annotations

import psycopg

from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import generate_world
from omnicanal.settings import get_settings

LIST = "omnicanal-demo"


def test_pipeline_delivers_the_ground_truth_audience(airflow_db, warehouse_env, monkeypatch):
    from omnicanal.demo import load_dag

    world = generate_world(150, seed=11)
    with SandboxServer(world) as sandbox:
        monkeypatch.setenv("OMNICANAL_SHOPIFY_API_URL", sandbox.url)
        monkeypatch.setenv("OMNICANAL_MAILCHIMP_API_URL", f"{sandbox.url}/3.0")
        settings = get_settings()
        dag = load_dag(settings)

        first = dag.test()
        assert str(first.state) == "success", [
            (ti.task_id, ti.state) for ti in first.get_task_instances()
        ]
        mailchimp = sandbox.app.state.mailchimp
        expected = world.expected_recent_buyers()
        assert len(expected) > 10
        held = {m["email_address"]: m for m in mailchimp.members(LIST, status="subscribed")}
        assert set(held) == set(expected)
        for email, names in expected.items():
            merge = held[email]["merge_fields"]
            assert (merge["FNAME"], merge["LNAME"]) == (names["first_name"], names["last_name"])

        with psycopg.connect(warehouse_env) as conn:
            customers = conn.execute("select count(*) from raw_shopify.customers").fetchone()[0]
            orders = conn.execute("select count(*) from raw_shopify.orders").fetchone()[0]
        assert customers == len(world.slices["shopify"].customers)
        assert orders == len(world.slices["shopify"].orders)

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
            runs = conn.execute(
                "select inserted, updated, removed, unchanged from "
                "omnicanal_activation.sync_runs order by run_id"
            ).fetchall()
        assert runs == [(len(expected), 0, 0, 0), (0, 0, 0, len(expected))]
