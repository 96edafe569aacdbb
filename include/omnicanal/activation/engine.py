"""The sync engine: diff a sync model against the ledger, send only what changed.

The diff runs in SQL, in the warehouse: the model's rows are turned into the
destination's payload (``jsonb_build_object`` of the mapped columns) and hashed; a
full join with the ledger classifies each key as insert, update, remove or
unchanged. Only inserts, updates and removals leave Postgres, read through a
server-side cursor in batches; unchanged rows are only counted (one summary row), so
a run with nothing to do moves a count and nothing else. Rows the destination
refused with the same payload before (``sync_dead_letters``) are held back until
their payload changes or ``replay`` resends them.

Each batch's outcomes are committed to the ledger as soon as the destination
answers, so a run that crashes half-way is resumed by the next run: what was
confirmed is not sent again, what was not is. A row the destination left out of its
answer is pending: recorded as such, not as sent nor as failed, and sent again by the
next run. Destination writes are idempotent upserts, so a batch sent twice (crash
between send and commit) does no harm.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from omnicanal.activation.definitions import SyncDefinition, get_definition
from omnicanal.activation.destination import Destination, Outcome, Row, get_destination
from omnicanal.activation.ledger import SCHEMA, ensure_schema
from omnicanal.config import Settings
from omnicanal.errors import SyncError
from omnicanal.warehouse import connect

log = logging.getLogger(__name__)

#: Which rows of the classified diff a run sends, by mode.
NORMAL, FULL_RESYNC, REPLAY = "normal", "full_resync", "replay"
SUMMARY = "#summary"
SAMPLE_SIZE = 5


@dataclass
class SyncReport:
    sync_name: str
    destination: str
    run_id: int | None = None
    mode: str = NORMAL
    rows_in_model: int = 0
    inserted: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    pending: int = 0
    #: rows refused before with the same payload, not sent again (see ``replay``)
    held: int = 0
    skipped_null_keys: int = 0
    #: change rows read from the warehouse (unchanged rows never are)
    rows_fetched: int = 0
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.inserted + self.updated + self.removed + self.failed

    def as_dict(self) -> dict:
        return {**asdict(self), "sent": self.sent}


@dataclass
class Change:
    action: str  # insert | update | remove
    row: Row
    payload_hash: str | None


@dataclass
class Plan:
    """What a run would send: counts per action and a sample of keys of each."""

    counts: dict[str, int]
    samples: dict[str, list[str]]
    unchanged: int
    held: int

    def as_dict(self) -> dict:
        return asdict(self)


def _classified(definition: SyncDefinition) -> sql.Composed:
    """CTEs ending in ``classified(record_key, payload, payload_hash, action, held)``.

    ``action`` is insert, update, remove or unchanged; ``held`` says the same change
    was refused before (same action, same payload) and sits in the dead letters.
    Only ledger rows with ``present`` count as held by the destination: a key that was
    removed, or never accepted, is never removed (again).
    """
    pairs = sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(dest), sql.Identifier(col))
        for dest, col in definition.fields.items()
    )
    return sql.SQL(
        """
        with hashed as (
            select record_key, payload, md5(payload::text) as payload_hash
            from (
                select {key}::text as record_key, jsonb_build_object({pairs}) as payload
                from {schema}.{model}
                where {key} is not null
            ) model
        ),
        ledger as (
            select record_key, payload, payload_hash
            from {ledger}.sync_ledger
            where sync_name = %(sync)s and present
        ),
        diff as (
            select
                coalesce(h.record_key, l.record_key) as record_key,
                coalesce(h.payload, l.payload) as payload,
                h.payload_hash,
                case
                    when l.record_key is null then 'insert'
                    when h.record_key is null then 'remove'
                    when h.payload_hash is distinct from l.payload_hash then 'update'
                    else 'unchanged'
                end as action
            from hashed h
            full join ledger l on h.record_key = l.record_key
        ),
        classified as materialized (
            select d.record_key, d.payload, d.payload_hash, d.action,
                coalesce(
                    d.action <> 'unchanged' and dl.action = d.action
                    and dl.payload_hash is not distinct from d.payload_hash,
                    false
                ) as held
            from diff d
            left join {ledger}.sync_dead_letters dl
                on dl.sync_name = %(sync)s and dl.record_key = d.record_key
        )
        """
    ).format(
        key=sql.Identifier(definition.key),
        pairs=pairs,
        schema=sql.Identifier(definition.schema),
        model=sql.Identifier(definition.model),
        ledger=sql.Identifier(SCHEMA),
    )


def _selection(mode: str) -> tuple[sql.SQL, sql.SQL]:
    """(which classified rows a run of ``mode`` sends, the action it sends them with)."""
    if mode == FULL_RESYNC:
        return sql.SQL("true"), sql.SQL(
            "case when action = 'unchanged' then 'update' else action end"
        )
    if mode == REPLAY:
        return sql.SQL("held"), sql.SQL("action")
    return sql.SQL("action <> 'unchanged' and not held"), sql.SQL("action")


def _diff_query(definition: SyncDefinition, mode: str = NORMAL) -> sql.Composed:
    """The rows to send, then one summary row counting what is not sent.

    The summary row has ``action`` = ``'#summary'`` and the counts of unchanged and
    held rows (those the selection leaves out) in ``payload``.
    """
    selected, action = _selection(mode)
    return sql.SQL(
        """{classified}
        select record_key, payload, payload_hash, {action} as action
        from classified where {selected}
        union all
        select null, jsonb_build_object(
                'unchanged', count(*) filter (where action = 'unchanged'),
                'held', count(*) filter (where held)
            ), null, {summary}
        from classified where not ({selected})
        """
    ).format(
        classified=_classified(definition),
        action=action,
        selected=selected,
        summary=sql.Literal(SUMMARY),
    )


def _plan_query(definition: SyncDefinition, mode: str = NORMAL) -> sql.Composed:
    selected, action = _selection(mode)
    return sql.SQL(
        """{classified},
        chosen as (
            select record_key, {action} as action,
                row_number() over (partition by {action} order by record_key) as n
            from classified where {selected}
        )
        select action, count(*), array_agg(record_key order by record_key)
                filter (where n <= {sample})
        from chosen group by action
        union all
        select {summary}, count(*) filter (where action = 'unchanged'),
            array[(count(*) filter (where held))::text]
        from classified where not ({selected})
        """
    ).format(
        classified=_classified(definition),
        action=action,
        selected=selected,
        sample=sql.Literal(SAMPLE_SIZE),
        summary=sql.Literal(SUMMARY),
    )


def _check_model(conn: psycopg.Connection, definition: SyncDefinition) -> tuple[int, int]:
    """Rows in the model and rows with a null key; duplicate keys stop the sync."""
    exists = conn.execute(
        "select 1 from information_schema.tables where table_schema = %s and table_name = %s",
        (definition.schema, definition.model),
    ).fetchone()
    if not exists:
        raise SyncError(
            f"the sync model {definition.schema}.{definition.model} does not exist in the "
            "warehouse; build it first (`omnicanal dbt build` or the dbt DAG)"
        )
    columns = {
        r[0]
        for r in conn.execute(
            "select column_name from information_schema.columns "
            "where table_schema = %s and table_name = %s",
            (definition.schema, definition.model),
        )
    }
    wanted = {definition.key, *definition.fields.values()}
    missing = sorted(wanted - columns)
    if missing:
        raise SyncError(
            f"sync {definition.name!r}: model {definition.model} has no column(s) "
            f"{', '.join(missing)} (declared in {definition.source_file})"
        )
    total, null_keys, distinct = conn.execute(
        sql.SQL(
            "select count(*), count(*) filter (where {key} is null), count(distinct {key}) "
            "from {schema}.{model}"
        ).format(
            key=sql.Identifier(definition.key),
            schema=sql.Identifier(definition.schema),
            model=sql.Identifier(definition.model),
        )
    ).fetchone()
    if distinct != total - null_keys:
        raise SyncError(
            f"sync {definition.name!r}: model {definition.model} has "
            f"{total - null_keys - distinct} duplicate value(s) of its key "
            f"{definition.key!r}; a sync model needs one row per key (add a unique test)"
        )
    return total, null_keys


def plan(conn: psycopg.Connection, definition: SyncDefinition, mode: str = NORMAL) -> Plan:
    """What a run of ``mode`` would send (counts and samples), computed in SQL."""
    counts = {"insert": 0, "update": 0, "remove": 0}
    samples: dict[str, list[str]] = {"insert": [], "update": [], "remove": []}
    unchanged = held = 0
    for action, count, keys in conn.execute(
        _plan_query(definition, mode), {"sync": definition.name}
    ):
        if action == SUMMARY:
            unchanged, held = count, int(keys[0])
        else:
            counts[action] = count
            samples[action] = list(keys or [])
    return Plan(counts, samples, unchanged, held)


def _changes(
    conn: psycopg.Connection,
    definition: SyncDefinition,
    mode: str,
    report: SyncReport,
    itersize: int,
) -> Iterator[Change]:
    """Stream the rows to send from a server-side cursor; fill the report's counts."""
    with conn.cursor(name="omnicanal_sync_diff") as cur:
        cur.itersize = itersize
        cur.execute(_diff_query(definition, mode), {"sync": definition.name})
        for record_key, payload, payload_hash, action in cur:
            if action == SUMMARY:
                report.unchanged, report.held = payload["unchanged"], payload["held"]
                continue
            report.rows_fetched += 1
            yield Change(action, Row(record_key, payload), payload_hash)


