"""What a dbt model's task becomes, decided by its trigger from the producer's results.

The trigger (omnicanal.orchestration.dbt_watch) is what makes the grid point at the
model or test that failed and lets a cleared task re-run just its own model. Here it
runs for real on an event loop; only what it reads from Airflow (the producer's XCom
results and the task states) is scripted, one scenario per branch.
"""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

import pytest

_runs = itertools.count()


def _run(results: dict, states: dict, *, tests=False, upstream=(), try_number=1):
    """The first event the trigger yields, with ``results`` keyed by (unique_id, tests)
    and ``states`` by task id (the producer's included)."""
    from omnicanal.orchestration.dbt_watch import DbtNodeResultTrigger

    class Scripted(DbtNodeResultTrigger):
        async def _status(self, unique_id, tests):
            return results.get((unique_id, tests))

        async def _states(self, task_ids):
            return {t: states.get(t) for t in task_ids}

    trigger = Scripted(
        "model.omnicanal.stg_shopify__orders",
        "dbt.dbt_producer_watcher",
        upstream=list(upstream),
        tests=tests,
        poke_interval=0.01,
        max_poke_interval=0.02,
    )
    trigger.task_instance = SimpleNamespace(
        dag_id="omnicanal_transform",
        task_id="dbt.stg_shopify__orders.run",
        run_id=f"run-{next(_runs)}",
        try_number=try_number,
    )

    async def first():
        async for event in trigger.run():
            return event

    return asyncio.run(asyncio.wait_for(first(), timeout=10))


NODE = "model.omnicanal.stg_shopify__orders"
UPSTREAM = "model.omnicanal.stg_shopify__customers"
PRODUCER = "dbt.dbt_producer_watcher"


def _kind(event) -> str:
    from airflow.triggers.base import TaskSkippedEvent, TaskSuccessEvent

    if isinstance(event, TaskSuccessEvent):
        return "success here"
    if isinstance(event, TaskSkippedEvent):
        return "skipped"
    payload = event.payload
    return f"{payload['status']} on a worker" + (
        f": {payload['reason']}" if "reason" in payload else ""
    )


@pytest.mark.parametrize(
    ("results", "states", "options", "expected"),
    [
        # a green node ends in the triggerer (a sync model's Asset comes from the producer)
        ({(NODE, False): "success"}, {PRODUCER: "running"}, {}, "success here"),
        # a failed node fails its own task on a worker, with dbt's message in its log
        ({(NODE, False): "error"}, {}, {}, "failed on a worker: node_failed"),
        # the tests of a failed model are skipped: the model's task is the one in red
        (
            {(NODE, True): "fail", (NODE, False): "error"},
            {},
            {"tests": True},
            "skipped",
        ),
        # failing tests of a model that built are the task that fails
        (
            {(NODE, True): "fail", (NODE, False): "success"},
            {},
            {"tests": True},
            "failed on a worker: node_failed",
        ),
        # skipped by dbt because an upstream model failed: skipped, the upstream is red
        (
            {(NODE, False): "failed"},
            {"dbt.stg_shopify__customers.run": "failed"},
            {"upstream": ["dbt.stg_shopify__customers.run"]},
            "skipped",
        ),
        # ... but when every upstream task is green, the cause has no task: this one fails
        (
            {(NODE, False): "failed"},
            {"dbt.stg_shopify__customers.run": "success"},
            {"upstream": ["dbt.stg_shopify__customers.run"]},
            "failed on a worker: node_failed",
        ),
        # the build ended without a result for it: green if dbt succeeded (nothing to do)
        ({}, {PRODUCER: "success"}, {}, "success here"),
        # ... skipped with the reason logged if the build failed before reaching it
        ({}, {PRODUCER: "failed"}, {}, "skipped"),
        # ... and run alone on a worker when the producer skipped (its own retry)
        ({}, {PRODUCER: "skipped"}, {}, "failed on a worker: producer_skipped"),
        # a cleared task (try 2) re-runs just its model once its upstream is green ...
        (
            {(NODE, False): "error"},
            {"dbt.stg_shopify__customers.run": "success"},
            {"try_number": 2, "upstream": ["dbt.stg_shopify__customers.run"]},
            "failed on a worker: producer_skipped",
        ),
        # ... and is skipped when its upstream failed again
        (
            {},
            {"dbt.stg_shopify__customers.run": "failed"},
            {"try_number": 2, "upstream": ["dbt.stg_shopify__customers.run"]},
            "skipped",
        ),
    ],
)
def test_what_the_task_becomes(results, states, options, expected):
    assert _kind(_run(results, states, **options)) == expected


def test_it_waits_while_the_build_runs_and_follows_the_result_when_it_lands():
    results: dict = {}
    states = {PRODUCER: "running"}

    async def land_later():
        await asyncio.sleep(0.1)
        results[(NODE, False)] = "success"

    async def scenario():
        from omnicanal.orchestration.dbt_watch import DbtNodeResultTrigger

        class Scripted(DbtNodeResultTrigger):
            async def _status(self, unique_id, tests):
                return results.get((unique_id, tests))

            async def _states(self, task_ids):
                return {t: states.get(t) for t in task_ids}

        trigger = Scripted(NODE, PRODUCER, poke_interval=0.01, max_poke_interval=0.02)
        trigger.task_instance = SimpleNamespace(
            dag_id="omnicanal_transform",
            task_id="dbt.stg_shopify__orders.run",
            run_id=f"run-{next(_runs)}",
            try_number=1,
        )
        asyncio.get_running_loop().create_task(land_later())
        async for event in trigger.run():
            return event

    event = asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    assert _kind(event) == "success here"
    assert UPSTREAM  # the scenarios above name the upstream model's task


def test_a_green_build_ends_every_task_without_reading_its_result():
    """Once `dbt build` has succeeded, every node it ran succeeded: the trigger ends green
    without an XCom read per task (the tail of a run)."""
    from omnicanal.orchestration.dbt_watch import DbtNodeResultTrigger

    class NoReads(DbtNodeResultTrigger):
        async def _status(self, unique_id, tests):
            raise AssertionError("read a node result after a green build")

        async def _states(self, task_ids):
            return {t: "success" for t in task_ids}

    trigger = NoReads(NODE, PRODUCER, tests=True, poke_interval=0.01, max_poke_interval=0.02)
    trigger.task_instance = SimpleNamespace(
        dag_id="omnicanal_transform",
        task_id="dbt.stg_shopify__orders.test",
        run_id=f"run-{next(_runs)}",
        try_number=1,
    )

    async def first():
        async for event in trigger.run():
            return event

    assert _kind(asyncio.run(asyncio.wait_for(first(), timeout=10))) == "success here"
