"""The WhatsApp records this tap emits, each read from the receiver's one event log.

- ``messages``: inbound messages (``kind`` ``message``), the Cloud API's message object
  as sent (``from``, ``id``, ``timestamp``, ``type`` and the object of that type), with
  the sender's ``profile_name`` from the notification's ``contacts``;
- ``statuses``: the statuses of the business's messages (sent, delivered, read,
  failed), with ``conversation``, ``pricing`` and ``errors`` as sent;
- ``contacts``: each ``contacts`` entry of a message notification: the ``wa_id`` as
  WhatsApp reports it (often without Brazil's ninth digit) and the profile name the
  person had then, one record per sighting;
- ``user_preferences``: a user stopped or resumed the business's marketing messages
  (``user_preferences`` webhooks): ``wa_id``, ``detail``, ``category``
  (``marketing_messages``), ``value`` (``stop`` or ``resume``) and ``timestamp`` as sent,
  with the user's ``profile_name``.

Every record carries its delivery: the receiver's ``seq`` (the bookmark), ``event_id``,
``received_at`` and the business number's ``phone_number_id``.
"""

from __future__ import annotations

import typing as t

from singer_sdk import StreamSchema

from tap_whatsapp.client import SCHEMAS_DIR, ReceiverStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


def _profile_name(event: dict[str, t.Any], wa_id: str | None) -> str | None:
    for contact in event.get("contacts") or []:
        if contact.get("wa_id") == wa_id:
            return (contact.get("profile") or {}).get("name")
    return None


class MessagesStream(ReceiverStream):
    """Messages people sent to the business number."""

    name = "messages"
    kind = "message"
    primary_keys = ("event_id",)
    schema = StreamSchema(SCHEMAS_DIR)

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        message = row.get("event") or {}
        return {
            **self.envelope(row),
            **message,
            "profile_name": _profile_name(row, message.get("from")),
        }


class StatusesStream(ReceiverStream):
    """What became of the business's messages: sent, delivered, read or failed."""

    name = "statuses"
    kind = "status"
    primary_keys = ("event_id",)
    schema = StreamSchema(SCHEMAS_DIR)

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        return {**self.envelope(row), **(row.get("event") or {})}


class ContactsStream(ReceiverStream):
    """Who wrote: each ``contacts`` entry of a message notification."""

    name = "contacts"
    kind = "message"
    primary_keys = ("event_id", "wa_id")
    schema = StreamSchema(SCHEMAS_DIR)

    def parse_response(self, response) -> t.Iterable[dict]:
        for event in super().parse_response(response):
            message = event.get("event") or {}
            for contact in event.get("contacts") or []:
                yield {
                    **self.envelope(event),
                    "wa_id": contact.get("wa_id"),
                    "profile_name": (contact.get("profile") or {}).get("name"),
                    "message_id": message.get("id"),
                    "timestamp": message.get("timestamp"),
                }


class UserPreferencesStream(ReceiverStream):
    """Who stopped or resumed the business's marketing messages, and when."""

    name = "user_preferences"
    kind = "user_preference"
    primary_keys = ("event_id",)
    schema = StreamSchema(SCHEMAS_DIR)

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        preference = row.get("event") or {}
        return {
            **self.envelope(row),
            **preference,
            "profile_name": _profile_name(row, preference.get("wa_id")),
        }