_OUTCOME_SQL = f"""insert into {SCHEMA}.sync_row_outcomes
    (run_id, record_key, action, ok, error, status) values (%s, %s, %s, %s, %s, %s)
    on conflict (run_id, record_key) do update
    set action = excluded.action, ok = excluded.ok, error = excluded.error,
        status = excluded.status"""

_PENDING_SQL = f"""insert into {SCHEMA}.sync_ledger (sync_name, record_key, present,
        last_attempt_at, last_outcome)
    values (%s, %s, false, now(), 'pending')
    on conflict (sync_name, record_key) do update
    set last_attempt_at = now(), last_outcome = 'pending'"""

_FAILED_SQL = f"""insert into {SCHEMA}.sync_ledger (sync_name, record_key, present,
        last_attempt_at, last_error, last_outcome)
    values (%s, %s, false, now(), %s, 'failed')
    on conflict (sync_name, record_key) do update
    set last_attempt_at = now(), last_error = excluded.last_error, last_outcome = 'failed'"""

_DEAD_LETTER_SQL = f"""insert into {SCHEMA}.sync_dead_letters (sync_name, record_key, action,
        payload, payload_hash, reason)
    values (%s, %s, %s, %s, %s, %s)
    on conflict (sync_name, record_key) do update
    set action = excluded.action, payload = excluded.payload,
        payload_hash = excluded.payload_hash, reason = excluded.reason,
        last_failed_at = now(), attempts = sync_dead_letters.attempts + 1"""

