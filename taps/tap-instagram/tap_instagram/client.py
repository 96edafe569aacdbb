"""The one base stream every Instagram (Graph API) stream builds on.

It knows how the Graph API behaves, so ``streams.py`` only says which edge it reads:

- every path is versioned: ``{api_url}/{api_version}/{node-id}/{edge}``; the token
  travels in ``Authorization: Bearer`` (never in a URL, so never in a log);
- ``fields=`` names what to return (Graph returns only ``id`` otherwise), nested
  selections included (``from{id,username}``);
- lists page by cursor: ``paging.cursors.after`` is sent back as ``after`` while the
  answer has a ``paging.next`` (the last page has none). The ``next`` link itself is not
  followed: it repeats the access token in its query string;
- errors come as ``{"error": {"message", "type", "code", "error_subcode"}}``, with HTTP
  400 for most of them. Code 190 is the token (expired, revoked, password changed): the
  sync stops with a message that says to renew it; 104 (no token) and permission codes
  (10, 200–299) stop it too. Rate limits (codes 4, 17, 32, 613, 80001–80014), transient
  errors, 429 and 5xx are retried: after ``estimated_time_to_regain_access`` when the
  usage headers name it, else with exponential backoff;
- every answer's ``X-App-Usage`` / ``X-Business-Use-Case-Usage`` say how much of the
  hourly budget is used: at ``usage_threshold`` percent or more the tap pauses
  (``usage_pause_seconds``) before its next call, so it slows down before Meta refuses it.
"""

from __future__ import annotations

import datetime as dt
import time
import typing as t
from functools import cached_property
from http import HTTPStatus

import requests
from singer_sdk import RESTStream
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.pagination import BaseAPIPaginator

from omnicanal_tapkit import (
    ConformedRecords,
    PlatformFailures,
    PlatformRetries,
    url_without_query,
)
from omnicanal_tapkit.meta_graph import (
    MISSING_TOKEN_CODE,
    PERMISSION_CODES,
    TOKEN_CODES,
    describe_graph_error,
    graph_error,
    is_retriable_graph_error,
    regain_seconds,
    usage_percent,
)
from tap_instagram.errors import (
    InstagramAuthError,
    InstagramConnectionError,
    InstagramError,
    InstagramRetriesExhaustedError,
)

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

DEFAULT_API_URL = "https://graph.facebook.com"
#: The Graph API version this tap's streams and schemas follow (released 2026-07-29).
DEFAULT_API_VERSION = "v26.0"
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
DEFAULT_USAGE_THRESHOLD = 90
DEFAULT_USAGE_PAUSE_SECONDS = 60.0
#: Where the token comes from in omnicanal, named in the "renew the token" message.
TOKEN_SETTING = "OMNICANAL_INSTAGRAM_ACCESS_TOKEN"


def to_utc_iso(value: str) -> str:
    """A Graph timestamp (``2026-05-19T23:27:28+0000``) as ISO 8601 UTC (``+00:00``)."""
    text = value.strip()
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).isoformat()


class GraphCursorPaginator(BaseAPIPaginator[str | None]):
    """``paging.cursors.after`` while the page has a ``paging.next``; a stream may also
    stop early (``stop_paging``) when the rest of a newest-first list is already known."""

    def __init__(self, stream: GraphStream) -> None:
        super().__init__(None)
        self._stream = stream

    def get_next(self, response: requests.Response) -> str | None:
        body = response.json()
        paging = body.get("paging") or {}
        if "next" not in paging or self._stream.stop_paging(body.get("data") or []):
            return None
        return (paging.get("cursors") or {}).get("after")


def graph_failures() -> PlatformFailures:
    return PlatformFailures(
        platform="Instagram",
        connection_error=InstagramConnectionError,
        retries_exhausted_error=InstagramRetriesExhaustedError,
        address_settings="`api_url`",
        describe=describe_graph_error,
    )


