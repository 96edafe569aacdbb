"""A sync that is killed mid-run, and a sync through a storm of 429s and 503s.

- SIGKILL: ``omnicanal sync run`` in a subprocess against the sandbox's Mailchimp,
  through a recording proxy that counts, per member, the deliveries the emulation
  accepted. Once the ledger shows some batches confirmed, the proxy holds the next
  delivery and the process is killed; a rerun delivers the rest: every member exactly
  once, nothing confirmed is sent again, and the dead run is marked killed.
- Storm: a tiny HTTP API answers 429 (with Retry-After) and 503 to a share of its
  requests; a destination on :class:`RetryingClient` with a rate limit delivers every
  row once, the run completes, and no second sees more requests than the limit.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import psycopg
import pytest

from omnicanal.activation.definitions import SyncDefinition
from omnicanal.activation.destination import Outcome, Row
from omnicanal.activation.engine import run_sync
from omnicanal.activation.http import RetryingClient
from omnicanal.channels.mailchimp.destination import subscriber_hash
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import generate_world
from omnicanal.settings import get_settings

LEDGER = "omnicanal_activation"
SYNC = "mailchimp__recent_buyers"
LIST = "omnicanal-demo"
MEMBER_PATH = re.compile(r"/lists/[^/]+/members/([0-9a-f]{32})$")


def serve(handler_class) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# -- SIGKILL mid-sync -----------------------------------------------------------------


class RecordingProxy:
    """Forwards to the sandbox; counts per member hash the writes the emulation
    accepted (member PUTs, batch subscribes, the PUT operations of /batches); can
    hold the next write until released (it is then never forwarded)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.delivered: Counter[str] = Counter()
        self.hold_when = None  # a callable: hold the write that arrives when it is true
        self.holding = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                keys = proxy.member_keys(self.command, self.path, body)
                if keys and proxy.hold_when is not None and proxy.hold_when():
                    proxy.hold_when = None
                    proxy.holding.set()
                    proxy.release.wait(60)
                    self.send_response(503)
                    self.end_headers()
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                answer = httpx.request(
                    self.command,
                    proxy.upstream + self.path,
                    headers=headers,
                    content=body,
                    timeout=60,
                )
                if keys and 200 <= answer.status_code < 300:
                    with proxy.lock:
                        proxy.delivered.update(keys)
                self.send_response(answer.status_code)
                for k, v in answer.headers.items():
                    if k.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "content-encoding",
                    ):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server, self.url = serve(Handler)

    @staticmethod
    def member_keys(method: str, path: str, body: bytes) -> list[str]:
        path = path.split("?")[0]
        if method == "PUT" and (found := MEMBER_PATH.search(path)):
            return [found.group(1)]
        if method == "POST" and re.search(r"/lists/[^/]+$", path) and body:
            members = json.loads(body).get("members") or []
            return [subscriber_hash(m["email_address"]) for m in members]
        if method == "POST" and path.endswith("/batches") and body:
            return [
                found.group(1)
                for op in json.loads(body).get("operations") or []
                if op.get("method") == "PUT" and (found := MEMBER_PATH.search(op["path"]))
            ]
        return []

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()


def make_segment(url: str, count: int) -> list[str]:
    emails = [f"cliente.{n:05d}@example.com.br" for n in range(count)]
    with psycopg.connect(url) as conn:
        conn.execute("create schema activation")
        conn.execute(
            "create table activation.sync_mailchimp__recent_buyers (email text, first_name "
            "text, last_name text, customer_id text, last_order_at timestamptz)"
        )
        with conn.cursor().copy(
            "copy activation.sync_mailchimp__recent_buyers (email, first_name, last_name, "
            "customer_id) from stdin"
        ) as copy:
            for n, email in enumerate(emails):
                copy.write_row((email, "Cliente", f"Número {n}", f"C{n}"))
        conn.execute("create schema marts")
        conn.execute(
            "create table marts.customer_consent as select 'C' || n as customer_id, "
            "'email' as channel, true as consents from generate_series(0, %s) n",
            (count,),
        )
    return emails


def present(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"select count(*) from {LEDGER}.sync_ledger where present").fetchone()[
            0
        ]


@pytest.fixture
def sandbox():
    with SandboxServer(generate_world(5, seed=3)) as server:
        emulator = server.app.state.mailchimp
        emulator.audiences.clear()
        emulator.add_list(LIST)
        yield server


