"""dbt from the CLI (``omnicanal dbt``) and under Airflow (the Cosmos task group).

Under Airflow, dbt runs through Cosmos in WATCHER mode: one producer task runs
``dbt build`` once, for the whole project, with the threads of OMNICANAL_DBT_THREADS;
every model and every model's tests keep a task of their own that reports its result
(started and, when green, ended in the triggerer: see
:mod:`omnicanal.orchestration.dbt_watch`). So the grid still says which model or test
failed, and clearing that task with its downstream re-runs just that part, while a run
costs about what plain dbt costs.

Measured with ``bench/airflow/run.py`` (LocalExecutor, two shared cores, the demo world
of 500 people: 18 models, 70 data tests, 14 unit tests; medians of the timed runs,
plain = ``omnicanal dbt build`` in the same minutes). Each row changes one thing from
the row above it; the machine was shared with other work, so only ratios taken in the
same minutes compare:

=====================================================  ==============  ===============
Cosmos configuration                                   DAG run / plain  note
=====================================================  ==============  ===============
LOCAL, DBT_RUNNER, a task per model and per model's    139 s / 9.8 s    issue 9, 41
tests, each a process importing Airflow and dbt        (14x)            tasks
WATCHER, DBT_RUNNER, consumers started in the          212 s / ~40 s    a 25-link chain,
triggerer but waiting on their upstream consumers      (~5x, warm-up)   ~3 s a link
+ consumers not waiting (trigger rule ``always``),     74 s / 32 s      dbtRunner hands
  Cosmos's reliable-retry Variable off                 (2.3x)           it every event
+ SUBPROCESS instead of DBT_RUNNER                     38 s / 19 s      35 triggers
                                                       (2.0x)           polling each 1-3 s
+ one read of the producer's state a second for all    31.3 s / 21.4 s  5000 people:
  triggers, each node's result every 5 s, default      (1.46x)          45.4 / 26.9 s
  heartbeats                                                            (1.69x)
+ each node's result every 15 s while dbt runs (each   29.5 s / 21.0 s  5000 people:
  green batch costs a dag-processor re-parse for its   (1.41x)          26.4 / 18.4 s
  success callbacks), unchanged DAG files re-parsed                     (1.43x)
  every 2 min, default scheduler loop
+ the producer records the sync models' Assets (no    30.1 s / 20.6 s  5000 people:
  worker at the end of a run), pushes only the XComs   (1.46x)          38.0 / 32.0 s
  that are read, computes no unsent OpenLineage                         (1.19x)
  events                                                                (machine at
                                                                        load 5-8)
=====================================================  ==============  ===============

The last row is what ships: ``.venv/bin/python bench/airflow/run.py --people 500 5000
--repeat 3`` (2026-11-29, medians of 3). Its run was timed while other work kept the two
cores busy (load 5 to 8, everything but the bench reniced to 15), so plain dbt took 20 s
where it takes 13 s on a quiet machine. The 10x world builds no slower
than the demo one: its models are small, and the identity models are incremental, so
dbt's fixed cost per node dominates both.

Cosmos's default WATCHER (consumers deferring from a worker, then resuming on one)
starts ~70 task processes for the 35 tasks; it was not run. The reliable-retry Variable
(``AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY``, set off in airflow_env) rewrote
every result so far after each of ~540 XCom pushes.

TestBehavior.BUILD is refused by WATCHER mode (the producer already builds); one task
group per layer would still start a process (and dbt's parse) per layer and show no
model. LoadMode.DBT_LS with Cosmos's cache (a Variable keyed by the project's files) is
kept over DBT_MANIFEST: parsing from the cache takes 0.03 s, a fresh clone needs no
manifest, and the tasks always match the models on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from omnicanal.channels import identity_sources_env
from omnicanal.config import Settings

DBT_PROFILE = "omnicanal"
DBT_TARGET = "warehouse"


#: What the pipeline's build leaves out: dbt's unit tests. A unit test checks a model's
#: SQL on rows its yml gives, never the warehouse's data, so each load would only repeat
#: the same answer (41 of the project's ~800 nodes, each compiled and run against
#: Postgres); they run where the SQL changes: an analyst's ``omnicanal dbt build`` or
#: ``dbt test``, and CI (tests/dbt). dbt's unit test docs advise the same.
PIPELINE_EXCLUDED_RESOURCE_TYPES = ("unit_test",)


#: The pipeline's data tests on an incremental model read only the rows the run wrote
#: (dbt_project/macros/tests/get_where_subquery.sql): the model's older rows were tested
#: by the runs that wrote them. A full refresh, analysts' builds and CI test every row.
PIPELINE_TEST_SCOPE = "new"

#: dbt's log file in the pipeline's runs: none. dbt writes every event, each query's SQL
#: too, to logs/dbt.log at debug level by default, through a rotating file handler whose
#: lock the threads queue on: in a no-op build of a 2,000-person world (py-spy, load 13)
#: 9.5 s of the threads' time went to writing it and 11.1 s to waiting for its lock, of
#: ~213 s of node time. Under Airflow that file lives in Cosmos's temporary copy of the
#: project and is deleted with it; what the task log shows (dbt's standard output: each
#: node's result, a failure's message and its SQL's path) is unchanged.
PIPELINE_LOG_LEVEL_FILE = "none"

#: Postgres options of every pipeline dbt session: no JIT. The models already set it
#: (a pre-hook), but dbt gives tests no hooks; compiling a test's plan cost more than
#: running it (200 compiled tests at 10k people: 5.8-6.2 s with JIT, 4.9 s without).
PIPELINE_PGOPTIONS = "-c jit=off"


def pipeline_env() -> dict[str, str]:
    """What every pipeline dbt run adds to its environment: the resource types it skips
    (dbt reads ``--exclude-resource-type`` from DBT_EXCLUDE_RESOURCE_TYPES), its tests'
    scope on incremental models (OMNICANAL_DBT_TEST_SCOPE), no Postgres JIT (libpq
    reads PGOPTIONS; options already in the environment are kept before it), no dbt log
    file (DBT_LOG_LEVEL_FILE), data tests that keep their warehouse connection for
    the next node, and data tests the warehouse's constraints answer not run (the dbt
    plugin ``dbt_omnicanal``; see :mod:`omnicanal.orchestration.dbt_connections` and
    :mod:`omnicanal.orchestration.dbt_proven_tests`)."""
    from omnicanal.orchestration.dbt_connections import KEEP_TEST_CONNECTIONS_ENV
    from omnicanal.orchestration.dbt_proven_tests import SKIP_PROVEN_TESTS_ENV

    options = " ".join(filter(None, (os.environ.get("PGOPTIONS", ""), PIPELINE_PGOPTIONS)))
    return {
        "DBT_EXCLUDE_RESOURCE_TYPES": " ".join(PIPELINE_EXCLUDED_RESOURCE_TYPES),
        "OMNICANAL_DBT_TEST_SCOPE": PIPELINE_TEST_SCOPE,
        "PGOPTIONS": options,
        "DBT_LOG_LEVEL_FILE": PIPELINE_LOG_LEVEL_FILE,
        KEEP_TEST_CONNECTIONS_ENV: "1",
        SKIP_PROVEN_TESTS_ENV: "1",
    }


def dbt_env(settings: Settings) -> dict[str, str]:
    """What dbt reads: the warehouse's parts and the threads (profiles.yml), and which
    staging models feed identity resolution (from the channel registry)."""
    from omnicanal.warehouse import url

    return {
        **url(settings).libpq_env(),
        **identity_sources_env(),
        "OMNICANAL_DBT_THREADS": str(settings.dbt_threads),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
        "DBT_PROFILES_DIR": str(settings.dbt_project_dir),
        "DBT_PROJECT_DIR": str(settings.dbt_project_dir),
    }


def dbt_executable() -> str:
    return str(Path(sys.executable).parent / "dbt")


def run_dbt(settings: Settings, args: list[str]) -> int:
    """Run the dbt CLI on the project with the warehouse's profile; returns its exit code."""
    env = {**os.environ, **dbt_env(settings)}
    return subprocess.run(
        [dbt_executable(), *args], env=env, cwd=settings.dbt_project_dir
    ).returncode


