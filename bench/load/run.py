"""Load benchmark: target-warehouse vs meltanolabs-target-postgres vs a bare psycopg COPY.

    .venv/bin/python bench/load/run.py [--records 1000000] [--updates] [--skip-anchor]
                                       [--url postgresql://user@host:port/postgres]

Generates N realistic order records (~1 KB, nested line items) as a .singer file once
(under .omnicanal/bench/), then, each into its own fresh database on the server at
--url (default: the embedded warehouse): (a) target-postgres, (b) target-warehouse,
(c) bare COPY of the same rows into a prepared table. With --updates, (a) and (b) then
load N updates of the same keys (the merge path). Wall time and peak RSS (the loader
process and its children, polled) are measured under an exclusive lock on
/tmp/omnicanal-bench.lock, because other benchmarks share this machine. Prints a
table; the last line is one JSON object with every figure and ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/

from benchlock import bench_lock  # noqa: E402
from generate import generate  # noqa: E402

BIN = Path(sys.executable).parent


def _admin_url(url: str | None) -> str:
    from omnicanal.config import WarehouseURL
    from omnicanal.settings import get_settings

    if url:
        return url
    from omnicanal import warehouse

    parts = warehouse.up(get_settings())
    return WarehouseURL(parts.host, parts.port, parts.user, parts.password, "postgres").url()


def _db_url(admin: str, name: str) -> str:
    from omnicanal.config import WarehouseURL

    a = WarehouseURL.parse(admin)
    return WarehouseURL(a.host, a.port, a.user, a.password, name).url()


def fresh_database(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    return _db_url(admin, name)


def drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def measure(cmd: list[str], stdin_path: Path | None) -> dict:
    """Run ``cmd`` (stdin from a file), polling the RSS of it and its children."""
    with bench_lock():
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL  # noqa: SIM115
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ps = psutil.Process(proc.pid)
        peak = 0
        out_chunks: list[bytes] = []
        import threading

        drains = [
            threading.Thread(target=lambda s=s: out_chunks.append(s.read()), daemon=True)
            for s in (proc.stdout, proc.stderr)
        ]
        for t in drains:
            t.start()
        while proc.poll() is None:
            try:
                rss = ps.memory_info().rss
                for child in ps.children(recursive=True):
                    try:
                        rss += child.memory_info().rss
                    except psutil.Error:
                        pass
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        for t in drains:
            t.join()
        if stdin_path:
            stdin.close()
    if proc.returncode != 0:
        tail = b"".join(out_chunks).decode(errors="replace")[-3000:]
        raise SystemExit(f"{cmd[0]} failed (exit {proc.returncode}):\n{tail}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak / 2**20, 1)}


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("select count(*) from raw_bench.orders").fetchone()[0]


def _target_config(url: str, tmp: Path, name: str, extra: dict) -> Path:
    from omnicanal.config import WarehouseURL

    config = {
        **WarehouseURL.parse(url).connection_params(),
        "default_target_schema": "raw_bench",
        "add_record_metadata": True,
        "hard_delete": False,
    } | extra
    path = tmp / f"{name}.json"
    path.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--updates", action="store_true", help="also load N updates (merge)")
    parser.add_argument("--skip-anchor", action="store_true", help="skip target-postgres (a)")
    parser.add_argument("--skip-copy", action="store_true", help="skip the bare COPY (c)")
    parser.add_argument("--url", help="admin URL of the Postgres server to load into")
    parser.add_argument("--cache-dir", default=str(PROJECT / ".omnicanal" / "bench"))
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    args = parser.parse_args()

    n = args.records
    cache = Path(args.cache_dir)
    t0 = time.perf_counter()
    inserts = generate(cache / f"orders-{n}.singer", n)
    updates = generate(cache / f"orders-{n}-updates.singer", n, version=1) if args.updates else None
    print(
        f"input: {inserts} ({inserts.stat().st_size / 2**20:.0f} MiB), "
        f"ready in {time.perf_counter() - t0:.0f}s",
        flush=True,
    )
    admin = _admin_url(args.url)

    contenders = []
    if not args.skip_anchor:
        contenders.append(
            (
                "target_postgres",
                BIN / "target-postgres",
                {"activate_version": True, "use_copy": True},
            )
        )
    contenders.append(("target_warehouse", BIN / "target-warehouse", {}))

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="omnicanal-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for name, exe, extra in contenders:
            db = f"omnicanal_bench_{name}"
            url = fresh_database(admin, db)
            config = _target_config(url, tmp, name, extra)
            res = measure([str(exe), "--config", str(config)], inserts)
            res["rows"] = _count(url)
            results[name] = res
            print(f"  {name}: {res}", flush=True)
            if updates is not None:
                up = measure([str(exe), "--config", str(config)], updates)
                up["rows"] = _count(url)
                results[f"{name}_updates"] = up
                print(f"  {name} updates: {up}", flush=True)
            if not args.keep:
                drop_database(admin, db)
        if not args.skip_copy:
            db = "omnicanal_bench_bare_copy"
            url = fresh_database(admin, db)
            res = measure(
                [sys.executable, str(HERE / "bare_copy.py"), "--url", url, "--input", str(inserts)],
                None,
            )
            res["rows"] = _count(url)
            results["bare_copy"] = res
            print(f"  bare_copy: {res}", flush=True)
            if not args.keep:
                drop_database(admin, db)

    for res in results.values():
        res["rows_per_s"] = round(n / res["seconds"])
    ours = results["target_warehouse"]
    ratios = {}
    if "target_postgres" in results:
        ratios["ours_vs_target_postgres"] = round(
            ours["rows_per_s"] / results["target_postgres"]["rows_per_s"], 2
        )
    if "bare_copy" in results:
        ratios["ours_vs_bare_copy"] = round(
            ours["rows_per_s"] / results["bare_copy"]["rows_per_s"], 2
        )
    if "target_postgres_updates" in results:
        ratios["updates_ours_vs_target_postgres"] = round(
            results["target_warehouse_updates"]["rows_per_s"]
            / results["target_postgres_updates"]["rows_per_s"],
            2,
        )

    print()
    print(f"{'loader':<28}{'seconds':>10}{'rows/s':>12}{'peak RSS MB':>14}{'rows':>12}")
    for name, res in results.items():
        print(
            f"{name:<28}{res['seconds']:>10}{res['rows_per_s']:>12}{res['peak_rss_mb']:>14}{res['rows']:>12}"
        )
    for key, value in ratios.items():
        print(f"{key}: {value}x")
    print(
        json.dumps(
            {"records": n, "machine_cpus": os.cpu_count(), "results": results, "ratios": ratios}
        )
    )


if __name__ == "__main__":
    main()
