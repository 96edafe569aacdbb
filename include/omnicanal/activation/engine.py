"""The sync engine: diff a sync model against the ledger, send only what changed.

The diff runs in SQL, in the warehouse: each of the model's rows is hashed from the
columns its destination payload maps (a 64-bit ``hash_record_extended``, without
building the payload: :func:`_model_row_hash`); a full join with the ledger's
``row_hash`` classifies each key as insert, update, remove or unchanged, and only the
rows a run sends get their payload (``jsonb_build_object`` of the mapped columns)
built. Only inserts, updates and removals leave Postgres, read through a server-side
cursor in batches; unchanged rows are only counted (one summary row), so a run with
nothing to do moves a count and nothing else. Rows the destination refused with the
same payload before (``sync_dead_letters``) are held back until their payload changes
or ``replay`` resends them.

Each batch's outcomes are committed to the ledger as soon as the destination
answers, so a run that crashes half-way is resumed by the next run: what was
confirmed is not sent again, what was not is. A row the destination left out of its
answer is pending: recorded as such, not as sent nor as failed, and sent again by the
next run. Destination writes are idempotent upserts, so a batch sent twice (crash
between send and commit) does no harm.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field, replace

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from omnicanal.activation.definitions import MESSAGE, SyncDefinition, get_definition
from omnicanal.activation.destination import Destination, Outcome, Row, get_destination
from omnicanal.activation.ledger import SCHEMA, describe_run, ensure_schema, run_row
from omnicanal.config import Settings
from omnicanal.errors import SyncError
from omnicanal.warehouse import connect

log = logging.getLogger(__name__)

#: Which rows of the classified diff a run sends, by mode.
NORMAL, FULL_RESYNC, REPLAY = "normal", "full_resync", "replay"
SUMMARY = "#summary"
SAMPLE_SIZE = 5
#: What a run may do with a key: ``depart`` is a removal the ledger records without
#: asking the destination (it cannot take a row back, e.g. a message sent).
ACTIONS = ("insert", "update", "remove", "depart")


@dataclass
class SyncReport:
    sync_name: str
    destination: str
    run_id: int | None = None
    mode: str = NORMAL
    #: the sync's mode (mirror, upsert, audience, message)
    sync_mode: str = "mirror"
    status: str | None = None
    rows_in_model: int = 0
    inserted: int = 0
    updated: int = 0
    removed: int = 0
    #: keys that left the model of a destination that cannot remove (ledger only)
    departed: int = 0
    unchanged: int = 0
    failed: int = 0
    pending: int = 0
    #: rows refused before with the same payload, not sent again (see ``replay``)
    held: int = 0
    #: rows of the model left out because the person lacks the destination's consent
    withheld: int = 0
    skipped_null_keys: int = 0
    #: change rows read from the warehouse (unchanged rows never are)
    rows_fetched: int = 0
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)
    #: HTTP requests the destination made (retries included), if it counts them
    requests: int | None = None
    #: seconds from the first request to the last answer; requests / send_seconds is the
    #: rate the destination was held to
    send_seconds: float = 0.0
    rate_limit: float | None = None
    destination_stats: dict | None = None

    @property
    def sent(self) -> int:
        return self.inserted + self.updated + self.removed + self.failed

    def as_dict(self) -> dict:
        return {**asdict(self), "sent": self.sent}


@dataclass
class Change:
    action: str  # insert | update | remove | depart
    row: Row
    payload_hash: str | None
    customer_id: str | None = None
    #: the row hash the diff compares (:func:`_model_row_hash`), kept in the ledger
    row_hash: int | None = None


@dataclass
class Plan:
    """What a run would send: counts per action and a sample of keys of each."""

    counts: dict[str, int]
    samples: dict[str, list[str]]
    unchanged: int
    held: int
    #: rows of the model left out for want of the destination's consent
    withheld: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


#: The erasure register's customers (``omnicanal.privacy.register``), when it exists.
ERASED_CUSTOMERS = ("omnicanal_privacy", "erasure_customers")

#: Where dbt builds the consent mart (dbt_project/models/marts/customer/customer_consent.sql).
CONSENT_SCHEMA, CONSENT_MODEL = "marts", "customer_consent"
CONSENT_CHANNELS = ("email", "sms", "whatsapp", "ads")


@dataclass(frozen=True)
class Target:
    """What the diff needs to know of the destination: the consent its rows need, and
    whether it can take a row back (a message cannot)."""

    consent_channel: str | None = None
    supports_remove: bool = True
    #: the warehouse holds an erasure register (``omnicanal privacy erase``): the
    #: customers it names are taken back from an upsert sync too
    erasures: bool = False

    @classmethod
    def of(cls, destination: object, definition: SyncDefinition) -> Target:
        channel = getattr(destination, "consent_channel", None)
        if channel is not None and channel not in CONSENT_CHANNELS:
            raise SyncError(
                f"destination {definition.destination!r} asks for consent channel "
                f"{channel!r}; the consent mart knows {', '.join(CONSENT_CHANNELS)}"
            )
        return cls(channel, bool(getattr(destination, "supports_remove", True)))


def _with_erasures(conn: psycopg.Connection, target: Target) -> Target:
    """``target`` knowing whether the warehouse holds an erasure register."""
    exists = conn.execute(
        "select to_regclass(%s) is not null", (".".join(ERASED_CUSTOMERS),)
    ).fetchone()[0]
    return replace(target, erasures=bool(exists))


def _ledger_filter(definition: SyncDefinition) -> sql.SQL:
    """The ledger rows that count as held by the destination.

    Only ``present`` rows, so a key that was removed, or never accepted, is never
    removed (again). A message sync also counts every key it ever sent, or may have
    sent (``sending``: a run died while the destination had the batch), so a key is
    sent at most once, ever."""
    if definition.mode == MESSAGE:
        return sql.SQL("(present or first_synced_at is not null or last_outcome = 'sending')")
    return sql.SQL("present")


def _consents(customer: str) -> sql.Composed:
    """Whether the consent mart says ``customer`` (an SQL expression) consents to the
    destination's channel: a semi-join, so only the keys it asks about are looked up."""
    return sql.SQL(
        "exists (select 1 from {consent} c where c.customer_id = {customer} "
        "and c.channel = %(channel)s and c.consents)"
    ).format(consent=sql.Identifier(CONSENT_SCHEMA, CONSENT_MODEL), customer=sql.SQL(customer))