#: The Airflow connection the dbt tasks' profile comes from (set by airflow_env from
#: the warehouse URL, or by a data engineer in the UI or the environment).
WAREHOUSE_CONN_ID = "omnicanal_warehouse"

#: How often a consumer's trigger first looks for its node's result (it backs off to 4 s).
WATCH_POKE_SECONDS = 1


def _warehouse_profile_mapping():
    """Cosmos's Postgres mapping of the ``omnicanal_warehouse`` connection, password optional.

    Cosmos requires a password; the embedded warehouse (trust auth on 127.0.0.1) has
    none, so an empty one is passed instead of failing the task.
    """
    from cosmos.profiles import PostgresUserPasswordProfileMapping

    class WarehouseProfileMapping(PostgresUserPasswordProfileMapping):
        required_fields = ["host", "user", "dbname"]

        @property
        def mock_profile(self) -> dict:
            # dbt's Postgres profile requires the key even when parsing with mock values.
            return {**super().mock_profile, "password": ""}

        @property
        def env_vars(self) -> dict[str, str]:
            if self.get_dbt_value("password") is None:
                return {self.get_env_var_name("password"): ""}
            return super().env_vars

    # The threads are read when dbt runs (OMNICANAL_DBT_THREADS, as profiles.yml does).
    threads = "{{ env_var('OMNICANAL_DBT_THREADS', '2') | as_number }}"
    return WarehouseProfileMapping(
        conn_id=WAREHOUSE_CONN_ID, profile_args={"schema": "public", "threads": threads}
    )


