"""The one base stream: pages of the webhook receiver's read API.

WhatsApp pushes messages and statuses by webhook only; omnicanal's receiver stores each
event durably (one per message, one per status) and serves them back in the order it
received them:

- ``GET <receiver_url>/events/<channel>?after=<seq>&limit=<n>`` with
  ``Authorization: Bearer <read_token>``;
- the answer is ``{"data": [{"seq", "event_id", "kind", "received_at", "field",
  "metadata", "contacts", "event"}], "next_after": <seq or null>}``: ``next_after`` is the
  ``after`` of the next page, null once the reader has caught up;
- ``seq`` only grows, so it is the bookmark: each stream keeps the last ``seq`` it
  emitted, and the next sync asks for what came after it. The receiver keeps every
  event, so a sync that failed (the warehouse was down) is replayed from the last
  bookmark the loader committed, and nothing is lost;
- 429 and 5xx, timeouts and refused connections are retried with exponential backoff
  (omnicanal-tapkit's ``PlatformRetries``); a refused token (401) or an unknown channel
  (404) ends the sync with a message naming the setting.

Each stream reads the same log and keeps its own kind of event (``kind`` ``message`` or
``status``), so each has its own bookmark and resumes on its own.
"""

from __future__ import annotations

import typing as t
from functools import cached_property
from http import HTTPStatus
from importlib import resources

import requests
from singer_sdk import RESTStream, SchemaDirectory
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.pagination import JSONPathPaginator

from omnicanal_tapkit import (
    ConformedRecords,
    PlatformFailures,
    PlatformRetries,
    url_without_query,
)
from tap_whatsapp.errors import (
    ReceiverAuthError,
    ReceiverConnectionError,
    ReceiverError,
    ReceiverRetriesExhaustedError,
)

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

SCHEMAS_DIR = SchemaDirectory(resources.files("tap_whatsapp") / "schemas")
DEFAULT_CHANNEL = "whatsapp"
#: The receiver's largest page.
MAX_PAGE_SIZE = 10_000
DEFAULT_PAGE_SIZE = 1000


def receiver_errors(response: requests.Response) -> str:
    """The receiver's ``{"error": ...}`` message, or the start of the raw text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        error = body["error"]
        return error.get("message", str(error)) if isinstance(error, dict) else str(error)
    return response.text.strip()[:300] if response.content else ""


class EventLogPaginator(JSONPathPaginator):
    """``next_after`` until null. A page may hold none of a stream's kind of event (the
    log mixes kinds) while later pages do: an empty page does not end the read."""

    def continue_if_empty(self, response: requests.Response) -> bool:  # noqa: ARG002
        return True


class ReceiverStream(ConformedRecords, PlatformRetries, RESTStream[int]):
    """Events of one kind from ``GET /events/<channel>``, incremental on ``seq``."""

    failures = PlatformFailures(
        platform="the webhook receiver",
        connection_error=ReceiverConnectionError,
        retries_exhausted_error=ReceiverRetriesExhaustedError,
        address_settings="`receiver_url`",
        describe=receiver_errors,
    )

    replication_key = "seq"
    is_sorted = True
    records_jsonpath = "$.data[*]"
    #: The receiver's ``kind`` this stream keeps.
    kind: t.ClassVar[str]

    @property
    def url_base(self) -> str:
        return str(self.config["receiver_url"]).strip().rstrip("/")

    @property
    def path(self) -> str:  # type: ignore[override]
        return f"/events/{self.config.get('channel') or DEFAULT_CHANNEL}"

    @cached_property
    def authenticator(self) -> BearerTokenAuthenticator:
        return BearerTokenAuthenticator(token=self.config["read_token"])

    @cached_property
    def user_agent(self) -> str:
        return self.config.get("user_agent") or "tap-whatsapp-omnicanal (singer-sdk)"

    def get_new_paginator(self) -> JSONPathPaginator:
        """``next_after`` is the next page's ``after``; null: caught up."""
        return EventLogPaginator("$.next_after")

    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict:
        after = next_page_token
        if after is None:
            after = self.get_starting_replication_key_value(context) or 0
        page_size = int(self.config.get("page_size") or DEFAULT_PAGE_SIZE)
        return {"after": int(after), "limit": min(page_size, MAX_PAGE_SIZE)}

    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        for event in super().parse_response(response):
            if event.get("kind") == self.kind:
                yield event

    @staticmethod
    def envelope(event: dict[str, t.Any]) -> dict[str, t.Any]:
        """What every record carries about its delivery."""
        metadata = event.get("metadata") or {}
        return {
            "seq": event["seq"],
            "event_id": event["event_id"],
            "received_at": event.get("received_at"),
            "phone_number_id": metadata.get("phone_number_id"),
            "display_phone_number": metadata.get("display_phone_number"),
        }

    def validate_response(self, response: requests.Response) -> None:
        status = response.status_code
        endpoint = url_without_query(response.url)
        if status == HTTPStatus.UNAUTHORIZED:
            msg = (
                f"The webhook receiver refused the read token (HTTP 401 at {endpoint}: "
                f"{receiver_errors(response)}) — check the `read_token` setting "
                "(OMNICANAL_WEBHOOKS_READ_TOKEN)"
            )
            raise ReceiverAuthError(msg)
        if status == HTTPStatus.NOT_FOUND:
            msg = (
                f"The webhook receiver at {self.url_base} serves no channel at {endpoint} "
                f"({receiver_errors(response)}) — check the `receiver_url` and `channel` "
                "settings"
            )
            raise ReceiverError(msg)
        if (
            HTTPStatus.BAD_REQUEST <= status < HTTPStatus.INTERNAL_SERVER_ERROR
            and status != HTTPStatus.TOO_MANY_REQUESTS
        ):
            msg = (
                f"The webhook receiver answered HTTP {status} for GET {endpoint}: "
                f"{receiver_errors(response)}"
            )
            raise ReceiverError(msg)
        super().validate_response(response)
