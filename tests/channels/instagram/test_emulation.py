"""The Instagram Graph API emulation over plain HTTP, as the Graph API reference shows it.

Auth and Graph's OAuth errors (HTTP 400, codes 104/190/463), versioned paths, ``fields=``
with nested expansions, cursor paging (``next`` only while more remain), time filters,
conversations and the 20-message detail window, the usage headers and the refusals at
100 %, and the faults knob. The world slice's identifiers and ground truth are checked
at the end.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx
import pytest

from omnicanal.channels.instagram import (
    API_VERSION,
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_IG_USER_ID,
    SANDBOX_PAGE_ID,
)
from omnicanal.channels.instagram.world import build_instagram_account
from omnicanal.channels.meta import parse_graph_time
from omnicanal.sandbox import SandboxServer, generate_world
from omnicanal.sandbox.noise import strip_accents

AUTH = {"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}"}


@pytest.fixture(scope="module")
def own_server():
    """A sandbox over a world of its own, for the tests that change records or throttle."""
    with SandboxServer(
        generate_world(80, 20261129, as_of=datetime(2026, 11, 1, tzinfo=UTC))
    ) as running:
        yield running


@pytest.fixture
def fresh_server(own_server):
    """``own_server`` with no fault, forced usage or expired token left by the last test."""
    yield own_server
    own_server.app.state.instagram.clear_faults()
    own_server.app.state.instagram.renew_token()


def get(server, path: str, headers: dict | None = AUTH, **params) -> httpx.Response:
    return httpx.get(
        f"{server.url}/{API_VERSION}/{path}", params=params, headers=headers, timeout=10
    )


def error(response: httpx.Response) -> dict:
    assert response.status_code >= 400, response.text
    return response.json()["error"]


# --- auth and paths ----------------------------------------------------------------------


def test_tokens_as_graph_reads_them(server) -> None:
    missing = get(server, "me", headers=None)
    assert missing.status_code == 400 and error(missing)["code"] == 104
    assert missing.headers["WWW-Authenticate"].startswith('OAuth "Facebook Platform"')
    wrong = get(server, "me", headers={"Authorization": "Bearer EAAGwrong-token"})
    assert (wrong.status_code, error(wrong)["code"], error(wrong)["type"]) == (
        400, 190, "OAuthException"
    )  # fmt: skip
    assert get(server, "me", headers=None, access_token=SANDBOX_ACCESS_TOKEN).json() == {
        "id": SANDBOX_IG_USER_ID
    }
    oauth = get(server, "me", headers={"Authorization": f"OAuth {SANDBOX_ACCESS_TOKEN}"})
    assert oauth.status_code == 200


def test_an_expired_token_answers_190_463(fresh_server) -> None:
    fresh_server.app.state.instagram.expire_token()
    body = error(get(fresh_server, SANDBOX_IG_USER_ID, fields="username"))
    assert (body["code"], body["error_subcode"]) == (190, 463)
    assert body["message"].startswith("Error validating access token: Session has expired on")
    assert set(body) == {"message", "type", "code", "error_subcode", "fbtrace_id"}
    fresh_server.app.state.instagram.renew_token()
    assert get(fresh_server, SANDBOX_IG_USER_ID).status_code == 200


def test_versions_and_other_platforms_paths(server) -> None:
    old = httpx.get(f"{server.url}/v19.0/me", headers=AUTH)
    assert error(old)["code"] == 2635
    future = httpx.get(f"{server.url}/v99.0/me", headers=AUTH)
    assert error(future)["code"] == 2500
    # the Graph routes claim only their own nodes: Square's /v2/... still answers
    square = httpx.get(
        f"{server.url}/v2/locations",
        headers={"Authorization": "Bearer EAAAsandbox-omnicanal-square"},
    )
    assert square.status_code == 200 and "locations" in square.json()


def test_fields_selection_and_errors(server, world) -> None:
    account = get(server, "me", fields="id,username,name,media_count").json()
    assert account["username"] == "casa.omnicanal"
    assert account["media_count"] == len(world.slices["instagram"].media)
    page = get(server, SANDBOX_PAGE_ID, fields="instagram_business_account").json()
    assert page["instagram_business_account"] == {"id": SANDBOX_IG_USER_ID}
    unknown = error(get(server, "me", fields="username,email"))
    assert unknown["code"] == 100 and "(email) on node type (IGUser)" in unknown["message"]
    assert error(get(server, "me", fields="id,{username"))["code"] == 100


# --- paging --------------------------------------------------------------------------------


def test_media_pages_by_cursor_with_next_only_while_more_remain(server, world) -> None:
    media = world.slices["instagram"].media
    seen, params, pages = [], {"fields": "id,timestamp", "limit": 4}, 0
    while True:
        body = get(server, f"{SANDBOX_IG_USER_ID}/media", **params).json()
        pages += 1
        seen += [m["id"] for m in body["data"]]
        assert set(body["paging"]["cursors"]) == {"before", "after"}
        if "next" not in body["paging"]:
            break
        assert SANDBOX_ACCESS_TOKEN not in body["paging"]["next"]  # the header token stays out
        params = {**params, "after": body["paging"]["cursors"]["after"]}
    assert seen == [m["id"] for m in media] and pages == -(-len(media) // 4)
    # a before cursor walks back; "previous" is given when something lies before
    second = get(
        server,
        f"{SANDBOX_IG_USER_ID}/media",
        limit=4,
        after=get(server, f"{SANDBOX_IG_USER_ID}/media", limit=4).json()["paging"]["cursors"][
            "after"
        ],
    ).json()
    assert "previous" in second["paging"]
    back = get(server, f"{SANDBOX_IG_USER_ID}/media", limit=4,
               before=second["paging"]["cursors"]["before"]).json()  # fmt: skip
    assert [m["id"] for m in back["data"]] == seen[:4]
    capped = get(server, f"{SANDBOX_IG_USER_ID}/media", limit=500).json()
    assert len(capped["data"]) == min(100, len(media))
    assert error(get(server, f"{SANDBOX_IG_USER_ID}/media", after="bogus"))["code"] == 100


def test_media_since_and_until(server, world) -> None:
    media = world.slices["instagram"].media
    middle = parse_graph_time(media[len(media) // 2]["timestamp"])
    newer = get(server, f"{SANDBOX_IG_USER_ID}/media", since=int(middle.timestamp()), limit=100)
    expected = [m["id"] for m in media if parse_graph_time(m["timestamp"]) >= middle]
    assert [m["id"] for m in newer.json()["data"]] == expected
    older = get(server, f"{SANDBOX_IG_USER_ID}/media", until=middle.isoformat(), limit=100)
    assert len(older.json()["data"]) == len(media) - len(expected) + 1


def test_nested_replies_expansion_pages_too(server, world) -> None:
    account = world.slices["instagram"]
    parents = {}
    for comment in account.comments:
        if comment.get("parent_id"):
            parents.setdefault(comment["parent_id"], []).append(comment)
    parent, replies = max(parents.items(), key=lambda item: len(item[1]))
    body = get(server, parent, fields="id,text,replies.limit(1){id,text,from}").json()
    assert body["replies"]["data"][0]["id"] == replies[0]["id"]
    assert ("next" in body["replies"]["paging"]) == (len(replies) > 1)
    media_id = replies[0]["media_id"]
    top = get(server, f"{media_id}/comments", limit=100).json()["data"]
    assert parent in {c["id"] for c in top} and not {r["id"] for r in replies} & {
        c["id"] for c in top
    }  # replies are not top-level comments
    assert set(top[0]) == {"id", "text", "timestamp"}  # Graph's default comment fields


# --- conversations --------------------------------------------------------------------------


def test_conversations_need_platform_instagram_on_the_page(server, world) -> None:
    account = world.slices["instagram"]
    messenger = get(server, f"{SANDBOX_PAGE_ID}/conversations").json()
    assert messenger == {"data": []}
    threads = get(server, f"{SANDBOX_PAGE_ID}/conversations", platform="instagram", limit=100)
    ids = [c["id"] for c in threads.json()["data"]]
    assert ids == [c["id"] for c in account.conversations]
    stamps = [c["updated_time"] for c in threads.json()["data"]]
    assert stamps == sorted(stamps, reverse=True)
    assert error(get(server, f"{SANDBOX_PAGE_ID}/conversations", platform="tiktok"))["code"] == 100
    person = account.conversations[0]["participants"]["data"][0]["id"]
    mine = get(server, f"{SANDBOX_IG_USER_ID}/conversations", user_id=person).json()["data"]
    assert [c["id"] for c in mine] == [account.conversations[0]["id"]]


def test_message_details_only_for_the_20_most_recent(fresh_server) -> None:
    emulator = fresh_server.app.state.instagram
    thread = emulator.account.conversations[-1]["id"]
    oldest = emulator.thread_messages[thread][-1]["id"]
    for n in range(21):
        emulator.add_message(thread, f"mensagem {n}", at=datetime(2025, 6, 1, 14, n, tzinfo=UTC))
    listed = get(fresh_server, f"{thread}/messages", fields="id,created_time,from,message",
                 limit=100).json()["data"]  # fmt: skip
    assert listed[0]["message"] == "mensagem 20" and "message" in listed[19]
    assert "message" not in listed[20] and listed[20]["created_time"]
    assert error(get(fresh_server, oldest, fields="from,to,message"))["code"] == 100
    conversation = get(fresh_server, thread, fields="id,updated_time").json()
    assert conversation["updated_time"] == "2025-06-01T14:20:00+0000"


# --- throttling and faults ------------------------------------------------------------------


def test_usage_headers_on_every_answer(server) -> None:
    answer = get(server, f"{SANDBOX_IG_USER_ID}/media")
    app = json.loads(answer.headers["X-App-Usage"])
    assert set(app) == {"call_count", "total_cputime", "total_time"}
    business = json.loads(answer.headers["X-Business-Use-Case-Usage"])
    assert (
        list(business) == [SANDBOX_IG_USER_ID]
        and business[SANDBOX_IG_USER_ID][0]["type"] == "instagram"
    )
    threads = get(server, f"{SANDBOX_PAGE_ID}/conversations", platform="instagram")
    assert list(json.loads(threads.headers["X-Business-Use-Case-Usage"])) == [SANDBOX_PAGE_ID]


def test_budget_used_up_is_refused_with_graph_codes(fresh_server) -> None:
    emulator = fresh_server.app.state.instagram
    emulator.force_usage(96)
    busy = get(fresh_server, "me")
    assert busy.status_code == 200
    assert (
        json.loads(busy.headers["X-Business-Use-Case-Usage"])[SANDBOX_IG_USER_ID][0]["call_count"]
        == 96
    )
    emulator.force_usage(100)
    refused = get(fresh_server, "me")
    body = error(refused)
    assert (refused.status_code, body["code"], body["is_transient"]) == (400, 80002, True)
    figures = json.loads(refused.headers["X-Business-Use-Case-Usage"])[SANDBOX_IG_USER_ID][0]
    assert figures["estimated_time_to_regain_access"] >= 1
    emulator.clear_faults()
    emulator.force_usage(100, app=True)
    assert error(get(fresh_server, "me"))["code"] == 4
    emulator.clear_faults()
    assert get(fresh_server, "me").status_code == 200


@pytest.mark.parametrize("code", [4, 17, 32, 613])
def test_rate_limit_codes_on_demand(fresh_server, code: int) -> None:
    answer = httpx.post(
        f"{fresh_server.url}/_sandbox/instagram/faults", json={"rate_limit_code": code}
    )
    assert answer.status_code == 200
    body = error(get(fresh_server, "me"))
    assert body["code"] == code and body["message"].startswith(f"(#{code})")
    assert get(fresh_server, "me").status_code == 200


def test_faults_knob(fresh_server) -> None:
    url = f"{fresh_server.url}/_sandbox/instagram/faults"
    httpx.post(url, json={"status": 429})
    limited = get(fresh_server, "me")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    httpx.post(url, json={"status": 503})
    outage = get(fresh_server, "me")
    assert outage.status_code == 503 and error(outage)["is_transient"] is True
    httpx.post(url, json={"timeout_seconds": 1})
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{fresh_server.url}/{API_VERSION}/me", headers=AUTH, timeout=0.3)
    httpx.post(url, json={"expire_token": True})
    assert error(get(fresh_server, "me"))["code"] == 190
    httpx.post(url, json={"renew_token": True})
    assert get(fresh_server, "me").status_code == 200


# --- the world slice ------------------------------------------------------------------------


def test_the_slice_holds_handles_nicknames_and_the_truth(world) -> None:
    account = world.slices["instagram"]
    people = world.people_by_id
    assert set(account.user_person) == {u["id"] for u in account.users}
    assert set(account.handle_person) == {u["username"] for u in account.users}
    nameless = 0
    for user in account.users:
        person = people[account.user_person[user["id"]]]
        first = strip_accents(person.first_name).lower()
        last = strip_accents(person.last_name.split()[-1]).lower()
        nameless += first not in user["username"] and last not in user["username"]
        assert re.fullmatch(r"[a-z0-9._]+", user["username"]), user["username"]
    assert nameless >= len(account.users) // 5  # nicknames and names of nothing
    names = [u["name"] for u in account.users]
    assert "" in names and any(not n.isascii() for n in names)
    business = [c for c in account.comments if c["from"]["id"] == SANDBOX_IG_USER_ID]
    assert business and all(c.get("parent_id") for c in business)
    for comment in account.comments:
        if comment["from"]["id"] != SANDBOX_IG_USER_ID:
            assert comment["from"]["id"] in account.user_person
    typed = [m for m in account.messages if "@" in m["message"] and "email" in m["message"]]
    phones = [m for m in account.messages if "whats" in m["message"]]
    assert typed and phones
    for message in typed:
        person = people[account.user_person[message["from"]["id"]]]
        assert person.email in message["message"].lower().replace(" ", "")
    assert all(parse_graph_time(m["created_time"]) < world.as_of for m in account.messages)


def test_the_slice_draws_from_its_own_stream(world) -> None:
    import random

    again = build_instagram_account(
        random.Random(f"{world.seed}:instagram"), world.people, world.as_of, world.slices
    )
    assert again.to_dict() == world.slices["instagram"].to_dict()
