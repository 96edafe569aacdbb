"""Webhook receiver benchmark: loopback load of signed WhatsApp deliveries, and a crash.

    .venv/bin/python bench/webhooks/run.py [--clients 32] [--seconds 10] [--rate 1000]
                                           [--events-per-body 1] [--crash-events 20000]
                                           [--skip-anchor] [--skip-crash]

Load, for the anchor and then for ours, each a child process on a socket this script
binds: (a) closed loop, ``--clients`` keep-alive connections each sending its next
delivery as soon as the last was answered, for ``--seconds``: events/s and ack latency;
(b) open loop at ``--rate`` deliveries/s for ``--seconds``: latency counted from when
each delivery was due (p50/p99, the goal's figure). The anchor is the same server stack
(uvicorn, httptools, uvloop) answering 200 without checking or storing anything
(bare.py); ours is ``omnicanal.webhooks`` with a fresh store, signature check, split,
dedup and an fsync'd group commit before each 200. After the load, every acknowledged
event is read back through the read API.

Crash: ``--crash-events`` distinct events sent by ``--clients`` senders that retry a
delivery until it gets a 200 (as Meta does); when half are acknowledged the receiver's
process group gets SIGKILL, and it is restarted on the same socket and store half a
second later; after the restart 5% of the acknowledged events are delivered again.
Then the store is read through the read API: acknowledged events missing (lost),
events stored more than once (duplicated) and events never sent (must all be 0).

Runs under the benchmarks' lock (bench/benchlock.py). The last line is one JSON object
with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # bench/

from benchlock import bench_lock  # noqa: E402
from load import Connection, request_bytes, run_load, whatsapp_body  # noqa: E402

from omnicanal.webhooks.app import WebhookSecrets  # noqa: E402
from omnicanal.webhooks.server import WebhooksProcess  # noqa: E402

HOST = "127.0.0.1"
PATH = "/webhooks/whatsapp"
SECRET = "bench-app-secret"
READ_TOKEN = "bench-read-token"
CHANNELS = {"whatsapp": WebhookSecrets(SECRET, "bench-verify-token")}
GOAL_EVENTS_PER_S = 1000
GOAL_P99_MS = 100
WAREHOUSE_DB = "omnicanal_bench_webhooks"


class Bare:
    """The anchor server in a child process on a socket bound here."""

    def __enter__(self) -> Bare:
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(2048)
        self.port = self.sock.getsockname()[1]
        fd = self.sock.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "bare.py"), "--fd", str(fd)],
            pass_fds=(fd,),
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.post(f"http://{HOST}:{self.port}/", content=b"{}", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the anchor server did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.sock.close()


def bodies(tag: str, per_body: int, rng: random.Random):
    def make(i: int) -> bytes:
        return whatsapp_body([f"wamid.{tag}.{i}.{k}" for k in range(per_body)], rng)

    return make


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_figures(port: int, pid: int, tag: str, args: argparse.Namespace) -> dict:
    rng = random.Random(7)
    cpu_before = cpu_seconds(pid)
    closed = uvloop.run(
        run_load(
            HOST,
            port,
            PATH,
            SECRET,
            bodies(f"{tag}c", args.events_per_body, rng),
            clients=args.clients,
            seconds=args.seconds,
        )
    )
    cpu = cpu_seconds(pid) - cpu_before
    time.sleep(0.5)
    opened = uvloop.run(
        run_load(
            HOST,
            port,
            PATH,
            SECRET,
            bodies(f"{tag}o", args.events_per_body, rng),
            clients=args.clients,
            seconds=args.seconds,
            rate=args.rate,
        )
    )
    closed_figures = closed.summary(args.events_per_body)
    # Server CPU per 1000 events: what the receiver costs, whatever else the cores run.
    # (The warm-up second's requests are in the CPU time but not in ``ok``.)
    closed_figures["server_cpu_ms_per_1000_events"] = round(
        cpu * 1000 / max(1, (closed.ok + closed.warmup_ok) * args.events_per_body) * 1000, 1
    )
    return {
        "closed_loop": closed_figures,
        "open_loop": {"rate": args.rate, **opened.summary(args.events_per_body)},
    }


def read_all(base_url: str) -> list[str]:
    ids: list[str] = []
    after = 0
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=60
    ) as client:
        while True:
            page = client.get("/events/whatsapp", params={"after": after, "limit": 10_000})
            page.raise_for_status()
            body = page.json()
            ids += [e["event_id"] for e in body["data"]]
            if body["next_after"] is None:
                return ids
            after = body["next_after"]


async def crash_load(rx: WebhooksProcess, args: argparse.Namespace) -> dict:
    """Send ``crash_events`` events with retries; SIGKILL and restart at half-way."""
    total = args.crash_events
    rng = random.Random(11)
    pending = list(range(total))
    acked: set[int] = set()
    failures = 0
    state = {"killed_at": None, "first_ack_after_restart": None, "acked_at_kill": 0}

    def raw(i: int) -> bytes:
        return request_bytes(HOST, rx.port, PATH, whatsapp_body([f"wamid.crash.{i}"], rng), SECRET)

    async def sender() -> None:
        nonlocal failures
        conn = Connection(HOST, rx.port)
        while pending:
            i = pending.pop()
            while True:
                try:
                    status = await conn.send(raw(i))
                except (OSError, asyncio.IncompleteReadError):
                    status = 0
                if status == 200:
                    break
                failures += 1
                await asyncio.sleep(0.05)
            acked.add(i)
            if state["killed_at"] and state["first_ack_after_restart"] is None:
                state["first_ack_after_restart"] = time.perf_counter()
        conn.close()

    async def killer() -> None:
        while len(acked) < total // 2:
            await asyncio.sleep(0.005)
        state["acked_at_kill"] = len(acked)
        rx.kill()
        state["killed_at"] = time.perf_counter()
        await asyncio.sleep(0.5)
        await asyncio.get_running_loop().run_in_executor(None, rx.start)

    started = time.perf_counter()
    await asyncio.gather(killer(), *(sender() for _ in range(args.clients)))
    seconds = time.perf_counter() - started
    # Meta redelivers what it is unsure of: 5% of the acknowledged events again.
    again = rng.sample(sorted(acked), max(1, total // 20))
    conn = Connection(HOST, rx.port)
    redelivered = 0
    for i in again:
        redelivered += (await conn.send(raw(i))) == 200
    conn.close()
    return {
        "events": total,
        "acked": len(acked),
        "acked_before_kill": state["acked_at_kill"],
        "failed_attempts": failures,
        "redelivered": redelivered,
        "seconds": round(seconds, 2),
        "recovery_s": round(state["first_ack_after_restart"] - state["killed_at"], 2)
        if state["first_ack_after_restart"]
        else None,
        "acked_ids": {f"wamid.crash.{i}" for i in acked},
    }


def crash_figures(args: argparse.Namespace, workdir: Path) -> dict:
    store = workdir / "crash-store"
    with WebhooksProcess(
        store, CHANNELS, read_token=READ_TOKEN, log_path=workdir / "crash.log"
    ) as rx:
        result = uvloop.run(crash_load(rx, args))
        stored = read_all(rx.url)
        acked = result.pop("acked_ids")
        sent = {f"wamid.crash.{i}" for i in range(args.crash_events)}
        unique = set(stored)
        figures = {
            **result,
            "stored": len(stored),
            "lost": len(acked - unique),
            "duplicated": len(stored) - len(unique),
            "never_sent": len(unique - sent),
        }
        if args.warehouse:
            figures["warehouse"] = warehouse_figures(rx, acked, sent, args, workdir)
    return figures


def warehouse_figures(
    rx: WebhooksProcess, acked: set[str], sent: set[str], args: argparse.Namespace, workdir
) -> dict:
    """End to end: tap-whatsapp extracts the crash run's events into a fresh warehouse
    database; the receiver is SIGKILLed again between extracts, one extract meets the
    warehouse down, and more events (new ones and redeliveries) arrive meanwhile."""
    import psycopg

    from omnicanal.config import WarehouseURL
    from omnicanal.errors import OmnicanalError
    from omnicanal.extract import run_extract
    from omnicanal.settings import get_settings

    admin = WarehouseURL.parse(args.warehouse)
    with psycopg.connect(admin.url(), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{WAREHOUSE_DB}" with (force)')
        conn.execute(f'create database "{WAREHOUSE_DB}"')
    db = WarehouseURL(admin.host, admin.port, admin.user, admin.password, WAREHOUSE_DB)
    env = {
        **os.environ,
        "OMNICANAL_HOME": str(workdir / "home"),
        "OMNICANAL_WHATSAPP_RECEIVER_URL": rx.url,
        "OMNICANAL_WEBHOOKS_READ_TOKEN": READ_TOKEN,
        "OMNICANAL_WHATSAPP_MAX_RETRIES": "1",
    }
    settings = get_settings({**env, "OMNICANAL_WAREHOUSE_URL": db.url()})
    with socket.socket() as probe:  # a port where no warehouse listens
        probe.bind((HOST, 0))
        down_port = probe.getsockname()[1]
    down = get_settings(
        {**env, "OMNICANAL_WAREHOUSE_URL": WarehouseURL(HOST, down_port, "x", "", "x").url()}
    )
    rng = random.Random(13)
    started = time.perf_counter()
    first = run_extract(settings, "whatsapp")
    rx.kill()
    rx.start()
    more = [f"wamid.crash.more.{i}" for i in range(1000)] + rng.sample(sorted(acked), 500)
    with httpx.Client(base_url=rx.url) as client:
        for event_id in more:
            body = whatsapp_body([event_id], rng)
            answer = client.post(
                PATH,
                content=body,
                headers={"X-Hub-Signature-256": _sign(body)},
            )
            answer.raise_for_status()
    acked = acked | set(more)
    sent = sent | set(more)
    try:
        run_extract(down, "whatsapp")
        warehouse_down_failed = False
    except OmnicanalError:
        warehouse_down_failed = True
    second = run_extract(settings, "whatsapp")
    seconds = time.perf_counter() - started
    with psycopg.connect(db.url()) as conn:
        rows = [r[0] for r in conn.execute("select event_id from raw_whatsapp.messages")]
    with psycopg.connect(admin.url(), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{WAREHOUSE_DB}" with (force)')
    unique = set(rows)
    return {
        "extracts": 3,
        "extract_while_warehouse_down_failed": warehouse_down_failed,
        "first_extract_rows": first.rows,
        "second_extract_rows": second.rows,
        "seconds": round(seconds, 1),
        "messages": len(rows),
        "lost": len(acked - unique),
        "duplicated": len(rows) - len(unique),
        "never_sent": len(unique - sent),
    }


def _sign(body: bytes) -> str:
    from omnicanal.webhooks.payload import sign

    return sign(SECRET, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=10, help="each load phase")
    parser.add_argument("--rate", type=float, default=1000, help="open loop, deliveries/s")
    parser.add_argument("--events-per-body", type=int, default=1)
    parser.add_argument("--crash-events", type=int, default=20_000)
    parser.add_argument("--skip-anchor", action="store_true")
    parser.add_argument("--skip-crash", action="store_true")
    parser.add_argument(
        "--warehouse",
        metavar="POSTGRES_URL",
        help="a Postgres server (any database on it) for the end-to-end crash check: "
        "tap-whatsapp extracts the crash run into a fresh database there "
        "(default: skip it)",
    )
    args = parser.parse_args()

    # Other work on the machine shows in every figure but the CPU per event: keep the
    # load average beside them.
    figures: dict = {
        "clients": args.clients,
        "events_per_body": args.events_per_body,
        "loadavg_before": round(os.getloadavg()[0], 2),
    }
    workdir = Path(tempfile.mkdtemp(prefix="omnicanal-bench-webhooks-"))
    try:
        with bench_lock():
            if not args.skip_anchor:
                with Bare() as bare:
                    figures["anchor"] = load_figures(bare.port, bare.proc.pid, "bare", args)
            with WebhooksProcess(
                workdir / "store", CHANNELS, read_token=READ_TOKEN, log_path=workdir / "rx.log"
            ) as rx:
                figures["ours"] = load_figures(rx.port, rx.pid, "ours", args)
                health = httpx.get(f"{rx.url}/healthz").json()
                stored = read_all(rx.url)
            ours = figures["ours"]
            acked = (ours["closed_loop"]["ok"] + ours["open_loop"]["ok"]) * args.events_per_body
            figures["ours"]["deliveries_per_commit"] = round(
                health["deliveries"] / max(1, health["commits"]), 1
            )
            figures["ours"]["stored_events"] = len(stored)
            figures["ours"]["stored_at_least_acked"] = len(stored) >= acked
            if "anchor" in figures:
                figures["throughput_vs_anchor"] = round(
                    ours["closed_loop"]["events_per_s"]
                    / figures["anchor"]["closed_loop"]["events_per_s"],
                    3,
                )
            if not args.skip_crash:
                figures["crash"] = crash_figures(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    figures["loadavg_after"] = round(os.getloadavg()[0], 2)
    ours = figures["ours"]
    figures["goal_met"] = {
        "events_per_s": ours["closed_loop"]["events_per_s"] >= GOAL_EVENTS_PER_S,
        "p99_ms_at_rate": ours["open_loop"]["ok"] > 0
        and ours["open_loop"]["p99_ms"] <= GOAL_P99_MS
        and ours["open_loop"]["errors"] == 0,
        "crash_zero_lost_zero_duplicated": "crash" not in figures
        or all(
            where["lost"] == where["duplicated"] == where["never_sent"] == 0
            for where in (figures["crash"], figures["crash"].get("warehouse", figures["crash"]))
        ),
    }
    print_table(figures)
    print(json.dumps(figures, sort_keys=True))


def print_table(figures: dict) -> None:
    print(
        f"{'run':<22}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
        f"{'cpu ms/1k ev':>14}"
    )
    for who in ("anchor", "ours"):
        if who not in figures:
            continue
        for phase in ("closed_loop", "open_loop"):
            f = figures[who][phase]
            label = f"{who} {phase.replace('_', ' ')}"
            print(
                f"{label:<22}{f['events_per_s']:>10}{f['p50_ms']:>9}{f['p99_ms']:>9}"
                f"{f['max_ms']:>9}{f['errors']:>8}"
                f"{f.get('server_cpu_ms_per_1000_events', ''):>14}"
            )
    print(
        f"load average (1 min): {figures['loadavg_before']} before, "
        f"{figures['loadavg_after']} after"
    )
    if "throughput_vs_anchor" in figures:
        print(f"throughput ours/anchor: {figures['throughput_vs_anchor']}")
    if "crash" in figures:
        c = figures["crash"]
        print(
            f"crash: {c['acked']} acked ({c['acked_before_kill']} before SIGKILL), "
            f"recovery {c['recovery_s']} s, lost {c['lost']}, duplicated {c['duplicated']}, "
            f"never sent {c['never_sent']}"
        )
    if "crash" in figures and "warehouse" in figures["crash"]:
        w = figures["crash"]["warehouse"]
        print(
            f"warehouse (tap-whatsapp, 3 extracts, one with the warehouse down): "
            f"{w['messages']} messages, lost {w['lost']}, duplicated {w['duplicated']}, "
            f"never sent {w['never_sent']}"
        )


if __name__ == "__main__":
    main()
