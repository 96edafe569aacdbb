"""The Mailchimp resources this tap reads, and how each one is synced.

- ``lists``: ``GET /lists``, every audience (full table) but those in
  ``exclude_list_ids``; the parent of ``list_members``;
- ``list_members``: ``GET /lists/{list_id}/members`` per audience, incremental on
  ``last_changed``: ``since_last_changed`` from the audience's bookmark, sorted
  ``sort_field=last_changed&sort_dir=ASC``. Mailchimp's filter is strictly "after" and
  its timestamps whole seconds, so the tap asks from one second before the bookmark
  (the loader upserts the few members read again). Pages move on by keyset as well as
  offset: after each page, ``since_last_changed`` jumps to the page's last
  ``last_changed`` (minus a second) and ``offset`` counts only the members already read
  at that second, so a member edited mid-sync (who moves to the end of the order)
  cannot shift a page over one that was not read yet;
- ``campaigns``: ``GET /campaigns?status=sent`` sent since ``start_date``
  (``since_send_time``), oldest first, full table (their report summary keeps
  changing); the parent of the two report streams;
- ``email_activity``: ``GET /reports/{campaign_id}/email-activity`` per campaign,
  flattened to one row per member action (``open``, ``click``, ``bounce``), plus one
  ``sent`` row per recipient (at the campaign's ``send_time``) when the campaign is read
  for the first time. Incremental per campaign on ``timestamp`` with ``since`` (one
  second before the campaign's bookmark); recipients come in no time order, so the
  bookmark is saved when the campaign's last page is read;
- ``unsubscribes``: ``GET /reports/{campaign_id}/unsubscribed`` per campaign (full: the
  endpoint has no time filter), who left the audience from that campaign, when and why.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from singer_sdk import StreamSchema
from singer_sdk.pagination import BaseAPIPaginator

from tap_mailchimp.client import (
    SCHEMAS_DIR,
    MailchimpStream,
    mailchimp_time,
    parse_time,
    utc_iso,
)

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context, Record

#: Mailchimp timestamps have whole seconds and its ``since_*`` filters are strict.
ONE_SECOND = dt.timedelta(seconds=1)


class ListsStream(MailchimpStream):
    """``GET /lists``: the account's audiences, with their stats and defaults."""

    name = "lists"
    path = "/lists"
    records_key = "lists"
    timestamp_fields = ("date_created",)
    schema = StreamSchema(SCHEMAS_DIR)

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        excluded = set(self.config.get("exclude_list_ids") or [])
        for record in super().get_records(context):
            if record.get("id") not in excluded:
                yield record

    def get_child_context(self, record: Record, context: Context | None) -> dict:
        return {"list_id": record["id"]}


class LastChangedPaginator(BaseAPIPaginator[tuple[str | None, int]]):
    """Keyset plus offset over members sorted by ``last_changed`` (see the module docstring).

    The value is ``(since_last_changed, offset)``; ``None`` for ``since`` means the
    stream's own starting point.
    """

    def __init__(self) -> None:
        super().__init__((None, 0))

    def get_next(self, response: requests.Response) -> tuple[str | None, int] | None:
        body = response.json()
        members = body.get("members") or []
        since, offset = self.current_value
        if not members or offset + len(members) >= int(body.get("total_items") or 0):
            return None
        last = members[-1].get("last_changed") or ""
        if not last:
            return since, offset + len(members)
        at_last = sum(1 for m in members if m.get("last_changed") == last)
        following = mailchimp_time(parse_time(last) - ONE_SECOND)
        if following == since:
            return since, offset + len(members)
        return following, at_last


