"""The sync engine's diff and outcomes, against an in-process destination that records
every call and can refuse rows, leave rows out of its answer or break mid-run.

The warehouse is real (a fresh database per test); only the destination is a stand-in,
so each test can say exactly which keys went over the wire, in which call.
"""

from __future__ import annotations

import psycopg
import pytest

from omnicanal.activation.definitions import SyncDefinition
from omnicanal.activation.destination import Outcome, Row
from omnicanal.activation.engine import plan, run_sync
from omnicanal.errors import SyncError
from omnicanal.settings import get_settings

DEFINITION = SyncDefinition(
    name="fake__people",
    destination="fake",
    model="people",
    key="id",
    fields={"email": "email", "name": "name"},
)
LEDGER = "omnicanal_activation"


class Recorder:
    """A destination that holds rows in memory and records each call's keys."""

    def __init__(self, batch_size: int = 10, refuse=(), omit=(), fail_on_call: int | None = None):
        self.batch_size = batch_size
        self.refuse = set(refuse)
        self.omit = set(omit)
        self.fail_on_call = fail_on_call
        self.held: dict[str, dict] = {}
        self.calls: list[tuple[str, list[str]]] = []

    def check(self) -> None:
        pass

    def _answer(self, action: str, rows: list[Row]) -> list[Outcome]:
        assert len(rows) <= self.batch_size, "the engine must respect batch_size"
        self.calls.append((action, [r.key for r in rows]))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise SyncError("fake destination went down mid-run")
        outcomes = []
        for row in rows:
            if row.key in self.omit:
                continue
            if row.key in self.refuse:
                outcomes.append(Outcome(row.key, False, f"invalid address {row.key}"))
                continue
            if action == "upsert":
                self.held[row.key] = row.payload
            else:
                self.held.pop(row.key, None)
            outcomes.append(Outcome(row.key, True))
        return outcomes

    def upsert(self, rows: list[Row]) -> list[Outcome]:
        return self._answer("upsert", rows)

    def remove(self, rows: list[Row]) -> list[Outcome]:
        return self._answer("remove", rows)

    def close(self) -> None:
        pass

    def keys(self, action: str | None = None) -> list[str]:
        return [k for a, keys in self.calls if action in (None, a) for k in keys]


def set_model(url: str, rows: list[tuple[str, str, str]]) -> None:
    """Replace the model's rows: (id, email, name)."""
    with psycopg.connect(url) as conn:
        conn.execute("create schema if not exists activation")
        conn.execute(
            "create table if not exists activation.people (id text, email text, name text)"
        )
        conn.execute("truncate activation.people")
        with conn.cursor().copy("copy activation.people (id, email, name) from stdin") as copy:
            for row in rows:
                copy.write_row(row)


def people(n: int, renamed: set[int] = frozenset()) -> list[tuple[str, str, str]]:
    return [
        (f"p{i:05d}", f"p{i}@x.com.br", f"Name {i}" + (" changed" if i in renamed else ""))
        for i in range(n)
    ]


def sync(dest: Recorder, **kwargs):
    return run_sync(
        get_settings(), DEFINITION.name, definition=DEFINITION, destination=dest, **kwargs
    )


def query(url: str, statement: str, *params) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


def test_no_change_moves_nothing_and_one_percent_moves_exactly_that(warehouse_env):
    set_model(warehouse_env, people(2000))
    first = sync(Recorder(batch_size=500))
    assert (first.inserted, first.failed, first.pending) == (2000, 0, 0)
    assert first.rows_fetched == 2000

    # No change: nothing is read out of the warehouse but a count, nothing is sent.
    dest = Recorder(batch_size=500)
    second = sync(dest)
    assert (second.sent, second.unchanged, second.rows_fetched) == (0, 2000, 0)
    assert dest.calls == []

    # 1% of the segment changes: exactly those 20 rows are read and sent, once each.
    renamed = set(range(0, 2000, 100)) | {1999}
    renamed = set(sorted(renamed)[:20])
    set_model(warehouse_env, people(2000, renamed))
    dest = Recorder(batch_size=500)
    third = sync(dest)
    expected = sorted(f"p{i:05d}" for i in renamed)
    assert sorted(dest.keys()) == expected and len(dest.keys()) == 20
    assert (third.updated, third.unchanged, third.rows_fetched) == (20, 1980, 20)
    assert dest.held["p00100"]["name"] == "Name 100 changed"


