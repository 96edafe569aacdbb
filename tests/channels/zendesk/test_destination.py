"""Zendesk's write side: the emulation as zenpy sees it, and the destination over HTTP.

Zendesk has no official Python client; ``zenpy``, the common one, drives the emulated
user search, user creation (and its 422 ``RecordInvalid`` details), the Tags API (PUT
adds, POST sets, DELETE removes) and the bulk ``update_many`` with its job status. Then
:class:`ZendeskDestination`: it adds and removes only its own tag, keeps the user's
other tags, creates users it cannot find, writes custom user fields, maps the job's
per-user results to outcomes, rides out a 429's ``Retry-After`` and names the settings
on bad credentials.
"""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import AS_OF
from zenpy import Zenpy
from zenpy.lib.api_objects import User
from zenpy.lib.exception import APIException

from omnicanal.activation.destination import Row
from omnicanal.channels.zendesk import SANDBOX_API_TOKEN, SANDBOX_EMAIL
from omnicanal.channels.zendesk.destination import ZendeskDestination, user_field_type
from omnicanal.errors import SyncError
from omnicanal.sandbox import SandboxServer
from omnicanal.sandbox.world import generate_world

TAG = "omnicanal_teste"


@pytest.fixture(scope="module")
def server():
    # a world of its own: these tests write users into the desk. 40 people, as of a fixed
    # moment: nine end-users with an email, whatever ran before (with 12, two: a test
    # that takes the second and third failed when it ran first)
    with SandboxServer(generate_world(40, seed=43, as_of=AS_OF)) as running:
        yield running


@pytest.fixture
def emulator(server):
    emulator = server.app.state.zendesk
    emulator.faults.clear()
    emulator.set_rate_limits()
    emulator.writes.reset_counters()
    return emulator


@pytest.fixture
def zenpy(server, emulator, monkeypatch) -> Zenpy:
    # zenpy's own switches for a non-zendesk.com host
    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
    monkeypatch.setenv("ZENPY_FORCE_NETLOC", server.url.removeprefix("http://"))
    return Zenpy(subdomain="omnicanal", email=SANDBOX_EMAIL, token=SANDBOX_API_TOKEN)


def destination(server, **options) -> ZendeskDestination:
    return ZendeskDestination(
        server.url, email=SANDBOX_EMAIL, api_token=SANDBOX_API_TOKEN, backoff=0.01, **options
    )


def an_end_user(emulator) -> dict:
    return next(
        u for u in emulator.desk.users if u["role"] == "end-user" and (u.get("email") or "").strip()
    )


# -- the emulation through zenpy ----------------------------------------------------------


def test_search_finds_a_user_by_email(zenpy, emulator) -> None:
    user = an_end_user(emulator)
    found = list(zenpy.users.search(query=f"email:{user['email'].strip().upper()}"))
    assert user["id"] in {u.id for u in found}
    assert {u.email.strip().lower() for u in found} == {user["email"].strip().lower()}
    assert list(zenpy.users.search(query="email:ninguem@lojaexemplo.com.br")) == []


def test_create_validates_like_zendesk(zenpy, emulator) -> None:
    made = zenpy.users.create(User(name="Bia Nova", email="bia.nova@lojaexemplo.com.br"))
    assert made.id and made.role == "end-user"
    assert emulator.writes.user_by_email("bia.nova@lojaexemplo.com.br")["name"] == "Bia Nova"
    for email, error in (
        ("bia.nova@lojaexemplo.com.br", "DuplicateValue"),
        ("not-an-email", "InvalidFormat"),
    ):
        with pytest.raises(APIException) as refused:
            zenpy.users.create(User(name="Outra", email=email))
        body = json.loads(str(refused.value))
        assert body["error"] == "RecordInvalid"
        assert body["details"]["email"][0]["error"] == error


def test_tags_api_adds_sets_and_removes(zenpy, emulator) -> None:
    user = an_end_user(emulator)
    assert list(zenpy.users.set_tags(user["id"], ["cliente", "Loja Centro"])) == [
        "cliente",
        "loja",
        "centro",
    ]
    assert list(zenpy.users.add_tags(user["id"], ["vip"])) == ["cliente", "loja", "centro", "vip"]
    assert list(zenpy.users.delete_tags(user["id"], ["loja", "centro"])) == ["cliente", "vip"]
    assert emulator.writes.user(user["id"])["tags"] == ["cliente", "vip"]


