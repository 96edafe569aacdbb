"""Tables follow the Singer schema: columns added and widened, never dropped; any name."""

from __future__ import annotations

import pytest
from conftest import record, schema

INT = {"type": "integer"}


def _types(sql, table: str) -> dict[str, str]:
    return dict(
        sql(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw_test' and table_name = %s",
            (table,),
        )
    )


def test_type_mapping(warehouse_config, run, sql):
    props = {
        "id": INT,
        "n": {"type": ["number", "null"]},
        "ok": {"type": "boolean"},
        "at": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "s": {"type": "string"},
        "obj": {"type": "object", "properties": {"a": INT}},
        "arr": {"type": "array", "items": {"type": "string"}},
        "multi": {"type": ["string", "integer"]},
        "any_of": {"anyOf": [{"type": "object"}, {"type": "string"}]},
    }
    row = {
        "id": 1,
        "n": 1.5,
        "ok": True,
        "at": "2024-01-01T12:00:00-03:00",
        "day": "2024-01-01",
        "s": "x",
        "obj": {"a": 1},
        "arr": ["a"],
        "multi": 7,
        "any_of": "text",
    }
    run(warehouse_config, [schema("t", props, keys=["id"]), record("t", row)])
    types = _types(sql, "t")
    assert {k: types[k] for k in props} == {
        "id": "bigint",
        "n": "numeric",
        "ok": "boolean",
        "at": "timestamp with time zone",
        "day": "date",
        "s": "text",
        "obj": "jsonb",
        "arr": "jsonb",
        "multi": "text",
        "any_of": "jsonb",
    }
    for meta in ("_sdc_extracted_at", "_sdc_received_at", "_sdc_batched_at", "_sdc_deleted_at"):
        assert types[meta] == "timestamp with time zone"
    [(at, obj, multi)] = sql("select at::text, obj, multi from raw_test.t")
    assert (at, obj, multi) == ("2024-01-01 15:00:00+00", {"a": 1}, "7")


def test_schema_evolution_adds_and_widens_and_keeps_old_data(warehouse_config, run, sql):
    v1 = {"id": INT, "amount": INT, "code": INT}
    run(
        warehouse_config,
        [schema("s", v1, keys=["id"]), record("s", {"id": 1, "amount": 10, "code": 7})],
    )
    v2 = {
        "id": INT,
        "amount": {"type": "number"},
        "code": {"type": "string"},
        "note": {"type": "string"},
    }
    run(
        warehouse_config,
        [
            schema("s", v2, keys=["id"]),
            record("s", {"id": 2, "amount": 2.5, "code": "A7", "note": "new"}),
        ],
    )
    types = _types(sql, "s")
    assert (types["amount"], types["code"], types["note"]) == ("numeric", "text", "text")
    rows = sql("select id, amount::text, code, note from raw_test.s order by id")
    assert rows == [(1, "10", "7", None), (2, "2.5", "A7", "new")]
    # an older, narrower schema later does not narrow or drop anything
    run(
        warehouse_config,
        [schema("s", v1, keys=["id"]), record("s", {"id": 3, "amount": 3, "code": 3})],
    )
    assert _types(sql, "s")["amount"] == "numeric" and "note" in _types(sql, "s")
    assert sql("select count(*) from raw_test.s") == [(3,)]


def test_schema_change_mid_stream(warehouse_config, run, sql):
    messages = [
        schema("m", {"id": INT, "v": INT}, keys=["id"]),
        record("m", {"id": 1, "v": 1}),
        schema("m", {"id": INT, "v": {"type": "object"}}, keys=["id"]),
        record("m", {"id": 2, "v": {"deep": [1, 2]}}),
    ]
    run(warehouse_config, messages)
    assert _types(sql, "m")["v"] == "jsonb"
    assert sql("select id, v from raw_test.m order by id") == [(1, 1), (2, {"deep": [1, 2]})]


HOSTILE_STREAMS = [
    'Orders "2024"; DROP TABLE x; --',
    "select",
    "UPPER case stream",
    "s" * 70 + "_one",
    "s" * 70 + "_two",
]
HOSTILE_PROPS = {
    "id": INT,
    "select": {"type": "string"},
    "Mixed Case": {"type": "string"},
    "semi;colon": {"type": "string"},
    'quo"te': {"type": "string"},
    "back\\slash": {"type": "string"},
    "user": {"type": "string"},
    "p" * 80 + "1": {"type": "string"},
    "p" * 80 + "2": {"type": "string"},
}


