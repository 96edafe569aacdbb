"""The Zendesk emulator over real HTTP, and the help desk's slice of the world.

Zendesk publishes no official Python client, so these follow the public API reference:
Basic ``email/token`` and OAuth auth with Zendesk's 401 bodies, the cursor-based
incremental exports (``after_cursor``, ``end_of_stream``, the hidden last minute,
``Too recent start_time``), cursor and offset pagination of the lists, filters, the
account and export rate limits with ``Retry-After`` and the rate-limit headers, the
error bodies and injected faults. The world checks hold the desk to what identity
resolution and the support KPIs are tested against.
"""

from __future__ import annotations

import base64
import random
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from omnicanal.channels.zendesk import SANDBOX_API_TOKEN, SANDBOX_EMAIL, SANDBOX_OAUTH_TOKEN
from omnicanal.channels.zendesk.emulation import ZendeskEmulator
from omnicanal.channels.zendesk.world import (
    ZendeskDesk,
    build_zendesk_desk,
    business_minutes,
    parse_timestamp,
)
from omnicanal.sandbox import SandboxServer, World, generate_world
from omnicanal.sandbox.noise import phone_formats

AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
BASIC = "Basic " + base64.b64encode(f"{SANDBOX_EMAIL}/token:{SANDBOX_API_TOKEN}".encode()).decode()
AUTH = {"Authorization": BASIC}


@pytest.fixture(scope="module")
def server() -> Any:
    world = generate_world(150, seed=11, as_of=AS_OF)
    options = {"export_rate_limit": None, "export_delay_seconds": 0}
    with SandboxServer(world, zendesk=options) as sandbox:
        yield sandbox


@pytest.fixture
def zendesk(server: SandboxServer) -> Any:
    emulator: ZendeskEmulator = server.app.state.zendesk
    yield emulator
    emulator.faults.clear()
    emulator.set_rate_limits(None, None)
    emulator.oauth_expired = False


def _desk(server: SandboxServer) -> ZendeskDesk:
    return server.app.state.world.slices["zendesk"]


def _get(server: SandboxServer, path: str, headers: dict | None = None, **params: Any):
    return httpx.get(
        f"{server.url}{path}", params=params, headers=AUTH if headers is None else headers
    )


