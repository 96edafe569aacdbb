"""tap-whatsapp: WhatsApp Business Cloud API webhooks, read back from omnicanal's receiver.

WhatsApp has no API to list messages: they arrive only by webhook. omnicanal's receiver
(``omnicanal webhooks serve``) verifies and stores each notification; this tap reads the
stored events incrementally. Run ``tap-whatsapp --about --format=markdown`` for every
setting.
"""

from __future__ import annotations

import re
import typing as t

from singer_sdk import typing as th

from omnicanal_tapkit import PlatformTap, base_url_errors, request_settings
from tap_whatsapp.client import DEFAULT_CHANNEL, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from tap_whatsapp.errors import ReceiverError
from tap_whatsapp.streams import (
    ContactsStream,
    MessagesStream,
    StatusesStream,
    UserPreferencesStream,
)

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream

STREAM_TYPES: tuple[type[Stream], ...] = (
    MessagesStream,
    StatusesStream,
    ContactsStream,
    UserPreferencesStream,
)
_CHANNEL = re.compile(r"[a-z][a-z0-9_]*")


class TapWhatsApp(PlatformTap):
    """Singer tap for WhatsApp webhook events: messages, statuses, contacts, user
    preferences."""

    name = "tap-whatsapp"
    package_name = "tap-whatsapp-omnicanal"
    known_failures = (ReceiverError,)

    config_jsonschema = th.PropertiesList(
        th.Property(
            "receiver_url",
            th.StringType,
            required=True,
            description=(
                "Base URL of omnicanal's webhook receiver, where Meta posts WhatsApp's "
                "webhooks and this tap reads them back (`GET /events/<channel>`), e.g. "
                "`http://127.0.0.1:8788`."
            ),
            examples=["http://127.0.0.1:8788"],
        ),
        th.Property(
            "read_token",
            th.StringType,
            required=True,
            secret=True,
            description=(
                "Bearer token of the receiver's read API (OMNICANAL_WEBHOOKS_READ_TOKEN). "
                "Never logged."
            ),
        ),
        th.Property(
            "channel",
            th.StringType,
            default=DEFAULT_CHANNEL,
            description=(
                "The receiver's channel holding the WhatsApp events (its "
                "`/webhooks/<channel>` callback). Default: `whatsapp`."
            ),
        ),
        th.Property(
            "phone_number_id",
            th.StringType,
            description=(
                "Graph id of the business phone number, for reference only: every event "
                "the channel received is read, whichever number of the account it is about "
                "(each record carries its `phone_number_id`)."
            ),
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=MAX_PAGE_SIZE),
            default=DEFAULT_PAGE_SIZE,
            description=(
                f"Events per request (`limit`), 1 to {MAX_PAGE_SIZE} (the receiver's "
                "maximum). Keep the default unless testing pagination."
            ),
        ),
        *request_settings(
            user_agent="tap-whatsapp-omnicanal (singer-sdk)",
            retried_after=(
                "HTTP 429 (waiting `Retry-After`), HTTP 5xx, a timeout or a network error "
                "(exponential backoff from 1 s, with jitter)"
            ),
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    @classmethod
    def config_errors(cls, config: t.Mapping[str, t.Any]) -> list[str]:
        """``receiver_url`` is a base URL; ``channel`` a receiver channel name."""
        errors = base_url_errors(
            config.get("receiver_url"),
            example="http://127.0.0.1:8788",
            api_path="events",
            setting="receiver_url",
        )
        channel = config.get("channel")
        if isinstance(channel, str) and not _CHANNEL.fullmatch(channel):
            errors.append(f"`channel` must be a channel name such as whatsapp, got {channel!r}")
        return errors


if __name__ == "__main__":
    TapWhatsApp.cli()
