"""The receiver over real HTTP, as Meta and the channel's tap meet it."""

from __future__ import annotations

import hashlib
import json

import httpx

from webhooks.conftest import (
    APP_SECRET,
    READ_TOKEN,
    VERIFY_TOKEN,
    Receiver,
    delivery,
)


def handshake(rx: Receiver, token: str, mode: str = "subscribe", channel: str = "whatsapp"):
    return rx.client.get(
        f"/webhooks/{channel}",
        params={"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "1158201444"},
    )


def test_verification_handshake_echoes_the_challenge(receiver: Receiver) -> None:
    answer = handshake(receiver, VERIFY_TOKEN)
    assert answer.status_code == 200
    assert answer.text == "1158201444"
    assert answer.headers["content-type"].startswith("text/plain")


def test_verification_refuses_a_wrong_token_or_mode(receiver: Receiver) -> None:
    assert handshake(receiver, "not-the-token").status_code == 403
    assert handshake(receiver, VERIFY_TOKEN[:-1]).status_code == 403
    assert handshake(receiver, VERIFY_TOKEN, mode="unsubscribe").status_code == 403
    assert handshake(receiver, VERIFY_TOKEN, channel="telegram").status_code == 404


def test_signed_delivery_is_stored_with_its_parts(receiver: Receiver) -> None:
    body = delivery("wamid.A1", "wamid.A2", statuses=(("wamid.O9", "read", "1764000100"),))
    answer = receiver.post(body)
    assert answer.status_code == 200
    assert answer.json() == {"received": 3, "stored": 3, "duplicates": 0}
    events = receiver.all_events()
    assert [(e["event_id"], e["kind"]) for e in events] == [
        ("wamid.A1", "message"),
        ("wamid.A2", "message"),
        ("wamid.O9:read:1764000100", "status"),
    ]
    sent = json.loads(body)["entry"][0]["changes"][0]["value"]
    first = events[0]
    assert first["field"] == "messages"
    assert first["metadata"] == sent["metadata"]
    assert first["contacts"] == sent["contacts"]  # wa_id as sent, accents intact
    assert first["event"] == sent["messages"][0]
    assert events[2]["event"] == sent["statuses"][0]
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})
    assert first["received_at"].endswith("Z")


