"""The Mailchimp emulator over real HTTP: the rules a reverse-ETL sync must live with.

Batch upserts with per-member errors, update_existing, archive versus permanent
delete, the subscriber hash, paging through members, auth and throttling, and the
write counters tests use to prove an unchanged sync sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from omnicanal.channels.mailchimp import SANDBOX_API_KEY
from omnicanal.channels.mailchimp.emulation import MailchimpEmulator, subscriber_hash
from omnicanal.sandbox import SandboxServer, World

LIST = "omnicanal-demo"
AUTH = ("omnicanal", SANDBOX_API_KEY)


@pytest.fixture
def sandbox(world: World) -> Iterator[SandboxServer]:
    """A fresh server per test: Mailchimp state is what these tests change."""
    with SandboxServer(world) as running:
        yield running


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sandbox.url}/3.0", auth=AUTH) as client:
        yield client


def _mailchimp(sandbox: SandboxServer) -> MailchimpEmulator:
    return sandbox.app.state.mailchimp


def _member(email: str, first: str = "João", last: str = "Silva", **extra: Any) -> dict:
    """A member as batch subscribe and ``POST /members`` take it (``status`` required)."""
    return {
        "email_address": email,
        "status": "subscribed",
        "merge_fields": {"FNAME": first, "LNAME": last},
        **extra,
    }


def _put(email: str, first: str = "João", last: str = "Silva", **extra: Any) -> dict:
    """A ``PUT /members/{hash}`` body that never changes an existing member's status."""
    return {
        "email_address": email,
        "status_if_new": "subscribed",
        "merge_fields": {"FNAME": first, "LNAME": last},
        **extra,
    }


