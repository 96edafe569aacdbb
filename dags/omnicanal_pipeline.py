"""
### omnicanal pipeline: extract → model → activate

One run takes the customers and orders of the online store (Shopify, or the sandbox
that emulates it) into the warehouse, builds the dbt models (one Airflow task per
model and its tests, by Astronomer Cosmos) and pushes each dbt-defined segment to its
destination, sending only what changed.

- **warehouse_up** makes sure the warehouse answers (starts the embedded one).
- **extract_shopify** runs `tap-shopify | target-warehouse` into `raw_shopify.*`,
  incremental from the state kept in the warehouse; records that break their schema
  are quarantined in `raw_shopify._quarantine` with the reason, the rest loads.
- **dbt** builds staging, marts and the `sync_*` models.
- **sync_<name>** runs `omnicanal sync run <name>` for each sync exposure.

Settings come from the environment (`OMNICANAL_*`, see the README); the same steps
are CLI verbs: `omnicanal extract shopify`, `omnicanal dbt build`, `omnicanal sync run`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, task
from cosmos import DbtTaskGroup

from omnicanal.activation.definitions import load_definitions
from omnicanal.config import get_settings
from omnicanal.orchestration import tasks
from omnicanal.orchestration.dbt import cosmos_configs

settings = get_settings()

with DAG(
    dag_id="omnicanal_pipeline",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["omnicanal"],
    default_args={"retries": 1},
) as dag:

    @task
    def warehouse_up() -> str:
        return tasks.warehouse_up()

    @task(outlets=[Asset(f"raw_shopify.{stream}") for stream in ("customers", "orders")])
    def extract_shopify() -> dict:
        return tasks.extract("shopify")

    dbt = DbtTaskGroup(group_id="dbt", default_args={"retries": 0}, **cosmos_configs(settings))

    syncs = [
        task(task_id=f"sync_{name}")(tasks.sync)(name)
        for name in sorted(load_definitions(settings.dbt_project_dir))
    ]

    warehouse_up() >> extract_shopify() >> dbt >> syncs
