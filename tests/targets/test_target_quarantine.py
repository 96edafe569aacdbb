"""Records that break their schema or cannot be cast go to "<schema>"."_quarantine"."""

from __future__ import annotations

from conftest import record, schema, state

INT = {"type": "integer"}
TS = {"type": ["string", "null"], "format": "date-time"}


def test_bad_records_are_quarantined_and_the_rest_loads(warehouse_config, run, sql):
    messages = [
        schema("orders", {"id": INT, "qty": INT, "placed_at": TS}, keys=["id"]),
        record("orders", {"id": 1, "qty": 2, "placed_at": "2024-05-01T10:00:00Z"}),
        record("orders", {"id": 2, "qty": "two", "placed_at": "2024-05-01T10:00:00Z"}),
        record("orders", {"id": 3, "qty": 1, "placed_at": "2024-02-30T10:00:00Z"}),
        record("orders", {"qty": 1, "placed_at": "2024-05-01T10:00:00Z"}),
        record("orders", {"id": 5, "qty": 99999999999999999999, "placed_at": None}),
        record("orders", {"id": 6, "qty": 3, "placed_at": None}),
        state({"bookmark": 6}),
    ]
    states = run(warehouse_config | {"batch_size_rows": 4}, messages)

    assert states == [{"bookmark": 6}]
    assert sql("select id, qty from raw_test.orders order by id") == [(1, 2), (6, 3)]
    rows = sql(
        "select stream, record->>'id', reason, record is not null from raw_test._quarantine "
        "order by id"
    )
    assert [(r[0], r[1]) for r in rows] == [
        ("orders", "2"),
        ("orders", None),
        ("orders", "3"),
        ("orders", "5"),
    ]
    reasons = [r[2] for r in rows]
    assert reasons[0] == "schema: Expected `int`, got `str` - at `$.qty`"
    assert reasons[1] == "schema: Object missing required field `id`"
    assert reasons[2].startswith("cast: property 'placed_at': date/time field value out of range")
    assert reasons[3].startswith("cast: property 'qty': value")  # out of range for bigint
    assert all(r[3] for r in rows)  # the raw record is kept as jsonb


def test_record_that_jsonb_cannot_hold_is_kept_as_text(warehouse_config, run, sql):
    messages = [
        schema("notes", {"id": INT, "body": {"type": "string"}}, keys=["id"]),
        record("notes", {"id": 1, "body": "fine"}),
        record("notes", {"id": 2, "body": "nul \u0000 inside"}),
    ]
    run(warehouse_config, messages)
    assert sql("select id from raw_test.notes") == [(1,)]
    [(stored, text, reason)] = sql("select record, record_text, reason from raw_test._quarantine")
    assert stored is None and '"id": 2' in text
    assert reason.startswith("cast: record: unsupported Unicode escape sequence")
