"""The reverse-ETL engine against the sandbox's Mailchimp, over real HTTP.

Each test builds the sync model as a plain table in a fresh warehouse database (the
engine only reads it), runs real syncs and reads back what Mailchimp holds.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from omnicanal.activation.engine import run_sync
from omnicanal.cli import main
from omnicanal.errors import SyncError
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import generate_world
from omnicanal.settings import get_settings

SYNC = "mailchimp__recent_buyers"
LIST = "omnicanal-demo"


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(generate_world(5, seed=3)) as server:
        yield server


@pytest.fixture
def mailchimp(sandbox, warehouse_env, monkeypatch):
    """The sandbox's Mailchimp, emptied, with omnicanal's settings pointing at it."""
    emulator = sandbox.app.state.mailchimp
    emulator.audiences.clear()
    emulator.add_list(LIST)
    emulator.reset_counters()
    emulator.faults.clear()
    monkeypatch.setenv("OMNICANAL_MAILCHIMP_API_URL", f"{sandbox.url}/3.0")
    monkeypatch.setenv("OMNICANAL_MAILCHIMP_API_KEY", "sandbox-us1")
    return emulator


def set_segment(url: str, rows: list[tuple[str, str, str]]) -> None:
    """Replace the sync model's rows: (email, first_name, last_name)."""
    with psycopg.connect(url) as conn:
        conn.execute("create schema if not exists activation")
        conn.execute(
            "create table if not exists activation.sync_mailchimp__recent_buyers "
            "(email text, first_name text, last_name text, customer_id text, "
            "last_order_at timestamptz)"
        )
        conn.execute("truncate activation.sync_mailchimp__recent_buyers")
        for email, first, last in rows:
            conn.execute(
                "insert into activation.sync_mailchimp__recent_buyers values "
                "(%s, %s, %s, md5(%s), now())",
                (email, first, last, email),
            )
        # everyone in the segment consents to email (the consent mart as dbt builds it;
        # gating itself is tested in test_modes_and_consent / test_consent_pipeline)
        conn.execute("create schema if not exists marts")
        conn.execute(
            "create table if not exists marts.customer_consent "
            "(customer_id text, channel text, consents boolean)"
        )
        conn.execute(
            "insert into marts.customer_consent select md5(e.email), 'email', true "
            "from unnest(%s::text[]) as e(email)",
            ([email for email, _, _ in rows],),
        )


def held(emulator, status="subscribed") -> dict[str, dict]:
    return {m["email_address"]: m["merge_fields"] for m in emulator.members(LIST, status=status)}


def test_inserts_then_nothing_then_only_changes(mailchimp, warehouse_env):
    settings = get_settings()
    set_segment(
        warehouse_env,
        [
            ("ana@x.com.br", "Ana", "Souza"),
            ("bia@x.com.br", "Bia", "Lima"),
            ("caio@x.com.br", "Caio", "Reis"),
        ],
    )
    first = run_sync(settings, SYNC)
    assert (first.inserted, first.updated, first.removed, first.failed) == (3, 0, 0, 0)
    members = held(mailchimp)
    assert set(members) == {"ana@x.com.br", "bia@x.com.br", "caio@x.com.br"}
    assert members["ana@x.com.br"]["FNAME"] == "Ana"
    assert members["caio@x.com.br"]["LNAME"] == "Reis"

    # No change: nothing goes over the wire.
    mailchimp.reset_counters()
    second = run_sync(settings, SYNC)
    assert second.sent == 0 and second.unchanged == 3
    assert mailchimp.write_calls == 0

    # One name changes, one person leaves, one joins: exactly three writes of members.
    set_segment(
        warehouse_env,
        [
            ("ana@x.com.br", "Ana Maria", "Souza"),
            ("caio@x.com.br", "Caio", "Reis"),
            ("duda@x.com.br", "Duda", "Alves"),
        ],
    )
    mailchimp.reset_counters()
    third = run_sync(settings, SYNC)
    assert (third.inserted, third.updated, third.removed, third.unchanged) == (1, 1, 1, 1)
    assert mailchimp.members_written == 3
    assert set(held(mailchimp)) == {"ana@x.com.br", "caio@x.com.br", "duda@x.com.br"}
    assert held(mailchimp)["ana@x.com.br"]["FNAME"] == "Ana Maria"
    assert set(held(mailchimp, "archived")) == {"bia@x.com.br"}

    with psycopg.connect(warehouse_env) as conn:
        runs = conn.execute(
            "select status, inserted, updated, removed, unchanged from "
            "omnicanal_activation.sync_runs order by run_id"
        ).fetchall()
        assert runs == [("success", 3, 0, 0, 0), ("success", 0, 0, 0, 3), ("success", 1, 1, 1, 1)]
        outcomes = conn.execute(
            "select record_key, action, ok from omnicanal_activation.sync_row_outcomes o "
            "join omnicanal_activation.sync_runs r using (run_id) where r.run_id = %s "
            "order by record_key",
            (third.run_id,),
        ).fetchall()
        assert outcomes == [
            ("ana@x.com.br", "update", True),
            ("bia@x.com.br", "remove", True),
            ("duda@x.com.br", "insert", True),
        ]