def _export_all(server: SandboxServer, resource: str, **params: Any) -> tuple[list[dict], dict]:
    """Walk an incremental export to its end: the records and the last page."""
    records: list[dict] = []
    response = _get(server, f"/api/v2/incremental/{resource}/cursor.json", **params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        records += body[resource]
        if body["end_of_stream"]:
            return records, body
        response = httpx.get(body["after_url"], headers=AUTH)


# --- auth --------------------------------------------------------------------------


def test_api_token_oauth_and_zendesks_401_bodies(server: SandboxServer, zendesk) -> None:
    path = "/api/v2/users/me.json"
    me = _get(server, path)
    assert me.status_code == 200 and me.json()["user"]["email"] == SANDBOX_EMAIL
    bearer = {"Authorization": f"Bearer {SANDBOX_OAUTH_TOKEN}"}
    assert _get(server, path, bearer).status_code == 200

    wrong = base64.b64encode(f"{SANDBOX_EMAIL}/token:nope".encode()).decode()
    password = base64.b64encode(f"{SANDBOX_EMAIL}:{SANDBOX_API_TOKEN}".encode()).decode()
    for headers in (
        {},
        {"Authorization": f"Basic {wrong}"},
        {"Authorization": f"Basic {password}"},
    ):
        answer = _get(server, path, headers)
        assert answer.status_code == 401
        assert answer.json() == {"error": "Couldn't authenticate you"}

    zendesk.expire_oauth_token()
    expired = _get(server, path, bearer)
    assert expired.status_code == 401 and expired.json()["error"] == "invalid_token"
    assert _get(server, path).status_code == 200  # the API token still works


# --- incremental exports ---------------------------------------------------------------


def test_ticket_export_walks_every_ticket_once_in_order_and_resumes_at_its_cursor(
    server: SandboxServer, zendesk
) -> None:
    desk = _desk(server)
    tickets, last = _export_all(server, "tickets", start_time=0, per_page=25)
    assert Counter(t["id"] for t in tickets) == Counter(t["id"] for t in desk.tickets)
    order = [(t["generated_timestamp"], t["id"]) for t in tickets]
    assert order == sorted(order)
    assert last["after_cursor"] and last["after_url"].endswith(
        last["after_cursor"].replace("=", "%3D")
    )

    # the last page's cursor starts the next export: nothing new yet
    again = _get(server, "/api/v2/incremental/tickets/cursor.json", cursor=last["after_cursor"])
    assert again.json()["tickets"] == [] and again.json()["end_of_stream"] is True
    assert again.json()["after_cursor"] == last["after_cursor"]

    changed = zendesk.touch_ticket(desk.tickets[3]["id"], status="solved")
    later = _get(server, "/api/v2/incremental/tickets/cursor.json", cursor=last["after_cursor"])
    assert [t["id"] for t in later.json()["tickets"]] == [changed["id"]]

    # start_time keeps what changed at or after it
    middle = sorted(t["generated_timestamp"] for t in desk.tickets)[len(desk.tickets) // 2]
    since, _ = _export_all(server, "tickets", start_time=middle)
    assert {t["id"] for t in since} == {
        t["id"] for t in desk.tickets if t["generated_timestamp"] >= middle
    }


def test_users_export_and_its_validation(server: SandboxServer) -> None:
    users, _ = _export_all(server, "users", start_time=0, per_page=1000)
    assert {u["id"] for u in users} == {u["id"] for u in _desk(server).users}
    path = "/api/v2/incremental/users/cursor.json"
    future = int(time.time()) + 3600
    too_recent = _get(server, path, start_time=future)
    assert too_recent.status_code == 422
    assert too_recent.json()["description"].startswith("Too recent start_time")
    assert _get(server, path).status_code == 400  # neither start_time nor cursor
    bad = _get(server, path, cursor="not-a-cursor!")
    assert bad.status_code == 400 and bad.json()["error"] == "InvalidValue"


def test_the_export_holds_back_the_last_minute(server: SandboxServer) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    emulator = ZendeskEmulator(server.app.state.world, export_delay_seconds=60)
    app = FastAPI()
    app.include_router(emulator.router)
    before = {t["id"]: t["generated_timestamp"] for t in emulator.desk.tickets}
    touched = emulator.touch_ticket(emulator.desk.tickets[0]["id"])
    try:
        with TestClient(app) as client:
            path = "/api/v2/incremental/tickets/cursor.json"
            body = client.get(path, params={"start_time": 0}, headers=AUTH).json()
            assert body["end_of_stream"] is True
            exported = {t["id"] for t in body["tickets"]}
            assert touched["id"] not in exported  # changed seconds ago: not yet
            settled = time.time() - 60
            assert exported == {
                t["id"] for t in emulator.desk.tickets if t["generated_timestamp"] <= settled
            }
            assert len(exported) >= len(before) - 2
            recent = client.get(path, params={"start_time": int(time.time()) - 30}, headers=AUTH)
            assert recent.status_code == 422
    finally:
        emulator.desk.tickets[0] = {**touched, "generated_timestamp": before[touched["id"]]}


# --- lists ----------------------------------------------------------------------------


def test_ticket_metrics_cursor_and_offset_pagination(server: SandboxServer) -> None:
    desk = _desk(server)
    seen, pages = [], 0
    response = _get(server, "/api/v2/ticket_metrics.json", **{"page[size]": 7})
    while True:
        body = response.json()
        seen += body["ticket_metrics"]
        pages += 1
        assert set(body["meta"]) == {"has_more", "after_cursor", "before_cursor"}
        if not body["meta"]["has_more"]:
            assert body["links"]["next"] is None
            break
        response = httpx.get(body["links"]["next"], headers=AUTH)
    assert Counter(m["id"] for m in seen) == Counter(m["id"] for m in desk.ticket_metrics)
    assert pages == -(-len(desk.ticket_metrics) // 7)

    too_big = _get(server, "/api/v2/ticket_metrics.json", **{"page[size]": 101})
    assert too_big.status_code == 400 and too_big.json()["error"] == "InvalidPaginationParameter"
    offset = _get(server, "/api/v2/ticket_metrics.json", per_page=10, page=2).json()
    assert offset["count"] == len(desk.ticket_metrics) and len(offset["ticket_metrics"]) == 10
    assert "page=3" in offset["next_page"] and "page=1" in offset["previous_page"]


def test_satisfaction_ratings_filters(server: SandboxServer) -> None:
    ratings = _desk(server).satisfaction_ratings

    def ids(**params: Any) -> set[int]:
        body = _get(server, "/api/v2/satisfaction_ratings.json", **{"page[size]": 100}, **params)
        assert body.status_code == 200, body.text
        return {r["id"] for r in body.json()["satisfaction_ratings"]}

    assert ids() == {r["id"] for r in ratings}
    assert ids(score="good") == {r["id"] for r in ratings if r["score"] == "good"}
    assert ids(score="received") == {r["id"] for r in ratings if r["score"] in ("good", "bad")}
    assert ids(score="bad_with_comment") == {
        r["id"] for r in ratings if r["score"] == "bad" and r["comment"]
    }
    middle = sorted(r["created_at"] for r in ratings)[len(ratings) // 2]
    since = int(parse_timestamp(middle).timestamp())
    assert ids(start_time=since) == {r["id"] for r in ratings if r["created_at"] >= middle}
    assert _get(server, "/api/v2/satisfaction_ratings.json", score="great").status_code == 400


def test_comments_carry_each_channel_and_page(server: SandboxServer) -> None:
    desk = _desk(server)
    channels: Counter[str] = Counter()
    client = httpx.Client(base_url=server.url, headers=AUTH)
    for ticket in desk.tickets:
        answer = client.get(f"/api/v2/tickets/{ticket['id']}/comments.json")
        assert answer.status_code == 200
        comments = answer.json()["comments"]
        assert [c["id"] for c in comments] == [c["id"] for c in desk.comments[ticket["id"]]]
        assert comments[0]["via"]["channel"] == ticket["via"]["channel"]
        channels.update(c["via"]["channel"] for c in comments)
    client.close()
    assert {"email", "web", "api", "whatsapp", "instagram_dm"} <= set(channels)

    busiest = max(desk.comments, key=lambda k: len(desk.comments[k]))
    newest_first = _get(server, f"/api/v2/tickets/{busiest}/comments", sort="-created_at")
    stamps = [c["created_at"] for c in newest_first.json()["comments"]]
    assert stamps == sorted(stamps, reverse=True)
    first = _get(server, f"/api/v2/tickets/{busiest}/comments.json", **{"page[size]": 1}).json()
    assert len(first["comments"]) == 1 and first["meta"]["has_more"] is True
    missing = _get(server, "/api/v2/tickets/999999999/comments.json")
    assert missing.status_code == 404 and missing.json() == {
        "error": "RecordNotFound",
        "description": "Not found",
    }


def test_unknown_endpoints_answer_zendesks_body(server: SandboxServer) -> None:
    answer = _get(server, "/api/v2/tickets.xml")
    assert answer.status_code == 404
    assert answer.json() == {"error": "InvalidEndpoint", "description": "Not found"}
    assert _get(server, "/api/v2/nothing", {}).status_code == 401


# --- limits and faults ---------------------------------------------------------------------


def test_rate_limit_headers_and_429s_with_retry_after(server: SandboxServer, zendesk) -> None:
    zendesk.set_rate_limits((50, 60.0), (2, 60.0))
    path = "/api/v2/incremental/tickets/cursor.json"
    first = _get(server, path, start_time=0)
    assert first.headers["X-Rate-Limit"] == "50"
    assert int(first.headers["X-Rate-Limit-Remaining"]) == 49
    assert first.headers["ratelimit-limit"] == "50" and "ratelimit-reset" in first.headers
    assert _get(server, path, start_time=0).status_code == 200
    limited = _get(server, path, start_time=0)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["error"] == "APIRateLimitExceeded"
    assert "incremental export" in limited.json()["description"]
    assert _get(server, "/api/v2/ticket_metrics.json").status_code == 200  # other endpoints

    zendesk.set_rate_limits((1, 60.0), None)
    assert _get(server, "/api/v2/ticket_metrics.json").status_code == 200
    account = _get(server, "/api/v2/ticket_metrics.json")
    assert account.status_code == 429 and account.headers["X-Rate-Limit-Remaining"] == "0"
    assert int(account.headers["Retry-After"]) >= 1


def test_faults_answer_instead_of_the_data(server: SandboxServer, zendesk) -> None:
    zendesk.fail_next(1, 503, retry_after=7)
    answer = _get(server, "/api/v2/ticket_metrics.json")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "7"
    assert answer.json()["error"] == "ServiceUnavailable"
    zendesk.fail_next(1, 500, hang_seconds=1.0)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{server.url}/api/v2/ticket_metrics.json", headers=AUTH, timeout=0.3)
    assert _get(server, "/api/v2/ticket_metrics.json").status_code == 200
    over_http = httpx.post(f"{server.url}/_sandbox/zendesk/fail_next", json={"status": 502})
    assert over_http.json() == {"pending": 1}
    assert _get(server, "/api/v2/users/me").status_code == 502


# --- the world ----------------------------------------------------------------------------


def test_the_desk_holds_the_worlds_people_as_each_channel_gave_them(server: SandboxServer) -> None:
    world: World = server.app.state.world
    desk = _desk(server)
    requesters = [u for u in desk.users if u["role"] == "end-user"]
    staff = [u for u in desk.users if u["role"] != "end-user"]
    assert staff and not {u["id"] for u in staff} & set(desk.user_person)
    assert {u["id"] for u in requesters} == set(desk.user_person)
    # some people have several users (one per channel), some write from another address
    per_person = Counter(desk.user_person.values())
    assert max(per_person.values()) >= 2
    other_address = 0
    for user in requesters:
        person = world.person(desk.user_person[user["id"]])
        if user["email"] and user["email"] != person.email:
            other_address += 1
            assert user["email"].split("@")[0][0] == person.email[0]
        if user["phone"]:
            digits = "".join(ch for ch in user["phone"] if ch.isdigit())
            own = "".join(ch for ch in person.phone if ch.isdigit())
            assert digits in (own, own[:4] + own[5:])  # with or without the ninth digit
    assert other_address >= 1
    assert any(not u["email"] and not u["phone"] for u in requesters)  # Instagram DMs
    for ticket in desk.tickets:
        assert desk.ticket_person[ticket["id"]] == desk.user_person[ticket["requester_id"]]
    assert set(Counter(t["via"]["channel"] for t in desk.tickets)) == {
        "email",
        "web",
        "whatsapp",
        "instagram_dm",
    }


def test_metrics_and_ratings_tell_a_consistent_story(server: SandboxServer) -> None:
    desk = _desk(server)
    tickets = {t["id"]: t for t in desk.tickets}
    for metric in desk.ticket_metrics:
        reply = metric["reply_time_in_minutes"]
        first = metric["first_resolution_time_in_minutes"]
        full = metric["full_resolution_time_in_minutes"]
        ticket = tickets[metric["ticket_id"]]
        if reply["calendar"] is not None:
            assert 0 <= reply["business"] <= reply["calendar"]
        if full["calendar"] is not None:
            assert full["calendar"] >= first["calendar"] >= reply["calendar"]
            assert ticket["status"] in ("solved", "closed") and metric["solved_at"]
        else:
            assert ticket["status"] in ("new", "open", "pending")
        if metric["reopens"]:
            assert full["calendar"] > first["calendar"]
    replies = [m["reply_time_in_minutes"]["calendar"] for m in desk.ticket_metrics]
    by_channel: dict[str, list[int]] = {}
    for metric, minutes in zip(desk.ticket_metrics, replies, strict=True):
        if minutes is not None:
            by_channel.setdefault(tickets[metric["ticket_id"]]["via"]["channel"], []).append(
                minutes
            )
    median = {k: sorted(v)[len(v) // 2] for k, v in by_channel.items()}
    assert median["whatsapp"] < median["email"]  # messaging is answered faster
    for rating in desk.satisfaction_ratings:
        ticket = tickets[rating["ticket_id"]]
        assert ticket["status"] in ("solved", "closed")
        assert ticket["satisfaction_rating"]["score"] == rating["score"]
        assert rating["requester_id"] == ticket["requester_id"]
    scores = Counter(r["score"] for r in desk.satisfaction_ratings)
    assert scores["good"] > scores["bad"] > 0 and scores["offered"] > 0


def test_business_minutes_count_only_opening_hours() -> None:
    friday_5pm = datetime(2026, 10, 30, 20, 0, tzinfo=UTC)  # 17:00 in Brasília
    monday_10am = datetime(2026, 11, 2, 13, 0, tzinfo=UTC)  # 10:00 in Brasília
    assert business_minutes(friday_5pm, monday_10am) == 60 + 60


def test_same_seed_same_desk_and_its_own_random_stream() -> None:
    world = generate_world(60, seed=5, as_of=AS_OF)
    again = build_zendesk_desk(random.Random("5:zendesk"), world.people, AS_OF)
    assert again.to_dict() == world.slices["zendesk"].to_dict()
    assert ZendeskDesk.from_dict(again.to_dict()).to_dict() == again.to_dict()
    assert phone_formats(world.people[0].phone)["e164"] == world.people[0].phone
