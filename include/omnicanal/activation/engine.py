"""The sync engine: diff a sync model against the ledger, send only what changed.

The diff runs in SQL, in the warehouse: the model's rows are turned into the
destination's payload (``jsonb_build_object`` of the mapped columns) and hashed; a
full join with the ledger classifies each key as insert, update, remove or
unchanged. Only the first three go over the network.

Each batch's outcomes are committed to the ledger as soon as the destination
answers, so a run that crashes half-way is resumed by the next run: what was
confirmed is not sent again, what was not is. Destination writes are idempotent
upserts, so a batch sent twice (crash between send and commit) does no harm.
"""

from __future__ import annotations

import logging
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


@dataclass
class SyncReport:
    sync_name: str
    destination: str
    run_id: int | None = None
    rows_in_model: int = 0
    inserted: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped_null_keys: int = 0
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.inserted + self.updated + self.removed + self.failed

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Change:
    action: str  # insert | update | remove
    row: Row
    payload_hash: str | None


def _diff_query(definition: SyncDefinition) -> sql.Composed:
    pairs = sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(dest), sql.Identifier(col))
        for dest, col in definition.fields.items()
    )
    return sql.SQL(
        """
        with model as (
            select {key}::text as record_key, jsonb_build_object({pairs}) as payload
            from {schema}.{model}
        ),
        hashed as (
            select record_key, payload, md5(payload::text) as payload_hash from model
        ),
        ledger as (
            select record_key, payload, payload_hash
            from {ledger}.sync_ledger
            where sync_name = %(sync)s and present
        )
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
        where h.record_key is not null or l.record_key is not null
        order by 1
        """
    ).format(
        key=sql.Identifier(definition.key),
        pairs=pairs,
        schema=sql.Identifier(definition.schema),
        model=sql.Identifier(definition.model),
        ledger=sql.Identifier(SCHEMA),
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


def plan(
    conn: psycopg.Connection, definition: SyncDefinition, full_resync: bool = False
) -> tuple[list[Change], int]:
    """The changes to send, and how many rows are unchanged.

    ``full_resync`` sends every row of the model again (as updates), for when the
    destination lost what the ledger says it holds; removals stay limited to keys the
    ledger knows, so it still never touches what the sync did not write.
    """
    changes: list[Change] = []
    unchanged = 0
    cursor = conn.execute(_diff_query(definition), {"sync": definition.name})
    for record_key, payload, payload_hash, action in cursor:
        if record_key is None:
            continue
        if action == "unchanged" and full_resync:
            action = "update"
        if action == "unchanged":
            unchanged += 1
            continue
        changes.append(Change(action, Row(record_key, payload), payload_hash))
    return changes, unchanged


def _record(
    conn: psycopg.Connection,
    run_id: int,
    sync_name: str,
    changes: list[Change],
    outcomes: list[Outcome],
) -> None:
    by_key = {o.key: o for o in outcomes}
    with conn.transaction(), conn.cursor() as cur:
        for change in changes:
            outcome = by_key.get(change.row.key) or Outcome(change.row.key, False, "no answer")
            cur.execute(
                f"insert into {SCHEMA}.sync_row_outcomes (run_id, record_key, action, ok, error)"
                " values (%s, %s, %s, %s, %s)",
                (run_id, change.row.key, change.action, outcome.ok, outcome.error),
            )
            if not outcome.ok:
                cur.execute(
                    f"""insert into {SCHEMA}.sync_ledger (sync_name, record_key, present,
                            last_attempt_at, last_error)
                        values (%s, %s, false, now(), %s)
                        on conflict (sync_name, record_key) do update
                        set last_attempt_at = now(), last_error = excluded.last_error""",
                    (sync_name, change.row.key, outcome.error),
                )
            elif change.action == "remove":
                cur.execute(
                    f"""update {SCHEMA}.sync_ledger
                        set present = false, last_synced_at = now(), last_attempt_at = now(),
                            last_error = null
                        where sync_name = %s and record_key = %s""",
                    (sync_name, change.row.key),
                )
            else:
                cur.execute(
                    f"""insert into {SCHEMA}.sync_ledger (sync_name, record_key, payload,
                            payload_hash, present, first_synced_at, last_synced_at,
                            last_attempt_at, last_error)
                        values (%s, %s, %s, %s, true, now(), now(), now(), null)
                        on conflict (sync_name, record_key) do update
                        set payload = excluded.payload, payload_hash = excluded.payload_hash,
                            present = true, last_synced_at = now(), last_attempt_at = now(),
                            last_error = null,
                            first_synced_at = coalesce(sync_ledger.first_synced_at, now())""",
                    (
                        sync_name,
                        change.row.key,
                        Jsonb(change.row.payload),
                        change.payload_hash,
                    ),
                )


def run_sync(
    settings: Settings,
    name: str,
    *,
    dry_run: bool = False,
    full_resync: bool = False,
    destination: Destination | None = None,
) -> SyncReport:
    """Run the sync called ``name``; returns what was sent and what failed."""
    definition = get_definition(settings.dbt_project_dir, name)
    report = SyncReport(definition.name, definition.destination, dry_run=dry_run)
    with connect(settings) as conn:
        ensure_schema(conn)
        conn.commit()
        # One run of a sync at a time: a second concurrent run would send the same diff.
        locked = conn.execute(
            "select pg_try_advisory_lock(hashtext(%s))", (f"omnicanal_sync:{definition.name}",)
        ).fetchone()[0]
        if not locked:
            raise SyncError(f"sync {definition.name!r} is already running elsewhere")
        try:
            report.rows_in_model, report.skipped_null_keys = _check_model(conn, definition)
            changes, report.unchanged = plan(conn, definition, full_resync)
            conn.commit()
            if dry_run:
                for change in changes:
                    counter = _counter(change.action)
                    setattr(report, counter, getattr(report, counter) + 1)
                return report
            _send(settings, conn, definition, changes, report, destination)
        finally:
            conn.execute(
                "select pg_advisory_unlock(hashtext(%s))", (f"omnicanal_sync:{definition.name}",)
            )
            conn.commit()
    return report


def _counter(action: str) -> str:
    return {"insert": "inserted", "update": "updated", "remove": "removed"}[action]


def _send(
    settings: Settings,
    conn: psycopg.Connection,
    definition: SyncDefinition,
    changes: list[Change],
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
        if changes:
            dest.check()
        upserts = [c for c in changes if c.action != "remove"]
        removals = [c for c in changes if c.action == "remove"]
        for group, call in ((upserts, dest.upsert), (removals, dest.remove)):
            for start in range(0, len(group), dest.batch_size):
                batch = group[start : start + dest.batch_size]
                outcomes = call([c.row for c in batch])
                _record(conn, run_id, definition.name, batch, outcomes)
                ok = {o.key for o in outcomes if o.ok}
                for change in batch:
                    if change.row.key in ok:
                        counter = _counter(change.action)
                        setattr(report, counter, getattr(report, counter) + 1)
                    else:
                        report.failed += 1
                for outcome in outcomes:
                    if not outcome.ok and len(report.errors) < 20:
                        report.errors.append(f"{outcome.key}: {outcome.error}")
        status = "success" if report.failed == 0 else "partial"
        error = None
    except Exception as exc:
        conn.rollback()
        status, error = "failed", str(exc)
        raise
    finally:
        conn.execute(
            f"""update {SCHEMA}.sync_runs set finished_at = now(), status = %s, inserted = %s,
                    updated = %s, removed = %s, unchanged = %s, failed = %s, error = %s
                where run_id = %s""",
            (
                status,
                report.inserted,
                report.updated,
                report.removed,
                report.unchanged,
                report.failed,
                error,
                run_id,
            ),
        )
        conn.commit()
        if owned:
            dest.close()
    log.info(
        "sync %s: %d inserted, %d updated, %d removed, %d unchanged, %d failed",
        definition.name,
        report.inserted,
        report.updated,
        report.removed,
        report.unchanged,
        report.failed,
    )
