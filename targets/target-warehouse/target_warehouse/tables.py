"""Create and evolve the stream tables and the quarantine table.

DDL runs inside the load transaction, under an advisory lock, so two loaders never
race on the same table and a crash leaves no half-evolved table behind. Columns are
added and widened (see ``types.WIDER``), never dropped or narrowed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from target_warehouse.types import JSONB, TEXT, canonical, widest

QUARANTINE_TABLE = "_quarantine"
DDL_LOCK = "target_warehouse_ddl"


@dataclass
class TableShape:
    """What a table holds: its columns (name → type as Postgres prints it) and key."""

    columns: dict[str, str] = field(default_factory=dict)
    key: tuple[str, ...] = ()


def existing_shape(conn: psycopg.Connection, schema: str, table: str) -> TableShape | None:
    rel = sql.Identifier(schema, table).as_string(conn)
    oid = conn.execute("select to_regclass(%s)::oid", (rel,)).fetchone()[0]
    if oid is None:
        return None
    rows = conn.execute(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute "
        "where attrelid = %s and attnum > 0 and not attisdropped order by attnum",
        (oid,),
    ).fetchall()
    return TableShape(columns=dict(rows))


def ensure_schema(conn: psycopg.Connection, schema: str) -> None:
    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (DDL_LOCK,))
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    conn.execute(
        sql.SQL(
            """create table if not exists {} (
                id bigint generated always as identity primary key,
                stream text not null,
                record jsonb,
                record_text text,
                reason text not null,
                received_at timestamptz not null default now(),
                _sdc_extracted_at timestamptz,
                _sdc_batched_at timestamptz not null default now(),
                _sdc_table_version bigint
            )"""
        ).format(sql.Identifier(schema, QUARANTINE_TABLE))
    )


def ensure_state_table(conn: psycopg.Connection, schema: str, table: str, id_column: str) -> None:
    """Create the ``state_table`` (and its schema) unless it exists."""
    rel = sql.Identifier(schema, table)
    if conn.execute("select to_regclass(%s)", (rel.as_string(conn),)).fetchone()[0] is not None:
        return
    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (DDL_LOCK,))
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    conn.execute(
        sql.SQL(
            """create table if not exists {} (
                {} text primary key,
                state jsonb not null,
                updated_at timestamptz not null default now()
            )"""
        ).format(rel, sql.Identifier(id_column))
    )


def upsert_state(
    conn: psycopg.Connection, schema: str, table: str, id_column: str, state_id: str, state: str
) -> None:
    """Store ``state`` (JSON text) as the row ``state_id`` of the state table."""
    key = sql.Identifier(id_column)
    conn.execute(
        sql.SQL(
            "insert into {} ({}, state, updated_at) values (%s, %s::jsonb, now())"
            " on conflict ({}) do update set state = excluded.state, updated_at = now()"
        ).format(sql.Identifier(schema, table), key, key),
        (state_id, state),
    )


def _alter_type(conn: psycopg.Connection, rel: sql.Composable, column: str, new: str) -> None:
    col = sql.Identifier(column)
    if new == JSONB:
        using = sql.SQL("to_jsonb({})").format(col)
    elif new == TEXT:
        using = sql.SQL("{}::text").format(col)
    else:
        using = sql.SQL("{}::{}").format(col, sql.SQL(new))
    conn.execute(
        sql.SQL("alter table {} alter column {} type {} using {}").format(
            rel, col, sql.SQL(new), using
        )
    )


def ensure_table(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    wanted: dict[str, str],
    key: tuple[str, ...],
) -> dict[str, str]:
    """Make ``schema.table`` hold ``wanted`` (column → our type); return its real columns.

    A new table gets a primary key on ``key``; an existing one gets the missing columns
    and wider types, and a unique index on ``key`` if it has none (the merge needs one).
    """
    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (DDL_LOCK,))
    rel = sql.Identifier(schema, table)
    shape = existing_shape(conn, schema, table)
    if shape is None:
        cols = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in wanted.items()]
        if key:
            cols.append(
                sql.SQL("primary key ({})").format(sql.SQL(", ").join(map(sql.Identifier, key)))
            )
        conn.execute(sql.SQL("create table {} ({})").format(rel, sql.SQL(", ").join(cols)))
        return dict(wanted)
    columns = dict(shape.columns)
    for column, kind in wanted.items():
        have = columns.get(column)
        if have is None:
            conn.execute(
                sql.SQL("alter table {} add column {} {}").format(
                    rel, sql.Identifier(column), sql.SQL(kind)
                )
            )
            columns[column] = kind
            continue
        target = widest(have, kind)
        if target != canonical(have):
            _alter_type(conn, rel, column, target)
            columns[column] = target
    if key and not _has_unique_index(conn, rel, key):
        name = f"{table[:40]}_tw_key_{zlib.crc32(repr(key).encode()):08x}"
        conn.execute(
            sql.SQL("create unique index if not exists {} on {} ({})").format(
                sql.Identifier(name), rel, sql.SQL(", ").join(map(sql.Identifier, key))
            )
        )
    return columns


def _has_unique_index(conn: psycopg.Connection, rel: sql.Composable, key: tuple[str, ...]) -> bool:
    rows = conn.execute(
        """select array(select a.attname::text from unnest(i.indkey) with ordinality k(n, o)
                         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.n
                         order by k.o)
           from pg_index i where i.indrelid = %s::regclass and i.indisunique
             and i.indpred is null and i.indexprs is null""",
        (rel.as_string(conn),),
    ).fetchall()
    return any(sorted(r[0]) == sorted(key) for r in rows)