def test_sigkill_mid_sync_then_rerun_delivers_every_row_exactly_once(
    sandbox, warehouse_env, monkeypatch, tmp_path
):
    from omnicanal.channels.mailchimp.destination import MailchimpDestination

    total = 2 * MailchimpDestination.batch_size + 300  # three of the engine's batches
    emails = make_segment(warehouse_env, total)
    proxy = RecordingProxy(sandbox.url)
    try:
        # hold the first write sent after some batch is confirmed in the ledger
        proxy.hold_when = lambda: present(warehouse_env) > 0
        env = {
            **os.environ,
            "OMNICANAL_WAREHOUSE_URL": warehouse_env,
            "OMNICANAL_MAILCHIMP_API_URL": f"{proxy.url}/3.0",
            "OMNICANAL_MAILCHIMP_API_KEY": "sandbox-us1",
        }
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from omnicanal.cli import main; "
                f"sys.exit(main(['sync', 'run', '{SYNC}']))",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert proxy.holding.wait(90), child.stderr.read1() if child.poll() else "no hold"
            confirmed = present(warehouse_env)
            assert 0 < confirmed < total
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
        proxy.release.set()
        assert child.returncode == -signal.SIGKILL
        # nothing more was confirmed after the kill
        assert present(warehouse_env) == confirmed
        before = Counter(proxy.delivered)
        assert sum(before.values()) == confirmed and max(before.values()) == 1

        # the rerun, through the same proxy
        monkeypatch.setenv("OMNICANAL_MAILCHIMP_API_URL", f"{proxy.url}/3.0")
        monkeypatch.setenv("OMNICANAL_MAILCHIMP_API_KEY", "sandbox-us1")
        report = run_sync(get_settings(), SYNC)
        assert (report.inserted, report.failed, report.pending) == (total - confirmed, 0, 0)
        expected = {subscriber_hash(e) for e in emails}
        assert set(proxy.delivered) == expected
        assert set(proxy.delivered.values()) == {1}, "a row was delivered twice"
        held = sandbox.app.state.mailchimp.members(LIST, status="subscribed")
        assert {m["email_address"] for m in held} == set(emails)
        with psycopg.connect(warehouse_env) as conn:
            runs = conn.execute(
                f"select status, inserted from {LEDGER}.sync_runs order by run_id"
            ).fetchall()
        # the killed run's row says what it had confirmed
        assert runs == [("killed", confirmed), ("success", total - confirmed)]
    finally:
        proxy.close()


# -- a 429/5xx storm ------------------------------------------------------------------


class StormAPI:
    """``POST /contacts`` takes ``{"contacts": [{"id", ...}]}``; a share of requests is
    answered 429 with Retry-After or 503 instead, as a platform under load does."""

    RETRY_AFTER = 0.4

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, int]] = []  # (monotonic time, status answered)
        self.accepted: Counter[str] = Counter()
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with api.lock:
                    n = len(api.arrivals) + 1
                    status = 429 if n % 4 == 2 else 503 if n % 7 == 3 else 200
                    api.arrivals.append((time.monotonic(), status))
                    if status == 200:
                        api.accepted.update(c["id"] for c in body["contacts"])
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", str(api.RETRY_AFTER))
                payload = json.dumps(
                    {"results": [{"id": c["id"], "status": "ok"} for c in body["contacts"]]}
                    if status == 200
                    else {"error": "slow down" if status == 429 else "unavailable"}
                ).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server, self.url = serve(Handler)


class StormDestination:
    batch_size = 5
    rate_limit = 8.0

    def __init__(self, url: str) -> None:
        self.client = RetryingClient(
            url, service="storm", rate_limit=self.rate_limit, backoff=0.05, max_attempts=8
        )

    def check(self) -> None:
        pass

    def upsert(self, rows: list[Row]) -> list[Outcome]:
        response = self.client.request(
            "POST", "/contacts", json={"contacts": [{"id": r.key, **r.payload} for r in rows]}
        )
        response.raise_for_status()
        return [Outcome(r["id"], True) for r in response.json()["results"]]

    def remove(self, rows: list[Row]) -> list[Outcome]:
        raise AssertionError("nothing to remove")

    def close(self) -> None:
        self.client.close()


def test_a_429_and_503_storm_completes_within_the_rate_limit(warehouse_env):
    with psycopg.connect(warehouse_env) as conn:
        conn.execute("create schema activation")
        conn.execute(
            "create table activation.storm as select 'k' || n as id, 'v' || n as value "
            "from generate_series(1, 60) n"
        )
    api = StormAPI()
    dest = StormDestination(api.url)
    definition = SyncDefinition("storm__all", "storm", "storm", "id", {"value": "value"})
    try:
        report = run_sync(get_settings(), definition.name, definition=definition, destination=dest)
    finally:
        dest.close()
        api.server.shutdown()
    assert (report.inserted, report.failed, report.pending) == (60, 0, 0)
    assert set(api.accepted) == {f"k{n}" for n in range(1, 61)}
    assert set(api.accepted.values()) == {1}
    statuses = Counter(status for _, status in api.arrivals)
    assert statuses[429] >= 3 and statuses[503] >= 2, statuses
    times = [t for t, _ in api.arrivals]
    # never faster than the limit, as the platform sees it (arrival times carry the
    # loopback's jitter on a loaded machine): spaced requests, no burst…
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.6 / dest.rate_limit, min(gaps)
    # …no one-second window holds more than the limit (one more at its edge)…
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t < start + 1.0) <= dest.rate_limit + 1
    # …and the request after a 429 waited its Retry-After
    for (t, status), (t_next, _) in zip(api.arrivals, api.arrivals[1:], strict=False):
        if status == 429:
            assert t_next - t >= StormAPI.RETRY_AFTER * 0.95
    # the run row has the requests and the achieved rate, within the limit
    with psycopg.connect(warehouse_env) as conn:
        requests, seconds, limit, status = conn.execute(
            f"select requests, send_seconds, rate_limit, status from {LEDGER}.sync_runs"
        ).fetchone()
    assert (requests, limit, status) == (len(api.arrivals), 8.0, "success")
    assert requests / seconds <= limit * 1.02
