"""Extract benchmark: each tap against its sandbox emulation, vs a bare httpx loop.

    .venv/bin/python bench/extract/run.py                       # 2000 people, every channel
    .venv/bin/python bench/extract/run.py --people 5000 --repeat 3 --channels shopify
    .venv/bin/python bench/extract/run.py --orders-100k         # Shopify bulk vs paging

A generated world is served in this process (``SandboxServer``), every emulation with
its limits off (Shopify's cost bucket and REST bucket unbounded, bulk operations
without their simulated run time; Square's and VTEX's request rates unlimited). For
each channel, ``--repeat`` times, alternately:

- the tap as a subprocess (``tap-<name> --config``, the config the extract would give
  it, pointed at this sandbox), its stdout written to a file and its RECORD messages
  counted per stream once it has ended (nothing reads it during the run, so no reader
  competes with the sandbox served here; nothing is loaded): wall time of the process;
- ``bare.py``: one httpx loop sending the same requests (same pages, page sizes,
  filters; Shopify's own GraphQL queries and bulk operation) and counting records.

Shopify runs twice, once per extraction path (``bulk``: one bulk operation per stream;
``pages``: paginated queries). The goal (issue 10) is tap time <= 1.5x the bare
client's. A recorder around the sandbox app (an ASGI middleware, not a change to the
emulators) logs every request's time, status and, for Shopify GraphQL, the
``actualQueryCost`` and ``currentlyAvailable`` the answer reports; it gives the request
counts (the tap and the bare loop must send the same number) and the span from the first
request to the last answer.

Then the limits go on (the emulators' own knobs: ``set_cost_limit``,
``set_rate_limit``) and the tap runs once more, stopped after ``--limits-seconds`` (at
least the windows the share is measured over, and a half); Shopify reads by paginated
queries there (a bulk operation costs ~10 points). Its share of the limit (goal: >= 0.9;
see ``achieved_share``): Square and VTEX, requests accepted from the first request's
arrival to the last 429's over what the request window allows in that time, over at
least ``MIN_WINDOWS`` windows (20 of Square's seconds); Shopify, actual query cost per
second once the bucket's burst is spent, over restoreRate. When the tap's unlimited rate
cannot reach the real limit (a tap reading 500 orders a request never sends Square 100
requests a second; VTEX's 6,000 a minute needs 24,000 requests to measure), the check
runs with the limit lowered (a third of the tap's unlimited rate and half its slowest
endpoint's at most) so that it binds throughout, and says so; Square is then read one
record a page so there are requests enough to measure (3,316 at 2000 people).

Each timed run holds the exclusive lock on /tmp/omnicanal-bench.lock. Prints progress
lines, then a table with each contender's wall time and CPU time (user + system of its
subprocess) and both ratios: the goal is on wall time, which the machine's other load
stretches (a short extract most: Square's 28 requests), while the CPU ratio is the tap's
own cost against the bare loop's; ``pairs`` is the median of each tap run over the bare
run right after it. The last line is one JSON object with every figure, ratio and goal.

The taps, bare loops and the sandbox are the ones of the tree this script sits in
(``SOURCES`` go first on the path, the subprocesses' too), so a run from a clean copy of
a commit times that commit, not the work tree the venv's editable installs point at.
Their bytecode is compiled before the first run (``compile_sources``), as an install
compiles it: with ``PYTHONDONTWRITEBYTECODE`` set, each tap run would otherwise compile
them from source again.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
#: The workspace's sources in the tree this script sits in. The venv's editable installs
#: point at the tree the venv was made in (the shared work tree), so a bench run from a
#: clean copy of a commit would time that tree's taps, not the commit's: the copy's
#: sources go first on the path, here and in every tap and bare loop started.
SOURCES = [
    PROJECT / "include",
    PROJECT / "taps" / "tapkit",
    *sorted(PROJECT.glob("taps/tap-*")),
    *sorted(PROJECT.glob("targets/*")),
]
sys.path[:0] = [str(path) for path in SOURCES]
sys.path.insert(0, str(HERE.parent))  # bench/

from benchlock import bench_lock  # noqa: E402

BIN = Path(sys.executable).parent
#: The channels bare.py has a loop for.
BARE_LOOPS = ("shopify", "square", "vtex")
#: Issue 10's goals.
GOAL_RATIO = 1.5
GOAL_SHARE = 0.9
#: Large enough never to bind: the emulators' limits, off.
UNLIMITED = 10**12
#: Tap settings for the limits-on check: Square's pages are so large (100 customers, 500
#: orders) that a sandbox world is read in a few dozen requests, too few to measure a rate;
#: a record a page makes one request per record (3,316 at 2000 people), enough for the
#: real 100/s to bind over 30 windows when the tap can go faster.
LIMIT_CHECK_CONFIG = {"square": {"page_size": 1, "orders_page_size": 1}}
#: Windows a request-window share is measured over, at least: the bound counts a whole
#: window for the part a run ends in, so at 5 windows a perfect client can be held to
#: 0.85. VTEX's window is a minute: 3 (and its Retry-After says when it frees).
MIN_WINDOWS = {"square": 20, "vtex": 3}
#: Shopify orders per person in the generated world (measured: 3692 for 2000 people).
SHOPIFY_ORDERS_PER_PERSON = 1.85


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- what the sandbox saw ---------------------------------------------------------------

_COST = re.compile(rb'"actualQueryCost":\s*(\d+(?:\.\d+)?)')
_AVAILABLE = re.compile(rb'"currentlyAvailable":\s*(\d+(?:\.\d+)?)')


class Recorder:
    """ASGI middleware: (start, end, path, status, cost, available) of every request
    while ``Recorder.log`` is a list."""

    log: list[tuple[float, float, str, int, float | None, float | None]] | None = None

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        log = Recorder.log
        if scope["type"] != "http" or log is None:
            await self.app(scope, receive, send)
            return
        started, status, tail = time.monotonic(), [0], [b""]
        graphql = scope["path"].endswith("/graphql.json")

        async def recording_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif graphql and message["type"] == "http.response.body":
                tail[0] = (tail[0] + message.get("body", b""))[-600:]
            await send(message)

        await self.app(scope, receive, recording_send)
        cost = available = None
        if graphql and (match := _COST.search(tail[0])):
            cost = float(match.group(1))
            if found := _AVAILABLE.search(tail[0]):
                available = float(found.group(1))
        log.append((started, time.monotonic(), scope["path"], status[0], cost, available))


def recorded(log: list) -> dict[str, Any]:
    statuses = Counter(str(entry[3]) for entry in log)
    span = max(e[1] for e in log) - min(e[0] for e in log) if log else 0.0
    figures = {"requests": len(log), "statuses": dict(statuses), "server_span_s": round(span, 3)}
    costs = [entry[4] for entry in log if entry[4] is not None]
    if costs:
        figures["cost"] = sum(costs)
    return figures


# --- the contenders ---------------------------------------------------------------------

_RECORD = re.compile(rb'"type":\s*"RECORD",\s*"stream":\s*"([^"]+)"')


def child_env() -> dict[str, str]:
    """The environment of a contender: this tree's sources first (see ``SOURCES``)."""
    paths = [str(path) for path in SOURCES]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def compile_sources() -> None:
    """Bytecode for this tree's sources (``SOURCES``), as an installed tap has it.

    A tap installed as a wheel has its bytecode compiled at install (pip's default, uv's
    ``--compile-bytecode``); a package imported from source, as this workspace's editable
    members are, writes its ``__pycache__`` on first use. Where ``PYTHONDONTWRITEBYTECODE``
    is set (this machine, many CI runners) nothing is written, so every tap run would
    compile the taps' and tapkit's modules from source again (about 0.03 s of
    tap-square's start-up, which the bare loop, importing httpx from site-packages, never
    pays). Written once here, read by every contender; the bare loop's own script is
    compiled at each run either way.
    """
    for path in SOURCES:
        if path.is_dir():
            compileall.compile_dir(path, quiet=1, workers=1)


