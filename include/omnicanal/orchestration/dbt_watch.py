"""Per-model dbt tasks that cost no worker process: Cosmos's watcher consumers, started
in the triggerer.

In Cosmos's WATCHER mode one producer task runs ``dbt build`` and records each node's
result in its XComs; every model (and every model's tests) keeps its own task, a
consumer that reports that result. Cosmos starts each consumer on a worker, which pokes
once and defers to the triggerer, then resumes on a worker again to finish: two task
processes per model, each importing Airflow and parsing the DAG file, ~70 process starts
for this project's 35 tasks, competing with dbt for two cores.

Here each consumer starts in the triggerer (Airflow's ``start_from_trigger``) and a
successful or skipped node ends there too (``TaskSuccessEvent``): a green run starts one
task process, the producer's. The consumers keep their dbt dependencies as Airflow
edges, for the graph and for clearing a task with its downstream, but with trigger rule
``always``: a chain of triggerer-started tasks costs ~3 s per link (the triggerer's and
the scheduler's one-second loops), 75 s for this project's 25-deep chain of models and
tests, where reading each node's result as soon as dbt reports it costs one link.

What needs a worker goes to one, through Cosmos's own ``execute_complete``:

- a failed model or test fails its task there, with dbt's message in its log; the
  models dbt skipped because of it, and the tests of a failed model, end ``skipped``
  (the triggerer can end a task only as success, failed or skipped), so the grid
  points at the one task that broke;
- a retry or a manual clear (try 2 and later) waits until its upstream tasks have
  succeeded, then Cosmos's fallback runs ``dbt run``/``dbt test`` for just that model:
  clearing a failed task with its downstream re-runs only that part, in order.
  ``bench/airflow/run.py --check-retry`` hides ``raw_shopify.orders``: the run fails with
  red on the producer, ``stg_shopify__orders.run`` and the test task holding the
  source's tests, the rest skipped; clearing the three (the producer skips its second
  try) re-ran them and the 30 tasks downstream one by one, ~15 s each (a dbt process
  apiece), left ``stg_shopify__customers.run`` alone, and the run ended green.

Asset events (the ``sync_*`` models', which schedule the activation DAGs) are recorded
when a task succeeds on a worker, not when the triggerer ends it. So the producer
carries the sync models' Assets too (see ``dbt_task_group``): a green build records them
once, when ``dbt build`` succeeds, and the sync models' consumers end in the triggerer
like the others, with no worker process at the end of the run (it cost ~3 s of a ~18 s
run). A sync model rebuilt alone by a retry or a clear succeeds on a worker and records
its own event. A build with any failing model or test records none: no segment leaves
the warehouse from a build whose tests failed.

The producer also keeps only the XComs someone reads (``quiet_producer``).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import (
    BaseTrigger,
    StartTriggerArgs,
    TaskSkippedEvent,
    TaskSuccessEvent,
    TriggerEvent,
)

TRIGGER_CLASSPATH = f"{__name__}.DbtNodeResultTrigger"

# Status values Cosmos's producer records (dbt's node statuses; tests aggregated).
_SUCCESS = {"success", "pass", "warn"}
_FAILED = {"failed", "fail", "error", "runtime error"}
_SKIPPED = {"skipped"}
# dbt reports a node it skipped because an upstream node failed as "skipped"; Cosmos's
# producer records it as "failed", a status dbt itself never uses (it says "error" or
# "fail"), so that its consumer does not end green.
_SKIPPED_FOR_UPSTREAM = "failed"
_PRODUCER_DONE = {"success", "failed", "skipped", "upstream_failed", "removed"}
_UPSTREAM_OK = {"success"}
_UPSTREAM_BROKEN = {"failed", "upstream_failed", "skipped", "removed"}

# The producer's state per (dag, run, producer task), shared by the triggers of a run
# that run in the same triggerer: when it was read (event-loop time) and what it was.
_PRODUCER_STATES: dict[tuple[str, str, str], tuple[float, str | None]] = {}
_PRODUCER_LOCKS: dict[tuple[str, str, str], asyncio.Lock] = {}


def _status_key(unique_id: str, tests: bool) -> str:
    """The XCom key under which Cosmos's producer records a node's (or its tests') result."""
    from cosmos.operators._watcher.aggregation import get_tests_status_xcom_key
    from cosmos.operators._watcher.state import get_status_xcom_key

    return get_tests_status_xcom_key(unique_id) if tests else get_status_xcom_key(unique_id)


class DbtNodeResultTrigger(BaseTrigger):
    """Waits for the producer's result for one dbt node; ends the task when it can.

    The dag, run and try come from the task instance the triggerer attaches, so the
    trigger's arguments are static and fit ``start_trigger_args``.
    """

    def __init__(
        self,
        unique_id: str,
        producer_task_id: str,
        upstream: list[str] | None = None,
        tests: bool = False,
        poke_interval: float = 1.0,
        max_poke_interval: float = 15.0,
    ) -> None:
        super().__init__()
        self.unique_id = unique_id
        self.producer_task_id = producer_task_id
        self.upstream = list(upstream or [])
        self.tests = tests
        self.poke_interval = poke_interval
        self.max_poke_interval = max_poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            TRIGGER_CLASSPATH,
            {
                "unique_id": self.unique_id,
                "producer_task_id": self.producer_task_id,
                "upstream": self.upstream,
                "tests": self.tests,
                "poke_interval": self.poke_interval,
                "max_poke_interval": self.max_poke_interval,
            },
        )

    async def _xcom(self, key: str) -> Any:
        from airflow.sdk.execution_time.xcom import XCom
        from asgiref.sync import sync_to_async

        ti = self.task_instance
        return await sync_to_async(XCom.get_one)(
            run_id=ti.run_id,
            key=key,
            task_id=self.producer_task_id,
            dag_id=ti.dag_id,
            map_index=-1,
        )

    async def _states(self, task_ids: list[str]) -> dict[str, str | None]:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
        from asgiref.sync import sync_to_async

        ti = self.task_instance
        states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
            dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id]
        )
        found = states.get(ti.run_id, {})
        return {t: (None if found.get(t) is None else str(found[t])) for t in task_ids}

    async def _status(self, unique_id: str, tests: bool) -> str | None:
        value = await self._xcom(_status_key(unique_id, tests))
        return value.get("status") if isinstance(value, dict) else value

    def _to_worker(self, reason: str) -> TriggerEvent:
        """Resume the task on a worker in Cosmos's ``execute_complete`` with ``reason``:
        ``node_failed`` fails it with dbt's message, ``producer_skipped`` runs the node."""
        return TriggerEvent({"status": "failed", "reason": reason})

    def _succeeded(self) -> TaskSuccessEvent:
        """Green: ended here (a sync model's Asset event comes from the producer)."""
        return TaskSuccessEvent()

    def _not_built(self, why: str) -> TaskSkippedEvent:
        """The node did not run through no fault of its own. The triggerer can end a
        task only as success, failed or skipped, so: skipped, with the reason logged."""
        self.log.warning("%s not built: %s", self.unique_id, why)
        return TaskSkippedEvent()

    async def _producer_state(self) -> str | None:
        """The producer's state, read once per ``poke_interval`` for all the triggers of
        a run in this triggerer, not once per trigger."""
        ti = self.task_instance
        key = (ti.dag_id, ti.run_id, self.producer_task_id)
        lock = _PRODUCER_LOCKS.setdefault(key, asyncio.Lock())
        async with lock:
            now = asyncio.get_running_loop().time()
            read_at, state = _PRODUCER_STATES.get(key, (float("-inf"), None))
            if now - read_at >= self.poke_interval:
                state = (await self._states([self.producer_task_id]))[self.producer_task_id]
                _PRODUCER_STATES[key] = (now, state)
            return state

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ti = self.task_instance
        if ti is not None and (ti.try_number or 1) > 1:
            async for event in self._rerun_alone():
                yield event
            return
        while True:
            producer = await self._producer_state()
            if producer == "success":
                # `dbt build` exited 0: every node it ran succeeded (any failure, and any
                # node skipped for one, makes it exit 1). No need to read this node's
                # result: at the end of a run that is one Execution API call per task,
                # made one after another through the triggerer (~3 s for 72 tasks).
                yield self._succeeded()
                return
            status = await self._status(self.unique_id, self.tests)
            if status in _SUCCESS:
                yield self._succeeded()
                return
            if status in _SKIPPED:
                yield TaskSkippedEvent()
                return
            if status in _FAILED:
                yield await self._on_failure(status)
                return
            if producer in _PRODUCER_DONE:
                # Its last results may have landed since the read above.
                status = await self._status(self.unique_id, self.tests)
                if status is None:
                    yield self._without_result(producer)
                    return
                continue
            await self._wait_for_news()

    async def _wait_for_news(self) -> None:
        """While dbt runs, read this node's result only every ``max_poke_interval``
        seconds, but at most ``poke_interval`` after the producer has finished, which is
        what the run's wall time waits for.

        Each read is an Execution API call, and each batch of tasks the triggerer ends
        green makes the dag-processor parse the DAG file again (Airflow sends it a
        success callback per task): on two cores both take CPU from dbt. So on a short
        build the tasks turn green together as dbt ends; on a long one, every 15 s. The
        producer's log shows dbt's progress line by line meanwhile.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + self.max_poke_interval
        while loop.time() < until:
            await asyncio.sleep(self.poke_interval)
            if await self._producer_state() in _PRODUCER_DONE:
                return

    def _without_result(self, producer: str | None) -> TriggerEvent | TaskSkippedEvent:
        if producer == "success":  # dbt did not run it (ephemeral, empty)
            return self._succeeded()
        if producer == "skipped":  # the producer's own retry: run the node here
            return self._to_worker("producer_skipped")
        return self._not_built(
            f"the dbt build ({self.producer_task_id}, {producer}) ended without a result "
            "for this node; its log says why"
        )

    async def _on_failure(self, status: str) -> TriggerEvent | TaskSkippedEvent:
        """Where the grid should point: a failed node fails its task on a worker, with
        dbt's message in its log. A node dbt skipped because an upstream node failed,
        and the tests of a failed model, are skipped, unless no upstream task failed
        (the cause was something without a task, e.g. the model's unit test): then
        this task is the one that failed."""
        if self.tests:
            if await self._status(self.unique_id, False) in _FAILED:
                return self._not_built("its model failed")
            return self._to_worker("node_failed")
        if status == _SKIPPED_FOR_UPSTREAM:
            states = await self._settled_upstream()
            if any(s not in _UPSTREAM_OK for s in states.values()):
                return self._not_built(f"dbt skipped it because an upstream node failed: {states}")
        return self._to_worker("node_failed")

    async def _settled_upstream(self, timeout: float = 60.0) -> dict[str, str | None]:
        """The upstream tasks' states once none is still waiting for its own result."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            states = await self._states(self.upstream) if self.upstream else {}
            settled = all(s in _UPSTREAM_OK | _UPSTREAM_BROKEN for s in states.values())
            if settled or asyncio.get_running_loop().time() > deadline:
                return states
            await asyncio.sleep(self.poke_interval)

    async def _rerun_alone(self) -> AsyncIterator[TriggerEvent]:
        """A retry or a clear: once the upstream tasks have succeeded (they re-run too
        when cleared with their downstream), Cosmos runs just this node on a worker."""
        interval = self.poke_interval
        while True:
            states = await self._states(self.upstream) if self.upstream else {}
            if any(s in _UPSTREAM_BROKEN for s in states.values()):
                yield self._not_built(f"upstream tasks are {states}")
                return
            if all(s in _UPSTREAM_OK for s in states.values()):
                yield self._to_worker("producer_skipped")
                return
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, self.max_poke_interval)


