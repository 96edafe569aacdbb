"""The diff compares row hashes (``sync_ledger.row_hash``), not payloads: an upgrade from
a ledger without the column resends nothing, and every kind of change is still seen.

The warehouse is real (a fresh database per test); the destination is an in-process
stand-in that records which keys went over the wire.
"""

from __future__ import annotations

from dataclasses import replace

import psycopg

from omnicanal.activation.definitions import SyncDefinition
from omnicanal.activation.destination import Outcome, Row
from omnicanal.activation.engine import plan, run_sync
from omnicanal.activation.ledger import SCHEMA, ensure_schema
from omnicanal.settings import get_settings

#: One column of each kind a sync model maps: the hash of a payload must equal the hash
#: of the model row it was built from, whatever the column's type.
COLUMNS = {
    "email": "text",
    "name": "varchar(80)",
    "orders": "integer",
    "spent": "numeric(12,2)",
    "ratio": "double precision",
    "vip": "boolean",
    "last_order_at": "timestamptz",
    "birthday": "date",
    "tags": "text[]",
    "attributes": "jsonb",
    "code": "char(4)",
}
DEFINITION = SyncDefinition(
    name="fake__typed",
    destination="fake",
    model="typed",
    key="id",
    # destination field names that jsonb orders differently from the mapping
    fields={
        "EMAIL": "email",
        "FN": "name",
        "order count": "orders",
        "spent": "spent",
        "ratio": "ratio",
        "vip": "vip",
        "Último pedido": "last_order_at",
        "birthday": "birthday",
        "tags": "tags",
        "attributes": "attributes",
        "code": "code",
    },
)
ROWS = [
    (
        "k1",
        "ana@x.com.br",
        "Ana",
        3,
        "120.50",
        0.1,
        True,
        "2026-11-01 10:00:00+00",
        "1990-05-01",
        ["a", "b"],
        '{"z": 1, "a": [1, 2]}',
        "AB",
    ),
    (
        "k2",
        'quote " and \\ backslash',
        "Zoë\nnewline",
        0,
        "0",
        1e20,
        False,
        None,
        None,
        [],
        "{}",
        None,
    ),
    ("k3", None, "", None, None, None, None, None, None, None, None, None),
    (
        "k4",
        "ünïcødé@x.com.br",
        "  spaces  ",
        -7,
        "-0.01",
        -2.5,
        None,
        "2026-01-01",
        "2000-02-29",
        ["x,y", None],
        "null",
        "ABCD",
    ),
]


class Recorder:
    """A destination that accepts every row and records each call's keys."""

    batch_size = 100

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.payloads: dict[str, dict] = {}

    def check(self) -> None:
        pass

    def upsert(self, rows: list[Row]) -> list[Outcome]:
        self.calls.append(("upsert", [r.key for r in rows]))
        self.payloads.update({r.key: r.payload for r in rows})
        return [Outcome(r.key, True) for r in rows]

    def remove(self, rows: list[Row]) -> list[Outcome]:
        self.calls.append(("remove", [r.key for r in rows]))
        return [Outcome(r.key, True) for r in rows]

    def close(self) -> None:
        pass

    def keys(self) -> list[str]:
        return sorted(k for _, keys in self.calls for k in keys)


def set_model(url: str, rows=ROWS) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("create schema if not exists activation")
        conn.execute("drop table if exists activation.typed")
        columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
        conn.execute(f"create table activation.typed (id text, {columns})")
        placeholders = ", ".join(["%s"] * (len(COLUMNS) + 1))
        for row in rows:
            conn.execute(f"insert into activation.typed values ({placeholders})", row)


def sync(dest: Recorder, definition: SyncDefinition = DEFINITION):
    return run_sync(get_settings(), definition.name, definition=definition, destination=dest)


