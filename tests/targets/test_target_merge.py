"""Merge by key: upsert, newest wins (replication key, else arrival), ACTIVATE_VERSION."""

from __future__ import annotations

from conftest import record, schema, state

INT = {"type": "integer"}
TS = {"type": "string", "format": "date-time"}
PROPS = {"id": INT, "name": {"type": "string"}, "updated_at": TS}


def _rows(sql, table="c"):
    return sql(f"select id, name from raw_test.{table} order by id")


def test_update_of_existing_key_across_runs(warehouse_config, run, sql):
    s = schema("c", PROPS, keys=["id"], bookmark="updated_at")
    run(
        warehouse_config,
        [s, record("c", {"id": 1, "name": "a", "updated_at": "2024-01-01T00:00:00Z"})],
    )
    run(
        warehouse_config,
        [
            s,
            record("c", {"id": 1, "name": "b", "updated_at": "2024-01-02T00:00:00Z"}),
            record("c", {"id": 2, "name": "x", "updated_at": "2024-01-02T00:00:00Z"}),
        ],
    )
    assert _rows(sql) == [(1, "b"), (2, "x")]


def test_last_arrival_wins_within_a_batch_without_replication_key(warehouse_config, run, sql):
    messages = [schema("c", PROPS, keys=["id"])]
    messages += [
        record("c", {"id": 1, "name": f"n{i}", "updated_at": "2020-01-01T00:00:00Z"})
        for i in range(5)
    ]
    run(warehouse_config, messages)
    assert _rows(sql) == [(1, "n4")]


def test_newest_replication_key_wins_and_older_never_overwrites(warehouse_config, run, sql):
    s = schema("c", PROPS, keys=["id"], bookmark="updated_at")
    messages = [
        s,
        record("c", {"id": 1, "name": "new", "updated_at": "2024-03-01T00:00:00Z"}),
        record("c", {"id": 1, "name": "old", "updated_at": "2024-01-01T00:00:00Z"}),  # same batch
        record("c", {"id": 2, "name": "v2", "updated_at": "2024-03-01T00:00:00Z"}),
        state({"s": 1}),
    ]
    run(warehouse_config, messages)
    assert _rows(sql) == [(1, "new"), (2, "v2")]
    # a later batch/run bringing an older version of id 2 does not overwrite it
    run(
        warehouse_config,
        [s, record("c", {"id": 2, "name": "stale", "updated_at": "2023-01-01T00:00:00Z"})],
    )
    assert _rows(sql) == [(1, "new"), (2, "v2")]


def test_append_only_stream_keeps_every_record(warehouse_config, run, sql):
    s = schema("events", {"kind": {"type": "string"}})
    run(warehouse_config, [s] + [record("events", {"kind": "click"}) for _ in range(3)])
    run(warehouse_config, [s, record("events", {"kind": "click"})])
    assert sql("select count(*) from raw_test.events") == [(4,)]


def _full_table_sync(version: int, ids: list[int]) -> list[dict]:
    messages = [
        schema("p", {"id": INT, "name": {"type": "string"}}, keys=["id"]),
        {"type": "ACTIVATE_VERSION", "stream": "p", "version": version},
    ]
    messages += [record("p", {"id": i, "name": f"p{i}"}, version=version) for i in ids]
    messages.append({"type": "ACTIVATE_VERSION", "stream": "p", "version": version})
    return messages


def test_activate_version_soft_deletes_rows_missing_from_the_new_version(
    warehouse_config, run, sql
):
    run(warehouse_config, _full_table_sync(1, [1, 2, 3]))
    assert sql("select count(*) from raw_test.p where _sdc_deleted_at is null") == [(3,)]
    (first_batch,) = sql("select max(_sdc_batched_at) from raw_test.p")[0]
    run(warehouse_config, _full_table_sync(2, [1, 2]))
    rows = sql(
        "select id, _sdc_table_version, _sdc_deleted_at is not null from raw_test.p order by id"
    )
    assert rows == [(1, 2, False), (2, 2, False), (3, 1, True)]
    # the soft delete is this batch's change of row 3: staging, incremental on the
    # batch stamp, reads it again
    assert sql("select _sdc_batched_at > %s from raw_test.p where id = 3", (first_batch,)) == [
        (True,)
    ]


def test_activate_version_with_hard_delete_removes_them(warehouse_config, run, sql):
    config = warehouse_config | {"hard_delete": True}
    run(config, _full_table_sync(1, [1, 2, 3]))
    run(config, _full_table_sync(2, [2]))
    assert sql("select id from raw_test.p") == [(2,)]


def test_record_level_soft_and_hard_delete(warehouse_config, run, sql):
    s = schema(
        "d",
        {"id": INT, "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"}},
        keys=["id"],
    )
    gone = {"_sdc_deleted_at": "2024-01-01T00:00:00Z"}
    run(
        warehouse_config,
        [s, record("d", {"id": 1}), record("d", {"id": 2}), record("d", {"id": 2, **gone})],
    )
    assert sql("select id, _sdc_deleted_at is not null from raw_test.d order by id") == [
        (1, False),
        (2, True),
    ]
    run(warehouse_config | {"hard_delete": True}, [s, record("d", {"id": 1, **gone})])
    assert sql("select id from raw_test.d") == [(2,)]
