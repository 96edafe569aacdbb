"""The DAGs, built from the channel registry and the sync exposures.

DAG files in ``dags/`` only call these builders, so what a DAG holds is decided here,
once, and a new channel gets its DAGs without touching a DAG file:

- ``omnicanal_extract_<source>``: one per channel with a source; its task runs the tap
  into ``raw_<source>.*`` and updates one Asset per raw table;
- ``omnicanal_transform``: dbt through Cosmos, scheduled when any raw table changes;
  the task of each ``sync_*`` model updates that model's Asset;
- ``omnicanal_activate_<destination>``: one per destination with syncs, scheduled when
  any of its sync models changes; one task per sync;
- ``omnicanal_pipeline``: everything now, in order (extract every source, dbt, every
  sync), for the demo and for backfills. It updates no Asset, so running it does not
  set the asset-scheduled DAGs off a second time.

Nothing here reads the settings or changes the environment: that happens when a task
runs (``omnicanal.orchestration.tasks``), so a malformed variable fails the task that
needs it, naming the variable, and every DAG still imports. The asset-scheduled DAGs
start paused: a data engineer turns the chain on; the pipeline DAG starts unpaused so
the demo and ``make ui`` can run it at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, AssetAny, task

from omnicanal.activation.definitions import ACTIVATION_SCHEMA, SyncDefinition, load_definitions
from omnicanal.channels import sources
from omnicanal.channels.channel import Channel
from omnicanal.orchestration import tasks
from omnicanal.orchestration.assets import table_asset

PIPELINE_DAG = "omnicanal_pipeline"
TRANSFORM_DAG = "omnicanal_transform"
OWNER = "data-engineering"
START = datetime(2026, 1, 1)


def dbt_project_dir(dags_file: str) -> Path:
    """The dbt project beside the DAG folder that holds ``dags_file``."""
    return Path(dags_file).resolve().parents[1] / "dbt_project"


def _default_args(**extra) -> dict:
    return {"owner": OWNER, "retries": 1, "retry_delay": timedelta(seconds=30), **extra}


def _raw_assets(channel: Channel) -> list:
    return [table_asset(channel.raw_schema, stream) for stream in channel.source.streams]


def _sync_asset(definition: SyncDefinition):
    return table_asset(definition.schema, definition.model)


def _warehouse_task():
    return task(task_id="warehouse_up")(tasks.warehouse_up)()


def _extract_task(channel: Channel, outlets: list):
    return task(task_id=f"extract_{channel.name}", outlets=outlets)(tasks.extract)(channel.name)


def _sync_task(definition: SyncDefinition):
    return task(task_id=f"sync_{definition.name}")(tasks.sync)(definition.name)


def extract_dag(channel: Channel) -> DAG:
    doc = f"""
### Extract {channel.title}

Runs `{channel.source.tap} | target-warehouse` into `{channel.raw_schema}.*`
({channel.source.delivery}), incremental from the Singer state kept in the warehouse;
records that break their schema are quarantined in `{channel.raw_schema}._quarantine`
with the reason, the rest loads. Updates one Asset per raw table
({", ".join(f"`{t}`" for t in channel.raw_tables())}), which schedules
`{TRANSFORM_DAG}`. The same step is `omnicanal extract {channel.name}`.
"""
    with DAG(
        dag_id=f"omnicanal_extract_{channel.name}",
        doc_md=doc,
        schedule=channel.source.schedule,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=True,
        tags=["omnicanal", "extract", channel.name],
        default_args=_default_args(),
    ) as dag:
        warehouse = _warehouse_task()
        warehouse >> _extract_task(channel, _raw_assets(channel))
    return dag


def transform_dag(project_dir: Path) -> DAG:
    from omnicanal.orchestration.dbt import dbt_task_group

    raw = [asset for channel in sources() for asset in _raw_assets(channel)]
    definitions = load_definitions(project_dir).values()
    doc = f"""
