"""Sync modes (mirror, upsert, audience, message), destinations that cannot remove,
consent gating and the run row's destination figures, against a real warehouse and an
in-process destination that records every call (see test_engine_outcomes.py).

The consent mart is a plain table here (``marts.customer_consent``, the columns dbt's
model has); tests/activation/test_consent_pipeline.py builds the real one with dbt.
"""

from __future__ import annotations

import json
from dataclasses import replace

import psycopg
import pytest

from omnicanal.activation.definitions import SyncDefinition, load_definitions
from omnicanal.activation.destination import Outcome, Row
from omnicanal.activation.engine import plan, run_sync
from omnicanal.activation.ledger import describe_run, run_row, status
from omnicanal.errors import SyncError
from omnicanal.settings import get_settings

LEDGER = "omnicanal_activation"
BASE = SyncDefinition(
    name="fake__people",
    destination="fake",
    model="people",
    key="id",
    fields={"email": "email", "name": "name"},
)


class Recorder:
    """Holds rows in memory, records each call's keys; optional protocol attributes."""

    def __init__(
        self,
        batch_size: int = 10,
        consent_channel: str | None = None,
        supports_remove: bool = True,
        crash_after_delivery_on_call: int | None = None,
    ):
        self.batch_size = batch_size
        if consent_channel is not None:
            self.consent_channel = consent_channel
        self.supports_remove = supports_remove
        self.crash_after = crash_after_delivery_on_call
        self.held: dict[str, dict] = {}
        self.calls: list[tuple[str, list[str]]] = []
        self.delivered: list[str] = []

    def check(self) -> None:
        pass

    def upsert(self, rows: list[Row]) -> list[Outcome]:
        self.calls.append(("upsert", [r.key for r in rows]))
        for row in rows:
            self.held[row.key] = row.payload
            self.delivered.append(row.key)
        if self.crash_after is not None and len(self.calls) == self.crash_after:
            raise SyncError("connection lost after the platform took the batch")
        return [Outcome(r.key, True) for r in rows]

    def remove(self, rows: list[Row]) -> list[Outcome]:
        assert self.supports_remove, "the engine asked a destination that cannot remove"
        self.calls.append(("remove", [r.key for r in rows]))
        for row in rows:
            self.held.pop(row.key, None)
        return [Outcome(r.key, True) for r in rows]

    def close(self) -> None:
        pass

    def keys(self, action: str | None = None) -> list[str]:
        return [k for a, keys in self.calls if action in (None, a) for k in keys]


def set_model(url: str, rows: list[tuple], customer: str = "customer_id") -> None:
    """Replace the model's rows: (id, email, name, customer)."""
    with psycopg.connect(url) as conn:
        conn.execute("create schema if not exists activation")
        conn.execute("drop table if exists activation.people")
        conn.execute(
            f"create table activation.people (id text, email text, name text, {customer} text)"
        )
        with conn.cursor().copy(
            f"copy activation.people (id, email, name, {customer}) from stdin"
        ) as copy:
            for row in rows:
                copy.write_row(row)


def people(ids, renamed=()) -> list[tuple]:
    return [
        (f"p{i}", f"p{i}@x.com.br", f"Name {i}" + (" changed" if i in renamed else ""), f"C{i}")
        for i in ids
    ]


def set_consent(url: str, consents: dict[str, bool], channel: str = "email") -> None:
    """The consent mart as dbt builds it, for one channel: customer_id -> consents."""
    with psycopg.connect(url) as conn:
        conn.execute("create schema if not exists marts")
        conn.execute(
            "create table if not exists marts.customer_consent (customer_id text, channel text, "
            "consents boolean, consent_source text, consent_changed_at timestamptz)"
        )
        conn.execute("delete from marts.customer_consent where channel = %s", (channel,))
        for customer, given in consents.items():
            conn.execute(
                "insert into marts.customer_consent values (%s, %s, %s, 'test', now())",
                (customer, channel, given),
            )


def sync(dest: Recorder, definition: SyncDefinition = BASE, **kwargs):
    return run_sync(
        get_settings(), definition.name, definition=definition, destination=dest, **kwargs
    )


def query(url: str, statement: str, *params) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


# -- definitions -------------------------------------------------------------------------


def write_exposure(tmp_path, meta: str) -> None:
    models = tmp_path / "models" / "marts"
    models.mkdir(parents=True)
    (models / "_x.yml").write_text(
        "version: 2\nexposures:\n  - name: x__y\n    type: application\n"
        "    owner: {name: me}\n    meta:\n      omnicanal_sync:\n"
        "        destination: mailchimp\n        model: sync_x\n        key: email\n"
        "        fields: {email_address: email}\n" + meta
    )


def test_mode_and_options_are_read_from_the_exposure(tmp_path):
    write_exposure(
        tmp_path, "        mode: audience\n        customer_column: person\n        list_id: abc\n"
    )
    (definition,) = load_definitions(tmp_path).values()
    assert (definition.mode, definition.customer_column) == ("audience", "person")
    assert definition.options == {"list_id": "abc"}
    # the destination learns the mode (audience: remove the membership, not the person)
    assert definition.destination_options() == {"list_id": "abc", "mode": "audience"}


