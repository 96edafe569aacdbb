"""dbt under the scheduler vs plain dbt: the transform DAG on a real Airflow, in one run.

    .venv/bin/python bench/airflow/run.py                     # demo world and 10x
    .venv/bin/python bench/airflow/run.py --people 500 --repeat 3

For each world size: a fresh warehouse database on the embedded server, the sandbox
world served in this process, `omnicanal extract` of every source into the raw tables, then
(untimed) one `omnicanal dbt build` so both contenders rebuild existing relations. Then,
``--repeat`` times, alternately: `omnicanal dbt build` (wall time of the command), and
the `omnicanal_transform` DAG triggered through the REST API v2 of an Airflow started
with LocalExecutor (api-server, scheduler, dag-processor, triggerer; see
omnicanal.orchestration.airflow_server), timed from the trigger call until the API
reports the run successful, and from the run's start_date to its end_date.

The goal (issue 9) is ratio <= 1.5: the DAG's wall time over plain dbt's. Each timed
run holds the exclusive lock on /tmp/omnicanal-bench.lock. Prints progress lines; the
last line is one JSON object with every figure and ratio.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))  # bench/

from benchlock import bench_lock  # noqa: E402

BIN = Path(sys.executable).parent
DAG_ID = "omnicanal_transform"
BENCH_HOME = PROJECT / ".omnicanal" / "bench" / "airflow"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _free_port() -> int:
    from omnicanal.orchestration.airflow_server import free_port

    return free_port()


def prepare_world(people: int, seed: int, stack: ExitStack):
    """Fresh database, sandbox world, extract; returns the settings pointing at it."""
    from omnicanal import warehouse
    from omnicanal.channels import sources
    from omnicanal.demo import start_sandbox, start_webhooks
    from omnicanal.extract import run_extract
    from omnicanal.settings import get_settings

    base = get_settings()
    server = warehouse.up(base)
    db = warehouse.recreate_database(server, f"omnicanal_bench_airflow_{people}")
    os.environ["OMNICANAL_WAREHOUSE_URL"] = db.url()
    settings = get_settings()
    started = time.monotonic()
    _, server = start_sandbox(settings, people, seed, stack)
    # a webhook-fed source (WhatsApp) has nothing to extract until its platform posts to
    # the receiver: the demo's receiver and deliveries
    start_webhooks(settings, server, stack)
    say(f"world of {people} people served ({time.monotonic() - started:.1f}s)")
    for source in sources():
        report = run_extract(settings, source.name, full_refresh=True)
        say(f"extracted {source.name}: {report.rows} ({report.seconds:.1f}s)")
    return settings


def plain_dbt_build() -> float:
    """Wall time of `omnicanal dbt build` (the CLI verb a data engineer runs)."""
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "omnicanal"), "dbt", "build"], capture_output=True, text=True, cwd=PROJECT
    )
    took = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"`omnicanal dbt build` failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return took


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def airflow_run(cluster, timeout: float) -> dict:
    """Trigger the transform DAG once; its wall time and what its tasks did."""
    api = cluster.api
    started = time.monotonic()
    run_id = api.trigger(DAG_ID)
    state = api.wait_for_run(DAG_ID, run_id, timeout=timeout, poll=0.5)
    wall = time.monotonic() - started
    run = api.run(DAG_ID, run_id)
    tis = api.task_instances(DAG_ID, run_id)
    states: dict[str, int] = {}
    for ti in tis:
        states[ti["state"]] = states.get(ti["state"], 0) + 1
    producer = next((ti for ti in tis if ti["task_id"].endswith("dbt_producer_watcher")), None)
    figures = {
        "state": state,
        "wall_s": round(wall, 2),
        "run_s": round(_seconds(run["start_date"], run["end_date"]), 2),
        "tasks": len(tis),
        "task_states": states,
    }
    if producer and producer.get("start_date") and producer.get("end_date"):
        figures["producer_s"] = round(_seconds(producer["start_date"], producer["end_date"]), 2)
        figures["queued_to_producer_start_s"] = round(
            _seconds(run["start_date"], producer["start_date"]), 2
        )
    if state != "success":
        failed = [ti["task_id"] for ti in tis if ti["state"] not in ("success", "skipped")]
        figures["not_successful"] = failed
    return figures


def check_retry(cluster, settings, timeout: float) -> dict:
    """A broken model shows as its own failed task, and clearing it (with its
    downstream) re-runs only that part: hide a raw table, run, restore, clear."""
    from omnicanal import warehouse

    api = cluster.api
    with warehouse.connect(settings, autocommit=True) as conn:
        conn.execute("alter table raw_shopify.orders rename to orders__hidden_by_bench")
    try:
        run_id = api.trigger(DAG_ID)
        state = api.wait_for_run(DAG_ID, run_id, timeout=timeout)
    finally:
        with warehouse.connect(settings, autocommit=True) as conn:
            conn.execute("alter table raw_shopify.orders__hidden_by_bench rename to orders")
    first = {ti["task_id"]: ti["state"] for ti in api.task_instances(DAG_ID, run_id)}
    failed = sorted(t for t, s in first.items() if s == "failed")
    say(f"broken run {state}; failed: {failed}")
    say(f"upstream_failed: {sorted(t for t, s in first.items() if s == 'upstream_failed')}")
    # What a data engineer clears: the failed tasks (the producer among them skips on
    # its second try, Cosmos runs no second build) with their downstream.
    started = time.monotonic()
    api.post(
        f"dags/{DAG_ID}/clearTaskInstances",
        {
            "dag_run_id": run_id,
            "task_ids": failed,
            "include_downstream": True,
            "only_failed": False,
            "reset_dag_runs": True,
            "dry_run": False,
        },
    )
    time.sleep(2)
    second_state = api.wait_for_run(DAG_ID, run_id, timeout=timeout)
    tis = api.task_instances(DAG_ID, run_id)
    rerun = sorted(ti["task_id"] for ti in tis if (ti.get("try_number") or 0) > 1)
    untouched = sorted(ti["task_id"] for ti in tis if (ti.get("try_number") or 0) <= 1)
    say(f"after clearing {failed}: run {second_state} in {time.monotonic() - started:.0f}s")
    say(f"re-ran alone: {rerun}")
    return {
        "broken_run_state": state,
        "failed_tasks": failed,
        "cleared": failed,
        "states_after_clear": {ti["task_id"]: ti["state"] for ti in tis},
        "state_after_clear": second_state,
        "retry_s": round(time.monotonic() - started, 1),
        "tasks_rerun": rerun,
        "tasks_not_rerun": untouched,
    }


def bench_size(
    people: int, seed: int, repeat: int, timeout: float, retry_check: bool = False
) -> dict:
    from omnicanal.orchestration.airflow_server import AirflowCluster, drop_metadata_db

    with ExitStack() as stack:
        settings = prepare_world(people, seed, stack)
        say("warm-up `omnicanal dbt build` (untimed)")
        plain_dbt_build()
        home = BENCH_HOME / f"airflow-{people}"
        drop_metadata_db(settings, home)
        say("starting Airflow (api-server, scheduler, dag-processor, triggerer)")
        started = time.monotonic()
        cluster = stack.enter_context(AirflowCluster(settings, home=home, parallelism=4))
        say(f"Airflow healthy at {cluster.url} ({time.monotonic() - started:.1f}s)")
        cluster.api.wait_for_dags([DAG_ID], timeout=600)
        errors = cluster.api.import_errors()
        if errors:
            say(f"import errors: {errors}")
        cluster.api.unpause(DAG_ID)
        say(f"{DAG_ID} parsed ({time.monotonic() - started:.1f}s after start)")
        # One untimed run: the first task process of a fresh deployment pays one-off
        # costs (the api-server's first Execution API calls, Cosmos's dbt ls cache).
        say("warm-up DAG run (untimed)")
        warm = airflow_run(cluster, timeout)
        say(f"warm-up run: {json.dumps(warm)}")
        plain, dags = [], []
        for i in range(repeat):
            with bench_lock():
                plain.append(round(plain_dbt_build(), 2))
            say(f"plain dbt build #{i + 1}: {plain[-1]:.1f}s")
            with bench_lock():
                dags.append(airflow_run(cluster, timeout))
            say(f"DAG run #{i + 1}: {json.dumps(dags[-1])}")
        retry = None
        if retry_check:
            try:
                retry = check_retry(cluster, settings, timeout)
            except Exception as exc:  # the timings above still count
                retry = {"error": f"{type(exc).__name__}: {exc}"}
                say(f"retry check failed: {retry['error']}")
    if not dags:  # --repeat 0: only the retry check
        return {"people": people, **({"retry_check": retry} if retry else {})}
    plain_s = statistics.median(plain)
    wall_s = statistics.median(d["wall_s"] for d in dags)
    run_s = statistics.median(d["run_s"] for d in dags)
    return {
        "people": people,
        "plain_dbt_build_s": plain,
        "dag_runs": dags,
        "median_plain_s": plain_s,
        "median_dag_wall_s": wall_s,
        "median_dag_run_s": run_s,
        "ratio_wall": round(wall_s / plain_s, 3),
        "ratio_run": round(run_s / plain_s, 3),
        "all_success": all(d["state"] == "success" for d in dags),
        **({"retry_check": retry} if retry else {}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", nargs="*", type=int, default=[500, 5000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument(
        "--check-retry",
        action="store_true",
        help="after timing the first size, break a model, then clear its task: which "
        "tasks fail, and which re-run",
    )
    args = parser.parse_args()

    # A home of its own: its embedded warehouse, sandbox state and Airflow homes.
    os.environ["OMNICANAL_HOME"] = str(BENCH_HOME)
    os.environ["OMNICANAL_SANDBOX_PORT"] = str(_free_port())
    # its receiver on a port of its own: on the default one, a demo would find it
    os.environ["OMNICANAL_WEBHOOKS_PORT"] = str(_free_port())
    os.environ.pop("OMNICANAL_WAREHOUSE_URL", None)
    BENCH_HOME.mkdir(parents=True, exist_ok=True)

    # Stopping the bench (Ctrl-C, or SIGTERM; a background job ignores SIGINT) must stop
    # the Airflow it started: raise so the context managers run.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    from omnicanal import warehouse
    from omnicanal.settings import get_settings

    if not warehouse.is_running(get_settings()):
        atexit.register(warehouse.down, get_settings())

    results: dict = {"goal_ratio": 1.5, "cpus": os.cpu_count(), "sizes": {}}
    for people in args.people:
        say(f"== world of {people} people")
        results["sizes"][str(people)] = figures = bench_size(
            people,
            args.seed,
            args.repeat,
            args.timeout,
            retry_check=args.check_retry and people == args.people[0],
        )
        os.environ.pop("OMNICANAL_WAREHOUSE_URL", None)
        if "median_plain_s" not in figures:
            continue
        say(
            f"{people} people: plain {figures['median_plain_s']:.1f}s, DAG "
            f"{figures['median_dag_wall_s']:.1f}s wall ({figures['ratio_wall']:.2f}x), "
            f"run {figures['median_dag_run_s']:.1f}s ({figures['ratio_run']:.2f}x)"
        )
    timed = [s for s in results["sizes"].values() if "ratio_wall" in s]
    results["goal_met"] = bool(timed) and all(
        s["ratio_wall"] <= results["goal_ratio"] and s["all_success"] for s in timed
    )
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