### Transform: dbt

Builds the dbt project (staging per source, identity resolution, the customer marts and
the `sync_*` activation models), one Airflow task per model and its tests (Astronomer
Cosmos), whenever any raw table changes. The task of each sync model updates its Asset,
which schedules the activation DAG of its destination. The same step is
`omnicanal dbt build`.

Scheduled on: {", ".join(f"`{a.name}`" for a in raw)}.
"""
    with DAG(
        dag_id=TRANSFORM_DAG,
        doc_md=doc,
        schedule=AssetAny(*raw),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=True,
        tags=["omnicanal", "transform"],
        default_args=_default_args(retries=0),
    ) as dag:
        dbt_task_group(
            project_dir,
            group_id="dbt",
            model_outlets={d.model: [_sync_asset(d)] for d in definitions},
        )
    return dag


def activation_dags(project_dir: Path) -> list[DAG]:
    by_destination: dict[str, list[SyncDefinition]] = {}
    for definition in load_definitions(project_dir).values():
        by_destination.setdefault(definition.destination, []).append(definition)
    dags = []
    for destination, definitions in sorted(by_destination.items()):
        models = ", ".join(f"`{ACTIVATION_SCHEMA}.{d.model}`" for d in definitions)
        doc = f"""
### Activate: {destination}

Sends each sync to {destination}, only what changed since the last run (the ledger in
the warehouse remembers what the destination holds), when any of its sync models
changes: {models}. The same step is `omnicanal sync run <name>`. Each task's log ends
with its run's `sync_runs` row (counts, requests and achieved rate, the destination's
stats, the error), as `omnicanal sync status` shows it.
"""
        with DAG(
            dag_id=f"omnicanal_activate_{destination}",
            doc_md=doc,
            schedule=AssetAny(*(_sync_asset(d) for d in definitions)),
            start_date=START,
            catchup=False,
            max_active_runs=1,
            is_paused_upon_creation=True,
            tags=["omnicanal", "activate", destination],
            default_args=_default_args(),
        ) as dag:
            for definition in definitions:
                _sync_task(definition)
        dags.append(dag)
    return dags


def pipeline_dag(project_dir: Path) -> DAG:
    from omnicanal.orchestration.dbt import dbt_task_group

    channels = sources()
    definitions = sorted(load_definitions(project_dir).values(), key=lambda d: d.name)
    doc = f"""
### omnicanal pipeline: everything now

One run extracts every source ({", ".join(c.title for c in channels)}) into the
warehouse, builds the dbt models (one Airflow task per model and its tests, by
Astronomer Cosmos) and pushes each dbt-defined segment to its destination, sending only
what changed. For the demo and for backfills; day to day, the extract, transform and
activate DAGs run the same steps on Airflow Assets.

- **warehouse_up** makes sure the warehouse answers (starts the embedded one).
- **extract_&lt;source&gt;** runs the source's tap into `raw_<source>.*`, incremental
  from the state kept in the warehouse; bad records are quarantined with the reason.
- **dbt** builds staging, identity, marts and the `sync_*` models.
- **sync_&lt;name&gt;** runs `omnicanal sync run <name>` for each sync exposure; its
  log ends with the run's `sync_runs` row.

Settings come from the environment (`OMNICANAL_*`, see the README) when a task runs.
"""
    with DAG(
        dag_id=PIPELINE_DAG,
        doc_md=doc,
        schedule=None,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=False,
        tags=["omnicanal", "extract", "transform", "activate"],
        default_args=_default_args(),
    ) as dag:
        warehouse = _warehouse_task()
        extracts = [_extract_task(channel, []) for channel in channels]
        dbt = dbt_task_group(project_dir, group_id="dbt", default_args={"retries": 0})
        syncs = [_sync_task(definition) for definition in definitions]
        warehouse >> extracts
        extracts >> dbt
        dbt >> syncs
    return dag
