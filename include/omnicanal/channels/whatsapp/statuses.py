"""Delivery statuses of the messages WhatsApp syncs sent, from the webhook receiver into the ledger.

A template message accepted by the Cloud API is not yet delivered: WhatsApp reports
``sent``, ``delivered``, ``read`` or ``failed`` (with Meta's error, e.g. 131026 for a
number not on WhatsApp) later, by webhook, to our receiver. This step reads those status
events through the receiver's read API (``GET /events/whatsapp?after=<seq>``, bearer
``OMNICANAL_WEBHOOKS_READ_TOKEN``), from a bookmark kept in the warehouse, and writes the
latest state of each message to ``omnicanal_activation.message_statuses``: one row per
message (``message_id``, the ``wamid`` a sync's :class:`Outcome` carried as ``ref``) with the
sync and key it was sent for, its furthest status (sent < delivered < read; ``failed`` is
final), when each status happened and the failure's reason.

A status is matched to the row it reports on by its message id: one already in the
table, or the id the ledger kept for the row (``ref``, when the ledger has it); else by
the key the destination sent as ``biz_opaque_callback_data`` (WhatsApp echoes it in the
message's statuses), looked up among the keys WhatsApp syncs wrote. Webhooks come at
least once and in any order: a status seen twice changes nothing, and a ``delivered``
arriving after ``read`` does not take it back.
Statuses of other messages (agents' replies) are left alone. The bookmark and the
statuses move in one transaction, so a step killed half-way reads the same events again.

A status also settles a row the ledger holds **in doubt**: marked ``sending`` by a run
killed before the Cloud API's answer was recorded, or failed "in doubt" because the API
gave no answer. Such a row is never sent again automatically (at most one message per
person and campaign), so without a status it would stay unknown: ``sent``, ``delivered``
or ``read`` proves WhatsApp took the message, and the row becomes sent (its dead letter,
if any, goes: there is nothing to replay); ``failed`` makes it a failed row with Meta's
reason. Rows not in doubt are left as their run recorded them, but for a **refusal**:
a ``failed`` status whose code says WhatsApp will not deliver to this person at all
(:data:`REFUSED_CODES`: 131050, the user stopped the business's marketing messages)
makes a row its run recorded as sent a failed one, with Meta's reason, in the ledger and
in the run's row outcome. It is never sent again: a message sync's key is sent once,
and ``replay`` resends only rows refused by the API's answer (dead letters), which this
is not; the person's stop reaches the consent mart through the ``user_preferences``
webhook, so their next campaign window is not sent either.

Run it with ``omnicanal whatsapp statuses``; the WhatsApp destination also runs it at the
start and end of each sync run, so the ledger stays current without a schedule of its own.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from omnicanal.activation.ledger import SCHEMA, ensure_schema
from omnicanal.channels.whatsapp import receiver_url
from omnicanal.config import Settings
from omnicanal.errors import SyncError
from omnicanal.warehouse import connect

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
PAGE_SIZE = 1000
#: How far along a message is; a status never moves a message back.
RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}
#: Failed statuses that refuse the person, not the message: the row becomes failed
#: even when its run recorded it sent.
REFUSED_CODES = {131050: "the user stopped the business's marketing messages"}

DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.message_statuses (
    message_id    text primary key,
    sync_name     text not null,
    record_key    text not null,
    recipient_id  text,
    status        text not null,
    error         text,
    error_code    integer,
    sent_at       timestamptz,
    delivered_at  timestamptz,
    read_at       timestamptz,
    failed_at     timestamptz,
    updated_at    timestamptz not null default now()
);
create index if not exists message_statuses_sync
    on {SCHEMA}.message_statuses (sync_name, status);
create table if not exists {SCHEMA}.message_status_bookmarks (
    channel     text primary key,
    after_seq   bigint not null,
    updated_at  timestamptz not null default now()
);
"""


@dataclass
class StatusReport:
    """What one pass read and wrote."""

    events_read: int = 0
    statuses: int = 0
    unmatched: int = 0
    bookmark: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    #: rows in doubt that a status settled: sent, or failed with Meta's reason
    settled_sent: int = 0
    settled_failed: int = 0
    #: rows recorded sent that a refusal (:data:`REFUSED_CODES`) made failed
    refused: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "events_read": self.events_read,
            "statuses": self.statuses,
            "unmatched": self.unmatched,
            "settled_sent": self.settled_sent,
            "settled_failed": self.settled_failed,
            "refused": self.refused,
            "bookmark": self.bookmark,
            "by_status": dict(self.by_status),
        }