def children_cpu() -> float:
    """CPU seconds (user and system) of this process's finished children: around one
    contender's run, its own work, which neither the emulation (in this process) nor the
    machine's other load adds to, unlike its wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def count_records(path: Path) -> Counter[str]:
    """RECORD messages per stream in a tap's output file, read after the run."""
    records: Counter[str] = Counter()
    with open(path, "rb") as output:
        carry = b""
        while chunk := output.read(1 << 20):
            chunk, _, carry = (carry + chunk).rpartition(b"\n")
            records.update(m.decode() for m in _RECORD.findall(chunk))
        records.update(m.decode() for m in _RECORD.findall(carry))
    return records


def run_tap(channel: str, config: dict, tmp: Path, stop_after: float | None = None) -> dict:
    """The tap as a subprocess, its stdout written to a file whose RECORD messages are
    counted once it has ended; ``stop_after`` seconds, it is stopped (SIGTERM) if still
    running.

    Nothing reads the output while the tap runs: a reader in this process (a thread)
    would compete with the sandbox it serves for the interpreter, and stretch the tap's
    requests; a reader process would compete for the machine's two cores. Writing the
    file is the tap's own cost (its ``write`` calls), as writing to a pipe is.
    """
    path = tmp / f"tap-{channel}.json"
    path.write_text(json.dumps(config))
    stderr = tmp / f"tap-{channel}.log"
    output = tmp / f"tap-{channel}.singer"

    Recorder.log = []
    with bench_lock(), open(stderr, "wb") as err, open(output, "wb") as out:
        cpu = children_cpu()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(BIN / f"tap-{channel}"), "--config", str(path)],
            stdout=out,
            stderr=err,
            env=child_env(),
        )
        try:
            code = proc.wait(timeout=stop_after)
        except subprocess.TimeoutExpired:
            proc.terminate()
            code = proc.wait()
        seconds = time.perf_counter() - started
        cpu = children_cpu() - cpu
    log, Recorder.log = Recorder.log, None
    if stop_after is not None and seconds >= stop_after:
        say(f"tap-{channel} stopped after {seconds:.0f}s, as asked")
    elif code != 0:
        raise SystemExit(f"tap-{channel} failed (exit {code}):\n{stderr.read_text()[-3000:]}")
    records = count_records(output)
    output.unlink()
    return {
        "seconds": round(seconds, 3),
        "cpu_s": round(cpu, 3),
        "records": dict(records),
        **recorded(log),
        "_log": log,
    }


