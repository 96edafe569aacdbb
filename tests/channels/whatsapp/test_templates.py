"""Message templates and template messages in the Cloud API emulation, over real HTTP.

Meta publishes no official Python client for the Cloud API, so requests follow its public
reference: ``/{version}/{waba-id}/message_templates`` and ``/{version}/{phone-number-id}/
messages`` with ``type: template``, bearer tokens, and Graph's error envelope with the
Cloud API's ``error_data.details``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from omnicanal.channels.whatsapp import API_VERSION, SANDBOX_ACCESS_TOKEN
from omnicanal.channels.whatsapp.emulation import WhatsAppEmulator, phone_problem
from omnicanal.channels.whatsapp.world import PHONE_NUMBER_ID, WABA_ID
from omnicanal.sandbox import SandboxServer, generate_world

AS_OF = datetime(2025, 6, 1, 15, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}"}
TEMPLATES = f"/{API_VERSION}/{WABA_ID}/message_templates"
MESSAGES = f"/{API_VERSION}/{PHONE_NUMBER_ID}/messages"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    options = {"whatsapp": {"pair_interval": 1.0, "throughput": 5}}
    with SandboxServer(generate_world(80, 20250601, as_of=AS_OF), **options) as server:
        yield server


@pytest.fixture
def emulator(sandbox: SandboxServer) -> WhatsAppEmulator:
    return sandbox.app.state.emulators["whatsapp"]


_people = iter(range(80))


def fresh_number(emulator: WhatsAppEmulator) -> tuple[str, str]:
    """A person not messaged yet in this module: their phone and their wa_id."""
    person = emulator.world.people[next(_people)]
    wa_id = next((w for w, p in emulator.accounts.items() if p == person.person_id), None)
    if wa_id is None:
        return fresh_number(emulator)
    return person.phone, wa_id


def template_message(to: str, name: str = "carrinho_abandonado", language: str = "pt_BR", **kw):
    parameters = kw.pop(
        "parameters",
        [
            {"type": "text", "parameter_name": "first_name", "text": "Ana"},
            {"type": "text", "parameter_name": "cart_total", "text": "189,90"},
            {"type": "text", "parameter_name": "checkout_url", "text": "https://s/1"},
        ],
    )
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {
            "name": name,
            "language": {"code": language},
            "components": [{"type": "body", "parameters": parameters}],
        },
        **kw,
    }


def post(sandbox: SandboxServer, path: str, body: object) -> httpx.Response:
    return httpx.post(f"{sandbox.url}{path}", json=body, headers=AUTH)


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], int) and error["fbtrace_id"] and error["type"]
    return error


# --- the template library ---------------------------------------------------------------


def test_templates_are_listed_filtered_and_paged(sandbox: SandboxServer) -> None:
    listed = httpx.get(f"{sandbox.url}{TEMPLATES}", headers=AUTH).json()
    names = {(t["name"], t["language"], t["status"]) for t in listed["data"]}
    assert ("carrinho_abandonado", "pt_BR", "APPROVED") in names
    assert ("hello_world", "en_US", "APPROVED") in names
    assert ("black_friday_2026", "pt_BR", "PENDING") in names
    one = httpx.get(
        f"{sandbox.url}{TEMPLATES}",
        params={"name": "carrinho", "fields": "name,status,components"},
        headers=AUTH,
    ).json()["data"]
    assert [t["name"] for t in one] == ["carrinho_abandonado"]
    assert set(one[0]) == {"name", "status", "components", "id"}
    body = one[0]["components"][0]
    assert body["type"] == "BODY" and "{{first_name}}" in body["text"]
    page = httpx.get(f"{sandbox.url}{TEMPLATES}", params={"limit": 2}, headers=AUTH).json()
    assert len(page["data"]) == 2 and page["paging"]["next"]
    nxt = httpx.get(
        f"{sandbox.url}{TEMPLATES}",
        params={"limit": 2, "after": page["paging"]["cursors"]["after"]},
        headers=AUTH,
    ).json()
    assert {t["id"] for t in nxt["data"]}.isdisjoint({t["id"] for t in page["data"]})
    assert httpx.get(f"{sandbox.url}{TEMPLATES}").status_code == 401


def test_creating_a_template_validates_as_graph_does(sandbox: SandboxServer) -> None:
    good = {
        "name": "pedido_enviado",
        "language": "pt_BR",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": "Olá {{1}}, seu pedido {{2}} foi enviado.",
                "example": {"body_text": [["Ana", "#1043"]]},
            }
        ],
    }
    created = post(sandbox, TEMPLATES, good)
    assert created.status_code == 200, created.text
    assert created.json()["status"] == "APPROVED" and created.json()["category"] == "UTILITY"
    again = post(sandbox, TEMPLATES, good)
    assert again.status_code == 400 and error_of(again)["error_subcode"] == 2388024
    no_example = {**good, "name": "sem_exemplo", "components": [{"type": "BODY", "text": "{{1}}"}]}
    assert error_of(post(sandbox, TEMPLATES, no_example))["error_subcode"] == 2388043
    gap = {
        **good,
        "name": "com_lacuna",
        "components": [
            {"type": "BODY", "text": "{{1}} e {{3}}", "example": {"body_text": [["a", "b"]]}}
        ],
    }
    assert error_of(post(sandbox, TEMPLATES, gap))["error_subcode"] == 2388299
    for bad in (
        {**good, "name": "Com Maiusculas"},
        {**good, "category": "PROMO"},
        {**good, "language": "portuguese"},
    ):
        answer = post(sandbox, TEMPLATES, bad)
        assert answer.status_code == 400 and error_of(answer)["code"] == 100


# --- sending templates ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"name": "nao_existe"}, 404, 132001),
        ({"language": "en_US"}, 404, 132001),  # exists, not in that language
        ({"name": "black_friday_2026"}, 404, 132001),  # pending review
        ({"name": "ultima_chance"}, 404, 132001),  # rejected
        ({"name": "volte_sempre"}, 400, 132015),  # paused
    ],
)
def test_a_template_that_cannot_be_sent_is_refused_with_metas_code(
    sandbox, emulator, change, status, code
) -> None:
    before = len(emulator.sent)
    to, _ = fresh_number(emulator)
    parameters = [{"type": "text", "text": "Ana"}]
    answer = post(sandbox, MESSAGES, template_message(to, parameters=parameters, **change))
    assert answer.status_code == status, answer.text
    error = error_of(answer)
    assert error["code"] == code and f"(#{code})" in error["message"]
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert len(emulator.sent) == before


def test_parameters_must_be_the_templates_variables(sandbox, emulator) -> None:
    to, _ = fresh_number(emulator)
    two = [
        {"type": "text", "parameter_name": "first_name", "text": "Ana"},
        {"type": "text", "parameter_name": "cart_total", "text": "189,90"},
    ]
    short = error_of(post(sandbox, MESSAGES, template_message(to, parameters=two)))
    assert short["code"] == 132000 and "(2)" in short["error_data"]["details"]
    renamed = [*two, {"type": "text", "parameter_name": "link", "text": "https://s/1"}]
    assert (
        error_of(post(sandbox, MESSAGES, template_message(to, parameters=renamed)))["code"]
        == 132000
    )
    newline = [*two[:1], {"type": "text", "parameter_name": "cart_total", "text": "1\n2"}]
    newline.append({"type": "text", "parameter_name": "checkout_url", "text": "https://s"})
    assert (
        error_of(post(sandbox, MESSAGES, template_message(to, parameters=newline)))["code"]
        == 132018
    )
    positional = template_message(to, name="abandoned_cart", language="en_US", parameters=[])
    assert error_of(post(sandbox, MESSAGES, positional))["code"] == 132000


def test_brazilian_numbers_with_or_without_the_ninth_digit_reach_one_account(
    sandbox, emulator
) -> None:
    phone, wa_id = fresh_number(emulator)
    digits = phone.removeprefix("+")
    other_form = digits[:4] + digits[5:] if len(wa_id) == 13 else digits
    answer = post(sandbox, MESSAGES, template_message(f"+{other_form}"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # WhatsApp answers with the account's own wa_id, whatever form was sent
    assert body["contacts"] == [{"input": f"+{other_form}", "wa_id": wa_id}]
    assert body["messages"][0]["id"].startswith("wamid.")
    assert body["messages"][0]["message_status"] == "accepted"


@pytest.mark.parametrize(
    ("to", "reason"),
    [
        ("+55 (11) 98765-4321x", "characters"),
        ("+55 01 98765-4321", "area code"),
        ("+55 11 88765-4321", "starts with 9"),
        ("+55 11 1234-5678", "8 or 9 digits"),
        ("1234", "international"),
    ],
)
def test_numbers_that_are_no_phone_are_refused(sandbox, emulator, to, reason) -> None:
    answer = post(sandbox, MESSAGES, template_message(to))
    assert answer.status_code == 400
    error = error_of(answer)
    assert error["code"] == 100 and reason in error["error_data"]["details"]
    assert phone_problem(to) is not None
    assert phone_problem("+55 11 98765-4321") is None and phone_problem("551187654321") is None


def test_the_pair_rate_limit_refuses_a_second_message_to_one_user_too_soon(
    sandbox, emulator
) -> None:
    phone, wa_id = fresh_number(emulator)
    assert post(sandbox, MESSAGES, template_message(phone)).status_code == 200
    too_soon = post(sandbox, MESSAGES, template_message(wa_id))  # the same account
    assert too_soon.status_code == 400
    assert error_of(too_soon)["code"] == 131056
    other, _ = fresh_number(emulator)
    assert post(sandbox, MESSAGES, template_message(other)).status_code == 200


def test_throughput_beyond_the_numbers_rate_is_130429(sandbox, emulator) -> None:
    emulator.throughput = 2  # messages a second; a full second's burst is allowed
    emulator._bucket = (2.0, time.monotonic())
    codes = []
    try:
        for _ in range(10):
            to, _ = fresh_number(emulator)
            answer = post(sandbox, MESSAGES, template_message(to))
            codes.append(200 if answer.status_code == 200 else error_of(answer)["code"])
            if answer.status_code != 200:
                assert answer.status_code == 429
    finally:
        emulator.throughput = 5
    assert codes[:2] == [200, 200] and codes.count(130429) >= 5, codes


def test_statuses_carry_the_callback_data_and_a_number_off_whatsapp_fails(
    sandbox, emulator
) -> None:
    time.sleep(1.0)  # the throughput test drained the bucket
    on, wa_id = fresh_number(emulator)
    off = "+5511987650000"  # a valid number with no WhatsApp account
    assert emulator._resolve(off) is None
    for to, key in ((on, "k-on"), (off, "k-off")):
        answer = post(sandbox, MESSAGES, template_message(to, biz_opaque_callback_data=key))
        assert answer.status_code == 200, answer.text
    queued = [
        status
        for note in list(emulator._pending)
        for status in json.loads(note.body)["entry"][0]["changes"][0]["value"].get("statuses", [])
    ]
    mine = {s["status"]: s for s in queued if s.get("biz_opaque_callback_data") == "k-on"}
    assert {"sent", "delivered"} <= set(mine)
    assert (
        mine["sent"]["pricing"]["category"] == "marketing" and mine["sent"]["recipient_id"] == wa_id
    )
    failed = [s for s in queued if s.get("biz_opaque_callback_data") == "k-off"]
    assert [s["status"] for s in failed] == ["failed"]
    assert failed[0]["errors"][0]["code"] == 131026
    sent = {m["biz_opaque_callback_data"]: m for m in emulator.templates_sent()}
    assert sent["k-on"]["parameters"]["first_name"] == "Ana"
    over_http = httpx.get(f"{sandbox.url}/_sandbox/whatsapp/sent").json()["templates"]
    assert {m["biz_opaque_callback_data"] for m in over_http} >= {"k-on", "k-off"}


def test_a_template_meta_disables_is_refused_until_approved_again(sandbox, emulator) -> None:
    knob = f"{sandbox.url}/_sandbox/whatsapp/template_status"
    survey = {"name": "pesquisa_pos_compra", "language": "pt_BR"}
    parameters = [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#1043"}]
    to, _ = fresh_number(emulator)
    assert httpx.post(knob, json={**survey, "status": "DISABLED"}).json()["status"] == "DISABLED"
    try:
        refused = post(
            sandbox, MESSAGES, template_message(to, name=survey["name"], parameters=parameters)
        )
        assert refused.status_code == 400 and error_of(refused)["code"] == 132016
    finally:
        httpx.post(knob, json={**survey, "status": "APPROVED"})
    time.sleep(0.5)  # the throughput test's bucket
    accepted = post(
        sandbox, MESSAGES, template_message(to, name=survey["name"], parameters=parameters)
    )
    assert accepted.status_code == 200, accepted.text
