"""The Zendesk Support resources this tap reads, and how each one is synced.

- ``tickets``: ``GET /api/v2/incremental/tickets/cursor.json``, the cursor-based
  incremental export. The first sync starts at ``start_date`` (``start_time``); every
  page's ``after_cursor`` is kept in the stream's state (``after_cursor``) once its
  records are out, and the next sync, or a resumed one, continues from it: Zendesk's
  cursor carries the position, so nothing is read twice and nothing is missed;
- ``users``: ``GET /api/v2/incremental/users/cursor.json``, the same way (agents and
  requesters alike; ``role`` tells them apart);
- ``ticket_comments``: ``GET /api/v2/tickets/{id}/comments.json`` for each ticket the
  tickets export brought (new or changed), cursor-paged, with each comment's
  ``via.channel``;
- ``ticket_metrics``: ``GET /api/v2/ticket_metrics.json``, cursor-paged; the list has no
  time filter, so every page is read and only records updated at or after the bookmark
  are emitted;
- ``satisfaction_ratings``: ``GET /api/v2/satisfaction_ratings.json`` from
  ``start_date`` (``start_time``), cursor-paged, emitted like metrics.

Both exports count against Zendesk's 10 requests a minute: they wait for the tap's
shared pacer (see ``client.py``).
"""

from __future__ import annotations

import datetime as dt
import typing as t
from http import HTTPStatus

import requests
from singer_sdk import StreamSchema
from singer_sdk.helpers.jsonpath import extract_jsonpath

from tap_zendesk.client import (
    MAX_EXPORT_PAGE_SIZE,
    SCHEMAS_DIR,
    BodyPaginator,
    CursorListStream,
    PacedExport,
    ZendeskStream,
)

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record

#: The state key that holds an export's cursor.
CURSOR_KEY = "after_cursor"


def _epoch(value: str | dt.datetime) -> int:
    moment = (
        value
        if isinstance(value, dt.datetime)
        else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


class _ExportStream(PacedExport, ZendeskStream):
    """A cursor-based incremental export; its bookmark is the export's ``after_cursor``."""

    replication_key = "updated_at"
    #: Ordered by ``generated_timestamp``, which ``updated_at`` need not follow.
    is_sorted = False
    resource: t.ClassVar[str]

    @property
    def path(self) -> str:  # type: ignore[override]
        return f"/api/v2/incremental/{self.resource}/cursor.json"

    def get_new_paginator(self) -> BodyPaginator:
        def next_token(body: t.Any) -> str | None:
            if not isinstance(body, dict) or body.get("end_of_stream", True):
                return None
            return body.get("after_cursor")

        return BodyPaginator(next_token)

    def get_url_params(self, context: Context | None, next_page_token: str | None) -> dict:
        params: dict[str, t.Any] = {
            "per_page": self.config.get("export_page_size", MAX_EXPORT_PAGE_SIZE)
        }
        cursor = next_page_token or self.get_context_state(context).get(CURSOR_KEY)
        if cursor:
            params["cursor"] = cursor
        else:
            start = self.get_starting_timestamp(context) or self.config.get("start_date")
            params["start_time"] = _epoch(start) if start else 0
        return params

    def validate_response(self, response: requests.Response) -> None:
        """A ``start_time`` inside the last minute is "nothing new yet", not a failure."""
        if (
            response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
            and "Too recent start_time" in response.text
        ):
            return
        super().validate_response(response)

    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        """The page's records; once they are all out, the page's cursor is the bookmark."""
        body = response.json()
        if not isinstance(body, dict):
            return
        yield from extract_jsonpath(self.records_jsonpath, input=body)
        if body.get("after_cursor"):
            self.stream_state[CURSOR_KEY] = body["after_cursor"]


class TicketsStream(_ExportStream):
    """Tickets: subject, status, requester, assignee, the channel they came through
    (``via.channel``: email, web, whatsapp, instagram_dm...) and the CSAT summary."""

    name = "tickets"
    resource = "tickets"
    records_key = "tickets"
    schema = StreamSchema(SCHEMAS_DIR)

    def get_child_context(self, record: Record, context: Context | None) -> dict:
        return {"ticket_id": record["id"]}


class UsersStream(_ExportStream):
    """Users: requesters (``end-user``: name, email, phone as they wrote in) and staff."""

    name = "users"
    resource = "users"
    records_key = "users"
    schema = StreamSchema(SCHEMAS_DIR)


class TicketCommentsStream(CursorListStream):
    """Every comment of a new or changed ticket, with its author, visibility and channel."""

    name = "ticket_comments"
    path = "/api/v2/tickets/{ticket_id}/comments.json"
    records_key = "comments"
    parent_stream_type = TicketsStream
    #: One bookmark for the stream, not one per ticket (the parent decides what to read).
    state_partitioning_keys: t.ClassVar[list[str]] = []
    schema = StreamSchema(SCHEMAS_DIR)

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        assert context is not None
        row["ticket_id"] = context["ticket_id"]
        return row


class _ChangedSinceBookmark(CursorListStream):
    """A list without a time filter: read in full, emit what changed since the bookmark."""

    replication_key = "updated_at"
    is_sorted = False

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        start = self.get_starting_timestamp(context)
        if start is not None and _epoch(row["updated_at"]) < _epoch(start):
            return None
        return row


class TicketMetricsStream(_ChangedSinceBookmark):
    """Per ticket: first reply, first and full resolution, wait times (calendar and
    business minutes), reopens, replies, when it was solved."""

    name = "ticket_metrics"
    path = "/api/v2/ticket_metrics.json"
    records_key = "ticket_metrics"
    schema = StreamSchema(SCHEMAS_DIR)


class SatisfactionRatingsStream(_ChangedSinceBookmark):
    """CSAT: offered surveys and the requesters' ``good``/``bad`` answers, comments, reasons."""

    name = "satisfaction_ratings"
    path = "/api/v2/satisfaction_ratings.json"
    records_key = "satisfaction_ratings"
    schema = StreamSchema(SCHEMAS_DIR)

    def get_url_params(self, context: Context | None, next_page_token: str | None) -> dict:
        params = super().get_url_params(context, next_page_token)
        if start := self.config.get("start_date"):
            params["start_time"] = _epoch(start)
        return params