def run_bare(job: dict, tmp: Path) -> dict[str, Any]:
    path = tmp / f"bare-{job['channel']}.json"
    path.write_text(json.dumps(job))
    Recorder.log = []
    with bench_lock():
        cpu = children_cpu()
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(HERE / "bare.py"), str(path)],
            capture_output=True,
            text=True,
            env=child_env(),
        )
        seconds = time.perf_counter() - started
        cpu = children_cpu() - cpu
    log, Recorder.log = Recorder.log, None
    if result.returncode != 0:
        raise SystemExit(f"bare {job['channel']} failed:\n{result.stderr[-3000:]}")
    inner = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "seconds": round(seconds, 3),
        "cpu_s": round(cpu, 3),
        "loop_s": inner["seconds"],
        "records": inner["records"],
        **recorded(log),
    }


# --- channels: configs and limits -------------------------------------------------------


def tap_config(channel: str, settings: Any, url: str, extraction: str | None) -> dict:
    from omnicanal.channels import get_channel

    config = {**get_channel(channel).source.tap_config(settings), "api_url": url}
    if channel == "shopify":
        config |= {"extraction": extraction, "bulk_poll_interval": 0.25}
    return config


def bare_job(channel: str, config: dict, extraction: str | None) -> dict:
    job: dict[str, Any] = {"channel": channel, "config": config}
    if channel == "shopify":
        from tap_shopify import bulk, queries, streams

        by_resource = {id(getattr(queries, n)): n for n in dir(queries) if n.isupper()}
        job |= {
            "extraction": extraction,
            "api_version": config.get("api_version") or "2026-10",
            "poll_interval": config["bulk_poll_interval"],
            "bulk_run": bulk.RUN_MUTATION,
            "bulk_poll": bulk.POLL_QUERY,
            "scopes_query": streams.SCOPES_QUERY,
            "streams": [
                (s.name, by_resource[id(s.resource)], s.bulk_capable) for s in streams.STREAM_TYPES
            ],
        }
    elif channel == "vtex":
        from tap_vtex.streams import CUSTOMER_FIELDS

        job["customer_fields"] = ",".join(CUSTOMER_FIELDS)
    return job


def unlimited_options() -> dict[str, dict]:
    return {
        "shopify": {
            "maximum_available": UNLIMITED,
            "restore_rate": UNLIMITED,
            "bucket_size": UNLIMITED,
            "leak_rate": UNLIMITED,
            "bulk_delay": 0.0,
        },
        "square": {"rate_limit": None},
        "vtex": {"requests_per_minute": UNLIMITED},
    }


