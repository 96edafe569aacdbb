"""Every DAG file imports cleanly, documents itself and wires what it promises."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dagbag(pg_admin_url, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_there_are_dag_files():
    assert DAG_FILES, "no DAG files found"


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors
    assert len(dagbag.dags) >= len(DAG_FILES)


def test_every_dag_has_docs_and_tags(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id} lacks doc_md"
        assert "omnicanal" in dag.tags, f"{dag_id} lacks the omnicanal tag"


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
    extract = dag.get_task("extract_shopify")
    assert extract.upstream_task_ids == {"warehouse_up"}
    sync = dag.get_task("sync_mailchimp__recent_buyers")
    assert any(t.startswith("dbt.") for t in sync.upstream_task_ids)