def ensure_tables(conn: psycopg.Connection) -> None:
    """Create the statuses table and the bookmark, idempotently (concurrent runs too)."""
    ensure_schema(conn)
    exists = conn.execute(
        "select count(*) from information_schema.tables where table_schema = %s "
        "and table_name in ('message_statuses', 'message_status_bookmarks')",
        (SCHEMA,),
    ).fetchone()[0]
    if exists == 2:
        return
    conn.execute("select pg_advisory_xact_lock(hashtext('omnicanal_whatsapp_statuses_ddl'))")
    conn.execute(DDL)


def whatsapp_syncs(settings: Settings) -> list[str]:
    """The syncs declared in the dbt project that send to WhatsApp."""
    from omnicanal.activation.definitions import load_definitions

    return sorted(
        d.name
        for d in load_definitions(settings.dbt_project_dir).values()
        if d.destination == CHANNEL
    )


def _read_page(client: httpx.Client, after: int) -> dict[str, Any]:
    try:
        response = client.get(f"/events/{CHANNEL}", params={"after": after, "limit": PAGE_SIZE})
    except httpx.TransportError as exc:
        raise SyncError(
            f"the webhook receiver at {client.base_url} cannot be reached ({exc}); is it "
            "running (`omnicanal webhooks serve`) and is OMNICANAL_WHATSAPP_RECEIVER_URL right?"
        ) from None
    if response.status_code == 401:
        raise SyncError(
            "the webhook receiver refused the read token; check OMNICANAL_WEBHOOKS_READ_TOKEN"
        )
    if response.status_code != 200:
        raise SyncError(
            f"the webhook receiver answered HTTP {response.status_code} to "
            f"GET /events/{CHANNEL}: {response.text[:200]}"
        )
    return response.json()


def _error_of(status: dict[str, Any]) -> tuple[str | None, int | None]:
    errors = status.get("errors") or []
    if not errors:
        return None, None
    error = errors[0]
    code = error.get("code")
    title = error.get("title") or error.get("message") or "failed"
    details = (error.get("error_data") or {}).get("details")
    text = f"({code}) {title}" if code is not None else str(title)
    return (f"{text}: {details}" if details else text), code


def _ref_lookup(conn: psycopg.Connection) -> str | None:
    """SQL finding the (sync, key) a message id was recorded for, if the ledger keeps refs."""
    found = {
        (table, column)
        for table, column in conn.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = %s and column_name = 'ref' "
            "and table_name in ('sync_ledger', 'sync_row_outcomes')",
            (SCHEMA,),
        )
    }
    if ("sync_ledger", "ref") in found:
        return f"select sync_name, record_key from {SCHEMA}.sync_ledger where ref = %(id)s"
    if ("sync_row_outcomes", "ref") in found:
        return (
            f"select r.sync_name, o.record_key from {SCHEMA}.sync_row_outcomes o "
            f"join {SCHEMA}.sync_runs r using (run_id) where o.ref = %(id)s"
        )
    return None


def _match(
    conn: psycopg.Connection,
    by_ref: str | None,
    syncs: list[str],
    message_id: str,
    callback: str | None,
) -> tuple[str, str] | None:
    known = conn.execute(
        f"select sync_name, record_key from {SCHEMA}.message_statuses where message_id = %s",
        (message_id,),
    ).fetchone()
    if known:
        return known[0], known[1]
    if by_ref is not None:
        row = conn.execute(by_ref, {"id": message_id}).fetchone()
        if row:
            return row[0], row[1]
    if callback and syncs:
        # the key the destination sent along; the newest WhatsApp sync that wrote it
        row = conn.execute(
            f"""select sync_name, record_key from {SCHEMA}.sync_ledger
                where record_key = %s and sync_name = any(%s)
                order by last_attempt_at desc limit 1""",
            (callback, syncs),
        ).fetchone()
        if row:
            return row[0], row[1]
    return None


