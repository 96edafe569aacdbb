"""The ledger: what each destination holds, as far as omnicanal wrote it.

``sync_ledger`` has one row per (sync, key) that a sync ever tried to write: the
payload the destination holds, its ``row_hash`` (what the diff compares with the
model's rows to find what changed; see ``engine._model_row_hash``), whether it is
present there, and the last error. A ledger from before ``row_hash`` existed gets the
column empty, and each sync's next run fills it from the stored payloads (the same
value the model's unchanged rows hash to), so an upgrade resends nothing. A removal
only ever targets keys with ``present``, so a sync never touches records it did not
write.

Every row a run sends ends in one of three outcomes (``last_outcome`` in the ledger,
``status`` in ``sync_row_outcomes``):

- ``sent`` (``removed`` for a removal): the destination confirmed it;
- ``failed``: the destination refused it and said why. The row also goes to
  ``sync_dead_letters`` with its payload and reason; later runs hold it back while its
  payload is the one refused (a changed payload is sent again), and ``omnicanal sync
  replay`` resends it after a fix at the destination;
- ``pending``: the destination left it out of its answer. Nothing is known, so
  nothing is recorded as held: the next run sends it again.

Two more marks exist for syncs whose writes cannot be taken back (``message`` mode, or
a destination with ``supports_remove = False``): ``departed``, a key that left the model
(or lost its consent), recorded without asking the destination anything; and
``sending``, written and committed before a batch of messages goes out and replaced by
its outcome once the destination answers. A run killed in between leaves ``sending``
rows: they are in doubt (the message may have gone), so they are never sent again
automatically (``status`` counts them as ``in_doubt``).

The ledger also keeps the ``customer_id`` a row was sent for, so a revoked consent can
be honoured for a key that already left the model (``upsert`` mode).

``sync_runs`` has one row per run with its counts, the sync's mode, the requests the
destination made and the seconds spent waiting on it (their ratio is the achieved
rate, against its ``rate_limit``) and what the destination said of the run
(``destination_stats``, its ``stats()``, e.g. Meta's ``num_invalid_entries``);
``sync_row_outcomes`` one row per record sent in a run, with the action and the
outcome, so an engineer can see why a record failed.
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
alter table {SCHEMA}.sync_ledger add column if not exists customer_id text;
alter table {SCHEMA}.sync_runs add column if not exists sync_mode text;
alter table {SCHEMA}.sync_runs add column if not exists departed integer not null default 0;
alter table {SCHEMA}.sync_runs add column if not exists withheld integer not null default 0;
alter table {SCHEMA}.sync_runs add column if not exists requests integer;
alter table {SCHEMA}.sync_runs add column if not exists send_seconds double precision;
alter table {SCHEMA}.sync_runs add column if not exists rate_limit double precision;
alter table {SCHEMA}.sync_runs add column if not exists destination_stats jsonb;
alter table {SCHEMA}.sync_runs
    add column if not exists skipped_null_keys integer not null default 0;
alter table {SCHEMA}.sync_ledger add column if not exists row_hash bigint;
create index if not exists sync_ledger_unhashed on {SCHEMA}.sync_ledger (sync_name)
    where row_hash is null and payload is not null;
"""


#: Columns the newest DDL adds; when they all exist, the schema is up to date.
_NEWEST = (
    ("sync_dead_letters", "attempts"),
    ("sync_ledger", "last_outcome"),
    ("sync_runs", "pending"),
    ("sync_runs", "held"),
    ("sync_row_outcomes", "status"),
    ("sync_ledger", "customer_id"),
    ("sync_runs", "sync_mode"),
    ("sync_runs", "departed"),
    ("sync_runs", "withheld"),
    ("sync_runs", "requests"),
    ("sync_runs", "send_seconds"),
    ("sync_runs", "rate_limit"),
    ("sync_runs", "destination_stats"),
    ("sync_runs", "skipped_null_keys"),
    ("sync_ledger", "row_hash"),
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


#: The columns of a run row that ``status`` and the run's log line show.
RUN_COLUMNS = (
    "run_id, sync_name, destination, sync_mode, started_at, finished_at, status, "
    "rows_in_model, inserted, updated, removed, departed, unchanged, failed, pending, held, "
    "withheld, skipped_null_keys, requests, send_seconds, rate_limit, destination_stats, error"
)


def run_row(conn: psycopg.Connection, run_id: int) -> dict | None:
    """One run's row of ``sync_runs``, as a dict (None if there is no such run)."""
    cur = conn.execute(f"select {RUN_COLUMNS} from {SCHEMA}.sync_runs where run_id = %s", (run_id,))
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d.name for d in cur.description], row, strict=True))


def last_run_id(conn: psycopg.Connection, sync_name: str) -> int | None:
    """The newest run of ``sync_name`` (None if it never ran)."""
    ensure_schema(conn)
    row = conn.execute(
        f"select max(run_id) from {SCHEMA}.sync_runs where sync_name = %s", (sync_name,)
    ).fetchone()
    return row[0]


def describe_run(run: dict) -> str:
    """A run row as one line: what was sent, the achieved rate, the destination's stats."""
    started = run["started_at"]
    line = (
        f"run {run['run_id']} {run['status']:8} {started:%Y-%m-%d %H:%M:%S} -> "
        + (f"{run['finished_at']:%H:%M:%S}" if run["finished_at"] else "running")
        + f" ({run.get('sync_mode') or 'mirror'}): +{run['inserted']} ~{run['updated']} "
        f"-{run['removed']} ={run['unchanged']} failed {run['failed']} "
        f"pending {run['pending']} held {run['held']}"
    )
    if run.get("departed"):
        line += f" departed {run['departed']}"
    if run.get("withheld"):
        line += f" withheld (no consent) {run['withheld']}"
    if run.get("skipped_null_keys"):
        line += f" left out (no key) {run['skipped_null_keys']}"
    if run.get("requests") is not None:
        seconds = run.get("send_seconds") or 0.0
        line += f"; {run['requests']} request(s) in {seconds:.1f}s"
        if seconds > 0 and run["requests"]:
            line += f" = {run['requests'] / seconds:.1f}/s"
        if run.get("rate_limit"):
            line += f" (limit {run['rate_limit']:g}/s)"
    if run.get("destination_stats"):
        stats = ", ".join(f"{k}={v}" for k, v in sorted(run["destination_stats"].items()))
        line += f"; destination: {stats}"
    if run.get("error"):
        line += f"; error: {run['error']}"
    return line


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
    columns = RUN_COLUMNS
    found = []
    for name in names:
        cur = conn.execute(
            f"select {columns} from {SCHEMA}.sync_runs where sync_name = %s "
            "order by run_id desc limit %s",
            (name, runs),
        )
        keys = [d.name for d in cur.description]
        last_runs = [dict(zip(keys, row, strict=True)) for row in cur]
        present, pending, in_doubt = conn.execute(
            f"""select count(*) filter (where present),
                       count(*) filter (where last_outcome = 'pending'),
                       count(*) filter (where last_outcome = 'sending')
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
                "in_doubt": in_doubt,
                "dead_letters": dead,
                "runs": last_runs,
            }
        )
    return found
