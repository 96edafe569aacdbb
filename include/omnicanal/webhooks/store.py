"""The receiver's durable store: events appended with group commit, read back by seq.

One SQLite database in WAL mode with ``synchronous=FULL``: a commit returns only once
the write-ahead log is fsync'd, so an event whose request got its 200 survives a
SIGKILL or a power cut. Fsync per request would cap the receiver at the disk's fsync
rate, so requests hand their events to one writer thread and wait; the writer takes
everything queued, inserts it in one transaction, commits (one fsync for the lot) and
then wakes every waiting request at once (group commit). While it fsyncs, the next
batch gathers.

Because one thread writes and each batch commits atomically, ``seq`` (the row id) grows
in commit order and a reader only ever sees a gap-free prefix of it: a tap that
bookmarks the last ``seq`` it emitted can never skip an event committed later with a
smaller one. ``UNIQUE (channel, event_id)`` makes a redelivered event a no-op, in the
same transaction as the rest of its body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from omnicanal.webhooks.payload import Event

log = logging.getLogger(__name__)

DB_NAME = "events.sqlite3"
#: The file beside the database that names the store: a receiver reports it on /healthz,
#: so that a client can tell its own home's receiver from another one on the same port.
ID_NAME = "store-id"

SCHEMA = """
create table if not exists events (
    seq integer primary key,
    channel text not null,
    event_id text not null,
    kind text not null,
    received_at text not null,
    field text not null,
    metadata text not null,
    contacts text not null,
    event text not null,
    unique (channel, event_id)
);
create index if not exists events_channel_seq on events (channel, seq);
create table if not exists quarantine (
    id integer primary key,
    channel text not null,
    received_at text not null,
    reason text not null,
    body blob not null
);
create index if not exists quarantine_channel_id on quarantine (channel, id);
"""

#: Most requests one transaction takes; more wait for the next one.
MAX_BATCH = 2000
#: Checkpoint when the WAL has grown by this many commits, or every CHECKPOINT_SECONDS.
CHECKPOINT_COMMITS = 500
CHECKPOINT_SECONDS = 1.0
#: Bytes of WAL kept after a checkpoint resets it.
WAL_SIZE_LIMIT = 64 * 1024 * 1024


def store_id(directory: str | Path) -> str | None:
    """The id of the store under ``directory``, or None when no store was made there."""
    try:
        return (Path(directory) / ID_NAME).read_text().strip() or None
    except FileNotFoundError:
        return None


def _ensure_store_id(directory: Path) -> str:
    """The store's id, made (a random UUID, written whole or not at all) on first use."""
    known = store_id(directory)
    if known:
        return known
    staged = directory / f".{ID_NAME}.{uuid.uuid4().hex}"
    staged.write_text(uuid.uuid4().hex + "\n")
    try:
        # link, not rename: of two stores opened at once, the first id stays
        (directory / ID_NAME).hardlink_to(staged)
    except FileExistsError:
        pass
    finally:
        staged.unlink()
    return store_id(directory) or ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Appended:
    """What one delivery did to the store."""

    stored: int = 0
    duplicates: int = 0
    quarantined: bool = False


@dataclass
class _Pending:
    channel: str
    events: list[Event] | None
    quarantine: tuple[str, bytes] | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future = field(repr=False)


_STOP = object()


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("pragma journal_mode=wal")
    conn.execute("pragma synchronous=full")
    return conn