def test_other_change_fields_get_the_hash_of_the_change(receiver: Receiver) -> None:
    change = {
        "field": "message_template_status_update",
        "value": {"event": "APPROVED", "message_template_id": 12, "reason": "NONE"},
    }
    body = json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"id": "1022", "changes": [change]}]}
    ).encode()
    assert receiver.post(body).status_code == 200
    (event,) = receiver.all_events()
    digest = hashlib.sha256(
        json.dumps(change, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert (event["event_id"], event["kind"]) == (digest, "other")
    assert event["field"] == "message_template_status_update"
    assert event["event"] == change["value"]


def test_unsigned_or_wrongly_signed_deliveries_get_401_and_are_stored_nowhere(
    receiver: Receiver,
) -> None:
    body = delivery("wamid.B1")
    assert receiver.post(body, secret=None).status_code == 401
    assert receiver.post(body, secret="another-app-secret").status_code == 401
    assert receiver.post(body, secret=None, **{"X-Hub-Signature-256": "sha256="}).status_code == 401
    tampered = body.replace(b"wamid.B1", b"wamid.B2")
    signature = receiver.post(body).request.headers["X-Hub-Signature-256"]  # stores B1
    forged = receiver.post(tampered, secret=None, **{"X-Hub-Signature-256": signature})
    assert forged.status_code == 401
    # A signed body that is not even JSON would be quarantined; unsigned, it is not.
    assert receiver.post(b"{not json", secret=None).status_code == 401
    assert [e["event_id"] for e in receiver.all_events()] == ["wamid.B1"]
    assert receiver.quarantine() == []


def test_the_signature_is_checked_per_channel_and_case_of_hex_does_not_matter(
    receiver: Receiver,
) -> None:
    body = delivery("wamid.C1")
    upper = receiver.post(body, secret=None, **{"X-Hub-Signature-256": _upper(body)})
    assert upper.status_code == 200
    assert receiver.client.post("/webhooks/telegram", content=body).status_code == 404


def _upper(body: bytes) -> str:
    from omnicanal.webhooks.payload import sign

    return "sha256=" + sign(APP_SECRET, body).removeprefix("sha256=").upper()


def test_a_duplicate_delivery_is_stored_once(receiver: Receiver) -> None:
    body = delivery("wamid.D1", statuses=(("wamid.D0", "delivered", "1764000200"),))
    assert receiver.post(body).json() == {"received": 2, "stored": 2, "duplicates": 0}
    assert receiver.post(body).json() == {"received": 2, "stored": 0, "duplicates": 2}
    # A retry that batches a stored message with a new one stores the new one only;
    # the same message's next status is a new event.
    again = delivery("wamid.D1", "wamid.D2", statuses=(("wamid.D0", "read", "1764000300"),))
    assert receiver.post(again).json() == {"received": 3, "stored": 2, "duplicates": 1}
    ids = [e["event_id"] for e in receiver.all_events()]
    assert ids == [
        "wamid.D1",
        "wamid.D0:delivered:1764000200",
        "wamid.D2",
        "wamid.D0:read:1764000300",
    ]


def test_malformed_signed_bodies_are_quarantined_with_their_reason(receiver: Receiver) -> None:
    no_id = json.loads(delivery("wamid.E1"))
    del no_id["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    cases = {
        b"{not json": "body is not JSON",
        b"[1, 2]": "body is not a JSON object",
        b'{"object": "whatsapp_business_account"}': "body has no entry[] list",
        json.dumps(no_id).encode(): "entry[0].changes[0].value.messages[0] has no id",
    }
    for body in cases:
        answer = receiver.post(body)
        assert answer.status_code == 200, body  # Meta would retry a non-200 for days
        assert answer.json()["quarantined"] is True
    kept = receiver.quarantine()
    assert [q["body"].encode() for q in kept] == list(cases)
    for q, reason in zip(kept, cases.values(), strict=True):
        assert q["reason"].startswith(reason)
    assert receiver.all_events() == []  # a half-valid body is not half stored


def test_read_api_pages_by_seq(receiver: Receiver) -> None:
    ids = [f"wamid.F{i:02d}" for i in range(25)]
    for chunk in (ids[:10], ids[10:20], ids[20:]):
        receiver.post(delivery(*chunk))
    first = receiver.events(limit=10).json()
    assert [e["event_id"] for e in first["data"]] == ids[:10]
    assert first["next_after"] == first["data"][-1]["seq"]
    second = receiver.events(first["next_after"], limit=10).json()
    assert [e["event_id"] for e in second["data"]] == ids[10:20]
    last = receiver.events(second["next_after"], limit=10).json()
    assert [e["event_id"] for e in last["data"]] == ids[20:]
    assert last["next_after"] is None  # caught up
    caught_up = receiver.events(last["data"][-1]["seq"]).json()
    assert caught_up == {"data": [], "next_after": None}
    receiver.post(delivery("wamid.F99"))
    newer = receiver.events(last["data"][-1]["seq"]).json()["data"]
    assert [e["event_id"] for e in newer] == ["wamid.F99"]
    assert len(receiver.events().json()["data"]) == 26  # default limit 1000


def test_read_api_needs_the_bearer_token_and_sane_paging(receiver: Receiver) -> None:
    receiver.post(delivery("wamid.G1"))
    assert receiver.events(token="wrong").status_code == 401
    assert receiver.client.get("/events/whatsapp").status_code == 401
    assert (
        receiver.client.get(
            "/events/whatsapp/quarantine", headers={"Authorization": "Bearer nope"}
        ).status_code
        == 401
    )
    assert receiver.events(limit=10_001).status_code == 400
    assert (
        receiver.client.get(
            "/events/whatsapp",
            params={"after": "x"},
            headers={"Authorization": f"Bearer {READ_TOKEN}"},
        ).status_code
        == 400
    )
    assert (
        receiver.client.get(
            "/events/telegram", headers={"Authorization": f"Bearer {READ_TOKEN}"}
        ).status_code
        == 404
    )
    assert receiver.events().status_code == 200


def test_secrets_never_reach_the_log(receiver: Receiver, tmp_path) -> None:
    handshake(receiver, VERIFY_TOKEN)
    handshake(receiver, "attempted-token-123")
    receiver.post(delivery("wamid.H1"), secret="forged-secret-456")
    receiver.post(b"{oops")
    receiver.events(token="guessed-read-token-789")
    receiver.events()
    receiver.process.terminate()
    log = (tmp_path / "receiver.log").read_text()
    assert "quarantined" in log and "refused" in log  # it does log these
    for secret in (
        APP_SECRET,
        VERIFY_TOKEN,
        READ_TOKEN,
        "attempted-token-123",
        "forged-secret-456",
        "guessed-read-token-789",
    ):
        assert secret not in log


def test_healthz(receiver: Receiver) -> None:
    answer = httpx.get(f"{receiver.process.url}/healthz")
    assert answer.status_code == 200
    assert answer.json()["channels"] == ["whatsapp"]
    assert answer.json()["pid"] == receiver.process.pid


def test_an_oversized_body_is_refused_and_not_stored(receiver: Receiver) -> None:
    from omnicanal.webhooks.app import MAX_BODY_BYTES

    padding = "x" * MAX_BODY_BYTES
    body = delivery("wamid.BIG").replace(b'"oi"', f'"{padding}"'.encode())
    assert receiver.post(body).status_code == 413
    assert receiver.all_events() == [] and receiver.quarantine() == []
