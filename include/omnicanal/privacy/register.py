"""The erasure register: what was erased, kept without the data it erased.

Schema ``omnicanal_privacy`` in the warehouse:

- ``erasure_requests``: one row per request (its id, when, which options named the
  person and how many values, the customers and rows erased per table, the syncs whose
  destinations held the person and when each was told);
- ``erasure_tokens``: the person's tokens (:mod:`.footprint`) as HMAC-SHA256 under the
  register's key, never in plain text;
- ``erasure_customers``: the erased customer_ids. A customer_id is identity's surrogate
  (a hash of a record key), and after the erasure nothing in the warehouse maps it to
  anyone; the activation ledger names customers by it, so the register does too, to
  follow the removals to every destination;
- ``erasure_blocks``: rows a later load brought back and :func:`withhold_erased`
  dropped, counted per request and table (never the rows);
- ``erasure_watermarks``: per raw table, the newest load stamp already checked.

The key is 32 random bytes made at the register's creation and kept in it: it makes the
hashes useless outside this warehouse (no precomputed table of CPFs or emails matches
them), not secret from someone who can read the warehouse, who could hash every CPF
with it. Grant ``omnicanal_privacy`` to the DPO's role only.

Erased rows that come back are dropped, not quarantined: a quarantined record keeps its
whole payload, which is what the request erased.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from omnicanal.privacy.footprint import candidates

log = logging.getLogger(__name__)

SCHEMA = "omnicanal_privacy"
#: the activation ledger: which rows each destination holds, per customer_id
LEDGER = "omnicanal_activation.sync_ledger"

_DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.erasure_key (
    one     boolean primary key default true check (one),
    key     bytea not null
);
create table if not exists {SCHEMA}.erasure_requests (
    request_id     text primary key,
    requested_at   timestamptz not null default now(),
    identifiers    jsonb not null,
    customers      integer not null,
    rows_erased    integer not null,
    tables         jsonb not null,
    destinations   jsonb not null default '{{}}'::jsonb,
    lifted_at      timestamptz
);
create table if not exists {SCHEMA}.erasure_tokens (
    token_hash  text not null,
    request_id  text not null references {SCHEMA}.erasure_requests (request_id),
    primary key (token_hash, request_id)
);
create table if not exists {SCHEMA}.erasure_customers (
    customer_id text not null,
    request_id  text not null references {SCHEMA}.erasure_requests (request_id),
    primary key (customer_id, request_id)
);
create table if not exists {SCHEMA}.erasure_blocks (
    request_id  text not null references {SCHEMA}.erasure_requests (request_id),
    table_name  text not null,
    blocked_at  timestamptz not null default now(),
    rows        integer not null
);
create table if not exists {SCHEMA}.erasure_watermarks (
    table_name     text primary key,
    checked_until  timestamptz not null
);
"""


def exists(conn: psycopg.Connection, relation: str) -> bool:
    """Whether the table ``schema.name`` exists."""
    return conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone()[0]


def ensure(conn: psycopg.Connection) -> bytes:
    """Create the register if missing; its key."""
    if not exists(conn, f"{SCHEMA}.erasure_watermarks"):
        conn.execute(_DDL)
    conn.execute(
        f"insert into {SCHEMA}.erasure_key (key) values (%s) on conflict do nothing",
        (secrets.token_bytes(32),),
    )
    return bytes(conn.execute(f"select key from {SCHEMA}.erasure_key").fetchone()[0])


def token_hash(key: bytes, token: str) -> str:
    return hmac.new(key, token.encode("utf-8"), hashlib.sha256).hexdigest()


def active_hashes(conn: psycopg.Connection) -> dict[str, str]:
    """token hash -> the (first) request it belongs to, over requests not lifted."""
    rows = conn.execute(
        f"""select t.token_hash, min(t.request_id)
            from {SCHEMA}.erasure_tokens t
            join {SCHEMA}.erasure_requests r using (request_id)
            where r.lifted_at is null
            group by t.token_hash"""
    ).fetchall()
    return dict(rows)


def raw_tables(conn: psycopg.Connection, schema: str) -> list[str]:
    """The loader's tables in ``schema`` that have its load stamp."""
    return [
        row[0]
        for row in conn.execute(
            """select c.table_name from information_schema.columns c
               join information_schema.tables t using (table_schema, table_name)
               where c.table_schema = %s and c.column_name = '_sdc_batched_at'
                 and t.table_type = 'BASE TABLE'
               order by 1""",
            (schema,),
        ).fetchall()
    ]


def mark_checked(conn: psycopg.Connection, schemas: Iterable[str]) -> None:
    """Every raw table's newest load stamp as checked (what is there now was scanned)."""
    for schema in schemas:
        for table in raw_tables(conn, schema):
            ident = sql.Identifier(schema, table)
            conn.execute(
                sql.SQL(
                    """insert into {register} (table_name, checked_until)
                       select %(name)s, max(_sdc_batched_at) from {table}
                       having max(_sdc_batched_at) is not null
                       on conflict (table_name) do update
                       set checked_until = greatest(
                           {register}.checked_until, excluded.checked_until)"""
                ).format(
                    register=sql.Identifier(SCHEMA, "erasure_watermarks"),
                    table=ident,
                ),
                {"name": f"{schema}.{table}"},
            )


@dataclass
class Withheld:
    """What :func:`withhold_erased` dropped from one source's load."""

    source: str
    rows: int = 0
    by_request: dict[str, int] = field(default_factory=dict)