def test_never_touches_members_it_did_not_write(mailchimp, warehouse_env, sandbox):
    import httpx

    # Someone added a member by hand in Mailchimp; it is not in the segment.
    httpx.post(
        f"{sandbox.url}/3.0/lists/{LIST}/members",
        auth=("x", "sandbox-us1"),
        json={"email_address": "manual@x.com.br", "status": "subscribed"},
    ).raise_for_status()
    set_segment(warehouse_env, [("ana@x.com.br", "Ana", "Souza")])
    run_sync(get_settings(), SYNC)
    set_segment(warehouse_env, [])
    report = run_sync(get_settings(), SYNC)
    assert report.removed == 1
    assert set(held(mailchimp)) == {"manual@x.com.br"}


def test_refused_row_is_recorded_and_retried_alone(mailchimp, warehouse_env):
    settings = get_settings()
    set_segment(warehouse_env, [("ana@x.com.br", "Ana", "Souza"), ("not-an-email", "X", "Y")])
    report = run_sync(settings, SYNC)
    assert (report.inserted, report.failed) == (1, 1)
    assert any("not-an-email" in e for e in report.errors)
    with psycopg.connect(warehouse_env) as conn:
        row = conn.execute(
            "select present, last_error from omnicanal_activation.sync_ledger "
            "where record_key = 'not-an-email'"
        ).fetchone()
    assert row[0] is False and row[1]
    # The next run does not send the same refused row again: it waits as a dead letter…
    mailchimp.reset_counters()
    again = run_sync(settings, SYNC)
    assert (again.sent, again.held, again.unchanged) == (0, 1, 1)
    assert mailchimp.write_calls == 0
    # …and `sync replay` resends it alone (still refused by Mailchimp, with its reason).
    again = run_sync(settings, SYNC, replay=True)
    assert (again.inserted, again.failed) == (0, 1)
    assert mailchimp.members_written <= 1