def start_consumers_in_triggerer(tasks: list, producer_task_id: str, poke_interval: float) -> int:
    """Make Cosmos's watcher consumers in ``tasks`` start (and, on success, end) in the
    triggerer, all at once; returns how many were changed.

    They keep their dbt dependencies as Airflow edges (the graph, and clearing a task
    with its downstream), but with trigger rule ``always`` none waits for its upstream
    task: each reads its own node's result as soon as dbt reports it. A chain of
    start-from-trigger tasks costs ~3 s per link (the triggerer's and the scheduler's
    one-second loops), ~75 s for this project's 25-deep chain of models and tests.
    """
    from cosmos.operators.watcher import DbtConsumerWatcherSensor, DbtTestWatcherOperator

    changed = 0
    for task in tasks:
        if not isinstance(task, DbtConsumerWatcherSensor):
            continue
        task.poke_interval = poke_interval
        upstream = sorted(t for t in task.upstream_task_ids if t != producer_task_id)
        task.start_trigger_args = StartTriggerArgs(
            trigger_cls=TRIGGER_CLASSPATH,
            trigger_kwargs={
                "unique_id": task.model_unique_id,
                "producer_task_id": producer_task_id,
                "upstream": upstream,
                "tests": isinstance(task, DbtTestWatcherOperator),
                "poke_interval": poke_interval,
            },
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        )
        task.start_from_trigger = True
        task.trigger_rule = "always"
        # Where the task runs on a worker at its first try (``dag.test()`` ignores
        # start_from_trigger and runs one task at a time, in any order), it pokes and
        # gives the slot back until the producer has reported, instead of deferring to
        # an in-line trigger that would wait for a producer that cannot run meanwhile.
        task.deferrable = False
        task.mode = "reschedule"
        changed += 1
    return changed