class EventStore:
    """The store under ``directory`` (created): ``append`` from the event loop, ``page``
    and ``quarantined`` to read; ``close`` commits what is queued and stops the writer."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DB_NAME
        #: What /healthz reports as ``store``: stable for this directory, new for a new one.
        self.id = _ensure_store_id(self.directory)
        self._conn = connect(self.path)
        self._conn.executescript(SCHEMA)
        # The writer never checkpoints (SQLite's auto-checkpoint would copy the WAL into
        # the database, and fsync it, inside a commit that requests wait on: a 20-50 ms
        # stall every few thousand events); a thread of its own does, without blocking it.
        self._conn.execute("pragma wal_autocheckpoint=0")
        self._conn.execute(f"pragma journal_size_limit={WAL_SIZE_LIMIT}")
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        #: Transactions committed and deliveries they carried (group commit at work).
        self.commits = 0
        self.deliveries = 0
        self._writer = threading.Thread(
            target=self._write_loop, name="webhooks-writer", daemon=True
        )
        self._writer.start()
        # Reads run off the event loop, one at a time, on a connection of their own.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhooks-reader")
        self._read_conn: sqlite3.Connection | None = None
        self._closed = False
        self._checkpoint_due = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="webhooks-checkpointer", daemon=True
        )
        self._checkpointer.start()

    # -- writing ---------------------------------------------------------------------------

    async def append(self, channel: str, events: list[Event]) -> Appended:
        """Store ``events`` of one delivery durably; returns once they are fsync'd."""
        return await self._submit(channel, events, None)

    async def quarantine(self, channel: str, reason: str, body: bytes) -> Appended:
        """Keep a signed body that is no Meta payload, with why, durably."""
        return await self._submit(channel, None, (reason, body))

    async def _submit(
        self, channel: str, events: list[Event] | None, quarantine: tuple[str, bytes] | None
    ) -> Appended:
        if self._closed:
            raise RuntimeError("the event store is closed")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Pending(channel, events, quarantine, loop, future))
        return await future

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._settle(batch, self._commit(batch))
            if stop:
                return

    def _commit(self, batch: list[_Pending]) -> list:
        received_at = _now()
        results: list[Appended] = []
        conn = self._conn
        try:
            conn.execute("begin immediate")
            for item in batch:
                if item.quarantine is not None:
                    reason, body = item.quarantine
                    conn.execute(
                        "insert into quarantine (channel, received_at, reason, body) "
                        "values (?, ?, ?, ?)",
                        (item.channel, received_at, reason, body),
                    )
                    results.append(Appended(quarantined=True))
                    continue
                stored = 0
                for ev in item.events or ():
                    stored += conn.execute(
                        "insert into events (channel, event_id, kind, received_at, field, "
                        "metadata, contacts, event) values (?, ?, ?, ?, ?, ?, ?, ?) "
                        "on conflict (channel, event_id) do nothing",
                        (
                            item.channel,
                            ev.event_id,
                            ev.kind,
                            received_at,
                            ev.field,
                            ev.metadata,
                            ev.contacts,
                            ev.event,
                        ),
                    ).rowcount
                results.append(Appended(stored, len(item.events or ()) - stored))
            conn.execute("commit")
            self.commits += 1
            self.deliveries += len(batch)
            if self.commits % CHECKPOINT_COMMITS == 0:
                self._checkpoint_due.set()
        except Exception as exc:
            log.exception("webhook store: a batch of %d deliveries failed to commit", len(batch))
            if conn.in_transaction:
                conn.execute("rollback")
            return [exc] * len(batch)
        return results

    @staticmethod
    def _settle(batch: list[_Pending], outcomes: list) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for item, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(item.loop, []).append((item.future, outcome))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, settled)
            except RuntimeError:  # that loop is closed: nobody waits any more
                pass

    def _checkpoint_loop(self) -> None:
        conn = connect(self.path)
        try:
            while not self._closed:
                self._checkpoint_due.wait(CHECKPOINT_SECONDS)
                self._checkpoint_due.clear()
                # PASSIVE: copies what no reader still needs and never blocks the writer.
                conn.execute("pragma wal_checkpoint(passive)").fetchall()
        except Exception:
            log.exception("webhook store: checkpoint failed (the WAL keeps growing)")
        finally:
            conn.close()

    # -- reading ---------------------------------------------------------------------------

    def _read(self, sql: str, params: tuple) -> list[tuple]:
        if self._read_conn is None:
            self._read_conn = connect(self.path)
        return self._read_conn.execute(sql, params).fetchall()

    async def page_json(self, channel: str, after: int, limit: int) -> str:
        """The read API's answer: events of ``channel`` with seq > ``after``, as JSON text.

        The stored JSON parts go out verbatim. ``next_after`` is the last seq of the page
        when more events follow it now, else null (the reader has caught up).
        """
        rows = await asyncio.get_running_loop().run_in_executor(
            self._reader,
            self._read,
            "select seq, event_id, kind, received_at, field, metadata, contacts, event "
            "from events where channel = ? and seq > ? order by seq limit ?",
            (channel, after, limit + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        dumps = json.dumps
        data = ",".join(
            f'{{"seq":{seq},"event_id":{dumps(event_id)},"kind":"{kind}",'
            f'"received_at":"{received_at}","field":{dumps(fld)},"metadata":{metadata},'
            f'"contacts":{contacts},"event":{event}}}'
            for seq, event_id, kind, received_at, fld, metadata, contacts, event in rows
        )
        next_after = rows[-1][0] if more else None
        return f'{{"data":[{data}],"next_after":{dumps(next_after)}}}'

    async def quarantined(self, channel: str, after: int, limit: int) -> dict:
        """Quarantined bodies of ``channel`` with id > ``after``: reason and body text."""
        rows = await asyncio.get_running_loop().run_in_executor(
            self._reader,
            self._read,
            "select id, received_at, reason, body from quarantine "
            "where channel = ? and id > ? order by id limit ?",
            (channel, after, limit + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "data": [
                {
                    "id": qid,
                    "received_at": received_at,
                    "reason": reason,
                    "body": bytes(body).decode("utf-8", "replace"),
                    "body_bytes": len(body),
                }
                for qid, received_at, reason, body in rows
            ],
            "next_after": rows[-1][0] if more else None,
        }

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the database."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._writer.join()
        self._checkpoint_due.set()
        self._checkpointer.join()
        self._reader.submit(self._close_reader).result()
        self._reader.shutdown()
        self._conn.close()

    def _close_reader(self) -> None:
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None


def _resolve(settled: list) -> None:
    for future, outcome in settled:
        if future.done():  # the request was cancelled (client went away)
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