def test_cli_plan_replay_and_status(mailchimp, warehouse_env, capsys):
    set_segment(
        warehouse_env,
        [("ana@x.com.br", "Ana", "Souza"), ("bia@x.com.br", "Bia", "Lima"), ("bad", "X", "Y")],
    )
    assert main(["sync", "plan", SYNC]) == 0
    out = capsys.readouterr().out
    assert "adds            3  e.g. ana@x.com.br, bad, bia@x.com.br" in out
    assert "removes         0" in out
    assert mailchimp.write_calls == 0 and held(mailchimp) == {}

    assert main(["sync", "run", SYNC]) == 1  # one row refused
    capsys.readouterr()
    assert main(["sync", "status", SYNC]) == 0
    out = capsys.readouterr().out
    assert f"{SYNC}: 2 held at the destination, 0 pending, 1 dead letter(s)" in out
    assert "partial" in out and "+2 ~0 -0 =0 failed 1" in out

    set_segment(warehouse_env, [("ana@x.com.br", "Ana", "Souza"), ("bia@x.com.br", "Bia", "L")])
    assert main(["sync", "plan", SYNC, "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["counts"] == {"insert": 0, "update": 1, "remove": 0, "depart": 0}
    assert planned["samples"]["update"] == ["bia@x.com.br"] and planned["unchanged"] == 1

    assert main(["sync", "replay", SYNC]) == 0  # "bad" left the segment: nothing to resend
    assert json.loads(capsys.readouterr().out)["sent"] == 0
    assert main(["sync", "status", "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert (status["sync"], status["dead_letters"], status["pending"]) == (SYNC, 0, 0)
    assert [r["status"] for r in status["runs"]] == ["success", "partial"]


def test_transient_errors_are_retried(mailchimp, warehouse_env):
    set_segment(warehouse_env, [("ana@x.com.br", "Ana", "Souza")])
    mailchimp.fail_next(2, status=503)
    report = run_sync(get_settings(), SYNC)
    assert report.inserted == 1 and report.failed == 0
    assert set(held(mailchimp)) == {"ana@x.com.br"}


def test_dry_run_sends_nothing(mailchimp, warehouse_env):
    set_segment(warehouse_env, [("ana@x.com.br", "Ana", "Souza")])
    report = run_sync(get_settings(), SYNC, dry_run=True)
    assert report.inserted == 1 and report.dry_run
    assert mailchimp.write_calls == 0 and held(mailchimp) == {}


def test_bad_api_key_is_a_clear_error_without_the_key(
    mailchimp, warehouse_env, monkeypatch, capsys
):
    set_segment(warehouse_env, [("ana@x.com.br", "Ana", "Souza")])
    monkeypatch.setenv("OMNICANAL_MAILCHIMP_API_KEY", "wrong-secret-us1")
    with pytest.raises(SyncError, match="OMNICANAL_MAILCHIMP_API_KEY"):
        run_sync(get_settings(), SYNC)
    assert main(["sync", "run", SYNC]) == 2
    err = capsys.readouterr().err
    assert "401" in err and "wrong-secret" not in err
    assert held(mailchimp) == {}


def test_unknown_audience_names_the_setting(mailchimp, warehouse_env, monkeypatch):
    set_segment(warehouse_env, [("ana@x.com.br", "Ana", "Souza")])
    monkeypatch.setenv("OMNICANAL_MAILCHIMP_LIST_ID", "nope")
    with pytest.raises(SyncError, match="OMNICANAL_MAILCHIMP_LIST_ID"):
        run_sync(get_settings(), SYNC)


def test_destination_down_names_the_url(warehouse_env, monkeypatch):
    set_segment(warehouse_env, [("ana@x.com.br", "Ana", "Souza")])
    monkeypatch.setenv("OMNICANAL_MAILCHIMP_API_URL", "http://127.0.0.1:1/3.0")
    from omnicanal.channels.mailchimp.destination import MailchimpDestination

    dest = MailchimpDestination("http://127.0.0.1:1/3.0", "k", LIST, max_attempts=2, backoff=0.01)
    with pytest.raises(SyncError, match="127.0.0.1:1"):
        run_sync(get_settings(), SYNC, destination=dest)
    # Nothing was recorded as synced, so the next run sends it.
    with psycopg.connect(warehouse_env) as conn:
        status = conn.execute("select status from omnicanal_activation.sync_runs").fetchone()
        ledger = conn.execute("select count(*) from omnicanal_activation.sync_ledger").fetchone()
    assert status == ("failed",) and ledger == (0,)


def test_model_problems_stop_the_sync(mailchimp, warehouse_env):
    with pytest.raises(SyncError, match="does not exist"):
        run_sync(get_settings(), SYNC)
    set_segment(warehouse_env, [("ana@x.com.br", "Ana", "Souza"), ("ana@x.com.br", "A", "S")])
    with pytest.raises(SyncError, match="duplicate"):
        run_sync(get_settings(), SYNC)
    with pytest.raises(SyncError, match="no sync named"):
        run_sync(get_settings(), "nope")
    assert mailchimp.write_calls == 0


def test_full_resync_restores_a_wiped_destination(mailchimp, warehouse_env):
    settings = get_settings()
    set_segment(warehouse_env, [("ana@x.com.br", "Ana", "Souza"), ("bia@x.com.br", "Bia", "Lima")])
    run_sync(settings, SYNC)
    # The destination loses its members behind our back: a normal run trusts the ledger…
    mailchimp.audiences.clear()
    mailchimp.add_list(LIST)
    assert run_sync(settings, SYNC).sent == 0
    # …a full resync sends every row again.
    report = run_sync(settings, SYNC, full_resync=True)
    assert (report.updated, report.unchanged) == (2, 0)
    assert set(held(mailchimp)) == {"ana@x.com.br", "bia@x.com.br"}


def test_forget_makes_the_next_run_send_everything(mailchimp, warehouse_env, capsys):
    set_segment(warehouse_env, [("ana@x.com.br", "Ana", "Souza")])
    run_sync(get_settings(), SYNC)
    assert main(["sync", "forget", SYNC]) == 0
    assert "forgot 1 ledger rows" in capsys.readouterr().out
    assert run_sync(get_settings(), SYNC).inserted == 1


def test_the_airflow_task_logs_the_run_row(mailchimp, warehouse_env, monkeypatch, caplog):
    import logging

    from omnicanal.orchestration import tasks

    set_segment(warehouse_env, [("ana@x.com.br", "Ana", "Souza")])
    with caplog.at_level(logging.INFO, logger="omnicanal.orchestration.tasks"):
        result = tasks.sync(SYNC)
    assert result["inserted"] == 1
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sync_runs")]
    row = json.loads(line.removeprefix("sync_runs row: "))
    assert (row["run_id"], row["status"], row["inserted"]) == (result["run_id"], "success", 1)
    assert row["destination_stats"] is not None and row["requests"] >= 1
    assert any(f"sync {SYNC} run {row['run_id']} success" in r.getMessage() for r in caplog.records)

    # a failed run's row is in the log too, with its error
    caplog.clear()
    set_segment(warehouse_env, [("bia@x.com.br", "Bia", "Lima")])
    monkeypatch.setenv("OMNICANAL_MAILCHIMP_API_KEY", "wrong-secret-us1")
    with caplog.at_level(logging.INFO, logger="omnicanal.orchestration.tasks"):
        with pytest.raises(SyncError):
            tasks.sync(SYNC)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sync_runs")]
    row = json.loads(line.removeprefix("sync_runs row: "))
    assert row["status"] == "failed" and "OMNICANAL_MAILCHIMP_API_KEY" in row["error"]
    assert "wrong-secret" not in caplog.text


def test_cli_plan_in_upsert_mode(mailchimp, warehouse_env, monkeypatch, tmp_path, capsys):
    models = tmp_path / "dbt_project" / "models"
    models.mkdir(parents=True)
    (models / "_sync.yml").write_text(
        "version: 2\nexposures:\n  - name: mailchimp__kept\n    type: application\n"
        "    owner: {name: me}\n    meta:\n      omnicanal_sync:\n"
        "        destination: mailchimp\n        model: sync_mailchimp__recent_buyers\n"
        "        key: email\n        mode: upsert\n"
        "        fields: {email_address: email, FNAME: first_name}\n"
    )
    monkeypatch.setenv("OMNICANAL_PROJECT_DIR", str(tmp_path))
    set_segment(warehouse_env, [("ana@x.com.br", "Ana", "Souza"), ("bia@x.com.br", "Bia", "L")])
    assert main(["sync", "run", "mailchimp__kept"]) == 0
    set_segment(warehouse_env, [("ana@x.com.br", "Ana Maria", "Souza")])
    capsys.readouterr()
    assert main(["sync", "plan", "mailchimp__kept"]) == 0
    out = capsys.readouterr().out
    assert "(upsert mode; dry run, nothing sent)" in out
    assert "updates         1  e.g. ana@x.com.br" in out
    assert "removes         0" in out  # bia left the segment: upsert keeps her
    assert main(["sync", "run", "mailchimp__kept"]) == 0
    assert set(held(mailchimp)) == {"ana@x.com.br", "bia@x.com.br"}

    # bia is erased (omnicanal privacy erase): upsert or not, the destination is told
    from omnicanal.privacy import register

    with psycopg.connect(warehouse_env) as conn:
        register.ensure(conn)
        conn.execute(
            "insert into omnicanal_privacy.erasure_requests (request_id, identifiers,"
            " customers, rows_erased, tables) values ('r1', '{}', 1, 0, '{}')"
        )
        conn.execute(
            "insert into omnicanal_privacy.erasure_customers values (md5(%s), 'r1')",
            ("bia@x.com.br",),
        )
    capsys.readouterr()
    assert main(["sync", "plan", "mailchimp__kept"]) == 0
    out = capsys.readouterr().out
    assert "removes         1  e.g. bia@x.com.br" in out
    assert "updates         0" in out
    assert main(["sync", "run", "mailchimp__kept"]) == 0
    assert set(held(mailchimp)) == {"ana@x.com.br"}
    assert set(held(mailchimp, "archived")) == {"bia@x.com.br"}