_REMOVED_SQL = f"""update {SCHEMA}.sync_ledger
    set present = false, last_synced_at = now(), last_attempt_at = now(),
        last_error = null, last_outcome = 'removed'
    where sync_name = %s and record_key = %s"""

_SENT_SQL = f"""insert into {SCHEMA}.sync_ledger (sync_name, record_key, payload,
        payload_hash, present, first_synced_at, last_synced_at, last_attempt_at, last_error,
        last_outcome)
    values (%s, %s, %s, %s, true, now(), now(), now(), null, 'sent')
    on conflict (sync_name, record_key) do update
    set payload = excluded.payload, payload_hash = excluded.payload_hash,
        present = true, last_synced_at = now(), last_attempt_at = now(),
        last_error = null, last_outcome = 'sent',
        first_synced_at = coalesce(sync_ledger.first_synced_at, now())"""

_RESOLVED_SQL = f"delete from {SCHEMA}.sync_dead_letters where sync_name = %s and record_key = %s"


def _record(
    conn: psycopg.Connection,
    run_id: int,
    sync_name: str,
    changes: list[Change],
    outcomes: list[Outcome],
    report: SyncReport,
) -> None:
    """Commit one batch's outcomes: sent, failed (+ dead letter) or pending (no answer)."""
    by_key = {o.key: o for o in outcomes}
    rows_out, pending, failed, dead, removed, sent, resolved = [], [], [], [], [], [], []
    for change in changes:
        key = change.row.key
        outcome = by_key.get(key)
        if outcome is None:
            rows_out.append((run_id, key, change.action, None, None, "pending"))
            pending.append((sync_name, key))
            report.pending += 1
        elif not outcome.ok:
            reason = outcome.error or "refused without a reason"
            rows_out.append((run_id, key, change.action, False, reason, "failed"))
            failed.append((sync_name, key, reason))
            dead.append(
                (
                    sync_name,
                    key,
                    change.action,
                    Jsonb(change.row.payload),
                    change.payload_hash,
                    reason,
                )
            )
            report.failed += 1
            if len(report.errors) < 20:
                report.errors.append(f"{key}: {reason}")
        else:
            rows_out.append((run_id, key, change.action, True, None, "sent"))
            resolved.append((sync_name, key))
            if change.action == "remove":
                removed.append((sync_name, key))
            else:
                sent.append((sync_name, key, Jsonb(change.row.payload), change.payload_hash))
            counter = _counter(change.action)
            setattr(report, counter, getattr(report, counter) + 1)
    with conn.transaction(), conn.cursor() as cur:
        for statement, params in (
            (_OUTCOME_SQL, rows_out),
            (_PENDING_SQL, pending),
            (_FAILED_SQL, failed),
            (_DEAD_LETTER_SQL, dead),
            (_REMOVED_SQL, removed),
            (_SENT_SQL, sent),
            (_RESOLVED_SQL, resolved),
        ):
            if params:
                cur.executemany(statement, params)


