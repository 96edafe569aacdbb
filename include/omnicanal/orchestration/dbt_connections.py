"""A data test leaves its warehouse connection open for the next node of its thread.

dbt-adapters closes a node's connection when the node ends (``release``), and the next
node opens a new one: for a data test that is a Postgres backend started (a fork, the
authentication, cold catalog caches) to run one ``select count(*)`` and a rollback.
Measured on 2 shared cores (load 12-14, 335 data tests of the staging models, ``dbt
test`` on a 2,000-person world): a new connection and the test's query took 36-39 ms,
the same query on an open connection 6-11 ms; dbt's run took 51.4 and 52.8 s closing
each test's connection, 40.4 and 35.0 s keeping it.

A data test runs one read-only query in a transaction that dbt never commits and leaves
no session state: no temp table, no ``set``. So after a data test the connection is
rolled back and kept; the next node of the thread (a test or a model) renames it and
uses it, as dbt already does with the connection it keeps per thread. Every other node
still closes its connection: models may leave temp tables and session settings (the
identity models create temp tables by fixed names), which must not reach the next node.
A connection that is broken, or whose rollback fails, is closed as dbt would.

Installed by the dbt plugin ``dbt_omnicanal`` (dbt loads modules named ``dbt_*`` at
start-up) when ``OMNICANAL_DBT_KEEP_TEST_CONNECTIONS=1``, which ``pipeline_env`` sets:
the pipeline's builds (the Airflow task group, the bench). Analysts' ``omnicanal dbt``
runs are dbt's own. If dbt-adapters no longer has what this replaces, nothing is changed
and dbt closes connections as before.
"""

from __future__ import annotations

import logging
from typing import Any

KEEP_TEST_CONNECTIONS_ENV = "OMNICANAL_DBT_KEEP_TEST_CONNECTIONS"

#: The prefix of a data test's unique id, which dbt also gives its connection as name.
DATA_TEST_PREFIX = "test."

log = logging.getLogger(__name__)

#: dbt-adapters' own ``release``, kept for every connection that is not kept.
_ORIGINAL: dict[str, Any] = {}


def keep_test_connections() -> bool:
    """Make dbt-adapters keep a data test's connection for its thread's next node;
    returns whether it is in place (it is installed once per process)."""
    try:
        from dbt.adapters.base.connections import BaseConnectionManager
    except ImportError:  # no dbt here
        return False
    current = BaseConnectionManager.release
    if getattr(current, "keeps_test_connections", False):
        return True
    if not hasattr(BaseConnectionManager, "get_if_exists"):
        log.warning("dbt-adapters changed: data tests' connections are closed as before")
        return False
    _ORIGINAL["release"] = current

    def release(self: Any) -> None:
        with self.lock:
            conn = self.get_if_exists()
        if conn is not None and _keep(conn):
            return
        _ORIGINAL["release"](self)

    release.keeps_test_connections = True  # type: ignore[attr-defined]
    release.__doc__ = "dbt's release, except after a data test: see " + __name__
    BaseConnectionManager.release = release  # type: ignore[method-assign]
    return True


def _keep(conn: Any) -> bool:
    """Roll back and keep ``conn`` if it served a data test and is healthy."""
    if conn.state != "open" or not str(conn.name or "").startswith(DATA_TEST_PREFIX):
        return False
    handle = conn.handle
    if getattr(handle, "closed", 1):  # psycopg2: 0 while open
        return False
    try:
        handle.rollback()  # the test's transaction, even one a failed query aborted
    except Exception:  # a broken connection: dbt closes it
        return False
    conn.transaction_open = False
    return not handle.closed
