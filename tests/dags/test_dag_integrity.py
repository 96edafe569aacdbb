"""Every DAG file imports cleanly, documents itself and wires what the registry promises.

The DAGs are generated from the channel registry and the sync exposures, so these
tests compare them with both: one extract DAG per source updating one Asset per raw
table, the dbt DAG scheduled on those Assets and updating the sync models' Assets,
one activation DAG per destination scheduled on its sync models' Assets, and the
everything-now pipeline. Parsing must read no setting and change no environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omnicanal.activation.definitions import load_definitions
from omnicanal.channels import sources
from omnicanal.errors import ConfigError

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DBT_PROJECT_DIR = DAGS_DIR.parent / "dbt_project"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
LAYERS = {"extract", "transform", "activate"}


@pytest.fixture(scope="module")
def dagbag(pg_admin_url, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def _asset_names(condition) -> set[str]:
    """The asset names in a schedule (an Asset or an AssetAny/AssetAll of them)."""
    if hasattr(condition, "objects"):
        return {name for inner in condition.objects for name in _asset_names(inner)}
    return {condition.name}


def test_there_are_dag_files():
    assert DAG_FILES, "no DAG files found"


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors
    expected = {"omnicanal_pipeline", "omnicanal_transform"}
    expected |= {f"omnicanal_extract_{c.name}" for c in sources()}
    expected |= {
        f"omnicanal_activate_{d.destination}" for d in load_definitions(DBT_PROJECT_DIR).values()
    }
    assert set(dagbag.dags) == expected


def test_every_dag_has_docs_owner_and_layer_tags(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id} lacks doc_md"
        assert "omnicanal" in dag.tags, f"{dag_id} lacks the omnicanal tag"
        assert LAYERS & set(dag.tags), f"{dag_id} has no layer tag"
        assert dag.owner == "data-engineering", f"{dag_id} has owner {dag.owner!r}"


def test_one_extract_dag_per_source_updates_one_asset_per_raw_table(dagbag):
    for channel in sources():
        dag = dagbag.dags[f"omnicanal_extract_{channel.name}"]
        assert {"extract", channel.name} <= set(dag.tags)
        extract = dag.get_task(f"extract_{channel.name}")
        assert [o.name for o in extract.outlets] == channel.raw_tables()
        assert extract.upstream_task_ids == {"warehouse_up"}


def test_transform_runs_on_raw_assets_and_updates_the_sync_models_assets(dagbag):
    dag = dagbag.dags["omnicanal_transform"]
    raw = {table for channel in sources() for table in channel.raw_tables()}
    assert _asset_names(dag.timetable.asset_condition) == raw
    updated = {o.name for t in dag.tasks for o in t.outlets}
    models = {f"{d.schema}.{d.model}" for d in load_definitions(DBT_PROJECT_DIR).values()}
    assert models and updated == models
    # the Asset belongs to the task that builds the model, not to an unrelated one
    for definition in load_definitions(DBT_PROJECT_DIR).values():
        builder = dag.get_task(f"dbt.{definition.model}.run")
        assert [o.name for o in builder.outlets] == [f"{definition.schema}.{definition.model}"]


def test_the_dbt_build_leaves_unit_tests_to_ci(dagbag):
    """The producer's ``dbt build`` runs every model and data test of a load, not the unit
    tests (they check the SQL on fixed rows: the same answer on every load)."""
    from cosmos.constants import PRODUCER_WATCHER_TASK_ID

    producer = dagbag.dags["omnicanal_transform"].get_task(f"dbt.{PRODUCER_WATCHER_TASK_ID}")
    assert producer.env["DBT_EXCLUDE_RESOURCE_TYPES"].split() == ["unit_test"]
    # its data tests read only the rows an incremental model's run wrote, without JIT
    assert producer.env["OMNICANAL_DBT_TEST_SCOPE"] == "new"
    assert "-c jit=off" in producer.env["PGOPTIONS"]


def test_one_activation_dag_per_destination_on_its_sync_models(dagbag):
    definitions = load_definitions(DBT_PROJECT_DIR).values()
    for destination in {d.destination for d in definitions}:
        mine = [d for d in definitions if d.destination == destination]
        dag = dagbag.dags[f"omnicanal_activate_{destination}"]
        assert _asset_names(dag.timetable.asset_condition) == {
            f"{d.schema}.{d.model}" for d in mine
        }
        assert set(dag.task_ids) == {f"sync_{d.name}" for d in mine}


def test_asset_chain_starts_paused_and_the_pipeline_does_not(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.is_paused_upon_creation is (dag_id != "omnicanal_pipeline"), dag_id


def test_pipeline_wiring(dagbag):
    dag = dagbag.dags["omnicanal_pipeline"]
    ids = set(dag.task_ids)
    assert {"warehouse_up", "extract_shopify", "sync_mailchimp__recent_buyers"} <= ids
    # Cosmos renders one task per dbt model (and its tests) inside the dbt group.
    dbt_runs = {t for t in ids if t.startswith("dbt.") and t.endswith(".run")}
    for model in (
        "stg_shopify__customers",
        "stg_shopify__orders",
        "dim_customers",
        "sync_mailchimp__recent_buyers",
    ):
        assert f"dbt.{model}.run" in dbt_runs, sorted(dbt_runs)
    for channel in sources():
        assert dag.get_task(f"extract_{channel.name}").upstream_task_ids == {"warehouse_up"}
    sync = dag.get_task("sync_mailchimp__recent_buyers")
    assert any(t.startswith("dbt.") for t in sync.upstream_task_ids)
    # it updates no Asset: running it must not set the asset-scheduled DAGs off again
    assert not [t.task_id for t in dag.tasks if t.outlets]


def test_parsing_reads_no_setting_and_changes_no_environment(pg_admin_url, airflow_db, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from omnicanal.orchestration import tasks

    monkeypatch.setenv("OMNICANAL_SANDBOX_PORT", "eighty")
    monkeypatch.setenv("OMNICANAL_WAREHOUSE_URL", "mysql://nowhere/db")
    before = dict(os.environ)
    bag = DagBag(dag_folder=str(DAGS_DIR))
    assert bag.import_errors == {}, bag.import_errors
    assert dict(os.environ) == before
    # ... and the task that needs the settings fails, naming the variable
    with pytest.raises(ConfigError) as err:
        tasks.extract("shopify")
    assert err.value.setting in ("OMNICANAL_SANDBOX_PORT", "OMNICANAL_WAREHOUSE_URL")
    assert err.value.setting in str(err.value)
