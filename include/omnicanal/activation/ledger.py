"""The ledger: what each destination holds, as far as omnicanal wrote it.

``sync_ledger`` has one row per (sync, key) that a sync ever tried to write: the
payload the destination holds (its hash decides what changed), whether it is
present there, and the last error. A removal only ever targets keys with
``present``, so a sync never touches records it did not write.

Every row a run sends ends in one of three outcomes (``last_outcome`` in the ledger,
``status`` in ``sync_row_outcomes``):

- ``sent`` (``removed`` for a removal): the destination confirmed it;
- ``failed``: the destination refused it and said why. The row also goes to
  ``sync_dead_letters`` with its payload and reason; later runs hold it back while its
  payload is the one refused (a changed payload is sent again), and ``omnicanal sync
  replay`` resends it after a fix at the destination;
- ``pending``: the destination left it out of its answer. Nothing is known, so
  nothing is recorded as held: the next run sends it again.

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
create table if not exists {SCHEMA}.sync_dead_letters (
    sync_name        text not null,
    record_key       text not null,
    action           text not null,
    payload          jsonb,
    payload_hash     text,
    reason           text,
    first_failed_at  timestamptz not null default now(),
    last_failed_at   timestamptz not null default now(),
    attempts         integer not null default 1,
    primary key (sync_name, record_key)
);
alter table {SCHEMA}.sync_ledger add column if not exists last_outcome text;
alter table {SCHEMA}.sync_runs add column if not exists pending integer not null default 0;
alter table {SCHEMA}.sync_runs add column if not exists held integer not null default 0;
alter table {SCHEMA}.sync_row_outcomes add column if not exists status text;
alter table {SCHEMA}.sync_row_outcomes alter column ok drop not null;
"""


#: Columns the newest DDL adds; when they all exist, the schema is up to date.
_NEWEST = (
    ("sync_dead_letters", "attempts"),
    ("sync_ledger", "last_outcome"),
    ("sync_runs", "pending"),
    ("sync_runs", "held"),
    ("sync_row_outcomes", "status"),
)


def ensure_schema(conn: psycopg.Connection) -> None:
    # ALTER TABLE takes an exclusive lock even when there is nothing to add, and would
    # wait behind any open reader (a `sync status`, an analyst's query): skip it when
    # the schema is current.
    found = conn.execute(
        "select count(*) from information_schema.columns "
        "where table_schema = %s and (table_name, column_name) in "
        "(select * from unnest(%s::text[], %s::text[]))",
        (SCHEMA, [t for t, _ in _NEWEST], [c for _, c in _NEWEST]),
    ).fetchone()[0]
    if found == len(_NEWEST):
        return
    # Serialise concurrent first runs: CREATE ... IF NOT EXISTS races on the catalog.
    conn.execute("select pg_advisory_xact_lock(hashtext('omnicanal_activation_ddl'))")
    conn.execute(DDL)


def forget(conn: psycopg.Connection, sync_name: str) -> int:
    """Forget what a destination holds for ``sync_name`` (it was replaced or wiped).

    The next run then sends every row of the model as new. Run history is kept.
    """
    ensure_schema(conn)
    conn.execute(f"delete from {SCHEMA}.sync_dead_letters where sync_name = %s", (sync_name,))
    return conn.execute(
        f"delete from {SCHEMA}.sync_ledger where sync_name = %s", (sync_name,)
    ).rowcount


def status(conn: psycopg.Connection, sync_name: str | None = None, runs: int = 5) -> list[dict]:
    """Per sync: its last ``runs`` runs (newest first), and its pending and dead-letter counts."""
    ensure_schema(conn)
    names = [
        r[0]
        for r in conn.execute(
            f"""select sync_name from {SCHEMA}.sync_runs
                union select sync_name from {SCHEMA}.sync_ledger
                union select sync_name from {SCHEMA}.sync_dead_letters order by 1"""
        )
        if sync_name is None or r[0] == sync_name
    ]
    if sync_name is not None and not names:
        names = [sync_name]
    columns = (
        "run_id, started_at, finished_at, status, inserted, updated, removed, unchanged, "
        "failed, pending, held, error"
    )
    found = []
    for name in names:
        cur = conn.execute(
            f"select {columns} from {SCHEMA}.sync_runs where sync_name = %s "
            "order by run_id desc limit %s",
            (name, runs),
        )
        keys = [d.name for d in cur.description]
        last_runs = [dict(zip(keys, row, strict=True)) for row in cur]
        present, pending = conn.execute(
            f"""select count(*) filter (where present),
                       count(*) filter (where last_outcome = 'pending')
                from {SCHEMA}.sync_ledger where sync_name = %s""",
            (name,),
        ).fetchone()
        dead = conn.execute(
            f"select count(*) from {SCHEMA}.sync_dead_letters where sync_name = %s", (name,)
        ).fetchone()[0]
        found.append(
            {
                "sync": name,
                "held_at_destination": present,
                "pending": pending,
                "dead_letters": dead,
                "runs": last_runs,
            }
        )
    return found