def write_old_ledger(url: str) -> None:
    """The ledger as the engine left it before ``row_hash``: no such column, and a row
    per key with the payload it sent (``jsonb_build_object`` of the mapped columns, as
    that engine's diff built it) and the md5 of its text."""
    pairs = ", ".join(f"'{dest}', {col}" for dest, col in DEFINITION.fields.items())
    with psycopg.connect(url) as conn:
        ensure_schema(conn)
        conn.execute(f"drop index {SCHEMA}.sync_ledger_unhashed")
        conn.execute(f"alter table {SCHEMA}.sync_ledger drop column row_hash")
        conn.execute(
            f"""insert into {SCHEMA}.sync_ledger (sync_name, record_key, payload, payload_hash,
                    present, first_synced_at, last_synced_at, last_outcome)
                select %s, id, payload, md5(payload::text), true, now(), now(), 'sent'
                from (select id, jsonb_build_object({pairs}) as payload
                      from activation.typed) m""",
            (DEFINITION.name,),
        )


def ledger_hashes_on(conn: psycopg.Connection) -> dict[str, int | None]:
    return dict(
        conn.execute(
            f"select record_key, row_hash from {SCHEMA}.sync_ledger where sync_name = %s",
            (DEFINITION.name,),
        ).fetchall()
    )


def ledger_hashes(url: str) -> dict[str, int | None]:
    with psycopg.connect(url) as conn:
        return ledger_hashes_on(conn)


def test_a_ledger_from_before_row_hash_resends_nothing(warehouse_env):
    set_model(warehouse_env)
    write_old_ledger(warehouse_env)

    # The dry run (after the schema upgrade `sync plan` makes: the column, empty) already
    # sees nothing to do: it hashes the stored payloads…
    with psycopg.connect(warehouse_env) as conn:
        ensure_schema(conn)
        assert set(ledger_hashes_on(conn).values()) == {None}
        planned = plan(conn, DEFINITION)
    assert planned.counts == {"insert": 0, "update": 0, "remove": 0, "depart": 0}
    assert planned.unchanged == len(ROWS)

    # …and the first run after the upgrade sends nothing and stores every row's hash.
    dest = Recorder()
    report = sync(dest)
    assert dest.calls == []
    assert (report.sent, report.unchanged, report.rows_fetched) == (0, len(ROWS), 0)
    hashes = ledger_hashes(warehouse_env)
    assert set(hashes) == {row[0] for row in ROWS} and None not in hashes.values()

    # The hashes it stored are the ones the model's rows have: still nothing to send.
    dest = Recorder()
    assert sync(dest).unchanged == len(ROWS) and dest.calls == []
    assert ledger_hashes(warehouse_env) == hashes


def test_each_kind_of_change_is_sent_and_only_it(warehouse_env):
    set_model(warehouse_env)
    first = Recorder()
    assert sync(first).inserted == len(ROWS)
    assert first.payloads["k1"]["order count"] == 3 and first.payloads["k3"]["FN"] == ""

    changes = {
        "k1": "update activation.typed set spent = 120.51 where id = 'k1'",
        "k2": "update activation.typed set vip = null where id = 'k2'",  # false -> null
        "k3": "update activation.typed set email = '' where id = 'k3'",  # null -> ''
        "k4": "update activation.typed set tags = '{x,y}' where id = 'k4'",  # element null
    }
    for key, statement in changes.items():
        with psycopg.connect(warehouse_env) as conn:
            conn.execute(statement)
        dest = Recorder()
        report = sync(dest)
        assert dest.keys() == [key], statement
        assert (report.updated, report.unchanged) == (1, len(ROWS) - 1)
    assert dest.payloads["k4"]["tags"] == ["x", "y"]

    # Two values swapping between fields is a change too.
    with psycopg.connect(warehouse_env) as conn:
        conn.execute("update activation.typed set email = name, name = email where id = 'k1'")
    dest = Recorder()
    sync(dest)
    assert dest.keys() == ["k1"] and dest.payloads["k1"]["EMAIL"] == "Ana"


def test_renaming_a_destination_field_resends_every_row(warehouse_env):
    set_model(warehouse_env)
    sync(Recorder())
    fields = {("NAME" if dest == "FN" else dest): col for dest, col in DEFINITION.fields.items()}
    renamed = replace(DEFINITION, fields=fields)
    dest = Recorder()
    report = sync(dest, renamed)
    assert report.updated == len(ROWS) and dest.payloads["k1"]["NAME"] == "Ana"
    dest = Recorder()
    assert sync(dest, renamed).unchanged == len(ROWS) and dest.calls == []