def test_default_mode_is_mirror(tmp_path):
    write_exposure(tmp_path, "")
    (definition,) = load_definitions(tmp_path).values()
    assert (definition.mode, definition.customer_column) == ("mirror", "customer_id")


def test_an_unknown_mode_names_the_exposure_and_its_file(tmp_path):
    write_exposure(tmp_path, "        mode: replace\n")
    with pytest.raises(SyncError) as caught:
        load_definitions(tmp_path)
    message = str(caught.value)
    assert "'x__y'" in message and "_x.yml" in message and "'replace'" in message
    assert "mirror" in message and "upsert" in message


# -- modes -------------------------------------------------------------------------------


def test_upsert_never_removes_and_keeps_what_left_as_held(warehouse_env):
    upsert = replace(BASE, mode="upsert")
    set_model(warehouse_env, people(range(3)))
    sync(Recorder(), upsert)
    set_model(warehouse_env, people([0]))
    dest = Recorder()
    report = sync(dest, upsert)
    assert (report.removed, report.departed, dest.calls) == (0, 0, [])
    # the ledger still says the destination holds them (it does)
    assert query(warehouse_env, f"select count(*) from {LEDGER}.sync_ledger where present") == [
        (3,)
    ]
    # p1 comes back unchanged: nothing to send; p2 comes back changed: an update
    set_model(warehouse_env, people(range(3), renamed={2}))
    dest = Recorder()
    report = sync(dest, upsert)
    assert dest.calls == [("upsert", ["p2"])] and (report.updated, report.inserted) == (1, 0)
    # a full resync sends the model's rows, and nothing for keys that left it
    set_model(warehouse_env, people([0]))
    dest = Recorder()
    sync(dest, upsert, full_resync=True)
    assert dest.keys() == ["p0"]


def test_audience_adds_and_removes_only_its_own_members(warehouse_env):
    audience = replace(BASE, mode="audience")
    set_model(warehouse_env, people(range(3)))
    dest = Recorder()
    dest.held["outsider"] = {"email": "outsider@x.com.br"}  # added by hand at the platform
    sync(dest, audience)
    set_model(warehouse_env, people([1, 3]))
    report = sync(dest, audience)
    assert sorted(dest.keys("remove")) == ["p0", "p2"] and report.removed == 2
    assert set(dest.held) == {"outsider", "p1", "p3"}
    # removed members are not removed again
    calls = len(dest.calls)
    assert sync(dest, audience).sent == 0 and len(dest.calls) == calls


def test_message_mode_sends_each_key_once_ever(warehouse_env):
    message = replace(BASE, mode="message")
    set_model(warehouse_env, people(range(3)))
    dest = Recorder(supports_remove=False)
    assert sync(dest, message).inserted == 3
    # a changed payload is not sent again; a departure is ledger-only
    set_model(warehouse_env, people([0, 1, 3], renamed={0}))
    report = sync(dest, message)
    assert (report.inserted, report.updated, report.departed, report.removed) == (1, 0, 1, 0)
    assert dest.keys("upsert") == ["p0", "p1", "p2", "p3"] and dest.keys("remove") == []
    assert query(
        warehouse_env,
        f"select present, last_outcome from {LEDGER}.sync_ledger where record_key = 'p2'",
    ) == [(False, "departed")]
    # the key that left comes back: it was sent once, it is never sent again
    set_model(warehouse_env, people(range(4)))
    with psycopg.connect(warehouse_env) as conn:
        planned = plan(conn, message)
    assert planned.counts == {"insert": 0, "update": 0, "remove": 0, "depart": 0}
    assert sync(dest, message).sent == 0
    assert sorted(dest.delivered) == ["p0", "p1", "p2", "p3"]
    with pytest.raises(SyncError, match="no full resync"):
        sync(dest, message, full_resync=True)


def test_message_batch_in_doubt_after_a_crash_is_not_sent_again(warehouse_env):
    message = replace(BASE, mode="message")
    set_model(warehouse_env, people(range(6)))
    # the platform took the second batch, then the answer was lost
    dest = Recorder(batch_size=2, supports_remove=False, crash_after_delivery_on_call=2)
    with pytest.raises(SyncError, match="connection lost"):
        sync(dest, message)
    assert len(dest.delivered) == 4
    in_doubt = dest.calls[1][1]
    dest = Recorder(batch_size=2, supports_remove=False)
    report = sync(dest, message)
    # the rerun sends what never went out, and not the batch that may have gone
    assert report.inserted == 2 and not set(dest.delivered) & set(in_doubt)
    with psycopg.connect(warehouse_env) as conn:
        (found,) = status(conn, "fake__people")
    assert found["in_doubt"] == 2