def test_a_removed_key_is_never_removed_again(warehouse_env):
    set_model(warehouse_env, people(3))
    sync(Recorder())
    set_model(warehouse_env, people(3)[:2])
    dest = Recorder()
    assert sync(dest).removed == 1
    assert dest.calls == [("remove", ["p00002"])]
    # The ledger still knows p00002 (not present): the next runs must leave it alone.
    for _ in range(2):
        dest = Recorder()
        report = sync(dest)
        assert (report.removed, report.sent, dest.calls) == (0, 0, [])


def test_a_refused_row_that_leaves_the_model_is_never_removed(warehouse_env):
    set_model(warehouse_env, people(3))
    report = sync(Recorder(refuse={"p00001"}))
    assert (report.inserted, report.failed) == (2, 1)
    set_model(warehouse_env, [people(3)[0], people(3)[2]])
    dest = Recorder()
    report = sync(dest)
    # The destination never held p00001: removing it would touch what the sync never wrote.
    assert (report.removed, report.sent, dest.calls) == (0, 0, [])
    # Nothing is left to do for it, so its dead letter is settled.
    assert query(warehouse_env, f"select count(*) from {LEDGER}.sync_dead_letters") == [(0,)]


def test_a_row_left_out_of_the_answer_stays_pending_and_is_sent_next_run(warehouse_env):
    set_model(warehouse_env, people(3))
    report = sync(Recorder(omit={"p00001"}))
    assert (report.inserted, report.failed, report.pending) == (2, 0, 1)
    assert query(
        warehouse_env,
        f"select present, last_outcome, last_error from {LEDGER}.sync_ledger "
        "where record_key = 'p00001'",
    ) == [(False, "pending", None)]
    assert query(
        warehouse_env,
        f"select status, ok from {LEDGER}.sync_row_outcomes where record_key = 'p00001'",
    ) == [("pending", None)]
    assert query(warehouse_env, f"select count(*) from {LEDGER}.sync_dead_letters") == [(0,)]
    assert query(warehouse_env, f"select status, pending from {LEDGER}.sync_runs") == [
        ("partial", 1)
    ]

    # An update left out keeps the old payload in the ledger, so it is retried too.
    set_model(warehouse_env, people(3, renamed={0}))
    dest = Recorder(omit={"p00000"})
    report = sync(dest)
    assert sorted(dest.keys()) == ["p00000", "p00001"]
    assert (report.inserted, report.updated, report.pending) == (1, 0, 1)

    dest = Recorder()
    report = sync(dest)
    assert dest.keys() == ["p00000"] and (report.updated, report.pending) == (1, 0)
    assert sync(Recorder()).sent == 0
    assert query(
        warehouse_env, f"select count(*) from {LEDGER}.sync_ledger where last_outcome = 'pending'"
    ) == [(0,)]


def test_a_failure_mid_send_keeps_confirmed_batches_and_the_rerun_sends_the_rest(
    warehouse_env,
):
    set_model(warehouse_env, people(50))
    broken = Recorder(batch_size=10, fail_on_call=3)
    with pytest.raises(SyncError, match="mid-run"):
        sync(broken)
    confirmed = broken.keys()[:20]
    assert len(broken.calls) == 3
    present = query(
        warehouse_env,
        f"select record_key from {LEDGER}.sync_ledger where present order by 1",
    )
    assert [k for (k,) in present] == sorted(confirmed)
    assert query(warehouse_env, f"select status, inserted, error from {LEDGER}.sync_runs") == [
        ("failed", 20, "fake destination went down mid-run")
    ]

    dest = Recorder(batch_size=10)
    report = sync(dest)
    assert report.inserted == 30
    assert not set(dest.keys()) & set(confirmed), "a confirmed batch was sent again"
    assert len(dest.keys()) == len(set(dest.keys())) == 30
    assert set(dest.keys()) | set(confirmed) == {f"p{i:05d}" for i in range(50)}


