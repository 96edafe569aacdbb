"""The WhatsApp Cloud API emulation and the world's chats, over real HTTP.

Meta publishes no Python client for the Cloud API, so requests follow its public
reference: paths ``/{version}/{phone-number-id}[/messages]``, bearer tokens, and Graph's
``{"error": {"message", "type", "code", "error_subcode", "error_data", "fbtrace_id"}}``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from omnicanal.channels.whatsapp import API_VERSION, SANDBOX_ACCESS_TOKEN
from omnicanal.channels.whatsapp.emulation import WhatsAppEmulator
from omnicanal.channels.whatsapp.world import PHONE_NUMBER_ID, WABA_ID, WhatsAppInbox
from omnicanal.sandbox import SandboxServer, generate_world
from omnicanal.sandbox.world import World

AS_OF = datetime(2025, 6, 1, 15, 0, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}"}
NUMBER = f"/{API_VERSION}/{PHONE_NUMBER_ID}"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(generate_world(150, 20250601, as_of=AS_OF)) as server:
        yield server


@pytest.fixture
def emulator(sandbox: SandboxServer) -> Iterator[WhatsAppEmulator]:
    emulator: WhatsAppEmulator = sandbox.app.state.whatsapp
    yield emulator
    emulator.faults.clear()
    emulator.expire_token(False)


@pytest.fixture
def inbox(sandbox: SandboxServer) -> WhatsAppInbox:
    return sandbox.app.state.world.slices["whatsapp"]


def graph_error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["type"] and isinstance(error["code"], int) and error["fbtrace_id"]
    return error


def send(sandbox: SandboxServer, body: object, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{sandbox.url}{NUMBER}/messages", json=body, headers=headers or AUTH)


# --- the world -------------------------------------------------------------------------


def test_wa_ids_are_the_owners_phone_digits_many_without_the_ninth_digit(
    inbox: WhatsAppInbox, sandbox: SandboxServer
) -> None:
    world: World = sandbox.app.state.world
    lengths = Counter(len(wa_id) for wa_id in inbox.wa_person)
    assert set(lengths) == {12, 13} and lengths[12] >= 0.15 * len(inbox.wa_person)
    for wa_id, person_id in inbox.wa_person.items():
        phone = world.person(person_id).phone.removeprefix("+")  # 55 DDD 9XXXXXXXX
        assert wa_id == phone or wa_id == phone[:4] + phone[5:], (wa_id, phone)
    senders = {m["from"] for m in inbox.messages}
    assert senders == set(inbox.wa_person)


def test_profile_names_are_what_people_type_not_their_documents(
    inbox: WhatsAppInbox, sandbox: SandboxServer
) -> None:
    world: World = sandbox.app.state.world
    names = {wa_id: names[-1] for wa_id, names in inbox.profile_names.items()}
    full = sum(names[w] == world.person(p).full_name for w, p in inbox.wa_person.items())
    assert 0 < full < 0.5 * len(names)  # mostly first names, nicknames, emojis
    assert any(not any(c.isalpha() for c in name) for name in names.values())  # emoji only
    assert any(len(n) > 1 for n in inbox.profile_names.values())  # someone renamed
    # the webhook's contacts entry carries the name in use at the time
    for event in inbox.events:
        if event["kind"] == "message":
            contact = event["contact"]
            assert contact["profile"]["name"] in inbox.profile_names[contact["wa_id"]]


def test_the_same_people_write_before_and_after_buying(sandbox: SandboxServer) -> None:
    world: World = sandbox.app.state.world
    inbox: WhatsAppInbox = world.slices["whatsapp"]
    store = world.slices["shopify"]
    first_message = {}
    for message in inbox.messages:
        person = inbox.wa_person[message["from"]]
        first_message.setdefault(person, int(message["timestamp"]))
    orders = {}
    for order in store.orders:
        person = store.customer_person.get((order.get("customer") or {}).get("id"))
        if person:
            created = int(datetime.fromisoformat(order["created_at"]).timestamp())
            orders.setdefault(person, []).append(created)
    buyers = [p for p in first_message if p in orders]
    assert buyers, "WhatsApp users who bought online"
    before = [p for p in buyers if first_message[p] < min(orders[p])]
    after = [p for p in buyers if first_message[p] > min(orders[p])]
    assert before and after
    texts = " ".join(m.get("text", {}).get("body", "") for m in inbox.messages)
    assert "pedido #" in texts.lower()  # after buying, people quote the order


def test_statuses_follow_meta_s_shapes(inbox: WhatsAppInbox) -> None:
    statuses = inbox.statuses
    assert {s["status"] for s in statuses} <= {"sent", "delivered", "read", "failed"}
    reply_ids = {r["id"] for r in inbox.replies}
    for status in statuses:
        assert status["id"] in reply_ids and status["id"].startswith("wamid.")
        assert status["timestamp"].isdigit() and status["recipient_id"] in inbox.wa_person
        if status["status"] == "sent":
            assert status["conversation"]["expiration_timestamp"].isdigit()
            assert status["pricing"]["pricing_model"] == "PMP"
        if status["status"] == "failed":
            assert status["errors"][0]["code"]
    assert max(int(s["timestamp"]) for s in statuses) <= AS_OF.timestamp()


# --- the Cloud API ---------------------------------------------------------------------


def test_phone_number_node_and_fields(sandbox: SandboxServer) -> None:
    number = httpx.get(f"{sandbox.url}{NUMBER}", headers=AUTH).json()
    assert number["id"] == PHONE_NUMBER_ID and number["platform_type"] == "CLOUD_API"
    assert number["display_phone_number"].startswith("+55")
    picked = httpx.get(f"{sandbox.url}{NUMBER}", params={"fields": "quality_rating"}, headers=AUTH)
    assert picked.json() == {"quality_rating": "GREEN", "id": PHONE_NUMBER_ID}
    bad = httpx.get(f"{sandbox.url}{NUMBER}", params={"fields": "nope"}, headers=AUTH)
    assert bad.status_code == 400 and graph_error(bad)["code"] == 100
    listed = httpx.get(f"{sandbox.url}/{API_VERSION}/{WABA_ID}/phone_numbers", headers=AUTH)
    assert [n["id"] for n in listed.json()["data"]] == [PHONE_NUMBER_ID]
    assert set(listed.json()["paging"]["cursors"]) == {"before", "after"}


def test_auth_errors_are_graph_oauth_errors(sandbox: SandboxServer, emulator) -> None:
    missing = httpx.get(f"{sandbox.url}{NUMBER}")
    assert missing.status_code == 401 and graph_error(missing)["code"] == 104
    wrong = httpx.get(f"{sandbox.url}{NUMBER}", headers={"Authorization": "Bearer EAAGnope"})
    error = graph_error(wrong)
    assert wrong.status_code == 401 and error["code"] == 190 and error["type"] == "OAuthException"
    assert "WWW-Authenticate" in wrong.headers
    query_token = httpx.get(f"{sandbox.url}{NUMBER}", params={"access_token": SANDBOX_ACCESS_TOKEN})
    assert query_token.status_code == 200
    emulator.expire_token()
    expired = httpx.get(f"{sandbox.url}{NUMBER}", headers=AUTH)
    error = graph_error(expired)
    assert (error["code"], error["error_subcode"]) == (190, 463)
    assert "Session has expired" in error["message"]
    emulator.expire_token(False)
    assert httpx.get(f"{sandbox.url}{NUMBER}", headers=AUTH).status_code == 200


def test_versions(sandbox: SandboxServer) -> None:
    assert httpx.get(f"{sandbox.url}/v21.0/{PHONE_NUMBER_ID}", headers=AUTH).status_code == 200
    for version in ("v99.0", "26.0", "latest"):
        answer = httpx.get(f"{sandbox.url}/{version}/{PHONE_NUMBER_ID}", headers=AUTH)
        assert answer.status_code == 400 and graph_error(answer)["code"] == 2500, version


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        ({"to": "5511987654321", "text": {"body": "oi"}}, 131008, "messaging_product"),
        ({"messaging_product": "sms", "to": "5511987654321"}, 100, "messaging_product"),
        ({"messaging_product": "whatsapp", "text": {"body": "oi"}}, 131008, "to"),
        ({"messaging_product": "whatsapp", "to": "abc", "text": {"body": "oi"}}, 100, "to"),
        ({"messaging_product": "whatsapp", "to": "5511987654321", "type": "fax"}, 100, "type"),
        ({"messaging_product": "whatsapp", "to": "5511987654321"}, 131008, "text"),
        ({"messaging_product": "whatsapp", "to": "5511987654321", "text": {}}, 131008, "body"),
        (
            {"messaging_product": "whatsapp", "to": "5511987654321", "text": {"body": "x" * 4097}},
            131009,
            "4096",
        ),
        (
            {"messaging_product": "whatsapp", "to": "5511987654321", "type": "image", "image": {}},
            131008,
            "image",
        ),
        (["not", "an", "object"], 100, "JSON object"),
    ],
)
def test_send_message_validation(sandbox: SandboxServer, body, code, detail) -> None:
    answer = send(sandbox, body)
    assert answer.status_code == 400, answer.text
    error = graph_error(answer)
    assert error["code"] == code and f"(#{code})" in error["message"]
    assert detail in error["error_data"]["details"]
    assert error["error_data"]["messaging_product"] == "whatsapp"


def test_sent_messages_resolve_the_ninth_digit_and_queue_statuses(
    sandbox: SandboxServer, emulator: WhatsAppEmulator, inbox: WhatsAppInbox
) -> None:
    old = next(w for w in inbox.wa_person if len(w) == 12)  # an account from before 2016
    emulator.receive(old, "oi, tem no 40?")  # opens the 24-hour service window
    with_ninth = f"+{old[:2]} {old[2:4]} 9{old[4:8]}-{old[8:]}"
    before = emulator.pending
    answer = send(
        sandbox,
        {"messaging_product": "whatsapp", "to": with_ninth, "text": {"body": "Temos sim!"}},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["contacts"] == [{"input": with_ninth, "wa_id": old}]
    assert body["messages"][0]["id"].startswith("wamid.")
    # sent, delivered, and read when the user has read receipts on
    assert emulator.pending == before + 2 + emulator.reads_receipts(old)

    # outside the window, free-form text is accepted and then fails (re-engagement)
    quiet, other = [w for w in inbox.wa_person if w != old][:2]
    before = emulator.pending
    send(sandbox, {"messaging_product": "whatsapp", "to": quiet, "text": {"body": "Oi!"}})
    assert emulator.pending == before + 1
    # a template opens a conversation whatever the window (Meta's sample is in en_US)
    template = send(
        sandbox,
        {
            "messaging_product": "whatsapp",
            "to": other,
            "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}},
        },
    )
    assert template.json()["messages"][0]["message_status"] == "accepted"


def test_fault_knob(sandbox: SandboxServer, emulator: WhatsAppEmulator) -> None:
    emulator.fail_next(1, 429)
    limited = httpx.get(f"{sandbox.url}{NUMBER}", headers=AUTH)
    assert limited.status_code == 429 and graph_error(limited)["code"] == 130429
    httpx.post(f"{sandbox.url}/_sandbox/whatsapp/fail_next", json={"n": 1, "status": 503})
    down = httpx.get(f"{sandbox.url}{NUMBER}", headers=AUTH)
    assert down.status_code == 503 and graph_error(down)["is_transient"] is True
    emulator.fail_next(1, hang_seconds=0.5)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{sandbox.url}{NUMBER}", headers=AUTH, timeout=0.2)
    assert httpx.get(f"{sandbox.url}{NUMBER}", headers=AUTH).status_code == 200