def _upsert_revokes(definition: SyncDefinition, target: Target) -> bool:
    """Whether departed keys must be checked against consent: only ``upsert`` keeps
    what left the model, and must still take back what a revocation withdrew."""
    return (
        definition.mode != MESSAGE
        and not definition.removes_departed
        and target.consent_channel is not None
    )


def _departed(definition: SyncDefinition, target: Target) -> sql.Composable:
    """The action for a held key that is not (or no longer may be) in the model."""
    gone = "'remove'" if target.supports_remove else "'depart'"
    if definition.mode == MESSAGE:
        # a message cannot be taken back: the ledger only notes that the key left
        return sql.SQL("case when l.present then 'depart' else 'unchanged' end")
    if definition.removes_departed:
        return sql.SQL(gone)
    # upsert keeps what left the model, but an erased person (LGPD art. 18: the
    # processors the data went to are told) and a revoked consent are honoured
    # everywhere: the key is in the model without consent, or the person it was sent
    # for revoked, or was erased
    reasons: list[sql.Composable] = []
    if _upsert_revokes(definition, target):
        reasons += [
            sql.SQL("w.record_key is not null"),
            sql.SQL("(l.customer_id is not null and not {})").format(_consents("l.customer_id")),
        ]
    if target.erasures:
        reasons.append(
            sql.SQL("l.customer_id in (select customer_id from {})").format(
                sql.Identifier(*ERASED_CUSTOMERS)
            )
        )
    if not reasons:
        return sql.SQL("'unchanged'")
    return sql.SQL("case when {} then {} else 'unchanged' end").format(
        sql.SQL(" or ").join(reasons), sql.SQL(gone)
    )


#: Column types whose text is the value a payload holds for them (``payload ->> field``):
#: the row hash takes them as they are. Any other type is taken as ``to_jsonb`` writes
#: it, which is what ``jsonb_build_object`` put in the payload.
_PLAIN_TEXT_TYPES = ("text", "character varying")