_UPSERT = f"""
insert into {SCHEMA}.message_statuses as m (message_id, sync_name, record_key, recipient_id,
        status, error, error_code, sent_at, delivered_at, read_at, failed_at, updated_at)
values (%(id)s, %(sync)s, %(key)s, %(recipient)s, %(status)s, %(error)s, %(code)s,
        %(sent_at)s, %(delivered_at)s, %(read_at)s, %(failed_at)s, now())
on conflict (message_id) do update set
    status = case when {{rank_new}} > {{rank_old}} then excluded.status else m.status end,
    error = coalesce(excluded.error, m.error),
    error_code = coalesce(excluded.error_code, m.error_code),
    recipient_id = coalesce(m.recipient_id, excluded.recipient_id),
    sent_at = coalesce(m.sent_at, excluded.sent_at),
    delivered_at = coalesce(m.delivered_at, excluded.delivered_at),
    read_at = coalesce(m.read_at, excluded.read_at),
    failed_at = coalesce(m.failed_at, excluded.failed_at),
    updated_at = now()
"""


def _rank_sql(column: str) -> str:
    cases = " ".join(f"when '{s}' then {r}" for s, r in RANK.items())
    return f"(case {column} {cases} else 0 end)"


UPSERT_SQL = _UPSERT.format(rank_new=_rank_sql("excluded.status"), rank_old=_rank_sql("m.status"))


# A ledger row in doubt: marked ``sending`` (the run died before recording the answer),
# or failed with an "in doubt" dead letter (the Cloud API gave no answer).
_IN_DOUBT = f"""
    select ledger.sync_name, ledger.record_key, dead.payload, dead.payload_hash
    from {SCHEMA}.sync_ledger as ledger
    left join {SCHEMA}.sync_dead_letters as dead
        on dead.sync_name = ledger.sync_name and dead.record_key = ledger.record_key
    where ledger.sync_name = %(sync)s and ledger.record_key = %(key)s
        and (
            ledger.last_outcome = 'sending'
            or (ledger.last_outcome = 'failed' and dead.reason like 'in doubt:%%')
        )
"""

SETTLE_SENT_SQL = f"""
with doubt as ({_IN_DOUBT}),
settled as (
    update {SCHEMA}.sync_ledger as ledger
    set present = true, first_synced_at = coalesce(ledger.first_synced_at, %(at)s),
        last_synced_at = %(at)s, last_attempt_at = now(), last_error = null,
        last_outcome = 'sent', payload = coalesce(ledger.payload, doubt.payload),
        payload_hash = coalesce(ledger.payload_hash, doubt.payload_hash)
    from doubt
    where ledger.sync_name = doubt.sync_name and ledger.record_key = doubt.record_key
    returning ledger.record_key
),
cleared as (
    delete from {SCHEMA}.sync_dead_letters as dead
    using settled
    where dead.sync_name = %(sync)s and dead.record_key = settled.record_key
    returning dead.record_key
)
select (select count(*) from settled), (select count(*) from cleared)
"""

SETTLE_FAILED_SQL = f"""
with doubt as ({_IN_DOUBT}),
settled as (
    update {SCHEMA}.sync_ledger as ledger
    set last_attempt_at = now(), last_error = %(error)s, last_outcome = 'failed'
    from doubt
    where ledger.sync_name = doubt.sync_name and ledger.record_key = doubt.record_key
    returning ledger.record_key
),
reasoned as (
    update {SCHEMA}.sync_dead_letters as dead
    set reason = %(error)s, last_failed_at = now()
    from settled
    where dead.sync_name = %(sync)s and dead.record_key = settled.record_key
    returning dead.record_key
)
select (select count(*) from settled), (select count(*) from reasoned)
"""


# A refusal of a row its run recorded as sent (rows in doubt are settled above): the
# message never reached the person. first_synced_at stays, so a message sync never
# sends the key again; the run's row outcome says why.
REFUSED_SQL = f"""
with refused as (
    update {SCHEMA}.sync_ledger as ledger
    set present = false, last_outcome = 'failed', last_error = %(error)s,
        last_attempt_at = now()
    where ledger.sync_name = %(sync)s and ledger.record_key = %(key)s
        and ledger.last_outcome = 'sent'
    returning ledger.record_key
),
outcome as (
    update {SCHEMA}.sync_row_outcomes as o
    set ok = false, status = 'failed', error = %(error)s
    from {SCHEMA}.sync_runs as r, refused
    where r.run_id = o.run_id and r.sync_name = %(sync)s
        and o.record_key = refused.record_key and o.status = 'sent'
    returning o.run_id
)
select (select count(*) from refused), (select count(*) from outcome)
"""


