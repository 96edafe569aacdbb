"""How a signed body splits into events, and where a malformed one is wrong."""

from __future__ import annotations

import json

import pytest

from omnicanal.webhooks.payload import Malformed, sign, signature_valid, split_events


def body(*changes: dict) -> bytes:
    return json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": list(changes)}]}
    ).encode()


def messages(value: dict) -> dict:
    return {"field": "messages", "value": value}


def test_signature_is_the_hmac_of_the_raw_body() -> None:
    raw = b'{"entry": []}'
    header = sign("app-secret", raw)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert signature_valid("app-secret", raw, header)
    assert signature_valid("app-secret", raw, f"  {header.upper().replace('SHA256', 'sha256')} ")
    assert not signature_valid("app-secret", raw + b" ", header)
    assert not signature_valid("other-secret", raw, header)
    assert not signature_valid("app-secret", raw, header.removeprefix("sha256="))
    assert not signature_valid("app-secret", raw, None)
    assert not signature_valid("app-secret", raw, "sha256=ünïcode")


def test_one_event_per_message_and_status_in_order_across_changes() -> None:
    events = split_events(
        body(
            messages({"messages": [{"id": "wamid.1"}, {"id": "wamid.2"}]}),
            messages({"statuses": [{"id": "wamid.0", "status": "sent", "timestamp": 17}]}),
        )
    )
    assert [(e.event_id, e.kind) for e in events] == [
        ("wamid.1", "message"),
        ("wamid.2", "message"),
        ("wamid.0:sent:17", "status"),
    ]
    assert events[0].metadata == "{}" and events[0].contacts == "[]"


def test_one_event_per_user_preference() -> None:
    """Meta's user_preferences change: each stop or resume is an event, its id the
    user, category, value and (integer) timestamp, so a redelivery is the same event."""
    contacts = [{"profile": {"name": "Nanda"}, "wa_id": "5511987654321"}]
    preferences = [
        {
            "wa_id": "5511987654321",
            "detail": "User requested to stop marketing messages",
            "category": "marketing_messages",
            "value": "stop",
            "timestamp": 1731705721,
        }
    ]
    change = {
        "field": "user_preferences",
        "value": {"messaging_product": "whatsapp", "contacts": contacts,
                  "user_preferences": preferences},
    }  # fmt: skip
    (event,) = split_events(body(change))
    assert event.kind == "user_preference" and event.field == "user_preferences"
    assert event.event_id == "5511987654321:marketing_messages:stop:1731705721"
    assert json.loads(event.event) == preferences[0]
    assert json.loads(event.contacts) == contacts
    assert split_events(body(change)) == [event]
    bad = {**change, "value": {"user_preferences": [{**preferences[0], "value": ""}]}}
    with pytest.raises(Malformed) as refused:
        split_events(body(bad))
    assert refused.value.reason == "entry[0].changes[0].value.user_preferences[0] has no value"


def test_an_errors_only_change_is_an_other_event() -> None:
    (event,) = split_events(body(messages({"errors": [{"code": 131047}]})))
    assert event.kind == "other" and len(event.event_id) == 64


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("x", "entry[0].changes[0] is not an object"),
        ({"value": {}}, "entry[0].changes[0] has no field"),
        ({"field": "messages", "value": []}, "entry[0].changes[0].value is not an object"),
        (messages({"metadata": []}), "entry[0].changes[0].value.metadata is not an object"),
        (messages({"contacts": {}}), "entry[0].changes[0].value.contacts is not a list"),
        (messages({"messages": {}}), "entry[0].changes[0].value.messages is not a list"),
        (
            messages({"messages": [{"id": "a"}, 3]}),
            "entry[0].changes[0].value.messages[1] is not an object",
        ),
        (messages({"messages": [{"id": ""}]}), "entry[0].changes[0].value.messages[0] has no id"),
        (
            messages({"statuses": [{"id": "a", "status": "read"}]}),
            "entry[0].changes[0].value.statuses[0] has no timestamp",
        ),
    ],
)
def test_malformed_parts_are_named(change, reason) -> None:
    with pytest.raises(Malformed) as bad:
        split_events(body(change))
    assert bad.value.reason == reason


def test_malformed_bodies_are_named() -> None:
    for raw, reason in (
        (b"\xff\xfe", "body is not JSON"),
        (b"null", "body is not a JSON object"),
        (b'{"entry": {}}', "body has no entry[] list"),
        (b'{"entry": []}', "entry[] is empty"),
        (b'{"entry": [{"changes": []}]}', "entry[0] has no changes[] list"),
    ):
        with pytest.raises(Malformed) as bad:
            split_events(raw)
        assert bad.value.reason.startswith(reason)