def real_limit(channel: str) -> dict[str, Any]:
    """The emulation's default limit: rate per second, window, burst."""
    if channel == "shopify":
        from omnicanal.channels.shopify import graphql as admin

        rate, burst = admin.DEFAULT_RESTORE_RATE, admin.DEFAULT_MAXIMUM_AVAILABLE
        return {"unit": "cost points", "rate_per_s": rate, "burst": burst, "window_s": 1.0}
    if channel == "square":
        from omnicanal.channels.square.emulation import DEFAULT_RATE_LIMIT

        return {"unit": "requests", "rate_per_s": DEFAULT_RATE_LIMIT, "window_s": 1.0}
    from omnicanal.channels.vtex.emulation import DEFAULT_REQUESTS_PER_MINUTE

    return {"unit": "requests", "rate_per_s": DEFAULT_REQUESTS_PER_MINUTE / 60, "window_s": 60.0}


def min_windows(channel: str) -> int:
    return MIN_WINDOWS.get(channel, 3)


def set_limit(emulator: Any, channel: str, limit: dict | None) -> None:
    """Turn the emulation's limit on (``limit``) or off (None) through its own knobs."""
    if channel == "shopify":
        if limit is None:
            emulator.set_cost_limit(UNLIMITED, UNLIMITED)
        else:
            emulator.set_cost_limit(limit["burst"], limit["rate_per_s"])
    elif channel == "square":
        emulator.set_rate_limit(None if limit is None else max(1, round(limit["rate_per_s"])))
    else:
        per_minute = UNLIMITED if limit is None else max(1, round(limit["rate_per_s"] * 60))
        emulator.set_rate_limit(per_minute)