def _resolve_stale(conn: psycopg.Connection, definition: SyncDefinition) -> None:
    """Dead letters and pending marks of keys that need nothing any more (they left the
    model, or the destination holds them as they are) are settled."""
    sync = definition.name
    stale = conn.execute(
        f"""select exists (select 1 from {SCHEMA}.sync_dead_letters where sync_name = %(sync)s)
            or exists (select 1 from {SCHEMA}.sync_ledger
                       where sync_name = %(sync)s and last_outcome = 'pending')""",
        {"sync": sync},
    ).fetchone()[0]
    conn.commit()
    if not stale:
        return
    needed = sql.SQL(
        "{classified} select record_key from classified where action <> 'unchanged'"
    ).format(classified=_classified(definition))
    with conn.transaction():
        conn.execute(
            sql.SQL("create temporary table omnicanal_needed on commit drop as {needed}").format(
                needed=needed
            ),
            {"sync": sync},
        )
        conn.execute(
            f"""delete from {SCHEMA}.sync_dead_letters d where sync_name = %s
                and not exists (select 1 from omnicanal_needed n
                                where n.record_key = d.record_key)""",
            (sync,),
        )
        conn.execute(
            f"""update {SCHEMA}.sync_ledger l set last_outcome = null
                where sync_name = %s and last_outcome = 'pending'
                and not exists (select 1 from omnicanal_needed n
                                where n.record_key = l.record_key)""",
            (sync,),
        )


def run_sync(
    settings: Settings,
    name: str,
    *,
    dry_run: bool = False,
    full_resync: bool = False,
    replay: bool = False,
    destination: Destination | None = None,
    definition: SyncDefinition | None = None,
) -> SyncReport:
    """Run the sync called ``name``; returns what was sent and what failed.

    ``full_resync`` sends every row of the model again (as updates), for when the
    destination lost what the ledger says it holds; removals stay limited to keys the
    ledger knows, so it still never touches what the sync did not write. ``replay``
    sends only the dead-lettered rows (refused before), after a fix at the destination.
    """
    if full_resync and replay:
        raise SyncError("a run is either a full resync or a replay of the dead letters, not both")
    definition = definition or get_definition(settings.dbt_project_dir, name)
    mode = FULL_RESYNC if full_resync else REPLAY if replay else NORMAL
    report = SyncReport(definition.name, definition.destination, mode=mode, dry_run=dry_run)
    lock = f"omnicanal_sync:{definition.name}"
    with connect(settings) as conn:
        ensure_schema(conn)
        conn.commit()
        # One run of a sync at a time: a second concurrent run would send the same diff.
        if not conn.execute("select pg_try_advisory_lock(hashtext(%s))", (lock,)).fetchone()[0]:
            raise SyncError(f"sync {definition.name!r} is already running elsewhere")
        try:
            report.rows_in_model, report.skipped_null_keys = _check_model(conn, definition)
            conn.commit()
            if dry_run:
                planned = plan(conn, definition, mode)
                conn.commit()
                report.inserted = planned.counts["insert"]
                report.updated = planned.counts["update"]
                report.removed = planned.counts["remove"]
                report.unchanged, report.held = planned.unchanged, planned.held
                return report
            _send(settings, conn, definition, mode, report, destination)
            _resolve_stale(conn, definition)
        finally:
            conn.rollback()
            conn.execute("select pg_advisory_unlock(hashtext(%s))", (lock,))
            conn.commit()
    return report