@pytest.mark.parametrize("stream", HOSTILE_STREAMS)
def test_hostile_names(warehouse_config, run, sql, stream):
    values = {name: f"v-{i}" for i, name in enumerate(HOSTILE_PROPS) if name != "id"}
    run(
        warehouse_config | {"default_target_schema": 'raw "weird" Schema'},
        [schema(stream, HOSTILE_PROPS, keys=["id", "select"]), record(stream, {"id": 1, **values})],
    )
    tables = sql(
        "select table_name from information_schema.tables where table_schema = %s",
        ('raw "weird" Schema',),
    )
    names = sorted(t[0] for t in tables)
    assert "_quarantine" in names and len(names) == 2
    table = next(n for n in names if n != "_quarantine")
    assert len(table.encode()) <= 63
    if len(stream) <= 63:
        assert table == stream
    columns = sql(
        "select column_name from information_schema.columns where table_schema = %s "
        "and table_name = %s and column_name not like '\\_sdc%%'",
        ('raw "weird" Schema', table),
    )
    assert len(columns) == len(HOSTILE_PROPS)  # the two long names did not collide
    quoted_table = '"' + table.replace('"', '""') + '"'
    [(selected, semi, quote)] = sql(
        f'select "select", "semi;colon", "quo""te" from "raw ""weird"" Schema".{quoted_table}'
    )
    assert (selected, semi, quote) == (values["select"], values["semi;colon"], values['quo"te'])
    assert sql('select count(*) from "raw ""weird"" Schema"._quarantine') == [(0,)]


def test_two_long_streams_get_distinct_tables(warehouse_config, run, sql):
    messages = []
    for stream in HOSTILE_STREAMS[-2:]:
        messages += [schema(stream, {"id": INT}, keys=["id"]), record(stream, {"id": 1})]
    run(warehouse_config, messages)
    tables = sql("select table_name from information_schema.tables where table_schema = 'raw_test'")
    assert len(tables) == 3


def test_bad_config_names_the_setting(warehouse_config):
    from singer_sdk.exceptions import ConfigValidationError

    from target_warehouse.target import TargetWarehouse

    # a schema error: the SDK's exception, saying which plugin and which setting
    with pytest.raises(ConfigValidationError, match=r"target-warehouse config is invalid: .*port"):
        TargetWarehouse(config=warehouse_config | {"port": "abc"})
    # a rule the schema cannot say: which setting and what is wrong with it
    with pytest.raises(ValueError, match="'batch_size_rows' must be a positive integer"):
        TargetWarehouse(config=warehouse_config | {"batch_size_rows": 0})


def test_a_stream_without_records_still_gets_its_table(warehouse_config, run, sql):
    """A SCHEMA and no RECORD (a stream with nothing yet, e.g. no opt-out so far): the
    table exists, empty, with the schema's columns, so models reading it do not fail."""
    run(warehouse_config, [schema("nothing_yet", {"id": INT, "s": {"type": "string"}}, ["id"])])
    types = _types(sql, "nothing_yet")
    assert types["id"] == "bigint" and types["s"] == "text"
    assert sql("select count(*) from raw_test.nothing_yet") == [(0,)]


def test_new_streams_declared_while_batches_and_their_states_commit(warehouse_config, run, sql):
    """A tap declares each stream as it reaches it, so a SCHEMA often follows a batch the
    loader thread is still committing (with its STATE, in the state table) on the same
    connection: the new stream's table waits for that transaction. Creating it at once
    nested the two threads' transactions (psycopg: "transaction commit at the wrong
    nesting level"; a 10k-people Shopify extract failed so)."""
    config = {
        **warehouse_config,
        "batch_size_rows": 1,  # every record a batch, handed to the loader at once
        "state_table": "omnicanal_meta.singer_state",
        "state_id": "tap",
    }
    messages = []
    for n in range(60):
        messages += [
            schema(f"s{n}", {"id": INT}, ["id"]),
            record(f"s{n}", {"id": n}),
            {"type": "STATE", "value": {"bookmarks": {f"s{n}": {"n": n}}}},
        ]
    states = run(config, messages)
    assert states[-1] == {"bookmarks": {"s59": {"n": 59}}}
    for n in (0, 30, 59):
        assert sql(f"select id from raw_test.s{n}") == [(n,)]
