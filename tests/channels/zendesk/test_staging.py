"""Zendesk end to end in the warehouse: the sandbox's desk → tap-zendesk → raw → staging → identity.

One extract of a 150-person world into a fresh database, one ``dbt build`` of the
Zendesk staging models (their yml tests included: resolution after first reply,
business minutes within calendar minutes, CSAT typed) and identity's records fed by
``stg_zendesk__users``. Checked against the world: first reply and resolution times in
minutes and as intervals, each ticket's and each comment's channel, the CSAT rate, and
that identity reads requesters with an email or a phone, never agents.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from omnicanal.channels import CHANNELS
from omnicanal.extract import run_extract
from omnicanal.sandbox import SandboxServer, generate_world
from omnicanal.settings import get_settings

OMNICANAL = str(Path(sys.executable).with_name("omnicanal"))
AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_desk_to_staging_and_identity(warehouse_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    world = generate_world(150, seed=29, as_of=AS_OF)
    desk = world.slices["zendesk"]
    with SandboxServer(world) as server:  # the real limits: 10 export requests a minute
        monkeypatch.setenv("OMNICANAL_ZENDESK_API_URL", server.url)
        report = run_extract(get_settings(), "zendesk")
    comments = [c for thread in desk.comments.values() for c in thread]
    assert report.rows["tickets"] == len(desk.tickets)
    assert report.rows["ticket_comments"] == len(comments)

    feeds = [feed.as_var("zendesk") for feed in CHANNELS["zendesk"].identity]
    built = subprocess.run(
        [
            OMNICANAL,
            "dbt",
            "build",
            "--select",
            "staging.zendesk path:seeds/identity int_identity__record_changes"
            " int_identity__records",
            "--exclude-resource-type",
            "unit_test",  # identity's unit tests read other channels' staging models
            "--vars",
            json.dumps({"identity_sources": feeds}),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-2000:]

    # first reply and resolution: minutes as integers and as intervals, as Zendesk had them
    metrics = {
        row[0]: row[1:]
        for row in rows(
            warehouse_env,
            "select zendesk_ticket_id, first_reply_minutes, first_reply_business_minutes,"
            " full_resolution_minutes, full_resolution_time, first_reply_time"
            " from staging.stg_zendesk__ticket_metrics",
        )
    }
    assert len(metrics) == len(desk.ticket_metrics)
    for metric in desk.ticket_metrics:
        reply, business, full, full_time, reply_time = metrics[metric["ticket_id"]]
        assert reply == metric["reply_time_in_minutes"]["calendar"]
        assert business == metric["reply_time_in_minutes"]["business"]
        assert full == metric["full_resolution_time_in_minutes"]["calendar"]
        assert full_time == (timedelta(minutes=full) if full is not None else None)
        assert reply_time == (timedelta(minutes=reply) if reply is not None else None)

    channels = dict(
        rows(warehouse_env, "select channel, count(*) from staging.stg_zendesk__tickets group by 1")
    )
    assert channels == dict(Counter(t["via"]["channel"] for t in desk.tickets))
    groups = dict(
        rows(
            warehouse_env,
            "select channel_group, count(*) from staging.stg_zendesk__ticket_comments group by 1",
        )
    )
    assert {"whatsapp", "instagram", "email", "web"} <= set(groups)
    assert sum(groups.values()) == len(comments)

    (csat,) = rows(
        warehouse_env,
        "select avg(csat_score)::float from staging.stg_zendesk__satisfaction_ratings",
    )[0]
    scores = Counter(r["score"] for r in desk.satisfaction_ratings)
    assert csat == pytest.approx(scores["good"] / (scores["good"] + scores["bad"]))

    # identity: requesters with an email or a phone; agents and Instagram-only users are nobody
    schema = rows(
        warehouse_env,
        "select table_schema from information_schema.tables"
        " where table_name = 'int_identity__records'",
    )[0][0]
    keys = {
        r[0] for r in rows(warehouse_env, f"select record_key from {schema}.int_identity__records")
    }
    expected = {
        f"zendesk:{u['id']}"
        for u in desk.users
        if u["role"] == "end-user" and (u["email"] or u["phone"])
    }
    assert keys == expected
    assert all(int(k.split(":")[1]) in desk.user_person for k in keys)