class ListMembersStream(MailchimpStream):
    """``GET /lists/{list_id}/members``: each audience's members changed since the bookmark.

    Carries what the person typed (email, merge fields such as ``FNAME``, ``LNAME``,
    ``PHONE``), their status (subscribed, unsubscribed, cleaned, pending,
    transactional), consent timestamps and marketing permissions.
    """

    name = "list_members"
    path = "/lists/{list_id}/members"
    records_key = "members"
    primary_keys: t.ClassVar[tuple[str, ...]] = ("list_id", "id")
    replication_key = "last_changed"
    is_sorted = True
    parent_stream_type = ListsStream
    state_partitioning_keys: t.ClassVar[list[str]] = ["list_id"]
    timestamp_fields = ("timestamp_signup", "timestamp_opt", "last_changed")
    schema = StreamSchema(SCHEMAS_DIR)

    def get_new_paginator(self) -> LastChangedPaginator:
        return LastChangedPaginator()

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        since, offset = next_page_token or (None, 0)
        if since is None and (start := self.get_starting_timestamp(context)) is not None:
            since = mailchimp_time(start - ONE_SECOND)
        params: dict[str, t.Any] = {
            "count": self.page_size,
            "offset": offset,
            "sort_field": "last_changed",
            "sort_dir": "ASC",
            "exclude_fields": "_links,members._links",
        }
        if since is not None:
            params["since_last_changed"] = since
        return params


class CampaignsStream(MailchimpStream):
    """``GET /campaigns?status=sent``: campaigns sent, with settings and report summary."""

    name = "campaigns"
    path = "/campaigns"
    records_key = "campaigns"
    timestamp_fields = ("create_time", "send_time")
    schema = StreamSchema(SCHEMAS_DIR)

    def collection_params(self) -> dict[str, t.Any]:
        params: dict[str, t.Any] = {
            "status": "sent",
            "sort_field": "send_time",
            "sort_dir": "ASC",
        }
        if (start := self.start_date()) is not None:
            params["since_send_time"] = mailchimp_time(start - ONE_SECOND)
        return params

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        excluded = set(self.config.get("exclude_list_ids") or [])
        for record in super().get_records(context):
            if (record.get("recipients") or {}).get("list_id") not in excluded:
                yield record

    def get_child_context(self, record: Record, context: Context | None) -> dict:
        return {"campaign_id": record["id"], "send_time": record.get("send_time")}


class EmailActivityStream(MailchimpStream):
    """``GET /reports/{campaign_id}/email-activity``, one row per recipient action."""

    name = "email_activity"
    path = "/reports/{campaign_id}/email-activity"
    records_key = "emails"
    primary_keys: t.ClassVar[tuple[str, ...]] = ("campaign_id", "email_id", "action", "timestamp")
    replication_key = "timestamp"
    is_sorted = False
    parent_stream_type = CampaignsStream
    state_partitioning_keys: t.ClassVar[list[str]] = ["campaign_id"]
    schema = StreamSchema(SCHEMAS_DIR)

    def _bookmark(self, context: Context | None) -> str | None:
        """The campaign's saved bookmark (None: the campaign was never read in full)."""
        value = self.get_context_state(context).get("replication_key_value")
        return value if isinstance(value, str) else None

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        params = super().get_url_params(context, next_page_token)
        if (bookmark := self._bookmark(context)) is not None:
            params["since"] = mailchimp_time(parse_time(bookmark) - ONE_SECOND)
        return params

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        assert context is not None  # a child of campaigns
        first_read = self._bookmark(context) is None
        sent_at = utc_iso(context.get("send_time"))
        for recipient in super().get_records(context):
            common = {
                "campaign_id": recipient.get("campaign_id") or context["campaign_id"],
                "list_id": recipient.get("list_id"),
                "list_is_active": recipient.get("list_is_active"),
                "email_id": recipient.get("email_id"),
                "email_address": recipient.get("email_address"),
            }
            if first_read and sent_at:
                yield {**common, "action": "sent", "timestamp": sent_at}
            for activity in recipient.get("activity") or []:
                yield {
                    **common,
                    "action": activity.get("action"),
                    "timestamp": utc_iso(activity.get("timestamp")),
                    "type": activity.get("type"),
                    "url": activity.get("url"),
                    "ip": activity.get("ip"),
                }


class UnsubscribesStream(MailchimpStream):
    """``GET /reports/{campaign_id}/unsubscribed``: who unsubscribed from each campaign."""

    name = "unsubscribes"
    path = "/reports/{campaign_id}/unsubscribed"
    records_key = "unsubscribes"
    primary_keys: t.ClassVar[tuple[str, ...]] = ("campaign_id", "email_id")
    parent_stream_type = CampaignsStream
    state_partitioning_keys: t.ClassVar[list[str]] = ["campaign_id"]
    timestamp_fields = ("timestamp",)
    schema = StreamSchema(SCHEMAS_DIR)
