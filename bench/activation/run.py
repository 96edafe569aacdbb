"""Sync engine: the first sync of a large segment vs a no-op resync vs a 1%-change resync.

    .venv/bin/python bench/activation/run.py --rows 100000

A fresh warehouse database gets the model of the `mailchimp__recent_buyers` sync
(``activation.sync_mailchimp__recent_buyers``) with ``--rows`` rows; the sandbox's
Mailchimp emulation is served in this process (its audience empty, no rate limit).
Each sync is ``omnicanal sync run`` in a subprocess, timed wall to wall (start-up
included, ~0.6 s of imports) and by its own run row in ``sync_runs`` (the diff and the
sending); its peak RSS is its own VmHWM. Three runs: the first sync (every row
inserted); a no-op resync (goal: 0 rows sent, 0 change rows read from the warehouse,
≤ 5% of the first sync's time on the run rows; the wall ratio is printed too); a
resync after ``--change-pct`` of the rows changed (goal: exactly those sent). The last
line is one JSON object with every figure.

Figures of 2026-11-29 (2 shared cores, load ~5, ``--rows 100000``): first sync 16.3 s
wall / 15.5 s run; no-op 1.42 s wall / 0.69 s run (0 sent, 0 rows read; 4.4% of the
first on the run rows, 8.7% wall); 1% change 1.51 s / 0.89 s, the 1,000 changed rows
sent and nothing else; peak RSS 60 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from benchlock import bench_lock  # noqa: E402

SYNC = "mailchimp__recent_buyers"
#: `omnicanal sync run NAME`, then the process's own peak RSS (VmHWM, which starts
#: afresh at exec; a fork's ru_maxrss would count this process's pages too) on stderr.
CHILD = """
import sys
from omnicanal.cli import main
rc = main(["sync", "run", sys.argv[1]])
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(hwm.strip(), file=sys.stderr)
sys.exit(rc)
"""
LIST = "omnicanal-demo"
DATABASE = "omnicanal_bench_activation"


def make_model(admin_url: str, rows: int) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"drop database if exists {DATABASE} with (force)")
        conn.execute(f"create database {DATABASE}")
    url = admin_url.rsplit("/", 1)[0] + f"/{DATABASE}"
    with psycopg.connect(url) as conn:
        conn.execute("create schema activation")
        conn.execute(
            """create table activation.sync_mailchimp__recent_buyers as
               select format('cliente.%%s@exemplo.com.br', i) as email,
                      format('Nome%%s', i) as first_name, format('Sobrenome%%s', i %% 977)
                      as last_name, md5(i::text) as customer_id, now() as last_order_at
               from generate_series(1, %s) i""",
            (rows,),
        )
    return url


def change(url: str, pct: float) -> int:
    with psycopg.connect(url) as conn:
        every = max(1, round(100 / pct))
        return conn.execute(
            "update activation.sync_mailchimp__recent_buyers set first_name = first_name || ' B' "
            "where substring(email from 'cliente\\.(\\d+)@')::int %% %s = 0",
            (every,),
        ).rowcount


def run_sync(env: dict[str, str], url: str) -> dict:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, SYNC], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"sync failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    peak_kb = int(proc.stderr.strip().splitlines()[-1].split()[1])
    report = json.loads(proc.stdout)
    with psycopg.connect(url) as conn:
        span = conn.execute(
            "select extract(epoch from finished_at - started_at) "
            "from omnicanal_activation.sync_runs where run_id = %s",
            (report["run_id"],),
        ).fetchone()[0]
    return {
        "wall_s": round(wall, 3),
        "run_s": round(float(span), 3),
        "sent": report["sent"],
        "inserted": report["inserted"],
        "updated": report["updated"],
        "unchanged": report["unchanged"],
        "failed": report["failed"],
        "pending": report["pending"],
        "rows_fetched": report["rows_fetched"],
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--change-pct", type=float, default=1.0)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "OMNICANAL_WAREHOUSE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a Postgres URL allowed to create the bench database",
    )
    args = parser.parse_args()

    from omnicanal.sandbox.app import SandboxServer
    from omnicanal.sandbox.world import generate_world

    with bench_lock(), SandboxServer(generate_world(5, seed=3)) as sandbox:
        emulator = sandbox.app.state.mailchimp
        emulator.audiences.clear()
        emulator.add_list(LIST)
        emulator.set_rate_limit(None)
        url = make_model(args.admin_url, args.rows)
        env = {
            **os.environ,
            "OMNICANAL_WAREHOUSE_URL": url,
            "OMNICANAL_MAILCHIMP_API_URL": f"{sandbox.url}/3.0",
            "OMNICANAL_MAILCHIMP_API_KEY": "sandbox-us1",
            "OMNICANAL_MAILCHIMP_LIST_ID": LIST,
        }
        load_before = os.getloadavg()[0]
        first = run_sync(env, url)
        held = len(emulator.members(LIST))
        emulator.reset_counters()
        noop = run_sync(env, url)
        noop_writes = emulator.write_calls
        changed = change(url, args.change_pct)
        emulator.reset_counters()
        one_pct = run_sync(env, url)
        members_written = emulator.members_written
        load_after = os.getloadavg()[0]

    ratio = noop["wall_s"] / first["wall_s"]
    result = {
        "benchmark": "activation",
        "rows": args.rows,
        "destination": "mailchimp (sandbox emulation, in process, no rate limit)",
        "first": first,
        "noop": noop,
        "change": {**one_pct, "rows_changed": changed},
        "mailchimp_members_after_first": held,
        "noop_write_calls": noop_writes,
        "change_members_written": members_written,
        "noop_over_first_wall": round(ratio, 4),
        "noop_over_first_run": round(noop["run_s"] / first["run_s"], 4),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in (first, noop, one_pct)),
        "load_avg_before_after": [round(load_before, 2), round(load_after, 2)],
        "goal_met": {
            "first_sends_all": first["inserted"] == args.rows == held,
            "noop_sends_nothing": noop["sent"] == 0 and noop_writes == 0,
            "noop_reads_no_rows": noop["rows_fetched"] == 0,
            "noop_le_5pct_of_first_run": noop["run_s"] <= 0.05 * first["run_s"],
            "change_sends_exactly_changed": one_pct["sent"] == changed == members_written,
            "rss_le_300mb": max(r["peak_rss_mb"] for r in (first, noop, one_pct)) <= 300,
        },
    }
    for name in ("first", "noop", "change"):
        r = result[name]
        print(
            f"{name:6} wall {r['wall_s']:8.2f}s  run {r['run_s']:8.2f}s  sent {r['sent']:>7}  "
            f"read {r['rows_fetched']:>7}  unchanged {r['unchanged']:>7}  "
            f"peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
