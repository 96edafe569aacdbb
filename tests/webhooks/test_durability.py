"""Durability: what the receiver acknowledged survives a SIGKILL, exactly once.

A real child process under concurrent load is killed (SIGKILL, its whole process
group) mid-load and restarted on the same socket and store; senders retry what got no
200, as Meta does. Then every acknowledged event is in the store once, and nothing that
was never sent is. In-process tests pin what makes that true: the 200 waits for the
commit, the commit is a WAL fsync, and concurrent deliveries share commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from omnicanal.webhooks.app import create_app
from omnicanal.webhooks.payload import sign
from omnicanal.webhooks.store import EventStore
from webhooks.conftest import APP_SECRET, READ_TOKEN, SECRETS, Receiver, delivery


def test_sigkill_mid_load_loses_and_duplicates_nothing_acknowledged(receiver: Receiver) -> None:
    process = receiver.process
    url = f"{process.url}/webhooks/whatsapp"
    acked: list[set[str]] = []
    sent: set[str] = set()
    errors = Counter()
    killed = threading.Event()
    acked_before_kill = 0
    stop_at = [time.monotonic() + 30]

    def sender(n: int) -> None:
        mine: set[str] = set()
        acked.append(mine)
        with httpx.Client(timeout=5) as client:
            i = 0
            while time.monotonic() < stop_at[0]:
                event_id = f"wamid.K{n}-{i}"
                sent.add(event_id)
                body = delivery(event_id)
                headers = {"X-Hub-Signature-256": sign(APP_SECRET, body)}
                while True:  # Meta's retry: the same body until a 200
                    try:
                        if client.post(url, content=body, headers=headers).status_code == 200:
                            break
                        errors["status"] += 1
                    except httpx.TransportError:
                        errors["transport"] += 1
                    time.sleep(0.02)
                mine.add(event_id)
                i += 1

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    old_pid = process.pid
    acked_before_kill = sum(len(a) for a in acked)
    process.kill()
    killed.set()
    time.sleep(0.3)  # senders fail and retry against a dead receiver meanwhile
    process.start()
    assert process.pid != old_pid
    time.sleep(1.0)
    stop_at[0] = 0
    for t in threads:
        t.join(timeout=30)

    all_acked = set().union(*acked)
    assert acked_before_kill > 50, "the load did not get going before the kill"
    assert len(all_acked) > acked_before_kill + 50, "no load after the restart"
    assert errors["transport"] > 0, "the kill interrupted nobody"
    stored = [e["event_id"] for e in receiver.all_events()]
    assert all_acked <= set(stored), f"lost {len(all_acked - set(stored))} acknowledged events"
    assert len(stored) == len(set(stored)), "an event is stored twice"
    assert set(stored) <= sent
    seqs = [e["seq"] for e in receiver.all_events()]
    assert seqs == sorted(seqs)


def _post(app, body: bytes):
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://receiver")
    return client, client.post(
        "/webhooks/whatsapp", content=body, headers={"X-Hub-Signature-256": sign(APP_SECRET, body)}
    )


def test_the_200_waits_for_the_commit(tmp_path: Path) -> None:
    store = EventStore(tmp_path)
    app = create_app(store, SECRETS, READ_TOKEN)
    gate = threading.Event()
    commit = store._commit

    def slow_commit(batch):
        gate.wait(10)
        return commit(batch)

    store._commit = slow_commit

    def rows() -> int:
        with sqlite3.connect(store.path) as conn:
            return conn.execute("select count(*) from events").fetchone()[0]

    async def scenario() -> None:
        client, request = _post(app, delivery("wamid.W1"))
        task = asyncio.ensure_future(request)
        await asyncio.sleep(0.3)
        assert not task.done(), "answered before the events were committed"
        assert rows() == 0
        gate.set()
        answer = await task
        assert answer.status_code == 200
        assert rows() == 1
        await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        gate.set()
        store.close()


def test_commits_are_fsynced_wal_and_shared_by_concurrent_deliveries(tmp_path: Path) -> None:
    store = EventStore(tmp_path)
    conn = store._conn
    assert conn.execute("pragma journal_mode").fetchone() == ("wal",)
    assert conn.execute("pragma synchronous").fetchone() == (2,)  # FULL: fsync each commit
    app = create_app(store, SECRETS, READ_TOKEN)

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/webhooks/whatsapp",
                        content=(body := delivery(f"wamid.G{i}")),
                        headers={"X-Hub-Signature-256": sign(APP_SECRET, body)},
                    )
                    for i in range(200)
                )
            )
        return [a.status_code for a in answers]

    # The writer leaves checkpoints (copying the WAL into the database) to its own thread.
    assert conn.execute("pragma wal_autocheckpoint").fetchone() == (0,)
    size_before = store.path.stat().st_size
    try:
        assert asyncio.run(burst()) == [200] * 200
        assert store.deliveries == 200
        assert store.commits < 100, f"{store.commits} commits for 200 deliveries"
        deadline = time.monotonic() + 5
        while store.path.stat().st_size <= size_before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.path.stat().st_size > size_before, "no checkpoint ran"
    finally:
        store.close()


def test_a_delivery_that_cannot_be_stored_gets_no_200(tmp_path: Path) -> None:
    """Meta redelivers anything not answered 200: a failed commit must not be acked."""
    store = EventStore(tmp_path)
    app = create_app(store, SECRETS, READ_TOKEN)
    with sqlite3.connect(store.path) as conn:
        conn.execute("alter table events rename to events_gone")
        conn.execute("alter table quarantine rename to quarantine_gone")

    async def scenario() -> list[int]:
        codes = []
        for body in (delivery("wamid.X1"), b"{malformed"):
            client, request = _post(app, body)
            codes.append((await request).status_code)
            await client.aclose()
        return codes

    try:
        assert asyncio.run(scenario()) == [500, 500]
    finally:
        store.close()
