"""The one base stream every Mailchimp Marketing API stream builds on.

It knows how the Marketing API v3 behaves, so the streams in ``streams.py`` only say
which collection they read and how they filter:

- the API lives at ``https://<dc>.api.mailchimp.com/3.0``, the data centre ``<dc>`` being
  the API key's suffix (``…-us21``); auth is HTTP Basic with any user name and the API
  key as password;
- collections page with ``count`` (at most 1000) and ``offset``, and every page says
  ``total_items``: the tap asks for the next page until ``offset`` reaches it. Each
  request sends ``exclude_fields=_links,<collection>._links`` (the hypermedia links are
  most of a page and nobody reads them);
- Mailchimp allows 10 simultaneous connections per key (the tap uses one) and answers
  429 beyond; 429 and 5xx are retried with exponential backoff and jitter (a
  ``Retry-After``, when sent, is obeyed), and whatever still fails ends in one clear
  error (omnicanal-tapkit's ``PlatformRetries``);
- errors are problem JSON, ``{"type", "title", "status", "detail", "instance"}``: the
  message quotes the title and detail, never the key;
- timestamps are ISO 8601 with ``+00:00``; an unknown one is ``""``, which the tap
  emits as null.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from functools import cached_property
from http import HTTPStatus
from importlib import resources

import requests
from singer_sdk import RESTStream, SchemaDirectory
from singer_sdk.pagination import BaseAPIPaginator

from omnicanal_tapkit import (
    ConformedRecords,
    PlatformFailures,
    PlatformRetries,
    url_without_query,
)
from tap_mailchimp.errors import (
    MailchimpAuthError,
    MailchimpConnectionError,
    MailchimpError,
    MailchimpRetriesExhaustedError,
)

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

SCHEMAS_DIR = SchemaDirectory(resources.files("tap_mailchimp") / "schemas")

#: Mailchimp's largest ``count``.
MAX_PAGE_SIZE = 1000
API_URL_TEMPLATE = "https://{dc}.api.mailchimp.com/3.0"


def data_centre(api_key: str) -> str | None:
    """The data centre an API key belongs to: the part after its last ``-`` (``us21``)."""
    key = (api_key or "").strip()
    if "-" not in key:
        return None
    dc = key.rsplit("-", 1)[1]
    return dc if dc.isalnum() else None


def default_api_url(api_key: str) -> str | None:
    dc = data_centre(api_key)
    return API_URL_TEMPLATE.format(dc=dc) if dc else None


def parse_time(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def mailchimp_time(moment: dt.datetime) -> str:
    """ISO 8601 in UTC, whole seconds, as the API takes and writes timestamps."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def utc_iso(value: t.Any) -> str | None:
    """A Mailchimp timestamp as UTC ISO 8601 (bookmarks compare as strings); ``""`` → None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return mailchimp_time(parse_time(value))
    except ValueError:
        return value


def problem_text(response: requests.Response) -> str:
    """``Title: detail`` from Mailchimp's problem JSON (with field errors), or the raw text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("title") or body.get("detail")):
        text = ": ".join(p for p in (body.get("title"), body.get("detail")) if p)
        fields = [
            f"{e.get('field')}: {e.get('message')}"
            for e in body.get("errors") or []
            if isinstance(e, dict)
        ]
        return f"{text} ({'; '.join(fields)})" if fields else text
    return response.text.strip()[:300] if response.content else ""


class TotalItemsPaginator(BaseAPIPaginator[int]):
    """``offset`` paging: the next offset until it reaches the page's ``total_items``."""

    def __init__(self, records_key: str) -> None:
        super().__init__(0)
        self.records_key = records_key

    def get_next(self, response: requests.Response) -> int | None:
        body = response.json()
        got = len(body.get(self.records_key) or [])
        following = (self.current_value or 0) + got
        return following if got and following < int(body.get("total_items") or 0) else None


class MailchimpStream(ConformedRecords, PlatformRetries, RESTStream[t.Any]):
    """A collection of the Marketing API, paged by ``offset`` and ``total_items``."""

    failures = PlatformFailures(
        platform="Mailchimp",
        connection_error=MailchimpConnectionError,
        retries_exhausted_error=MailchimpRetriesExhaustedError,
        describe=problem_text,
    )

    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    #: Key of the JSON array that holds the records (``{"members": [...]}``).
    records_key: t.ClassVar[str]
    #: Timestamp fields emitted as UTC ISO 8601 (``""`` → null).
    timestamp_fields: t.ClassVar[tuple[str, ...]] = ()

    @property
    def url_base(self) -> str:
        """``api_url``, else the API key's data centre."""
        configured = (self.config.get("api_url") or "").strip()
        return (configured or default_api_url(self.config["api_key"]) or "").rstrip("/")

    @property
    def records_jsonpath(self) -> str:  # type: ignore[override]
        return f"$.{self.records_key}[*]"

    @cached_property
    def authenticator(self) -> requests.auth.HTTPBasicAuth:
        """HTTP Basic: any user name, the API key as password."""
        return requests.auth.HTTPBasicAuth("omnicanal", self.config["api_key"])

    @property
    def http_headers(self) -> dict:
        return {**super().http_headers, "Accept": "application/json"}

    @cached_property
    def user_agent(self) -> str:
        return self.config.get("user_agent") or "tap-mailchimp-omnicanal (singer-sdk)"

    @property
    def page_size(self) -> int:
        return min(int(self.config.get("page_size", MAX_PAGE_SIZE)), MAX_PAGE_SIZE)

    def start_date(self) -> dt.datetime | None:
        start = self.config.get("start_date")
        return parse_time(start) if start else None

    # --- paging ----------------------------------------------------------------------

    def get_new_paginator(self) -> BaseAPIPaginator:
        return TotalItemsPaginator(self.records_key)

    def collection_params(self) -> dict[str, t.Any]:
        """Filters of the collection, the same on every page."""
        return {}

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict:
        return {
            **self.collection_params(),
            "count": self.page_size,
            "offset": next_page_token or 0,
            "exclude_fields": f"_links,{self.records_key}._links",
        }

    # --- records ---------------------------------------------------------------------

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        for name in self.timestamp_fields:
            if name in row:
                row[name] = utc_iso(row[name])
        return row

    # --- errors ------------------------------------------------------------------------

    def validate_response(self, response: requests.Response) -> None:
        """Client errors become messages naming the setting to fix; 429/5xx are retried."""
        status = response.status_code
        if status == HTTPStatus.UNAUTHORIZED:
            msg = (
                f"Mailchimp rejected the API key (HTTP 401 {problem_text(response)}) — check "
                "the `api_key` setting (and that `api_url` is its data centre)"
            )
            raise MailchimpAuthError(msg)
        if status == HTTPStatus.FORBIDDEN:
            msg = (
                f"Mailchimp refused {url_without_query(response.url)} (HTTP 403 "
                f"{problem_text(response)}) — the API key's user needs access to it"
            )
            raise MailchimpAuthError(msg)
        if (
            HTTPStatus.BAD_REQUEST <= status < HTTPStatus.INTERNAL_SERVER_ERROR
            and status != HTTPStatus.TOO_MANY_REQUESTS
            and status not in self.extra_retry_statuses
        ):
            raise MailchimpError(self.response_error_message(response))
        super().validate_response(response)

    def response_error_message(self, response: requests.Response) -> str:
        method = response.request.method if response.request is not None else "GET"
        msg = (
            f"Mailchimp answered HTTP {response.status_code} {response.reason} for "
            f"{method} {url_without_query(response.url)}"
        )
        text = problem_text(response)
        return f"{msg}: {text}" if text else msg