def withhold_erased(conn: psycopg.Connection, source: str) -> Withheld:
    """Drop from ``raw_<source>`` the rows loaded since the last check that carry a token
    of an erasure request (not lifted), count them per request in ``erasure_blocks``,
    and move the watermark. Nothing to do (one query) when nothing was ever erased.

    The extract calls it right after the loader commits, before dbt reads raw, so an
    erased person's records that a platform still serves never reach staging.
    """
    done = Withheld(source)
    if not exists(conn, f"{SCHEMA}.erasure_tokens"):
        return done
    hashes = active_hashes(conn)
    if not hashes:
        return done
    key = ensure(conn)
    schema = f"raw_{source}"
    for table in raw_tables(conn, schema):
        name = f"{schema}.{table}"
        ident = sql.Identifier(schema, table)
        since = conn.execute(
            f"select checked_until from {SCHEMA}.erasure_watermarks where table_name = %s",
            (name,),
        ).fetchone()
        rows = conn.execute(
            sql.SQL(
                "select ctid, to_jsonb(t), _sdc_batched_at from {} as t"
                " where _sdc_batched_at > %s or %s::timestamptz is null"
            ).format(ident),
            (since[0] if since else None, since[0] if since else None),
        ).fetchall()
        if not rows:
            continue
        dropped: list[str] = []
        per_request: dict[str, int] = {}
        for ctid, row, _ in rows:
            for token in candidates(row, source):
                request = hashes.get(token_hash(key, token))
                if request:
                    dropped.append(ctid)
                    per_request[request] = per_request.get(request, 0) + 1
                    break
        if dropped:
            conn.execute(
                sql.SQL("delete from {} where ctid = any(%s::tid[])").format(ident), (dropped,)
            )
            for request, count in per_request.items():
                conn.execute(
                    f"insert into {SCHEMA}.erasure_blocks (request_id, table_name, rows)"
                    " values (%s, %s, %s)",
                    (request, name, count),
                )
                done.by_request[request] = done.by_request.get(request, 0) + count
            done.rows += len(dropped)
            log.warning(
                "%s: %d row(s) of erased people dropped on load (erased under LGPD request %s)",
                name,
                len(dropped),
                ", ".join(sorted(per_request)),
            )
        conn.execute(
            f"""insert into {SCHEMA}.erasure_watermarks (table_name, checked_until)
                values (%s, %s) on conflict (table_name) do update
                set checked_until = greatest(
                    {SCHEMA}.erasure_watermarks.checked_until, excluded.checked_until)""",
            (name, max(r[2] for r in rows)),
        )
    return done


def request_rows(conn: psycopg.Connection, request_id: str | None = None) -> list[dict]:
    """The register's requests (newest first), each with its blocks and the state of
    its destinations: ``held`` rows the ledger still has present for its customers
    (0: every destination was told)."""
    if not exists(conn, f"{SCHEMA}.erasure_requests"):
        return []
    cur = conn.execute(
        f"""select request_id, requested_at, identifiers, customers, rows_erased, tables,
                   destinations, lifted_at
            from {SCHEMA}.erasure_requests
            where %(id)s::text is null or request_id = %(id)s
            order by requested_at desc""",
        {"id": request_id},
    )
    names = [c.name for c in cur.description]
    found = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    ledger = exists(conn, LEDGER)
    for request in found:
        request["blocked"] = dict(
            conn.execute(
                f"""select table_name, sum(rows)::int from {SCHEMA}.erasure_blocks
                    where request_id = %s group by 1 order by 1""",
                (request["request_id"],),
            ).fetchall()
        )
        held = {}
        if ledger:
            held = dict(
                conn.execute(
                    f"""select l.sync_name, count(*)::int
                        from {LEDGER} l
                        join {SCHEMA}.erasure_customers c using (customer_id)
                        where c.request_id = %s and l.present
                        group by 1""",
                    (request["request_id"],),
                ).fetchall()
            )
        request["destinations"] = {
            sync: {"held_at_erasure": count, "still_held": held.get(sync, 0)}
            for sync, count in sorted((request["destinations"] or {}).items())
        }
    return found


def forget_told(conn: psycopg.Connection, request_id: str) -> int:
    """Delete what the activation bookkeeping keeps of the request's customers once their
    destinations no longer hold them (the sync sent the removal): their ledger rows
    (each keeps the row's payload, and a key is often the email itself), the per-row
    outcomes of past runs and dead letters under those keys. Rows still held stay, so
    the next sync run can still remove them. Returns how many ledger rows went."""
    if not exists(conn, LEDGER):
        return 0
    activation = LEDGER.split(".")[0]
    gone = conn.execute(
        f"""with gone as (
                delete from {LEDGER} l
                using {SCHEMA}.erasure_customers c
                where c.request_id = %(id)s and l.customer_id = c.customer_id
                  and not l.present
                returning l.sync_name, l.record_key
            ),
            outcomes as (
                delete from {activation}.sync_row_outcomes o
                using {activation}.sync_runs r, gone g
                where o.run_id = r.run_id and r.sync_name = g.sync_name
                  and o.record_key = g.record_key
            ),
            letters as (
                delete from {activation}.sync_dead_letters d
                using gone g
                where d.sync_name = g.sync_name and d.record_key = g.record_key
            )
            select count(*) from gone""",
        {"id": request_id},
    ).fetchone()[0]
    return gone


def json_dumps(data: object) -> str:
    return json.dumps(data, default=str, sort_keys=True)


def withhold_after_load(settings, source: str) -> Withheld:
    """:func:`withhold_erased` on its own connection, committed: the extract's hook."""
    from omnicanal.warehouse import connect

    with connect(settings) as conn:
        done = withhold_erased(conn, source)
        conn.commit()
    return done