def collect_statuses(settings: Settings, *, max_pages: int | None = None) -> StatusReport:
    """Read the status events that arrived since the bookmark and write them to the ledger."""
    report = StatusReport()
    syncs = whatsapp_syncs(settings)
    with (
        connect(settings) as conn,
        httpx.Client(
            base_url=receiver_url(settings),
            headers={"Authorization": f"Bearer {settings.webhooks_read_token}"},
            timeout=30,
        ) as client,
    ):
        ensure_tables(conn)
        conn.commit()
        by_ref = _ref_lookup(conn)
        # one pass at a time: two would write the same events with one bookmark
        conn.execute("select pg_advisory_lock(hashtext('omnicanal_whatsapp_statuses'))")
        conn.commit()  # the lock is the session's; each page commits on its own
        try:
            row = conn.execute(
                f"select after_seq from {SCHEMA}.message_status_bookmarks where channel = %s",
                (CHANNEL,),
            ).fetchone()
            after = row[0] if row else 0
            pages = 0
            while True:
                page = _read_page(client, after)
                # a page's statuses and the bookmark after them, in one transaction
                for event in page.get("data") or []:
                    report.events_read += 1
                    after = max(after, int(event["seq"]))
                    if event.get("kind") == "status":
                        _write(conn, by_ref, syncs, event["event"], report)
                conn.execute(
                    f"""insert into {SCHEMA}.message_status_bookmarks (channel, after_seq)
                        values (%s, %s) on conflict (channel) do update
                        set after_seq = excluded.after_seq, updated_at = now()""",
                    (CHANNEL, after),
                )
                conn.commit()
                pages += 1
                if page.get("next_after") is None or (max_pages and pages >= max_pages):
                    break
            report.bookmark = after
        finally:
            conn.rollback()
            conn.execute("select pg_advisory_unlock(hashtext('omnicanal_whatsapp_statuses'))")
            conn.commit()
    log.info("whatsapp statuses: %s", report.as_dict())
    return report


def _write(
    conn: psycopg.Connection,
    by_ref: str | None,
    syncs: list[str],
    status: dict[str, Any] | str,
    report: StatusReport,
) -> None:
    if isinstance(status, str):
        status = json.loads(status)
    name = status.get("status")
    message_id = status.get("id")
    if name not in RANK or not message_id:
        return
    matched = _match(conn, by_ref, syncs, message_id, status.get("biz_opaque_callback_data"))
    if matched is None:
        report.unmatched += 1
        return
    moment = datetime.fromtimestamp(int(status["timestamp"]), UTC)
    error, code = _error_of(status) if name == "failed" else (None, None)
    conn.execute(
        UPSERT_SQL,
        {
            "id": message_id,
            "sync": matched[0],
            "key": matched[1],
            "recipient": status.get("recipient_id"),
            "status": name,
            "error": error,
            "code": code,
            **{f"{s}_at": moment if s == name else None for s in RANK},
        },
    )
    report.statuses += 1
    report.by_status[name] = report.by_status.get(name, 0) + 1
    params = {"sync": matched[0], "key": matched[1], "at": moment, "error": error or name}
    if name == "failed":
        settled, _ = conn.execute(SETTLE_FAILED_SQL, params).fetchone()
        report.settled_failed += settled
        if code in REFUSED_CODES:
            refused, _ = conn.execute(REFUSED_SQL, params).fetchone()
            report.refused += refused
    else:
        settled, _ = conn.execute(SETTLE_SENT_SQL, params).fetchone()
        report.settled_sent += settled


def status_counts(conn: psycopg.Connection, sync_name: str | None = None) -> list[dict[str, Any]]:
    """Per WhatsApp sync: messages by furthest status, and the failures with their reasons."""
    ensure_tables(conn)
    found = []
    for sync, counts in conn.execute(
        f"""select sync_name, jsonb_object_agg(status, n) from (
                select sync_name, status, count(*) as n from {SCHEMA}.message_statuses
                where %(sync)s::text is null or sync_name = %(sync)s
                group by sync_name, status
            ) c group by sync_name order by sync_name""",
        {"sync": sync_name},
    ):
        failures = [
            {"record_key": key, "message_id": mid, "error": error, "failed_at": at}
            for key, mid, error, at in conn.execute(
                f"""select record_key, message_id, error, failed_at
                    from {SCHEMA}.message_statuses
                    where sync_name = %s and status = 'failed'
                    order by failed_at desc, record_key limit 20""",
                (sync,),
            )
        ]
        found.append(
            {
                "sync": sync,
                **{s: int(counts.get(s, 0)) for s in RANK},
                "failures": failures,
            }
        )
    return found