def test_auth_errors_are_problem_json(sandbox: SandboxServer) -> None:
    url = f"{sandbox.url}/3.0/lists/{LIST}"
    for auth in (None, ("user", "wrong-key")):
        response = httpx.get(url, auth=auth)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert set(body) >= {"type", "title", "status", "detail", "instance"}
        assert body["status"] == 401
    bearer = httpx.get(url, headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"})
    assert bearer.status_code == 200


def test_list_info_and_unknown_list(api: httpx.Client) -> None:
    info = api.get(f"/lists/{LIST}")
    assert info.status_code == 200
    assert info.json()["id"] == LIST and info.json()["stats"]["member_count"] == 0
    missing = api.get("/lists/nope")
    assert missing.status_code == 404 and missing.json()["title"] == "Resource Not Found"
    assert api.get("/ping").json() == {"health_status": "Everything's Chimpy!"}


def test_batch_upsert_creates_then_updates(api: httpx.Client, sandbox: SandboxServer) -> None:
    members = [_member(f"cliente{i}@gmail.com", first=f"Nome{i}") for i in range(3)]
    members.append(_member("não é email"))
    first = api.post(f"/lists/{LIST}", json={"members": members, "update_existing": True})
    assert first.status_code == 200
    body = first.json()
    assert (body["total_created"], body["total_updated"], body["error_count"]) == (3, 0, 1)
    assert body["errors"][0]["email_address"] == "não é email"
    assert body["errors"][0]["error_code"] == "ERROR_GENERIC"
    assert body["new_members"][0]["id"] == subscriber_hash("cliente0@gmail.com")
    assert api.get(f"/lists/{LIST}").json()["stats"]["member_count"] == 3

    changed = [_member("cliente0@gmail.com", first="Outro"), _member("novo@uol.com.br")]
    second = api.post(f"/lists/{LIST}", json={"members": changed, "update_existing": True})
    assert (second.json()["total_created"], second.json()["total_updated"]) == (1, 1)
    stored = _mailchimp(sandbox).member(LIST, "CLIENTE0@gmail.com")
    assert stored is not None and stored["merge_fields"]["FNAME"] == "Outro"
    assert stored["merge_fields"]["LNAME"] == "Silva"


def test_batch_without_update_existing_reports_existing_members(api: httpx.Client) -> None:
    api.post(f"/lists/{LIST}", json={"members": [_member("a@gmail.com")]})
    again = api.post(
        f"/lists/{LIST}",
        json={"members": [_member("A@gmail.com", first="Mudou")], "update_existing": False},
    )
    body = again.json()
    assert (body["total_created"], body["total_updated"], body["error_count"]) == (0, 0, 1)
    assert body["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"
    member = api.get(f"/lists/{LIST}/members/{subscriber_hash('a@gmail.com')}").json()
    assert member["merge_fields"]["FNAME"] == "João"


def test_batch_over_500_members_is_refused(api: httpx.Client) -> None:
    members = [_member(f"p{i}@gmail.com") for i in range(501)]
    response = api.post(f"/lists/{LIST}", json={"members": members})
    assert response.status_code == 400 and "500" in response.json()["detail"]


def test_put_patch_get_archive(api: httpx.Client, sandbox: SandboxServer) -> None:
    email = "Maria.Conceicao@Hotmail.com"
    path = f"/lists/{LIST}/members/{subscriber_hash(email)}"
    assert api.get(path).status_code == 404
    created = api.put(path, json=_put(email, first="Maria", last="da Conceição"))
    assert created.status_code == 200 and created.json()["status"] == "subscribed"
    assert created.json()["email_address"] == email

    patched = api.patch(path, json={"merge_fields": {"FNAME": "Maria Clara"}})
    assert patched.json()["merge_fields"] == {
        **patched.json()["merge_fields"],
        "FNAME": "Maria Clara",
        "LNAME": "da Conceição",
    }
    unsubscribed = api.put(path, json={"email_address": email, "status": "unsubscribed"})
    assert unsubscribed.json()["status"] == "unsubscribed"

    assert api.delete(path).status_code == 204
    assert api.get(path).json()["status"] == "archived"
    assert _mailchimp(sandbox).members(LIST, status="archived")[0]["email_address"] == email
    back = api.put(path, json=_put(email))
    assert back.json()["status"] == "subscribed"


def test_put_hash_must_match_email(api: httpx.Client) -> None:
    wrong = api.put(
        f"/lists/{LIST}/members/{subscriber_hash('other@gmail.com')}",
        json=_put("someone@gmail.com"),
    )
    assert wrong.status_code == 400 and wrong.json()["title"] == "Invalid Resource"
    needs_status = api.put(
        f"/lists/{LIST}/members/{subscriber_hash('x@gmail.com')}",
        json={"email_address": "x@gmail.com"},
    )
    assert needs_status.status_code == 400


def test_permanently_deleted_cannot_come_back(api: httpx.Client) -> None:
    email = "apagar@bol.com.br"
    path = f"/lists/{LIST}/members/{subscriber_hash(email)}"
    api.put(path, json=_put(email))
    assert api.post(f"{path}/actions/delete-permanent").status_code == 204
    assert api.get(path).status_code == 404
    again = api.put(path, json=_put(email))
    assert again.status_code == 400 and again.json()["title"] == "Forgotten Email Not Subscribed"
    batch = api.post(f"/lists/{LIST}", json={"members": [_member(email)]}).json()
    assert batch["error_count"] == 1


def test_list_members_pages_and_filters(api: httpx.Client) -> None:
    members = [_member(f"m{i:02d}@gmail.com") for i in range(25)]
    members[0]["status"] = "unsubscribed"
    api.post(f"/lists/{LIST}", json={"members": members})
    seen: list[str] = []
    for offset in range(0, 30, 10):
        page = api.get(f"/lists/{LIST}/members", params={"count": 10, "offset": offset}).json()
        assert page["total_items"] == 25 and page["list_id"] == LIST
        seen += [m["email_address"] for m in page["members"]]
    assert sorted(seen) == sorted(m["email_address"] for m in members)
    default_page = api.get(f"/lists/{LIST}/members").json()
    assert len(default_page["members"]) == 10
    subscribed = api.get(f"/lists/{LIST}/members", params={"status": "subscribed", "count": 1000})
    assert subscribed.json()["total_items"] == 24
    member = subscribed.json()["members"][0]
    assert set(member) >= {"id", "email_address", "status", "merge_fields", "last_changed"}
    assert api.get(f"/lists/{LIST}/members", params={"count": 1001}).status_code == 400


def test_write_counters_show_what_was_sent(api: httpx.Client, sandbox: SandboxServer) -> None:
    mailchimp = _mailchimp(sandbox)
    api.post(f"/lists/{LIST}", json={"members": [_member("c1@gmail.com"), _member("c2@gmail.com")]})
    api.get(f"/lists/{LIST}/members")
    assert (mailchimp.write_calls, mailchimp.members_written) == (1, 2)
    mailchimp.reset_counters()
    assert (mailchimp.write_calls, mailchimp.members_written, mailchimp.write_log) == (0, 0, [])
    assert len(mailchimp.members(LIST)) == 2


def test_rate_limit_and_faults(api: httpx.Client, sandbox: SandboxServer) -> None:
    mailchimp = _mailchimp(sandbox)
    mailchimp.fail_next(1, status=500)
    assert api.get(f"/lists/{LIST}").status_code == 500
    assert api.get(f"/lists/{LIST}").status_code == 200
    mailchimp.set_rate_limit(2)
    statuses = [api.get(f"/lists/{LIST}").status_code for _ in range(3)]
    assert statuses[:2] == [200, 200] and statuses[2] == 429
    mailchimp.set_rate_limit(None)
    assert api.get(f"/lists/{LIST}").status_code == 200


def test_members_survive_a_restart_with_a_state_file(tmp_path):
    """With a state file the emulated Mailchimp keeps its members, like the real one."""
    import httpx

    from omnicanal.sandbox.app import SandboxServer
    from omnicanal.sandbox.world import generate_world

    state = tmp_path / "mailchimp.json"
    world = generate_world(3, seed=1)
    body = {"email_address": "ana@x.com.br", "status": "subscribed"}
    with SandboxServer(world, mailchimp={"state_path": state}) as sandbox:
        httpx.post(
            f"{sandbox.url}/3.0/lists/omnicanal-demo/members", auth=("x", "sandbox-us1"), json=body
        ).raise_for_status()
    with SandboxServer(world, mailchimp={"state_path": state}) as sandbox:
        members = sandbox.app.state.mailchimp.members("omnicanal-demo")
    assert [m["email_address"] for m in members] == ["ana@x.com.br"]
    with SandboxServer(world) as sandbox:  # no state file: a fresh account
        assert sandbox.app.state.mailchimp.members("omnicanal-demo") == []
