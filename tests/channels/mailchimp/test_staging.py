"""Mailchimp from the emulation to staging: extract with tap-mailchimp, build staging/mailchimp.

Checks what identity resolution and the engagement KPIs rely on: every member of the
retailer's audiences arrives (the sync audience does not), consent follows the status
and agrees with the person's own (the world's ground truth), a whole name typed into
FNAME is split, every email event is there with its type, and a second extract after an
edit in Mailchimp brings the edit without duplicating a row.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from omnicanal.extract import run_extract
from omnicanal.sandbox import SandboxServer, generate_world
from omnicanal.sandbox.noise import strip_accents
from omnicanal.settings import get_settings

OMNICANAL = str(Path(sys.executable).with_name("omnicanal"))
SEED = 20261101
AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def mailchimp_sandbox(
    warehouse_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[SandboxServer]:
    monkeypatch.setenv("OMNICANAL_HOME", str(tmp_path / "home"))
    with SandboxServer(generate_world(120, SEED, as_of=AS_OF)) as server:
        monkeypatch.setenv("OMNICANAL_MAILCHIMP_API_URL", f"{server.url}/3.0")
        yield server


def rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def dbt_build(*args: str) -> None:
    built = subprocess.run(
        [OMNICANAL, "dbt", *(args or ("build", "--select", "staging.mailchimp"))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-2000:]


def test_members_consent_and_email_events_reach_staging(
    mailchimp_sandbox: SandboxServer, warehouse_env: str
) -> None:
    world = mailchimp_sandbox.app.state.world
    account = world.slices["mailchimp"]
    sent = [c for c in account.campaigns if c["status"] == "sent"]
    recipients = [r for c in sent for r in account.email_activity[c["id"]]]
    actions = Counter(a["action"] for r in recipients for a in r["activity"])
    unsubscribes = sum(len(u) for u in account.unsubscribes.values())
    members = [m for held in account.members.values() for m in held]

    report = run_extract(get_settings(), "mailchimp")
    assert report.rows == {
        "lists": len(account.lists),  # the sync audience (omnicanal-demo) is left out
        "list_members": len(members),
        "campaigns": len(sent),
        "email_activity": len(recipients) + sum(actions.values()),
        "unsubscribes": unsubscribes,
    }
    dbt_build()

    staged = {
        row[0]: row[1:]
        for row in rows(
            warehouse_env,
            "select mailchimp_member_key, email, email_normalized, first_name, last_name,"
            " member_status, accepts_email_marketing, has_marketing_permission, updated_at"
            " from staging.stg_mailchimp__members",
        )
    }
    assert len(staged) == len(members)
    people = world.people_by_id
    split = 0
    for member in members:
        key = f"{member['list_id']}/{member['id']}"
        email, normalized, first, last, status, consent, permission, updated = staged[key]
        person = people[account.member_person[key]]
        assert (email, normalized) == (member["email_address"], member["email_address"].lower())
        assert status == member["status"]
        assert consent is {"subscribed": True, "unsubscribed": False, "transactional": False}.get(
            status
        )
        if consent is not None:  # the audience never contradicts the person's own consent
            assert consent is person.accepts_email_marketing
        assert permission is (status == "subscribed")
        assert updated == datetime.fromisoformat(member["last_changed"])
        merge = member["merge_fields"]
        if not merge["LNAME"] and merge["FNAME"].lower() == person.full_name.lower():
            split += 1  # the whole name typed into FNAME
            assert strip_accents(first).lower() == strip_accents(person.first_name).lower()
            assert strip_accents(last).lower() == strip_accents(person.last_name).lower()
    assert split > 0

    events = Counter(
        dict(
            rows(
                warehouse_env,
                "select event_type, count(*) from staging.stg_mailchimp__email_events"
                " group by event_type",
            )
        )
    )
    assert events == Counter({"sent": len(recipients), **actions, "unsubscribe": unsubscribes}), (
        events
    )
    campaigns = rows(
        warehouse_env,
        "select count(*), sum(recipient_count) from staging.stg_mailchimp__campaigns",
    )
    assert campaigns == [(len(sent), len(recipients))]

    # An edit in Mailchimp: the next (incremental) extract brings it; what it reads again
    # at its bookmarks (members, activity) is upserted, not duplicated; staging follows
    subscribed = next(m for m in members if m["status"] == "subscribed")
    mailchimp_sandbox.app.state.mailchimp.touch_member(
        subscribed["list_id"],
        subscribed["email_address"],
        status="unsubscribed",
        merge_fields={"PHONE": "(11) 99999-0000"},
    )
    again = run_extract(get_settings(), "mailchimp")
    assert again.rows == report.rows  # raw row counts: the same rows, upserted
    dbt_build("run", "--select", "stg_mailchimp__members")
    key = f"{subscribed['list_id']}/{subscribed['id']}"
    assert rows(
        warehouse_env,
        "select member_status, accepts_email_marketing, phone, unsubscribed_at is not null"
        f" from staging.stg_mailchimp__members where mailchimp_member_key = '{key}'",
    ) == [("unsubscribed", False, "(11) 99999-0000", True)]