#: What ``quiet_producer`` replaced in Cosmos, as Cosmos had it (for tests).
COSMOS_ORIGINALS: dict[str, Any] = {}


def quiet_producer(context: Any) -> None:
    """The producer's ``on_execute_callback``: in its task process, record only the
    XComs that are read, and compute OpenLineage events only where they are sent.

    For every node Cosmos's producer pushes an XCom per dbt event (start, compiling,
    executing, finished: ~400 for this project) that no consumer reads, beside the
    node's result and compiled SQL, which they do. Each push is an Execution API call
    made while dbt's log is read line by line, so dbt waits on them: ~1.5 s of a 13 s
    build on two cores. Only the process running the task is affected (a worker's task
    process, which ends with it, or under ``dag.test()`` the caller's).

    After dbt, Cosmos turns its artifacts into OpenLineage events (importing the
    OpenLineage client: ~1.5 s) for the OpenLineage provider to send. Without that
    provider installed nothing sends them, so they are not computed.
    """
    from cosmos.operators._watcher import base

    COSMOS_ORIGINALS.setdefault("_process_dbt_log_event", base._process_dbt_log_event)
    base._process_dbt_log_event = _no_event_xcom
    if importlib.util.find_spec("airflow.providers.openlineage") is None:
        context["task"].calculate_openlineage_events_completes = _no_lineage


def _no_event_xcom(task_instance: Any, dbt_log: dict[str, Any]) -> None:
    return None


def _no_lineage(*args: Any, **kwargs: Any) -> bool:
    """Cosmos's hook for lineage: "no OpenLineage processor here"."""
    return False
