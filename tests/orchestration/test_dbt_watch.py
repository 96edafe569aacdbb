"""The dbt task group's shape: one producer, per-model consumers started in the triggerer.

The speed of this shape is measured by bench/airflow (not here); these tests pin what
the speed depends on, so a refactor cannot quietly bring back a worker process per
model or a chain of consumers waiting on each other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def transform_dag(pg_admin_url, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_DIR / "omnicanal_transform.py"))
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags["omnicanal_transform"]


def test_one_producer_runs_dbt_build(transform_dag):
    from cosmos.operators.watcher import DbtProducerWatcherOperator

    producers = [t for t in transform_dag.tasks if isinstance(t, DbtProducerWatcherOperator)]
    assert [t.task_id for t in producers] == ["dbt.dbt_producer_watcher"]
    assert producers[0].retries == 0


def test_consumers_start_in_the_triggerer_and_keep_their_edges(transform_dag):
    from cosmos.operators.watcher import DbtConsumerWatcherSensor

    from omnicanal.orchestration.dbt_watch import TRIGGER_CLASSPATH

    consumers = [t for t in transform_dag.tasks if isinstance(t, DbtConsumerWatcherSensor)]
    assert len(consumers) >= 20
    assert all(t.start_from_trigger for t in consumers)
    for task in consumers:
        args = task.start_trigger_args
        assert args.trigger_cls == TRIGGER_CLASSPATH
        assert args.next_method == "execute_complete"
        assert task.trigger_rule == "always"
        assert args.trigger_kwargs["upstream"] == sorted(
            t for t in task.upstream_task_ids if t != "dbt.dbt_producer_watcher"
        )
        # Only a task that updates an Asset (a sync model's) needs a worker when green.
        assert args.trigger_kwargs["finish_on_worker"] == bool(task.outlets)
    assert any(t.outlets for t in consumers)
    # The dbt graph is still the Airflow graph: a model's test waits on its model.
    test = transform_dag.get_task("dbt.stg_shopify__orders.test")
    assert "dbt.stg_shopify__orders.run" in test.upstream_task_ids


def test_trigger_serializes_to_its_own_arguments():
    from omnicanal.orchestration.dbt_watch import TRIGGER_CLASSPATH, DbtNodeResultTrigger

    trigger = DbtNodeResultTrigger(
        "model.omnicanal.dim_customers", "dbt.dbt_producer_watcher", ["dbt.a.test"], tests=True
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == TRIGGER_CLASSPATH
    assert DbtNodeResultTrigger(**kwargs).serialize() == (classpath, kwargs)
