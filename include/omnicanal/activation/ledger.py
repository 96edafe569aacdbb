"""The ledger: what each destination holds, as far as omnicanal wrote it.

``sync_ledger`` has one row per (sync, key) that a sync ever tried to write: the
payload the destination holds (its hash decides what changed), whether it is
present there, and the last error. A removal only ever targets keys with
``present``, so a sync never touches records it did not write.

``sync_runs`` has one row per run with its counts; ``sync_row_outcomes`` one row per
record sent in a run, with the action and the outcome, so an engineer can see why a
record failed.
"""

from __future__ import annotations

import psycopg

SCHEMA = "omnicanal_activation"

DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.sync_ledger (
    sync_name        text not null,
    record_key       text not null,
    payload          jsonb,
    payload_hash     text,
    present          boolean not null default false,
    first_synced_at  timestamptz,
    last_synced_at   timestamptz,
    last_attempt_at  timestamptz not null default now(),
    last_error       text,
    primary key (sync_name, record_key)
);
create table if not exists {SCHEMA}.sync_runs (
    run_id        bigserial primary key,
    sync_name     text not null,
    destination   text not null,
    started_at    timestamptz not null default now(),
    finished_at   timestamptz,
    status        text not null default 'running',
    rows_in_model integer,
    inserted      integer not null default 0,
    updated       integer not null default 0,
    removed       integer not null default 0,
    unchanged     integer not null default 0,
    failed        integer not null default 0,
    error         text
);
create table if not exists {SCHEMA}.sync_row_outcomes (
    run_id      bigint not null references {SCHEMA}.sync_runs (run_id),
    record_key  text not null,
    action      text not null,
    ok          boolean not null,
    error       text,
    primary key (run_id, record_key)
);
"""


def ensure_schema(conn: psycopg.Connection) -> None:
    # Serialise concurrent first runs: CREATE ... IF NOT EXISTS races on the catalog.
    conn.execute("select pg_advisory_xact_lock(hashtext('omnicanal_activation_ddl'))")
    conn.execute(DDL)


def forget(conn: psycopg.Connection, sync_name: str) -> int:
    """Forget what a destination holds for ``sync_name`` (it was replaced or wiped).

    The next run then sends every row of the model as new. Run history is kept.
    """
    ensure_schema(conn)
    return conn.execute(
        f"delete from {SCHEMA}.sync_ledger where sync_name = %s", (sync_name,)
    ).rowcount