def dbt_task_group(
    project_dir: Path,
    *,
    group_id: str = "dbt",
    model_outlets: dict[str, list] | None = None,
    default_args: dict | None = None,
):
    """The Cosmos task group that builds the dbt project, one task per model and its tests.

    Called while a DAG file is parsed: it reads no setting and changes no environment.
    The profile comes from the Airflow connection ``omnicanal_warehouse`` when a task
    runs; ``model_outlets`` adds Assets to the task that builds a model.
    """
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import (
        PRODUCER_WATCHER_TASK_ID,
        ExecutionMode,
        InvocationMode,
        LoadMode,
    )

    from omnicanal.orchestration.dbt_watch import quiet_producer, start_consumers_in_triggerer

    # Cosmos runs the `dbt` on PATH, which airflow_env puts first (the venv's), at
    # launch, not here.
    group = DbtTaskGroup(
        group_id=group_id,
        # A dbt failure is rarely transient: a retry would re-run the model at once, alone.
        default_args={"retries": 0, **(default_args or {})},
        project_config=ProjectConfig(
            dbt_project_path=project_dir,
            env_vars={**identity_sources_env(), **pipeline_env()},
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name=DBT_PROFILE,
            target_name=DBT_TARGET,
            profile_mapping=_warehouse_profile_mapping(),
        ),
        # One producer task runs `dbt build` (a dbt process, its JSON log read line by
        # line); every model and its tests keep a task that reports the producer's
        # result. The module docstring has the measurements behind this choice.
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER,
            invocation_mode=InvocationMode.SUBPROCESS,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_LS,
            enable_mock_profile=True,
            emit_datasets=False,
        ),
    )
    by_id = {t.task_id: t for t in group.dag.tasks if t.task_id.startswith(f"{group_id}.")}
    producer = by_id[f"{group_id}.{PRODUCER_WATCHER_TASK_ID}"]
    for model, outlets in (model_outlets or {}).items():
        for task_id in (f"{group_id}.{model}.run", f"{group_id}.{model}_run"):
            if task_id in by_id:
                by_id[task_id].outlets = [*by_id[task_id].outlets, *outlets]
                # A green build records them once, from the producer (see dbt_watch).
                producer.outlets = [*producer.outlets, *outlets]
    producer.on_execute_callback = [*_callbacks(producer.on_execute_callback), quiet_producer]
    start_consumers_in_triggerer(list(by_id.values()), producer.task_id, WATCH_POKE_SECONDS)
    return group


def _callbacks(callback) -> list:
    if callback is None:
        return []
    return list(callback) if isinstance(callback, list | tuple) else [callback]
