"""``state_table``: the STATE is committed with the records it covers.

The target dies (SIGKILL, through the test hook ``TARGET_WAREHOUSE_TEST_CRASH_AFTER_COMMIT``)
right after a COMMIT and before that STATE line reaches stdout. Resuming from the last
printed line replays records that are already committed, so an append-only stream gets
duplicates; resuming from the state stored in the table, in the same transaction as the
records, gives exactly the input.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from conftest import record, schema, state

from target_warehouse.target import CRASH_AFTER_COMMIT_ENV, TargetWarehouse

EVENTS = schema("events", {"n": {"type": "integer"}, "note": {"type": "string"}})
ORDERS = schema("orders", {"id": {"type": "integer"}, "v": {"type": "integer"}}, keys=["id"])
TOTAL = 6_000
KEYS = 500
CRASH_AT = 3  # the 3rd data commit


def _messages() -> list[dict]:
    messages = [EVENTS, ORDERS]
    for i in range(TOTAL):
        messages.append(record("events", {"n": i, "note": "x" * 50}))
        messages.append(record("orders", {"id": i % KEYS, "v": i}))
        if i % 300 == 299:
            messages.append(state({"pos": i}))
    messages.append(state({"pos": TOTAL}))
    return messages


def _crash_run(config: dict, messages: list[dict], tmp: Path) -> list[dict]:
    """Run the target as a process that kills itself after commit ``CRASH_AT``."""
    (tmp / "config.json").write_text(json.dumps(config))
    (tmp / "input.singer").write_text("".join(json.dumps(m) + "\n" for m in messages))
    with (tmp / "input.singer").open() as stdin:
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "target-warehouse"),
                "--config",
                str(tmp / "config.json"),
            ],
            stdin=stdin,
            capture_output=True,
            text=True,
            env=os.environ | {CRASH_AFTER_COMMIT_ENV: str(CRASH_AT)},
            timeout=120,
            check=False,
        )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def _resume(messages: list[dict], last: dict | None) -> list[dict]:
    """What a tap sends when given ``last`` as its state: schemas, then what followed it."""
    if last is None:
        return messages
    return [EVENTS, ORDERS, *messages[messages.index(state(last)) + 1 :]]


def _stored(sql, table: str = "omnicanal_meta.singer_state", column: str = "state_id"):
    rows = sql(f"select {column}, state from {table}")
    return dict(rows)


def test_without_state_table_a_crash_after_commit_duplicates(
    warehouse_config, run, sql, tmp_path: Path
):
    """The window the feature closes: resuming from the last printed STATE duplicates."""
    config = warehouse_config | {"batch_size_rows": 1000}
    messages = _messages()
    printed = _crash_run(config, messages, tmp_path)
    committed = sql("select count(*) from raw_test.events")[0][0]
    last = printed[-1] if printed else None
    assert committed > (last["pos"] + 1 if last else 0)  # committed beyond what was printed

    run(config, _resume(messages, last))
    total, distinct = sql("select count(*), count(distinct n) from raw_test.events")[0]
    assert distinct == TOTAL
    assert total > TOTAL  # duplicates: what the crashed run committed was replayed


def test_state_table_crash_after_commit_then_rerun_is_exact(
    warehouse_config, run, sql, tmp_path: Path
):
    config = warehouse_config | {
        "batch_size_rows": 1000,
        "state_table": "omnicanal_meta.singer_state",
        "state_id": "shopify",
    }
    messages = _messages()
    printed = _crash_run(config, messages, tmp_path)
    stored = _stored(sql)["shopify"]
    assert stored["pos"] < TOTAL  # killed mid-stream
    assert not printed or printed[-1] != stored  # the stored state was never printed
    # the stored state covers exactly what is committed
    assert sql("select count(*), max(n) from raw_test.events") == [
        (stored["pos"] + 1, stored["pos"])
    ]

    states = run(config, _resume(messages, stored))
    assert states[-1] == {"pos": TOTAL}
    assert _stored(sql)["shopify"] == {"pos": TOTAL}
    assert sql("select count(*), count(distinct n) from raw_test.events") == [(TOTAL, TOTAL)]
    assert sql("select count(*), count(distinct id) from raw_test.orders") == [(KEYS, KEYS)]
    last_version = {i % KEYS: i for i in range(TOTAL)}
    assert dict(sql("select id, v from raw_test.orders")) == last_version
    assert sql("select count(*) from raw_test._quarantine") == [(0,)]


def test_state_table_layout_and_every_printed_state_is_stored(warehouse_config, fresh_db, run, sql):
    """Quoted names, a custom key column, several ids in one table; state-only STATEs
    (no record pending) are stored too, and the table always holds the last printed one."""
    config = warehouse_config | {
        "state_table": 'Meta "x".state table',
        "state_id": "tap-a",
        "state_id_column": "source",
    }
    rel = '"Meta ""x"""."state table"'
    with psycopg.connect(fresh_db) as conn:  # as omnicanal.extract creates it
        conn.execute('create schema "Meta ""x"""')
        conn.execute(
            f"create table {rel} (source text primary key, state jsonb not null,"
            " updated_at timestamptz not null default now())"
        )
        conn.execute(f"insert into {rel} (source, state) values ('tap-b', '{{\"b\": 1}}')")
    messages = [EVENTS, state({"pos": -1}), record("events", {"n": 1}), state({"pos": 1})]
    assert run(config, messages) == [{"pos": -1}, {"pos": 1}]
    rows = dict(sql(f"select source, state from {rel}"))
    assert rows == {"tap-a": {"pos": 1}, "tap-b": {"b": 1}}
    # a STATE with no record before it is stored (in a transaction of its own) too
    assert run(config, [EVENTS, state({"pos": 2})]) == [{"pos": 2}]
    rows = dict(sql(f"select source, state from {rel}"))
    assert rows == {"tap-a": {"pos": 2}, "tap-b": {"b": 1}}
    cols = sql(
        "select column_name from information_schema.columns where table_schema = 'Meta \"x\"'"
        " and table_name = 'state table' order by ordinal_position"
    )
    assert [c for (c,) in cols] == ["source", "state", "updated_at"]


def test_state_table_is_created_in_the_default_schema(warehouse_config, run, sql):
    config = warehouse_config | {"state_table": "_state", "state_id": "s"}
    run(config, [EVENTS, record("events", {"n": 1}), state({"pos": 1})])
    assert sql("select state_id, state from raw_test._state") == [("s", {"pos": 1})]
    assert sql("select count(*) from raw_test.events") == [(1,)]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"state_table": "meta.state"}, "'state_id' is required"),
        ({"state_table": ".state", "state_id": "x"}, "'state_table' must be"),
        ({"state_table": "meta.", "state_id": "x"}, "'state_table' must be"),
    ],
)
def test_state_table_settings_are_checked(warehouse_config, settings, message):
    with pytest.raises(ValueError, match=message):
        TargetWarehouse(config=warehouse_config | settings)


def test_about_describes_the_state_settings():
    about = TargetWarehouse.config_jsonschema["properties"]
    for name in ("state_table", "state_id", "state_id_column"):
        assert about[name]["description"]
    assert about["state_id_column"]["default"] == "state_id"