def test_update_many_is_a_job_with_results_per_user(zenpy, emulator) -> None:
    user = an_end_user(emulator)
    job = zenpy.users.update([User(id=user["id"], tags=["a", "b"]), User(id=1, tags=["c"])])
    assert job.status == "queued"
    done = zenpy.job_status(id=job.id)
    assert done.status == "completed" and done.total == 2
    results = {r.id: r for r in done.results}
    assert results[user["id"]].status == "Updated" and results[user["id"]].success
    assert results[1].status == "Failed" and results[1].error == "RecordNotFound"
    assert emulator.writes.user(user["id"])["tags"] == ["a", "b"]


def test_bulk_updates_hold_at_most_100_users(server, emulator) -> None:
    answer = httpx.put(
        f"{server.url}/api/v2/users/update_many.json",
        params={"ids": ",".join(str(n) for n in range(1, 102))},
        json={"user": {"tags": ["x"]}},
        auth=(f"{SANDBOX_EMAIL}/token", SANDBOX_API_TOKEN),
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "InvalidValue"


def test_over_the_limit_is_429_with_retry_after(server, emulator) -> None:
    emulator.set_rate_limits((2, 60.0))
    auth = (f"{SANDBOX_EMAIL}/token", SANDBOX_API_TOKEN)
    answers = [
        httpx.get(f"{server.url}/api/v2/users/search.json?query=x", auth=auth) for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[1].headers["X-Rate-Limit-Remaining"] == "0"
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert answers[2].json()["error"] == "APIRateLimitExceeded"


def test_user_fields_check_their_values(server, emulator) -> None:
    auth = (f"{SANDBOX_EMAIL}/token", SANDBOX_API_TOKEN)
    made = httpx.post(
        f"{server.url}/api/v2/user_fields.json",
        json={"user_field": {"key": "pedidos", "type": "integer", "title": "Pedidos"}},
        auth=auth,
    )
    assert made.status_code == 201
    again = httpx.post(
        f"{server.url}/api/v2/user_fields.json",
        json={"user_field": {"key": "pedidos", "type": "integer", "title": "Pedidos"}},
        auth=auth,
    )
    assert again.status_code == 422
    assert again.json()["details"]["key"][0]["error"] == "DuplicateValue"
    user = an_end_user(emulator)
    job = httpx.put(
        f"{server.url}/api/v2/users/update_many.json",
        json={"users": [{"id": user["id"], "user_fields": {"pedidos": "três"}}]},
        auth=auth,
    ).json()["job_status"]
    results = httpx.get(f"{server.url}/api/v2/job_statuses/{job['id']}.json", auth=auth).json()[
        "job_status"
    ]["results"]
    assert results[0]["status"] == "Failed" and "integer" in results[0]["details"]


# -- the destination ------------------------------------------------------------------------


def test_user_field_types_follow_the_values() -> None:
    assert user_field_type(True) == "checkbox"
    assert user_field_type(3) == "integer"
    assert user_field_type(3.5) == "decimal"
    assert user_field_type("2025-05-01") == "date"
    assert user_field_type("web") == "text"


def test_only_its_own_tag_is_added_and_removed(server, emulator) -> None:
    user = an_end_user(emulator)
    emulator.writes.tags(str(user["id"]), "POST", {"tags": ["cliente_antigo", "reclamacao"]})
    email = user["email"].strip().lower()
    rows = [
        Row(email, {"email": email, "name": "ignored", "omnicanal_last_order_date": "2025-05-01"}),
        Row(
            "nova@lojaexemplo.com.br",
            {
                "email": "nova@lojaexemplo.com.br",
                "name": "Nova Cliente",
                "omnicanal_last_order_date": "2025-06-02",
            },
        ),
        Row("not-an-email", {"email": "not-an-email", "name": "Sem"}),
    ]
    dest = destination(server, tag=TAG)
    try:
        dest.check()
        outcomes = dest.upsert(rows)
        assert [(o.key, o.ok) for o in outcomes] == [
            (email, True),
            ("nova@lojaexemplo.com.br", True),
            ("not-an-email", False),
        ]
        assert "not properly formatted" in outcomes[2].error
        held = emulator.writes.user(user["id"])
        assert held["tags"] == ["cliente_antigo", "reclamacao", TAG]
        assert held["name"] == user["name"]  # a name is only for creating a user
        assert held["user_fields"]["omnicanal_last_order_date"] == "2025-05-01"
        created = emulator.writes.user_by_email("nova@lojaexemplo.com.br")
        assert created["tags"] == [TAG] and created["name"] == "Nova Cliente"
        assert emulator.writes.user_fields["omnicanal_last_order_date"]["type"] == "date"
        assert outcomes[0].ref == str(user["id"])

        # nothing to do for users as wanted: no bulk job
        jobs = dest.stats()["jobs"]
        assert all(o.ok for o in dest.upsert(rows[:2]))
        assert dest.stats()["jobs"] == jobs

        removed = dest.remove(rows[:1] + [Row("ninguem@lojaexemplo.com.br", {})])
        assert [o.ok for o in removed] == [True, True]
    finally:
        dest.close()
    held = emulator.writes.user(user["id"])
    assert held["tags"] == ["cliente_antigo", "reclamacao"]
    assert held["user_fields"]["omnicanal_last_order_date"] is None
    assert set(emulator.writes.tagged(TAG)) == {"nova@lojaexemplo.com.br"}


def test_throttled_calls_wait_for_retry_after(server, emulator) -> None:
    dest = destination(server, tag=TAG)
    try:
        emulator.fail_next(1, 429, retry_after=1)
        emulator.fail_next(1, 503)
        outcomes = dest.upsert([Row("r@lojaexemplo.com.br", {"email": "r@lojaexemplo.com.br"})])
    finally:
        dest.close()
    assert [o.ok for o in outcomes] == [True]
    assert TAG in emulator.writes.user_by_email("r@lojaexemplo.com.br")["tags"]


def test_bad_credentials_name_the_settings(server, emulator) -> None:
    dest = ZendeskDestination(server.url, email=SANDBOX_EMAIL, api_token="zd-wrong")
    try:
        with pytest.raises(SyncError, match="OMNICANAL_ZENDESK_API_TOKEN") as raised:
            dest.check()
        assert "zd-wrong" not in str(raised.value)
    finally:
        dest.close()
    oauth = ZendeskDestination(server.url, oauth_token="zd-oauth-wrong")
    try:
        with pytest.raises(SyncError, match="OMNICANAL_ZENDESK_OAUTH_TOKEN"):
            oauth.check()
    finally:
        oauth.close()


def test_a_tag_is_one_word() -> None:
    with pytest.raises(SyncError, match="tag"):
        ZendeskDestination("http://localhost:1", tag="two words")


def test_a_user_the_job_refuses_fails_alone(server, emulator) -> None:
    if "omnicanal_pedidos" not in emulator.writes.user_fields:
        emulator.writes.field_create(
            {"user_field": {"key": "omnicanal_pedidos", "type": "integer", "title": "Pedidos"}}
        )
    first, second = [
        u for u in emulator.desk.users if u["role"] == "end-user" and (u.get("email") or "").strip()
    ][1:3]
    rows = [
        Row(
            u["email"].strip().lower(),
            {"email": u["email"].strip().lower(), "omnicanal_pedidos": v},
        )
        for u, v in ((first, "três"), (second, 3))
    ]
    dest = destination(server, tag=TAG)
    try:
        outcomes = dest.upsert(rows)
    finally:
        dest.close()
    assert [o.ok for o in outcomes] == [False, True]
    assert "UserUpdateError" in outcomes[0].error and "integer" in outcomes[0].error
    assert TAG not in (emulator.writes.user(first["id"])["tags"] or [])
    assert TAG in emulator.writes.user(second["id"])["tags"]
    assert emulator.writes.user(second["id"])["user_fields"]["omnicanal_pedidos"] == 3


def test_what_a_sync_wrote_survives_a_sandbox_restart(tmp_path) -> None:
    state = tmp_path / "zendesk.json"
    rows = [
        Row(
            f"z{n}@lojaexemplo.com.br",
            {"email": f"z{n}@lojaexemplo.com.br", "name": f"Z {n}", "omnicanal_pedidos_total": n},
        )
        for n in range(2)
    ]
    with SandboxServer(generate_world(8, seed=53), zendesk={"state_path": str(state)}) as first:
        dest = destination(first, tag=TAG)
        try:
            assert all(o.ok for o in dest.upsert(rows))
        finally:
            dest.close()
        first.app.state.zendesk.writes.flush()
    with SandboxServer(generate_world(8, seed=53), zendesk={"state_path": str(state)}) as again:
        writes = again.app.state.zendesk.writes
        assert set(writes.tagged(TAG)) == {r.key for r in rows}
        assert writes.user_fields["omnicanal_pedidos_total"]["type"] == "integer"
        dest = destination(again, tag=TAG)
        try:
            assert all(o.ok for o in dest.remove(rows[:1]))
        finally:
            dest.close()
        assert writes.users_created == 0 and set(writes.tagged(TAG)) == {rows[1].key}


def test_a_zendesk_sync_is_no_message(tmp_path) -> None:
    from omnicanal.settings import get_settings

    settings = get_settings({"OMNICANAL_HOME": str(tmp_path)})
    with pytest.raises(SyncError, match="mode"):
        ZendeskDestination.from_settings(settings, {"mode": "message"})
    made = ZendeskDestination.from_settings(settings, {"mode": "upsert", "tag": "VIP"})
    try:
        assert made.tag == "vip"
    finally:
        made.close()