def test_a_destination_that_cannot_remove_is_never_asked_to(warehouse_env):
    set_model(warehouse_env, people(range(3)))
    dest = Recorder(supports_remove=False)
    sync(dest)
    set_model(warehouse_env, people([0]))
    report = sync(dest)
    assert dest.keys("remove") == [] and (report.departed, report.removed) == (2, 0)
    assert set(dest.held) == {"p0", "p1", "p2"}
    # departed keys are not departed again, nor re-sent
    assert sync(dest).sent == 0 and sync(dest).departed == 0


# -- consent -----------------------------------------------------------------------------


def test_never_consented_is_never_sent_and_revoked_is_removed(warehouse_env):
    set_model(warehouse_env, people(range(4)))
    set_consent(warehouse_env, {"C0": True, "C1": True, "C2": False})  # C3: no row at all
    dest = Recorder(consent_channel="email")
    report = sync(dest)
    assert sorted(dest.keys()) == ["p0", "p1"] and report.withheld == 2
    # consent for another channel does not count
    set_consent(warehouse_env, {"C2": True, "C3": True}, channel="whatsapp")
    assert sync(dest).sent == 0
    # C1 revokes: removed from the destination in the next run, though still in the model
    set_consent(warehouse_env, {"C0": True, "C1": False, "C2": False})
    report = sync(dest)
    assert dest.calls[-1] == ("remove", ["p1"]) and report.removed == 1
    assert set(dest.held) == {"p0"}
    with psycopg.connect(warehouse_env) as conn:
        planned = plan(conn, BASE, target=_target("email"))
    assert (planned.withheld, planned.unchanged) == (3, 1)
    # C2 consents later: sent then
    set_consent(warehouse_env, {"C0": True, "C1": False, "C2": True})
    assert sync(dest).inserted == 1 and set(dest.held) == {"p0", "p2"}


def _target(channel):
    from omnicanal.activation.engine import Target

    return Target(consent_channel=channel)


def test_upsert_still_honours_a_revocation_even_after_the_key_left(warehouse_env):
    upsert = replace(BASE, mode="upsert")
    set_model(warehouse_env, people(range(3)))
    set_consent(warehouse_env, {"C0": True, "C1": True, "C2": True})
    dest = Recorder(consent_channel="email")
    sync(dest, upsert)
    # p1 is still in the model and revokes; p2 left the model earlier and revokes now
    set_model(warehouse_env, people([0, 1]))
    assert sync(dest, upsert).removed == 0  # p2 left: kept (upsert)
    set_consent(warehouse_env, {"C0": True, "C1": False, "C2": False})
    report = sync(dest, upsert)
    assert sorted(dest.keys("remove")) == ["p1", "p2"] and report.removed == 2
    assert set(dest.held) == {"p0"}


def test_consent_needs_the_customer_column_and_the_mart(warehouse_env):
    set_model(warehouse_env, people([0]), customer="person")
    with pytest.raises(SyncError, match="customer_column"):
        sync(Recorder(consent_channel="email"))
    # customer_column names the column; without the mart the sync stops, sending nothing
    named = replace(BASE, customer_column="person")
    dest = Recorder(consent_channel="email")
    with pytest.raises(SyncError, match="customer_consent"):
        sync(dest, named)
    assert dest.calls == []
    set_consent(warehouse_env, {"C0": True})
    assert sync(dest, named).inserted == 1
    # a destination without consent needs neither
    set_model(warehouse_env, people([1]), customer="person")
    assert sync(Recorder()).inserted == 1


def test_unknown_consent_channel_is_refused(warehouse_env):
    set_model(warehouse_env, people([0]))
    with pytest.raises(SyncError, match="consent channel 'fax'"):
        sync(Recorder(consent_channel="fax"))


# -- the run row -------------------------------------------------------------------------


class Counting(Recorder):
    rate_limit = 10.0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.requests_sent = 0

    def upsert(self, rows):
        self.requests_sent += 2  # e.g. one call and one retry
        return super().upsert(rows)

    def stats(self):
        return {"num_received": len(self.delivered), "num_invalid_entries": 0}


def test_destination_stats_requests_and_rate_are_in_the_run_row(warehouse_env, capsys):
    set_model(warehouse_env, people(range(25)))
    report = sync(Counting())
    row = query(
        warehouse_env,
        f"select destination_stats, requests, send_seconds >= 0, rate_limit, sync_mode "
        f"from {LEDGER}.sync_runs where run_id = %s",
        report.run_id,
    )
    assert row == [({"num_received": 25, "num_invalid_entries": 0}, 6, True, 10.0, "mirror")]
    with psycopg.connect(warehouse_env) as conn:
        line = describe_run(run_row(conn, report.run_id))
    assert "6 request(s)" in line and "limit 10/s" in line
    assert "num_invalid_entries=0" in line and "num_received=25" in line

    from omnicanal.cli import main

    assert main(["sync", "status"]) == 0
    assert "destination: num_invalid_entries=0, num_received=25" in capsys.readouterr().out
    assert main(["sync", "status", "--json"]) == 0
    (found,) = json.loads(capsys.readouterr().out)
    assert found["runs"][0]["destination_stats"] == {"num_received": 25, "num_invalid_entries": 0}
