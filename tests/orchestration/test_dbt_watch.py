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
    # A sync model's task keeps its Asset (a retry that rebuilds it alone records it) and
    # the producer carries them all, so a green build records each once, from a worker.
    producer = transform_dag.get_task("dbt.dbt_producer_watcher")
    with_assets = [t for t in consumers if t.outlets]
    assert with_assets
    assert {o.name for o in producer.outlets} == {o.name for t in with_assets for o in t.outlets}
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


def test_the_producer_pushes_results_and_compiled_sql_but_not_every_dbt_event(transform_dag):
    """quiet_producer (the producer's on_execute_callback) drops the per-event XComs no
    one reads; the node results the consumers read still reach XCom."""
    import json
    from types import SimpleNamespace

    from cosmos.operators._watcher import base

    from omnicanal.orchestration.dbt_watch import COSMOS_ORIGINALS, _status_key, quiet_producer

    producer = transform_dag.get_task("dbt.dbt_producer_watcher")
    assert quiet_producer in producer.on_execute_callback

    class Ti:
        def __init__(self):
            self.pushed = {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

        def xcom_pull(self, key):
            return self.pushed.get(key)

    def line(name, status):
        node = {"unique_id": "model.omnicanal.m", "node_status": status, "resource_type": "model"}
        return json.dumps({"info": {"name": name, "msg": ""}, "data": {"node_info": node}})

    # A dag.test() in this process (the end-to-end test) may have quieted Cosmos already.
    current = base._process_dbt_log_event
    base._process_dbt_log_event = COSMOS_ORIGINALS.get("_process_dbt_log_event", current)
    try:
        ti = Ti()
        kwargs = {"context": {"ti": ti}}
        base.store_dbt_resource_status_from_log(line("NodeStart", "started"), kwargs)
        noisy = dict(ti.pushed)
        assert noisy, "Cosmos no longer pushes an XCom per dbt event: drop quiet_producer"
        task = SimpleNamespace(calculate_openlineage_events_completes=None)
        quiet_producer({"task": task})
        # No OpenLineage provider here to send lineage: Cosmos is told there is no processor.
        assert task.calculate_openlineage_events_completes("env", "dir", ["dbt"]) is False
        ti = Ti()
        kwargs = {"context": {"ti": ti}}
        base.store_dbt_resource_status_from_log(line("NodeStart", "started"), kwargs)
        assert ti.pushed == {}
        base.store_dbt_resource_status_from_log(line("NodeFinished", "success"), kwargs)
        assert ti.pushed[_status_key("model.omnicanal.m", False)]["status"] == "success"
    finally:
        base._process_dbt_log_event = current