class GraphStream(ConformedRecords, PlatformRetries, RESTStream[str | None]):
    """An edge of a Graph node, paged by cursor."""

    failures = graph_failures()
    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    records_jsonpath = "$.data[*]"
    #: The ``fields=`` selection of the stream.
    fields: t.ClassVar[str] = "id"
    #: The permission the edge needs, named when Graph refuses it.
    required_permission: t.ClassVar[str] = "instagram_basic"

    # --- where and how to ask ----------------------------------------------------

    @property
    def url_base(self) -> str:
        base = (self.config.get("api_url") or DEFAULT_API_URL).strip().rstrip("/")
        return f"{base}/{self.config.get('api_version') or DEFAULT_API_VERSION}"

    @cached_property
    def authenticator(self) -> BearerTokenAuthenticator:
        """``Authorization: Bearer <access_token>``: the token stays out of every URL."""
        return BearerTokenAuthenticator(token=self.config["access_token"])

    @cached_property
    def user_agent(self) -> str:
        return self.config.get("user_agent") or "tap-instagram-omnicanal (singer-sdk)"

    @property
    def page_size(self) -> int:
        return min(int(self.config.get("page_size", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)

    def get_url_params(self, context: Context | None, next_page_token: str | None) -> dict:
        params: dict[str, t.Any] = {"fields": self.fields, "limit": self.page_size}
        if next_page_token:
            params["after"] = next_page_token
        return params

    def get_new_paginator(self) -> GraphCursorPaginator:
        return GraphCursorPaginator(self)

    def stop_paging(self, page: list[dict]) -> bool:
        """Whether the pages after this one hold nothing new (newest-first lists)."""
        return False

    def start_time(self, context: Context | None) -> dt.datetime | None:
        """The stream's bookmark, else ``start_date``."""
        return self.get_starting_timestamp(context)

    # --- records -------------------------------------------------------------------

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Timestamps in UTC ISO form (bookmarks compare); rows before the bookmark go;
        each row names the account it was read for (``ig_user_id``)."""
        row["ig_user_id"] = self.config["ig_user_id"]
        for key in ("timestamp", "created_time", "updated_time"):
            if isinstance(row.get(key), str):
                row[key] = to_utc_iso(row[key])
        key = self.replication_key
        start = self.start_time(context) if key else None
        if key and start is not None and isinstance(row.get(key), str):
            if dt.datetime.fromisoformat(row[key]) < start:
                return None
        return row

    # --- errors, retries and rate limits ------------------------------------------

    def validate_response(self, response: requests.Response) -> None:
        """Graph's errors become messages that say what to do; usage near 100 % slows us."""
        if response.status_code < HTTPStatus.BAD_REQUEST:
            self._pause_if_busy(response)
            return
        error = graph_error(response)
        code = error.get("code")
        if code in TOKEN_CODES:
            msg = (
                f"Instagram refused the access token ({describe_graph_error(response)}) — "
                f"renew the Instagram access token ({TOKEN_SETTING}, the tap's "
                "`access_token` setting) and run the extract again"
            )
            raise InstagramAuthError(msg)
        if code == MISSING_TOKEN_CODE:
            msg = f"Instagram asked for an access token — set {TOKEN_SETTING} (`access_token`)"
            raise InstagramAuthError(msg)
        if is_retriable_graph_error(response):
            msg = (
                f"Instagram answered HTTP {response.status_code} for "
                f"{url_without_query(response.url)}: {describe_graph_error(response)}"
            )
            raise RetriableAPIError(msg, response)
        if code in PERMISSION_CODES:
            msg = (
                f"Instagram refused {url_without_query(response.url)} "
                f"({describe_graph_error(response)}) — the token needs the "
                f"{self.required_permission} permission"
            )
            raise InstagramAuthError(msg)
        msg = (
            f"Instagram answered HTTP {response.status_code} for "
            f"{url_without_query(response.url)}: {describe_graph_error(response)}"
        )
        if error.get("code") == 100 and "does not exist" in str(error.get("message")):
            msg += " — check the `ig_user_id` and `page_id` settings"
        raise InstagramError(msg)

    def _pause_if_busy(self, response: requests.Response) -> None:
        used = usage_percent(response.headers)
        threshold = float(self.config.get("usage_threshold", DEFAULT_USAGE_THRESHOLD))
        if used is None or used < threshold:
            return
        pause = float(self.config.get("usage_pause_seconds", DEFAULT_USAGE_PAUSE_SECONDS))
        regain = regain_seconds(response.headers)
        if regain:
            pause = max(pause, min(regain, self.backoff_max_seconds))
        self.logger.warning(
            "Instagram usage headers report %.0f%% of the hourly budget used (threshold "
            "%.0f%%); pausing %.1f s before the next request",
            used,
            threshold,
            pause,
        )
        time.sleep(pause)

    def backoff_wait_generator(self) -> t.Generator[float, t.Any, None]:
        """``estimated_time_to_regain_access`` when a throttled answer names it, else
        tapkit's waits (``Retry-After``, exponential backoff with jitter)."""
        fallback = super().backoff_wait_generator()
        next(fallback)
        exception = yield 0.0
        while True:
            response = getattr(exception, "response", None)
            regain = regain_seconds(response.headers) if response is not None else None
            if regain:
                wait = min(regain, self.backoff_max_seconds)
            else:
                wait = fallback.send(exception)
            exception = yield wait


def raise_for_config(message: str) -> t.NoReturn:
    raise InstagramError(message)
