"""What a Meta webhook delivery is: its signature, and the events its body holds.

Meta signs each POST with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw
body, keyed with the app secret>`` and sends a JSON body::

    {"object": "whatsapp_business_account",
     "entry": [{"id": "<WABA id>",
                "changes": [{"field": "messages",
                             "value": {"messaging_product": "whatsapp",
                                       "metadata": {...}, "contacts": [...],
                                       "messages": [...], "statuses": [...]}}]}]}

A ``user_preferences`` change (a WhatsApp user stopped or resumed the business's
marketing messages) carries ``value.user_preferences: [{"wa_id", "detail", "category":
"marketing_messages", "value": "stop" | "resume", "timestamp": <Unix seconds, an
integer>}]`` beside ``metadata`` and ``contacts``.

One body may batch several entries, changes, messages and statuses, and Meta delivers
the same one again when it saw no 200 in time, so the receiver splits a body into
events with stable ids: a message's ``id`` (``wamid.…``), ``<id>:<status>:<timestamp>``
for a status, ``<wa_id>:<category>:<value>:<timestamp>`` for a user preference, and the
SHA-256 of the change for any other change. A body that cannot
be split (not JSON, no ``entry[]``, a message without an id) is :class:`Malformed`: it is
kept whole in quarantine, never half-stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Literal

SIGNATURE_HEADER = "x-hub-signature-256"

Kind = Literal["message", "status", "user_preference", "other"]


def sign(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(app_secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` signs ``body`` with ``app_secret``, compared in constant time."""
    if not header:
        return False
    expected = sign(app_secret, body).encode()
    return hmac.compare_digest(expected, header.strip().lower().encode("latin-1", "replace"))


#: One encoder for every event (``json.dumps`` with options builds a new one per call).
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


@dataclass(frozen=True)
class Event:
    """One event of a delivery, ready to store: its JSON parts are compact JSON text."""

    event_id: str
    kind: Kind
    field: str
    metadata: str
    contacts: str
    event: str


class Malformed(ValueError):
    """A signed body that is not a Meta webhook payload; ``reason`` says where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def split_events(body: bytes) -> list[Event]:
    """The events of a delivery body, in the order sent; :class:`Malformed` if it has none.

    Every part is checked before any event is returned, so a body is either wholly
    events or wholly quarantined. (Paths for the reasons are only built on failure: this
    runs for every delivery.)
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Malformed("body is not a JSON object")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise Malformed("body has no entry[] list")
    if not entries:
        raise Malformed("entry[] is empty")
    events: list[Event] = []
    for e, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise Malformed(f"entry[{e}] is not an object")
        changes = entry.get("changes")
        if not isinstance(changes, list) or not changes:
            raise Malformed(f"entry[{e}] has no changes[] list")
        for c, change in enumerate(changes):
            events.extend(_change_events(change, e, c))
    return events


def _change_events(change: Any, e: int, c: int) -> list[Event]:
    def bad(what: str) -> Malformed:
        return Malformed(f"entry[{e}].changes[{c}]{what}")

    if not isinstance(change, dict):
        raise bad(" is not an object")
    field = change.get("field")
    value = change.get("value")
    if not _nonempty_str(field):
        raise bad(" has no field")
    if not isinstance(value, dict):
        raise bad(".value is not an object")
    metadata = value.get("metadata", {})
    contacts = value.get("contacts", [])
    messages = value.get("messages", [])
    statuses = value.get("statuses", [])
    preferences = value.get("user_preferences", [])
    for name, part, kind in (
        ("metadata", metadata, dict),
        ("contacts", contacts, list),
        ("messages", messages, list),
        ("statuses", statuses, list),
        ("user_preferences", preferences, list),
    ):
        if not isinstance(part, kind):
            raise bad(f".value.{name} is not {'an object' if kind is dict else 'a list'}")
    meta, people = _compact(metadata), _compact(contacts)
    if not messages and not statuses and not preferences:
        digest = hashlib.sha256(_canonical(change).encode()).hexdigest()
        return [Event(digest, "other", field, meta, people, _compact(value))]
    events = []
    for m, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad(f".value.messages[{m}] is not an object")
        message_id = message.get("id")
        if not _nonempty_str(message_id):
            raise bad(f".value.messages[{m}] has no id")
        events.append(Event(message_id, "message", field, meta, people, _compact(message)))
    for n, status in enumerate(statuses):
        if not isinstance(status, dict):
            raise bad(f".value.statuses[{n}] is not an object")
        for key in ("id", "status", "timestamp"):
            part = status.get(key)
            if not (_nonempty_str(part) or type(part) is int):
                raise bad(f".value.statuses[{n}] has no {key}")
        event_id = f"{status['id']}:{status['status']}:{status['timestamp']}"
        events.append(Event(event_id, "status", field, meta, people, _compact(status)))
    for n, preference in enumerate(preferences):
        if not isinstance(preference, dict):
            raise bad(f".value.user_preferences[{n}] is not an object")
        for key in ("wa_id", "category", "value", "timestamp"):
            part = preference.get(key)
            if not (_nonempty_str(part) or type(part) is int):
                raise bad(f".value.user_preferences[{n}] has no {key}")
        event_id = ":".join(str(preference[k]) for k in ("wa_id", "category", "value", "timestamp"))
        events.append(Event(event_id, "user_preference", field, meta, people, _compact(preference)))
    return events