def test_refused_rows_are_dead_letters_held_back_until_replayed(warehouse_env):
    set_model(warehouse_env, people(3))
    report = sync(Recorder(refuse={"p00001"}))
    assert report.failed == 1 and "invalid address p00001" in report.errors[0]
    assert query(
        warehouse_env,
        f"select present, last_outcome, last_error from {LEDGER}.sync_ledger "
        "where record_key = 'p00001'",
    ) == [(False, "failed", "invalid address p00001")]
    assert query(
        warehouse_env,
        f"select sync_name, record_key, action, payload->>'email', reason, attempts, "
        f"first_failed_at <= last_failed_at from {LEDGER}.sync_dead_letters",
    ) == [("fake__people", "p00001", "insert", "p1@x.com.br", "invalid address p00001", 1, True)]

    # The same refused row is not sent again and again: it waits in the dead letters.
    dest = Recorder(refuse={"p00001"})
    report = sync(dest)
    assert (report.sent, report.held, dest.calls) == (0, 1, [])
    with psycopg.connect(warehouse_env) as conn:
        assert plan(conn, DEFINITION).held == 1

    # Replay resends it (and only it); still refused, the attempt is counted.
    dest = Recorder(refuse={"p00001"})
    report = sync(dest, replay=True)
    assert dest.keys() == ["p00001"] and report.failed == 1
    assert query(warehouse_env, f"select attempts from {LEDGER}.sync_dead_letters") == [(2,)]

    # After a fix at the destination, replay delivers it and the dead letter is gone.
    dest = Recorder()
    report = sync(dest, replay=True)
    assert dest.keys() == ["p00001"] and (report.inserted, report.failed) == (1, 0)
    assert query(warehouse_env, f"select count(*) from {LEDGER}.sync_dead_letters") == [(0,)]
    assert dest.held["p00001"]["email"] == "p1@x.com.br"


def test_a_refused_row_whose_payload_changes_is_sent_again(warehouse_env):
    set_model(warehouse_env, people(2))
    sync(Recorder(refuse={"p00001"}))
    set_model(warehouse_env, people(2, renamed={1}))
    dest = Recorder()
    report = sync(dest)
    assert dest.keys() == ["p00001"] and (report.inserted, report.held) == (1, 0)


def test_plan_counts_and_samples_without_sending(warehouse_env):
    set_model(warehouse_env, people(10))
    sync(Recorder())
    set_model(warehouse_env, people(12, renamed={2, 3, 4, 5, 6, 7})[2:])
    with psycopg.connect(warehouse_env) as conn:
        planned = plan(conn, DEFINITION)
    assert planned.counts == {"insert": 2, "update": 6, "remove": 2, "depart": 0}
    assert planned.samples["update"] == ["p00002", "p00003", "p00004", "p00005", "p00006"]
    assert planned.samples["insert"] == ["p00010", "p00011"]
    assert planned.samples["remove"] == ["p00000", "p00001"]
    assert (planned.unchanged, planned.held) == (2, 0)
    dest = Recorder()
    report = sync(dest, dry_run=True)
    assert (report.inserted, report.updated, report.removed, dest.calls) == (2, 6, 2, [])
    assert sync(dest).sent == 10


def test_full_resync_sends_every_row(warehouse_env):
    set_model(warehouse_env, people(5))
    sync(Recorder(refuse={"p00004"}))
    dest = Recorder()
    report = sync(dest, full_resync=True)
    assert sorted(dest.keys()) == [f"p{i:05d}" for i in range(5)]
    assert (report.updated, report.inserted, report.unchanged) == (4, 1, 0)


def test_rows_without_a_key_and_refused_rows_are_reported_the_rest_delivered(warehouse_env):
    set_model(warehouse_env, people(4) + [(None, "nokey@x.com.br", "No Key")])
    dest = Recorder(refuse={"p00002"})
    report = sync(dest)
    assert sorted(dest.held) == ["p00000", "p00001", "p00003"]
    assert (report.inserted, report.failed, report.skipped_null_keys) == (3, 1, 1)
    assert any("have no id" in e for e in report.errors)
    assert query(warehouse_env, f"select record_key, reason from {LEDGER}.sync_dead_letters") == [
        ("p00002", "invalid address p00002")
    ]
    assert query(
        warehouse_env, f"select status, failed, skipped_null_keys from {LEDGER}.sync_runs"
    ) == [("partial", 1, 1)]