def achieved_share(log: list, limit: dict) -> dict[str, Any]:
    """What the tap got done under the limit, over the most the limit allows.

    A request window (L requests in any W seconds) allows at most L x (floor(T/W) + 1)
    requests arriving within T seconds; T runs from the first request's arrival to the
    last 429's, the last moment the limit is known to bind, so the tail of a run that ran
    out of data is not counted, and the requests counted are the ones accepted that
    arrived in that span (arrival: when the recorder saw the request, as the emulation
    counts it). Fewer than ``limit["min_windows"]`` windows give no share: the bound's
    last, partial window weighs too much.
    A cost bucket is measured from the first answer with less than half the bucket
    left (its burst spent) to the last answer: actual query cost over restoreRate x T,
    without the points drawn from the bucket's stock.
    """
    log = sorted(log)
    window, throttled = limit["window_s"], sum(1 for e in log if e[3] == 429)
    if limit["unit"] == "requests":
        if throttled < 2:
            return {"binds": throttled > 0, "share": None, "throttled_429": throttled}
        start, end = log[0][0], max(e[0] for e in log if e[3] == 429)
        windows = int((end - start) // window) + 1
        done = sum(1 for e in log if e[0] <= end and 200 <= e[3] < 300)
        allowed = limit["rate_per_s"] * window * windows
        if windows < limit["min_windows"]:
            return {
                "binds": True,
                "share": None,
                "windows": windows,
                "done": done,
                "allowed": allowed,
                "throttled_429": throttled,
                "note": f"{windows} windows, fewer than {limit['min_windows']}: no sound share",
            }
    else:
        bound = next((e for e in log if e[5] is not None and e[5] < limit["burst"] / 2), None)
        if bound is None:
            return {"binds": False, "share": None}
        inside = [e for e in log if e[1] > bound[1]]
        end = max(e[1] for e in log)
        windows = int((end - bound[1]) // window)
        if windows < 1:
            return {"binds": True, "share": None, "note": "the run ended within one window"}
        end = bound[1] + windows * window
        inside = [e for e in inside if e[1] <= end]
        done = sum(e[4] or 0.0 for e in inside)
        last = next(e[5] for e in reversed([bound, *inside]) if e[5] is not None)
        done -= max(0.0, bound[5] - last)  # drawn from the stock, not the restore rate
        allowed = limit["rate_per_s"] * window * windows
    return {
        "binds": True,
        "windows": windows,
        "done": round(done, 1),
        "allowed": round(allowed, 1),
        "share": round(done / allowed, 3),
        "throttled_429": throttled,
    }


# --- the run ----------------------------------------------------------------------------


def median_run(runs: list[dict]) -> dict:
    """The fastest run's figures, with the median wall time of all of them."""
    best = min(runs, key=lambda r: r["seconds"])
    best = {k: v for k, v in best.items() if k != "_log"}
    return best | {
        "seconds_median": round(statistics.median(r["seconds"] for r in runs), 3),
        "cpu_s_median": round(statistics.median(r["cpu_s"] for r in runs), 3),
        "seconds_all": [r["seconds"] for r in runs],
    }


def compare(channel: str, label: str, app: Any, settings: Any, url: str, args, tmp: Path) -> dict:
    extraction = label.split("_")[1] if "_" in label else None
    config = tap_config(channel, settings, url, extraction)
    job = bare_job(channel, config, extraction)
    taps, bares = [], []
    for attempt in range(args.repeat):
        taps.append(run_tap(channel, config, tmp))
        line = (
            f"{label} #{attempt + 1}: tap {taps[-1]['seconds']}s, {taps[-1]['cpu_s']}s CPU "
            f"({taps[-1]['requests']} req, "
            f"{sum(taps[-1]['records'].values())} records)"
        )
        if not args.skip_bare:
            bares.append(run_bare(job, tmp))
            line += (
                f", bare {bares[-1]['seconds']}s, {bares[-1]['cpu_s']}s CPU "
                f"({bares[-1]['requests']} req, "
                f"{sum(bares[-1]['records'].values())} records)"
            )
        say(line)
    tap = median_run(taps)
    records = sum(tap["records"].values())
    result = {
        "tap": tap,
        "records": records,
        "tap_records_per_s": round(records / tap["seconds_median"]),
    }
    if not bares:
        return result
    bare = median_run(bares)
    if tap["records"] != bare["records"]:
        say(f"WARNING {label}: tap records {tap['records']} != bare {bare['records']}")
    ratio = round(tap["seconds_median"] / bare["seconds_median"], 2)
    # Each tap run against the bare run right after it: the load drifts less within a
    # pair than across the whole comparison.
    pairs = [t["seconds"] / b["seconds"] for t, b in zip(taps, bares, strict=True)]
    cpu_pairs = [t["cpu_s"] / b["cpu_s"] for t, b in zip(taps, bares, strict=True) if b["cpu_s"]]
    return result | {
        "bare": bare,
        "bare_records_per_s": round(records / bare["seconds_median"]),
        "same_records": tap["records"] == bare["records"],
        "same_requests": tap["requests"] == bare["requests"],
        "ratio": ratio,
        "cpu_ratio": round(tap["cpu_s_median"] / bare["cpu_s_median"], 2),
        "pair_ratios": [round(r, 2) for r in pairs],
        "pair_ratio_median": round(statistics.median(pairs), 2),
        "cpu_pair_ratios": [round(r, 2) for r in cpu_pairs],
        "server_span_ratio": round(tap["server_span_s"] / bare["server_span_s"], 2),
        "goal": f"ratio <= {GOAL_RATIO}",
        "goal_met": ratio <= GOAL_RATIO,
    }


def slowest_endpoint(log: list) -> tuple[str, float]:
    """The endpoint the tap asked slowest in an unlimited run, and its requests per second:
    each request is charged the time until the tap's next request (the tap asks one at a
    time), so an endpoint's rate is its requests over the time they took."""
    log = sorted(log)
    spent: Counter[str] = Counter()
    asked: Counter[str] = Counter()
    for entry, following in zip(log, log[1:], strict=False):
        spent[entry[2]] += following[0] - entry[0]
        asked[entry[2]] += 1
    rates = {
        path: asked[path] / spent[path]
        for path in asked
        if asked[path] >= 20 and spent[path] > 0  # noqa: PLR2004 - a few make no rate
    }
    path = min(rates, key=rates.__getitem__)
    return path, rates[path]


def limits_on(channel: str, app: Any, settings: Any, url: str, unlimited: dict, args, tmp: Path):
    """The tap once more with the limit on; its achieved share of the limit's rate."""
    real = real_limit(channel)
    config = tap_config(channel, settings, url, "pages" if channel == "shopify" else None)
    config |= LIMIT_CHECK_CONFIG.get(channel, {})
    tap = unlimited["tap"]
    slowest = None
    if channel in LIMIT_CHECK_CONFIG:  # its own unlimited reference, with the same pages
        tap = run_tap(channel, config, tmp)
        slowest = slowest_endpoint(tap.pop("_log"))
        say(
            f"{channel} unlimited with {LIMIT_CHECK_CONFIG[channel]}: {tap['requests']} req; "
            f"slowest endpoint {slowest[0]} at {slowest[1]:.0f} req/s"
        )
    work = tap["requests"] if real["unit"] == "requests" else tap.get("cost", 0.0)
    tap_rate = work / tap["server_span_s"]
    # The limit must bind on every endpoint, not on average: at most half the slowest's
    # unlimited rate (the machine's load varies between that run and this one).
    slowest_rate = slowest[1] if slowest is not None else float("inf")
    window = real["window_s"]
    # A sliding window's first window is a burst too; min_windows more make the measure.
    burst = real.get("burst", real["rate_per_s"] * window)
    least = min_windows(channel)
    limit = dict(real) | {"min_windows": least}
    if (
        tap_rate < 1.5 * real["rate_per_s"]
        or slowest_rate < 2 * real["rate_per_s"]
        or work < burst + least * real["rate_per_s"] * window
    ):
        scaled = min(tap_rate / 3, slowest_rate / 2, work / ((least + 1) * window))
        # The knobs take whole requests per second (Square) or per minute (VTEX).
        limit["rate_per_s"] = round(scaled * window) / window if channel != "shopify" else scaled
        limit["rate_per_s"] = round(max(limit["rate_per_s"], 1 / window), 3)
        limit["scaled"] = (
            f"the real limit ({real['rate_per_s']:g} {real['unit']}/s) cannot be measured "
            f"here: the tap's unlimited rate is {tap_rate:.1f}/s over {work:.0f} "
            f"{real['unit']}, its slowest endpoint's {slowest_rate:.1f}/s (wanted: 1.5x the "
            f"limit, 2x on every endpoint, and {least + 1} windows' worth)"
        )
    stop_after = max(args.limits_seconds, (least + 0.5) * window)
    set_limit(app.state.emulators[channel], channel, limit)
    try:
        result = run_tap(channel, config, tmp, stop_after=stop_after)
    finally:
        set_limit(app.state.emulators[channel], channel, None)
    share = achieved_share(result.pop("_log"), limit)
    say(f"{channel} limits on ({limit['rate_per_s']:g} {limit['unit']}/s): {share}")
    return {
        "limit": limit,
        "tap_config": LIMIT_CHECK_CONFIG.get(channel, {}),
        "real_limit_binds": "scaled" not in limit,
        "tap_unlimited_rate_per_s": round(tap_rate, 1),
        "stop_after_s": stop_after,
        "tap": result,
        **share,
        "goal": f"share >= {GOAL_SHARE}",
        "goal_met": share.get("share") is not None and share["share"] >= GOAL_SHARE,
    }


def serve(people: int, seed: int):
    from omnicanal.sandbox.app import SandboxServer, create_app, emulation_options
    from omnicanal.sandbox.world import generate_world
    from omnicanal.settings import get_settings

    settings = get_settings()
    started = time.monotonic()
    world = generate_world(people, seed)
    say(
        f"world of {people} people ({time.monotonic() - started:.0f}s): "
        + "; ".join(s.describe() for s in world.slices.values())
    )
    options = emulation_options(settings)
    for name, extra in unlimited_options().items():
        options[name] = {**options.get(name, {}), **extra}
    app = create_app(world, **options)
    app.add_middleware(Recorder)
    return settings, app, SandboxServer(app)


def main() -> None:
    from omnicanal.channels import sources

    # the channels bare.py has a loop for (issue 10's commerce channels); the other
    # sources' emulations came later and have no bare loop or limit check here
    emulated = [c.name for c in sources() if c.emulation is not None and c.name in BARE_LOOPS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=2000, help="world size (default 2000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--channels", default=",".join(emulated), help="comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each contender")
    parser.add_argument("--no-limits", action="store_true", help="skip the limits-on check")
    parser.add_argument("--skip-bare", action="store_true", help="time the taps only")
    parser.add_argument(
        "--shopify-paths",
        default="bulk,pages",
        help="Shopify's extraction paths to time (comma-separated; default bulk,pages)",
    )
    parser.add_argument(
        "--limits-seconds",
        type=float,
        default=40,
        help="stop the limits-on run after this long (at least MIN_WINDOWS + 0.5 windows)",
    )
    parser.add_argument(
        "--orders-100k",
        action="store_true",
        help="Shopify only, a world of ~100k orders: bulk vs paging (long; see bench/README.md)",
    )
    args = parser.parse_args()
    channels = [c for c in args.channels.split(",") if c]
    if args.orders_100k:
        channels, args.people = ["shopify"], round(100_000 / SHOPIFY_ORDERS_PER_PERSON)
        args.no_limits = True
    unknown = set(channels) - set(emulated)
    if set(args.shopify_paths.split(",")) - {"bulk", "pages", ""}:
        raise SystemExit(f"--shopify-paths takes bulk and/or pages, not {args.shopify_paths!r}")
    if unknown:
        raise SystemExit(f"no benched source called {sorted(unknown)}; have {emulated}")

    compile_sources()
    load_before = [round(x, 2) for x in os.getloadavg()]
    settings, app, server = serve(args.people, args.seed)
    results: dict[str, Any] = {}
    with server, tempfile.TemporaryDirectory(prefix="omnicanal-bench-extract-") as tmpdir:
        tmp = Path(tmpdir)
        for channel in channels:
            labels = [channel]
            if channel == "shopify":
                labels = [f"shopify_{path}" for path in args.shopify_paths.split(",") if path]
            for label in labels:
                results[label] = compare(channel, label, app, settings, server.url, args, tmp)
                if "ratio" in results[label]:
                    say(f"{label}: tap/bare {results[label]['ratio']}x")
            if args.no_limits:
                continue
            unlimited = results.get("shopify_pages" if channel == "shopify" else channel)
            if unlimited is None:  # Shopify's check reads pages: it needs their run
                say("shopify limits-on check skipped: it needs the pages path's run")
                continue
            results[f"{channel}_limits_on"] = limits_on(
                channel, app, settings, server.url, unlimited, args, tmp
            )

    if "shopify_bulk" in results and "shopify_pages" in results:
        bulk, pages = results["shopify_bulk"], results["shopify_pages"]
        results["shopify_bulk_vs_pages"] = {
            "orders": bulk["tap"]["records"].get("orders"),
            "tap_pages_over_bulk": round(
                pages["tap"]["seconds_median"] / bulk["tap"]["seconds_median"], 2
            ),
        }
        if "bare" in bulk:
            results["shopify_bulk_vs_pages"]["bare_pages_over_bulk"] = round(
                pages["bare"]["seconds_median"] / bulk["bare"]["seconds_median"], 2
            )

    print()
    # Wall time is the goal's measure; CPU time (the subprocess's own) is the one the
    # machine's other load does not stretch: both, side by side.
    print(
        f"{'run':<22}{'tap s':>9}{'bare s':>9}{'ratio':>7}{'pairs':>7}{'tap CPU':>9}"
        f"{'bare CPU':>9}{'CPU ratio':>10}{'records':>9}{'tap rec/s':>11}"
    )
    for label, res in results.items():
        if "records" in res:
            bare = res.get("bare")
            bare_s = f"{bare['seconds_median']:>9.2f}" if bare else f"{'-':>9}"
            bare_cpu = f"{bare['cpu_s_median']:>9.2f}" if bare else f"{'-':>9}"
            print(
                f"{label:<22}{res['tap']['seconds_median']:>9.2f}{bare_s}"
                f"{res.get('ratio', '-'):>7}{res.get('pair_ratio_median', '-'):>7}"
                f"{res['tap']['cpu_s_median']:>9.2f}{bare_cpu}{res.get('cpu_ratio', '-'):>10}"
                f"{res['records']:>9}{res['tap_records_per_s']:>11}"
            )
        elif "share" in res:
            print(f"{label:<22} share of the limit {res['share']} (goal >= {GOAL_SHARE})")
    goals = {k: v["goal_met"] for k, v in results.items() if "goal_met" in v}
    print(
        json.dumps(
            {
                "people": args.people,
                "seed": args.seed,
                "repeat": args.repeat,
                "machine_cpus": os.cpu_count(),
                "load_average_before": load_before,
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
                "results": results,
                "goal_met": goals,
                "all_goals_met": all(goals.values()),
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