def plan_sync(settings: Settings, name: str) -> tuple[SyncDefinition, Plan]:
    """The dry run of ``omnicanal sync plan``: what the next run would send."""
    definition = get_definition(settings.dbt_project_dir, name)
    with connect(settings) as conn:
        ensure_schema(conn)
        conn.commit()
        _check_model(conn, definition)
        return definition, plan(conn, definition)


def _counter(action: str) -> str:
    return {"insert": "inserted", "update": "updated", "remove": "removed"}[action]


def _send(
    settings: Settings,
    conn: psycopg.Connection,
    definition: SyncDefinition,
    mode: str,
    report: SyncReport,
    destination: Destination | None,
) -> None:
    run_id = conn.execute(
        f"insert into {SCHEMA}.sync_runs (sync_name, destination, rows_in_model) "
        "values (%s, %s, %s) returning run_id",
        (definition.name, definition.destination, report.rows_in_model),
    ).fetchone()[0]
    conn.commit()
    report.run_id = run_id
    owned = destination is None
    dest = destination or get_destination(definition.destination, settings, definition.options)
    try:
        # The diff is read on a connection of its own (one snapshot, one transaction)
        # while each batch's outcomes are committed on this one.
        with connect(settings) as reader:
            buffers: dict[str, list[Change]] = {"upsert": [], "remove": []}
            checked = False

            def flush(kind: str) -> None:
                nonlocal checked
                batch = buffers[kind]
                if not batch:
                    return
                if not checked:  # only when there is something to send
                    dest.check()
                    checked = True
                call = dest.remove if kind == "remove" else dest.upsert
                outcomes = call([c.row for c in batch])
                _record(conn, run_id, definition.name, batch, outcomes, report)
                buffers[kind] = []

            size = max(1, dest.batch_size)
            changes = _changes(reader, definition, mode, report, itersize=max(size, 1000))
            try:
                for change in changes:
                    kind = "remove" if change.action == "remove" else "upsert"
                    buffers[kind].append(change)
                    if len(buffers[kind]) >= size:
                        flush(kind)
            finally:
                changes.close()  # the server-side cursor, while its connection is open
            flush("upsert")
            flush("remove")
        status = "success" if report.failed == 0 and report.pending == 0 else "partial"
        error = None
    except Exception as exc:
        conn.rollback()
        status, error = "failed", str(exc)
        raise
    finally:
        conn.execute(
            f"""update {SCHEMA}.sync_runs set finished_at = now(), status = %s, inserted = %s,
                    updated = %s, removed = %s, unchanged = %s, failed = %s, pending = %s,
                    held = %s, error = %s
                where run_id = %s""",
            (
                status,
                report.inserted,
                report.updated,
                report.removed,
                report.unchanged,
                report.failed,
                report.pending,
                report.held,
                error,
                run_id,
            ),
        )
        conn.commit()
        if owned:
            dest.close()
    log.info(
        "sync %s (%s): %d inserted, %d updated, %d removed, %d unchanged, %d failed, "
        "%d pending, %d held back as dead letters",
        definition.name,
        mode,
        report.inserted,
        report.updated,
        report.removed,
        report.unchanged,
        report.failed,
        report.pending,
        report.held,
    )