def _hash_seed(definition: SyncDefinition) -> int:
    """The row hash's seed: the mapping's destination fields, so renaming a field (the
    destination then needs every row under its new name) changes every row's hash."""
    digest = hashlib.sha256("\x1f".join(sorted(definition.fields)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _row_hash(definition: SyncDefinition, values: list[sql.Composable]) -> sql.Composable:
    """``hash_record_extended`` of a row of texts (one per mapped field, by field name),
    seeded with the field names: a 64-bit hash of the payload from Postgres' own hash
    functions, 5-10 times cheaper than building the payload as jsonb (or printing it for
    md5), which is what a no-op run spent its time on."""
    if not values:
        return sql.SQL("hash_record_extended(row(null::text), {})").format(
            sql.Literal(_hash_seed(definition))
        )
    return sql.SQL("hash_record_extended(row({}), {})").format(
        sql.SQL(", ").join(values), sql.Literal(_hash_seed(definition))
    )


def _model_row_hash(
    definition: SyncDefinition, text_columns: Collection[str], alias: str
) -> sql.Composable:
    """The row hash of a model row, from its columns: a text column as it is, any other
    as the text of its ``to_jsonb`` (what its payload holds)."""
    values: list[sql.Composable] = []
    for dest in sorted(definition.fields):
        column = sql.SQL("{}.{}").format(
            sql.Identifier(alias), sql.Identifier(definition.fields[dest])
        )
        if definition.fields[dest] in text_columns:
            values.append(sql.SQL('{}::text collate "C"').format(column))
        else:
            values.append(sql.SQL("(to_jsonb({}) #>> '{{}}') collate \"C\"").format(column))
    return _row_hash(definition, values)


def _payload_row_hash(definition: SyncDefinition, payload: str) -> sql.Composable:
    """The row hash of a stored payload (a ledger row without one, a dead letter): the
    same value :func:`_model_row_hash` gives the model row it was built from."""
    values = [
        sql.SQL('({} ->> {}) collate "C"').format(sql.SQL(payload), sql.Literal(dest))
        for dest in sorted(definition.fields)
    ]
    return sql.SQL("case when {} is not null then {} end").format(
        sql.SQL(payload), _row_hash(definition, values)
    )


def _payload_object(definition: SyncDefinition, alias: str) -> sql.Composable:
    """The destination's payload of a model row: ``jsonb_build_object`` of its mapping."""
    pairs = sql.SQL(", ").join(
        sql.SQL("{}, {}.{}").format(sql.Literal(dest), sql.Identifier(alias), sql.Identifier(col))
        for dest, col in definition.fields.items()
    )
    return sql.SQL("jsonb_build_object({})").format(pairs)


def _classified(
    definition: SyncDefinition,
    target: Target = Target(),
    text_columns: Collection[str] = (),
) -> sql.Composed:
    """CTEs ending in ``classified(record_key, row_hash, customer_id, action, held,
    in_model)`` and ``withheld(record_key)``.

    A row changed when its row hash differs from the one the ledger holds
    (``row_hash``; a ledger row without one, written before the column existed, is
    hashed from its stored payload, which gives the same value: :func:`_payload_row_hash`,
    and :func:`hash_ledger` stores it). The model side is hashed from its columns
    (:func:`_model_row_hash`) and no payload is built here: :func:`_diff_query` builds
    them for the rows a run sends, so a run with nothing to do builds none and carries
    only keys and hashes through the join.

    ``action`` is insert, update, remove, depart (ledger only: the destination cannot
    remove) or unchanged; ``held`` says the same change was refused before (same
    action, same payload: its row hash) and sits in the dead letters; ``in_model`` that the key
    is in the model with consent. ``withheld`` are the model's keys left out for want
    of consent (:data:`CONSENT_MODEL`, ``consents`` for the destination's channel).
    ``text_columns`` are the mapped columns of type text or varchar (hashed as they are;
    a column left out of it is hashed through ``to_jsonb``, the same value, slower).
    """
    customer = (
        sql.SQL("m.{}::text").format(sql.Identifier(definition.customer_column))
        if definition.customer_column
        else sql.SQL("null::text")
    )
    if target.consent_channel is None:
        consented, withheld = sql.SQL("true"), sql.SQL("false")
    else:
        consented = _consents("m.customer_id")
        withheld = sql.SQL("not {}").format(consented)
    withheld_join = sql.SQL(
        "left join withheld w on h.record_key is null and w.record_key = l.record_key"
        if _upsert_revokes(definition, target)
        else ""
    )
    if definition.mode == MESSAGE:
        changed = sql.SQL("'unchanged'")  # a message is not sent again when it changes
    else:
        changed = sql.SQL(
            "case when h.row_hash is distinct from l.row_hash then 'update' else 'unchanged' end"
        )
    return sql.SQL(
        """
        with model as not materialized (
            select m.{key}::text as record_key,
                {model_hash} as row_hash,
                {customer} as customer_id
            from {schema}.{model} m
            where m.{key} is not null
        ),
        hashed as (
            select record_key, row_hash, customer_id
            from model m where {consented}
        ),
        withheld as (
            select record_key from model m where {withheld}
        ),
        ledger as (
            select record_key, coalesce(row_hash, {ledger_hash}) as row_hash,
                customer_id, present
            from {ledger}.sync_ledger
            where sync_name = %(sync)s and {ledger_filter}
        ),
        diff as (
            select
                coalesce(h.record_key, l.record_key) as record_key,
                coalesce(h.row_hash, l.row_hash) as row_hash,
                coalesce(h.customer_id, l.customer_id) as customer_id,
                h.record_key is not null as in_model,
                case
                    when l.record_key is null then 'insert'
                    when h.record_key is null then {departed}
                    else {changed}
                end as action
            from hashed h
            full join ledger l on h.record_key = l.record_key
            {withheld_join}
        ),
        classified as materialized (
            select d.record_key, d.row_hash, d.customer_id, d.action,
                coalesce(
                    d.action <> 'unchanged' and dl.action = d.action
                    and {dead_hash} is not distinct from d.row_hash,
                    false
                ) as held,
                d.in_model
            from diff d
            left join {ledger}.sync_dead_letters dl
                on dl.sync_name = %(sync)s and dl.record_key = d.record_key
        )
        """
    ).format(
        key=sql.Identifier(definition.key),
        model_hash=_model_row_hash(definition, text_columns, "m"),
        ledger_hash=_payload_row_hash(definition, "payload"),
        dead_hash=_payload_row_hash(definition, "dl.payload"),
        customer=customer,
        consented=consented,
        withheld=withheld,
        withheld_join=withheld_join,
        schema=sql.Identifier(definition.schema),
        model=sql.Identifier(definition.model),
        ledger=sql.Identifier(SCHEMA),
        ledger_filter=_ledger_filter(definition),
        departed=_departed(definition, target),
        changed=changed,
    )


def _params(definition: SyncDefinition, target: Target) -> dict:
    return {"sync": definition.name, "channel": target.consent_channel}


def _selection(mode: str) -> tuple[sql.SQL, sql.SQL]:
    """(which classified rows a run of ``mode`` sends, the action it sends them with)."""
    if mode == FULL_RESYNC:
        # every row of the model again, and every change; a key kept at the destination
        # after it left the model (upsert) has no row to send
        return sql.SQL("action <> 'unchanged' or in_model"), sql.SQL(
            "case when action = 'unchanged' then 'update' else action end"
        )
    if mode == REPLAY:
        return sql.SQL("held"), sql.SQL("action")
    return sql.SQL("action <> 'unchanged' and not held"), sql.SQL("action")


def _diff_query(
    definition: SyncDefinition,
    mode: str = NORMAL,
    target: Target = Target(),
    text_columns: Collection[str] = (),
) -> sql.Composed:
    """The rows to send, then one summary row counting what is not sent.

    A row in the model gets its payload built from the model's row (and the md5 of its
    text as ``payload_hash``); a row that left it (a removal) the payload the ledger
    holds. Each row carries its row hash for the ledger. The summary row has
    ``action`` = ``'#summary'`` and the counts of unchanged, held and withheld (no
    consent) rows in ``payload``.
    """
    selected, action = _selection(mode)
    return sql.SQL(
        """{classified},
        chosen as (
            select record_key, row_hash, customer_id, in_model, {action} as action
            from classified where {selected}
        )
        select c.record_key,
            p.payload,
            case when c.in_model then md5(p.payload::text) end as payload_hash,
            c.customer_id, c.action, c.row_hash
        from chosen c
        left join {schema}.{model} m
            on c.in_model and m.{key} is not null and m.{key}::text = c.record_key
        left join {ledger}.sync_ledger l
            on not c.in_model and l.sync_name = %(sync)s and l.record_key = c.record_key
        cross join lateral (
            select case when c.in_model then {payload} else l.payload end as payload
        ) p
        union all
        select null, jsonb_build_object(
                'unchanged', count(*) filter (where action = 'unchanged'),
                'held', count(*) filter (where held),
                'withheld', (select count(*) from withheld)
            ), null, null, {summary}, null
        from classified where not ({selected})
        """
    ).format(
        classified=_classified(definition, target, text_columns),
        action=action,
        selected=selected,
        payload=_payload_object(definition, "m"),
        schema=sql.Identifier(definition.schema),
        model=sql.Identifier(definition.model),
        key=sql.Identifier(definition.key),
        ledger=sql.Identifier(SCHEMA),
        summary=sql.Literal(SUMMARY),
    )


def _plan_query(
    definition: SyncDefinition,
    mode: str = NORMAL,
    target: Target = Target(),
    text_columns: Collection[str] = (),
) -> sql.Composed:
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
            array[(count(*) filter (where held))::text, (select count(*) from withheld)::text]
        from classified where not ({selected})
        """
    ).format(
        classified=_classified(definition, target, text_columns),
        action=action,
        selected=selected,
        sample=sql.Literal(SAMPLE_SIZE),
        summary=sql.Literal(SUMMARY),
    )


def _columns(conn: psycopg.Connection, schema: str, table: str) -> set[str] | None:
    """The columns of ``schema.table`` (None if there is no such table or view)."""
    found = {
        r[0]
        for r in conn.execute(
            "select column_name from information_schema.columns "
            "where table_schema = %s and table_name = %s",
            (schema, table),
        )
    }
    return found or None


def _text_columns(conn: psycopg.Connection, definition: SyncDefinition) -> frozenset[str]:
    """The model's mapped columns of type text or varchar: their text is the value a
    payload holds for them, so the row hash takes them as they are."""
    return frozenset(
        r[0]
        for r in conn.execute(
            "select column_name from information_schema.columns "
            "where table_schema = %s and table_name = %s and data_type = any(%s)",
            (definition.schema, definition.model, list(_PLAIN_TEXT_TYPES)),
        )
        if r[0] in definition.fields.values()
    )


def _check_model(
    conn: psycopg.Connection, definition: SyncDefinition, target: Target = Target()
) -> tuple[int, int]:
    """Rows in the model and rows with a null key; duplicate keys stop the sync, and so
    does a destination that needs consent when the model or the consent mart cannot
    say who consents."""
    columns = _columns(conn, definition.schema, definition.model)
    if columns is None:
        raise SyncError(
            f"the sync model {definition.schema}.{definition.model} does not exist in the "
            "warehouse; build it first (`omnicanal dbt build` or the dbt DAG)"
        )
    wanted = {definition.key, *definition.fields.values()}
    missing = sorted(wanted - columns)
    if missing:
        raise SyncError(
            f"sync {definition.name!r}: model {definition.model} has no column(s) "
            f"{', '.join(missing)} (declared in {definition.source_file})"
        )
    if definition.customer_column not in columns:
        if target.consent_channel is not None:
            raise SyncError(
                f"sync {definition.name!r}: {definition.destination} only receives people "
                f"with {target.consent_channel} consent, and model {definition.model} has no "
                f"column {definition.customer_column!r} to check it on; add the customer_id "
                "to the model, or name the column with meta.omnicanal_sync.customer_column "
                f"(in {definition.source_file or 'the exposure'})"
            )
        definition = replace(definition, customer_column="")
    if target.consent_channel is not None:
        consent = _columns(conn, CONSENT_SCHEMA, CONSENT_MODEL)
        if consent is None or not {"customer_id", "channel", "consents"} <= consent:
            raise SyncError(
                f"sync {definition.name!r}: {definition.destination} only receives people "
                f"with {target.consent_channel} consent, and the consent mart "
                f"{CONSENT_SCHEMA}.{CONSENT_MODEL} is not in the warehouse; build it first "
                f"(`omnicanal dbt build --select {CONSENT_MODEL}`)"
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


def _effective(conn: psycopg.Connection, definition: SyncDefinition) -> SyncDefinition:
    """The definition with ``customer_column`` emptied when the model has no such column
    (allowed when the destination needs no consent: the ledger then keeps no customer)."""
    columns = _columns(conn, definition.schema, definition.model) or set()
    if definition.customer_column in columns:
        return definition
    return replace(definition, customer_column="")


def plan(
    conn: psycopg.Connection,
    definition: SyncDefinition,
    mode: str = NORMAL,
    target: Target = Target(),
) -> Plan:
    """What a run of ``mode`` would send (counts and samples), computed in SQL."""
    definition = _effective(conn, definition)
    counts = {action: 0 for action in ACTIONS}
    samples: dict[str, list[str]] = {action: [] for action in ACTIONS}
    unchanged = held = withheld = 0
    text_columns = _text_columns(conn, definition)
    for action, count, keys in conn.execute(
        _plan_query(definition, mode, target, text_columns), _params(definition, target)
    ):
        if action == SUMMARY:
            unchanged, held, withheld = count, int(keys[0]), int(keys[1])
        else:
            counts[action] = count
            samples[action] = list(keys or [])
    return Plan(counts, samples, unchanged, held, withheld)


def _changes(
    conn: psycopg.Connection,
    definition: SyncDefinition,
    mode: str,
    target: Target,
    report: SyncReport,
    itersize: int,
) -> Iterator[Change]:
    """Stream the rows to send from a server-side cursor; fill the report's counts."""
    query = _diff_query(definition, mode, target, _text_columns(conn, definition))
    with conn.cursor(name="omnicanal_sync_diff") as cur:
        cur.itersize = itersize
        cur.execute(query, _params(definition, target))
        for record_key, payload, payload_hash, customer_id, action, row_hash in cur:
            if action == SUMMARY:
                report.unchanged, report.held = payload["unchanged"], payload["held"]
                report.withheld = payload["withheld"]
                continue
            report.rows_fetched += 1
            yield Change(action, Row(record_key, payload), payload_hash, customer_id, row_hash)


# One statement per table and batch, the batch's rows as one JSON array of objects
# (``jsonb_to_recordset``): a batch of 1,000 rows is a handful of statements, not
# thousands (executemany spent ~0.6 s of every 1,000-row batch, longer than the
# destination's answer, and text arrays cost psycopg a regex per element).
_OUTCOME_SQL = f"""insert into {SCHEMA}.sync_row_outcomes
        (run_id, record_key, action, ok, error, status)
    select %s, t.record_key, t.action, t.ok, t.error, t.status
    from jsonb_to_recordset(%s::jsonb)
        as t (record_key text, action text, ok boolean, error text, status text)
    on conflict (run_id, record_key) do update
    set action = excluded.action, ok = excluded.ok, error = excluded.error,
        status = excluded.status"""

_PENDING_SQL = f"""insert into {SCHEMA}.sync_ledger (sync_name, record_key, present,
        last_attempt_at, last_outcome)
    select %s, t.record_key, false, now(), 'pending'
    from jsonb_to_recordset(%s::jsonb) as t (record_key text)
    on conflict (sync_name, record_key) do update
    set last_attempt_at = now(), last_outcome = 'pending'"""

_SENDING_SQL = f"""insert into {SCHEMA}.sync_ledger (sync_name, record_key, customer_id,
        present, last_attempt_at, last_outcome)
    select %s, t.record_key, t.customer_id, false, now(), 'sending'
    from jsonb_to_recordset(%s::jsonb) as t (record_key text, customer_id text)
    on conflict (sync_name, record_key) do update
    set last_attempt_at = now(), last_outcome = 'sending',
        customer_id = coalesce(excluded.customer_id, sync_ledger.customer_id)"""

_FAILED_SQL = f"""insert into {SCHEMA}.sync_ledger (sync_name, record_key, present,
        last_attempt_at, last_error, last_outcome)
    select %s, t.record_key, false, now(), t.reason, 'failed'
    from jsonb_to_recordset(%s::jsonb) as t (record_key text, reason text)
    on conflict (sync_name, record_key) do update
    set last_attempt_at = now(), last_error = excluded.last_error, last_outcome = 'failed'"""

_DEAD_LETTER_SQL = f"""insert into {SCHEMA}.sync_dead_letters (sync_name, record_key, action,
        payload, payload_hash, reason)
    select %s, t.record_key, t.action, t.payload, t.payload_hash, t.reason
    from jsonb_to_recordset(%s::jsonb)
        as t (record_key text, action text, payload jsonb, payload_hash text, reason text)
    on conflict (sync_name, record_key) do update
    set action = excluded.action, payload = excluded.payload,
        payload_hash = excluded.payload_hash, reason = excluded.reason,
        last_failed_at = now(), attempts = sync_dead_letters.attempts + 1"""

_REMOVED_SQL = f"""update {SCHEMA}.sync_ledger as ledger
    set present = false, last_synced_at = now(), last_attempt_at = now(),
        last_error = null, last_outcome = t.outcome
    from jsonb_to_recordset(%s::jsonb) as t (record_key text, outcome text)
    where ledger.sync_name = %s and ledger.record_key = t.record_key"""

_SENT_SQL = f"""insert into {SCHEMA}.sync_ledger (sync_name, record_key, payload,
        payload_hash, row_hash, customer_id, present, first_synced_at, last_synced_at,
        last_attempt_at, last_error, last_outcome)
    select %s, t.record_key, t.payload, t.payload_hash, t.row_hash, t.customer_id, true,
        now(), now(), now(), null, 'sent'
    from jsonb_to_recordset(%s::jsonb) as t (
        record_key text, payload jsonb, payload_hash text, row_hash bigint, customer_id text)
    on conflict (sync_name, record_key) do update
    set payload = excluded.payload, payload_hash = excluded.payload_hash,
        row_hash = excluded.row_hash,
        customer_id = coalesce(excluded.customer_id, sync_ledger.customer_id),
        present = true, last_synced_at = now(), last_attempt_at = now(),
        last_error = null, last_outcome = 'sent',
        first_synced_at = coalesce(sync_ledger.first_synced_at, now())"""

_RESOLVED_SQL = f"""delete from {SCHEMA}.sync_dead_letters as dead
    using jsonb_to_recordset(%s::jsonb) as t (record_key text)
    where dead.sync_name = %s and dead.record_key = t.record_key"""


def _recordset(rows: list[dict]) -> str:
    """A batch's rows (dicts with a ``record_key``) as one JSON array for
    ``jsonb_to_recordset``; a key twice keeps its last row, as one statement a row did
    (an upsert may not touch a row twice)."""
    return json.dumps(list({row["record_key"]: row for row in rows}.values()))


def _outcome(key: str, action: str, ok: bool | None, error: str | None, status: str) -> dict:
    return {"record_key": key, "action": action, "ok": ok, "error": error, "status": status}


def _mark_sending(conn: psycopg.Connection, sync_name: str, changes: list[Change]) -> None:
    """Commit that a batch of messages is going out, before it does (see the ledger)."""
    rows = [{"record_key": c.row.key, "customer_id": c.customer_id} for c in changes]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_SENDING_SQL, (sync_name, _recordset(rows)))


def _record(
    conn: psycopg.Connection,
    run_id: int,
    sync_name: str,
    changes: list[Change],
    outcomes: list[Outcome] | None,
    report: SyncReport,
) -> None:
    """Commit one batch's outcomes: sent, failed (+ dead letter) or pending (no answer).

    ``outcomes`` None is a batch of departures, recorded without the destination."""
    by_key = {o.key: o for o in outcomes or []}
    rows_out, pending, failed, dead, removed, sent, resolved = [], [], [], [], [], [], []
    for change in changes:
        key = change.row.key
        if outcomes is None:
            rows_out.append(_outcome(key, change.action, True, None, "departed"))
            removed.append({"record_key": key, "outcome": "departed"})
            resolved.append({"record_key": key})
            report.departed += 1
            continue
        outcome = by_key.get(key)
        if outcome is None:
            rows_out.append(_outcome(key, change.action, None, None, "pending"))
            pending.append({"record_key": key})
            report.pending += 1
        elif not outcome.ok:
            reason = outcome.error or "refused without a reason"
            rows_out.append(_outcome(key, change.action, False, reason, "failed"))
            failed.append({"record_key": key, "reason": reason})
            dead.append(
                {
                    "record_key": key,
                    "action": change.action,
                    "payload": change.row.payload,
                    "payload_hash": change.payload_hash,
                    "reason": reason,
                }
            )
            report.failed += 1
            if len(report.errors) < 20:
                report.errors.append(f"{key}: {reason}")
        else:
            rows_out.append(_outcome(key, change.action, True, None, "sent"))
            resolved.append({"record_key": key})
            if change.action == "remove":
                removed.append({"record_key": key, "outcome": "removed"})
            else:
                sent.append(
                    {
                        "record_key": key,
                        "payload": change.row.payload,
                        "payload_hash": change.payload_hash,
                        "row_hash": change.row_hash,
                        "customer_id": change.customer_id,
                    }
                )
            counter = _counter(change.action)
            setattr(report, counter, getattr(report, counter) + 1)
    with conn.transaction(), conn.cursor() as cur:
        # the run row counts what is confirmed so far, with the batch: a run that is
        # killed later still says what it delivered (and `status` shows a run's progress)
        cur.execute(
            f"""update {SCHEMA}.sync_runs set inserted = %s, updated = %s, removed = %s,
                    departed = %s, failed = %s, pending = %s
                where run_id = %s""",
            (
                report.inserted,
                report.updated,
                report.removed,
                report.departed,
                report.failed,
                report.pending,
                run_id,
            ),
        )
        if rows_out:
            cur.execute(_OUTCOME_SQL, (run_id, _recordset(rows_out)))
        for statement, rows in (
            (_PENDING_SQL, pending),
            (_FAILED_SQL, failed),
            (_DEAD_LETTER_SQL, dead),
            (_SENT_SQL, sent),
        ):
            if rows:
                cur.execute(statement, (sync_name, _recordset(rows)))
        if removed:
            cur.execute(_REMOVED_SQL, (_recordset(removed), sync_name))
        if resolved:
            cur.execute(_RESOLVED_SQL, (_recordset(resolved), sync_name))


def hash_ledger(conn: psycopg.Connection, definition: SyncDefinition) -> int:
    """Give the ledger rows of ``definition`` that hold a payload but no row hash (written
    before the ledger had the column, or settled from a WhatsApp status) their hash,
    computed from the payload: the value the model's row hashes to while it is
    unchanged, so the upgrade resends nothing. Only such rows are read (a partial index
    holds them), so a run after the upgrade pays nothing for it. Returns how many."""
    hashed = conn.execute(
        sql.SQL(
            """update {ledger}.sync_ledger set row_hash = {hash}
            where sync_name = %s and row_hash is null and payload is not null"""
        ).format(ledger=sql.Identifier(SCHEMA), hash=_payload_row_hash(definition, "payload")),
        (definition.name,),
    ).rowcount
    conn.commit()
    if hashed:
        log.info("sync %s: %d ledger row(s) hashed from their payload", definition.name, hashed)
    return hashed


def _resolve_stale(conn: psycopg.Connection, definition: SyncDefinition, target: Target) -> None:
    """Dead letters and pending marks of keys that need nothing any more (they left the
    model, or the destination holds them as they are) are settled."""
    sync = definition.name
    stale = conn.execute(
        f"""select exists (select 1 from {SCHEMA}.sync_dead_letters where sync_name = %(sync)s)
            or exists (select 1 from {SCHEMA}.sync_ledger
                       where sync_name = %(sync)s and last_outcome = 'pending')""",
        {"sync": sync},
    ).fetchone()[0]
    text_columns = _text_columns(conn, definition) if stale else frozenset()
    # committed before the transaction below, so that it is one (not a savepoint)
    conn.commit()
    if not stale:
        return
    needed = sql.SQL(
        "{classified} select record_key from classified where action <> 'unchanged'"
    ).format(classified=_classified(definition, target, text_columns))
    with conn.transaction():
        conn.execute(
            sql.SQL("create temporary table omnicanal_needed on commit drop as {needed}").format(
                needed=needed
            ),
            _params(definition, target),
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
    ledger knows, so it still never touches what the sync did not write (a message sync
    refuses it: a message is sent once). ``replay`` sends only the dead-lettered rows
    (refused before), after a fix at the destination.
    """
    if full_resync and replay:
        raise SyncError("a run is either a full resync or a replay of the dead letters, not both")
    definition = definition or get_definition(settings.dbt_project_dir, name)
    if full_resync and definition.mode == MESSAGE:
        raise SyncError(
            f"sync {definition.name!r} sends messages (mode message): each is sent once, "
            "so it has no full resync"
        )
    mode = FULL_RESYNC if full_resync else REPLAY if replay else NORMAL
    report = SyncReport(
        definition.name,
        definition.destination,
        mode=mode,
        sync_mode=definition.mode,
        dry_run=dry_run,
    )
    lock = f"omnicanal_sync:{definition.name}"
    owned = destination is None
    dest = destination or get_destination(
        definition.destination, settings, definition.destination_options()
    )
    try:
        target = Target.of(dest, definition)
        with connect(settings) as conn:
            ensure_schema(conn)
            target = _with_erasures(conn, target)
            conn.commit()
            # One run of a sync at a time: a second concurrent run would send the same diff.
            if not conn.execute("select pg_try_advisory_lock(hashtext(%s))", (lock,)).fetchone()[0]:
                raise SyncError(f"sync {definition.name!r} is already running elsewhere")
            try:
                _close_dead_runs(conn, definition.name)
                report.rows_in_model, report.skipped_null_keys = _check_model(
                    conn, definition, target
                )
                definition = _effective(conn, definition)
                conn.commit()
                if dry_run:
                    planned = plan(conn, definition, mode, target)
                    conn.commit()
                    report.inserted = planned.counts["insert"]
                    report.updated = planned.counts["update"]
                    report.removed = planned.counts["remove"]
                    report.departed = planned.counts["depart"]
                    report.unchanged, report.held = planned.unchanged, planned.held
                    report.withheld = planned.withheld
                    return report
                hash_ledger(conn, definition)
                _send(settings, conn, definition, mode, target, report, dest)
                _resolve_stale(conn, definition, target)
            finally:
                conn.rollback()
                conn.execute("select pg_advisory_unlock(hashtext(%s))", (lock,))
                conn.commit()
    finally:
        if owned:
            dest.close()
    return report


def _close_dead_runs(conn: psycopg.Connection, sync_name: str) -> None:
    """Runs still marked running while we hold the sync's lock died without finishing
    (the process was killed): say so. What they confirmed is in the ledger already."""
    conn.execute(
        f"""update {SCHEMA}.sync_runs set status = 'killed', finished_at = now(),
                error = coalesce(error, 'the run stopped before it finished (its process '
                    || 'was killed or lost its connection); the next run sent the rest')
            where sync_name = %s and status = 'running'""",
        (sync_name,),
    )
    conn.commit()


def plan_sync(settings: Settings, name: str) -> tuple[SyncDefinition, Plan]:
    """The dry run of ``omnicanal sync plan``: what the next run would send."""
    definition = get_definition(settings.dbt_project_dir, name)
    dest = get_destination(definition.destination, settings, definition.destination_options())
    try:
        target = Target.of(dest, definition)
    finally:
        dest.close()
    with connect(settings) as conn:
        ensure_schema(conn)
        target = _with_erasures(conn, target)
        conn.commit()
        _check_model(conn, definition, target)
        return definition, plan(conn, definition, NORMAL, target)


def _counter(action: str) -> str:
    return {"insert": "inserted", "update": "updated", "remove": "removed"}[action]


def _requests_sent(dest: object) -> int | None:
    """The destination's count of HTTP requests (``requests_sent``, or its
    RetryingClient's as ``client.requests_sent``), retries included; None if unknown."""
    for holder in (dest, getattr(dest, "client", None)):
        count = getattr(holder, "requests_sent", None)
        if isinstance(count, int):
            return count
    return None


def _stats(dest: object, definition: SyncDefinition) -> dict | None:
    """What the destination says of the run (its optional ``stats()``), JSON-ready."""
    stats = getattr(dest, "stats", None)
    if not callable(stats):
        return None
    try:
        found = stats()
    except Exception as exc:  # a report must not fail a run whose rows are recorded
        log.warning("sync %s: the destination's stats() failed: %s", definition.name, exc)
        return {"stats_error": str(exc)}
    if not found:
        return None
    return json.loads(json.dumps(dict(found), default=str))


def _send(
    settings: Settings,
    conn: psycopg.Connection,
    definition: SyncDefinition,
    mode: str,
    target: Target,
    report: SyncReport,
    dest: Destination,
) -> None:
    run_id = conn.execute(
        f"insert into {SCHEMA}.sync_runs (sync_name, destination, rows_in_model, sync_mode) "
        "values (%s, %s, %s, %s) returning run_id",
        (definition.name, definition.destination, report.rows_in_model, definition.mode),
    ).fetchone()[0]
    conn.commit()
    report.run_id = run_id
    report.rate_limit = getattr(dest, "rate_limit", None)
    if report.skipped_null_keys:
        report.errors.append(
            f"{report.skipped_null_keys} row(s) of {definition.model} have no {definition.key} "
            "(the sync's key) and were left out"
        )
    requests_before = _requests_sent(dest)
    messages = definition.mode == MESSAGE or not target.supports_remove
    waited = 0.0
    first_call: float | None = None
    status, error = "failed", "interrupted"
    try:
        # The diff is read on a connection of its own (one snapshot, one transaction)
        # while each batch's outcomes are committed on this one.
        with connect(settings) as reader:
            buffers: dict[str, list[Change]] = {"upsert": [], "remove": [], "depart": []}
            checked = False

            def flush(kind: str) -> None:
                nonlocal checked, waited, first_call
                batch = buffers[kind]
                if not batch:
                    return
                buffers[kind] = []
                if kind == "depart":  # ledger only: the destination cannot take it back
                    _record(conn, run_id, definition.name, batch, None, report)
                    return
                if kind == "remove" and not target.supports_remove:
                    raise AssertionError("a destination without removal was asked to remove")
                started = time.monotonic()
                if first_call is None:
                    first_call = started
                try:
                    if not checked:  # only when there is something to send
                        dest.check()
                        checked = True
                    if messages and kind == "upsert":
                        _mark_sending(conn, definition.name, batch)
                    call = dest.remove if kind == "remove" else dest.upsert
                    outcomes = call([c.row for c in batch])
                finally:
                    # from the first request to the last answer, the ledger's commits
                    # between batches included: the span the destination's rate is over
                    waited = time.monotonic() - first_call
                _record(conn, run_id, definition.name, batch, outcomes, report)

            size = max(1, dest.batch_size)
            changes = _changes(reader, definition, mode, target, report, itersize=max(size, 1000))
            try:
                for change in changes:
                    kind = "upsert" if change.action in ("insert", "update") else change.action
                    buffers[kind].append(change)
                    if len(buffers[kind]) >= size:
                        flush(kind)
            finally:
                changes.close()  # the server-side cursor, while its connection is open
            flush("upsert")
            flush("remove")
            flush("depart")
        status = "success" if report.failed == 0 and report.pending == 0 else "partial"
        error = None
    except Exception as exc:
        conn.rollback()
        status, error = "failed", str(exc)
        report.errors.append(error)
        raise
    finally:
        requests_after = _requests_sent(dest)
        if requests_before is not None and requests_after is not None:
            report.requests = requests_after - requests_before
        report.send_seconds = round(waited, 3)
        report.destination_stats = _stats(dest, definition)
        report.status = status
        conn.execute(
            f"""update {SCHEMA}.sync_runs set finished_at = now(), status = %s, inserted = %s,
                    updated = %s, removed = %s, departed = %s, unchanged = %s, failed = %s,
                    pending = %s, held = %s, withheld = %s, requests = %s, send_seconds = %s,
                    rate_limit = %s, destination_stats = %s, skipped_null_keys = %s, error = %s
                where run_id = %s""",
            (
                status,
                report.inserted,
                report.updated,
                report.removed,
                report.departed,
                report.unchanged,
                report.failed,
                report.pending,
                report.held,
                report.withheld,
                report.requests,
                report.send_seconds,
                report.rate_limit,
                Jsonb(report.destination_stats) if report.destination_stats else None,
                report.skipped_null_keys,
                error,
                run_id,
            ),
        )
        conn.commit()
        run = run_row(conn, run_id)
        conn.commit()
        log.info("sync %s (%s) %s", definition.name, mode, describe_run(run))
