"""Crash-then-rerun: SIGKILL the target mid-stream, rerun from its last STATE, exact counts.

The target prints a STATE only after every record before it is committed, and cuts
batches at STATE boundaries, so replaying the messages after the last printed STATE
(what a tap does with that state) gives exactly the input: no key loses its last
version, and the append-only stream has every event once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import record, schema, state

ORDERS = schema(
    "orders",
    {"id": {"type": "integer"}, "v": {"type": "integer"}, "note": {"type": "string"}},
    keys=["id"],
)
EVENTS = schema("events", {"n": {"type": "integer"}, "note": {"type": "string"}})
TOTAL = 40_000
KEYS = 3_000


def _messages() -> list[dict]:
    messages = [ORDERS, EVENTS]
    note = "x" * 200
    for i in range(TOTAL):
        if i % 2:
            messages.append(record("events", {"n": i, "note": note}))
        else:
            messages.append(record("orders", {"id": (i // 2) % KEYS, "v": i, "note": note}))
        if i % 300 == 299:
            messages.append(state({"pos": i}))
    messages.append(state({"pos": TOTAL}))
    return messages


def _feed(proc: subprocess.Popen, lines: list[str]) -> None:
    try:
        for start in range(0, len(lines), 250):
            proc.stdin.write("".join(lines[start : start + 250]))
            proc.stdin.flush()
            time.sleep(0.01)
        proc.stdin.close()
    except (BrokenPipeError, ValueError, OSError):
        pass  # killed


def test_sigkill_mid_stream_then_rerun_from_last_state(warehouse_config, run, sql, tmp_path: Path):
    config = warehouse_config | {"batch_size_rows": 1000}
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    messages = _messages()
    lines = [json.dumps(m) + "\n" for m in messages]

    target = Path(sys.executable).parent / "target-warehouse"
    proc = subprocess.Popen(
        [str(target), "--config", str(config_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    feeder = threading.Thread(target=_feed, args=(proc, lines), daemon=True)
    feeder.start()
    states = []
    for line in proc.stdout:
        states.append(json.loads(line))
        if len(states) == 4:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    feeder.join(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    last = states[-1]
    assert last["pos"] < TOTAL  # killed mid-stream

    loaded_before = sql("select count(*) from raw_test.events")[0][0]
    assert 0 < loaded_before < TOTAL // 2

    # the tap resumes after the state it was given: schemas, then what followed that STATE
    cut = messages.index(state(last))
    rerun_states = run(config, [ORDERS, EVENTS, *messages[cut + 1 :]])
    assert rerun_states[-1] == {"pos": TOTAL}

    assert sql("select count(*), count(distinct n) from raw_test.events") == [
        (TOTAL // 2, TOTAL // 2)
    ]
    assert sql("select count(*), count(distinct id) from raw_test.orders") == [(KEYS, KEYS)]
    last_version = {(i // 2) % KEYS: i for i in range(0, TOTAL, 2)}
    assert dict(sql("select id, v from raw_test.orders")) == last_version
    assert sql("select count(*) from raw_test._quarantine") == [(0,)]
