"""Instagram from the emulation to identity: extract, staging, and what identity makes of it.

The real tap and loader land the account in ``raw_instagram``; dbt builds and tests the
staging models; identity resolution, fed by this channel alone, must join each person's
Instagram user (their handle) with the email or phone they typed in a Direct message
through their IGSID, and must never put two people in one customer.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from omnicanal.channels import CHANNELS
from omnicanal.channels.instagram import SANDBOX_IG_USER_ID
from omnicanal.extract import run_extract
from omnicanal.sandbox import SandboxServer, generate_world
from omnicanal.settings import get_settings

OMNICANAL = str(Path(sys.executable).with_name("omnicanal"))
AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def dbt(*args: str) -> None:
    built = subprocess.run(
        [OMNICANAL, "dbt", *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-2000:]


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def test_instagram_lands_stages_and_links_by_handle_and_typed_contacts(
    warehouse_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = generate_world(150, 20261101, as_of=AS_OF)
    account = world.slices["instagram"]
    with SandboxServer(world) as server:
        monkeypatch.setenv("OMNICANAL_INSTAGRAM_API_URL", server.url)
        report = run_extract(get_settings(), "instagram")
    assert report.rows["comments"] == len(account.comments)
    assert report.rows["messages"] == len(account.messages)

    feeds = [feed.as_var("instagram") for feed in CHANNELS["instagram"].identity]
    # staging built and tested, and identity fed by this channel alone (the seeds too:
    # identity reads the project's list of known fake identifiers), in one dbt call
    selection = "staging.instagram intermediate.identity resource_type:seed"
    dbt(
        "build",
        "--select",
        selection,
        "--exclude",
        "test_type:unit",  # identity's unit tests read other channels' staging models
        "--vars",
        json.dumps({"identity_sources": feeds}),
    )

    users = dict(
        rows(warehouse_env, "select instagram_user_id, username from staging.stg_instagram__users")
    )
    assert SANDBOX_IG_USER_ID not in users  # the business is nobody
    active = {c["from"]["id"] for c in account.comments} | {
        m["from"]["id"] for m in account.messages
    }
    assert set(users) == active - {SANDBOX_IG_USER_ID}
    for igsid, handle in users.items():
        assert account.handle_person[handle] == account.user_person[igsid]

    people = world.people_by_id
    contacts = rows(
        warehouse_env,
        "select instagram_user_id, email, phone from staging.stg_instagram__message_contacts",
    )
    assert any(email for _, email, _ in contacts) and any(phone for _, _, phone in contacts)
    for igsid, email, phone in contacts:
        person = people[account.user_person[igsid]]
        if email:
            assert email.strip().lower() == person.email
        if phone:
            assert _digits(person.phone).endswith(_digits(phone)[-8:])

    schema = rows(
        warehouse_env,
        "select table_schema from information_schema.tables"
        " where table_name = 'int_identity__record_customers'",
    )[0][0]
    components = rows(
        warehouse_env,
        f"select record_key, customer_id from {schema}.int_identity__record_customers",
    )
    members: dict[str, set[str]] = defaultdict(set)
    for record_key, component in components:
        source_id = record_key.split(":", 1)[1]
        if source_id in account.user_person:
            members[component].add(account.user_person[source_id])
        else:  # a message carrying a contact: its sender is the person
            sender = next(m["from"]["id"] for m in account.messages if m["id"] == source_id)
            members[component].add(account.user_person[sender])
    assert all(len(owners) == 1 for owners in members.values())  # precision: one person each
    linked = {igsid for igsid, *_ in contacts}
    by_record = dict(components)
    for igsid in linked:  # the typed contact joined the person's Instagram user
        user_component = by_record[f"instagram:{igsid}"]
        assert any(
            by_record[f"instagram:{m['id']}"] == user_component
            for m in account.messages
            if m["from"]["id"] == igsid and f"instagram:{m['id']}" in by_record
        )
