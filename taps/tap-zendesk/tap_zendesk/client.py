"""The base stream every Zendesk Support API stream builds on.

It knows how the Support API (``/api/v2``) behaves, so the streams in ``streams.py``
only say which endpoint they read:

- auth is an agent's API token, ``Authorization: Basic base64(<email>/token:<token>)``,
  or an OAuth access token, ``Authorization: Bearer <token>``;
- the incremental exports (tickets, users) page with ``after_cursor`` until
  ``end_of_stream``; the other lists use cursor pagination, ``page[size]`` and
  ``page[after]``, until ``meta.has_more`` is false;
- rate limits: an account-wide budget a minute (``X-Rate-Limit``) and **10 requests a
  minute** on the incremental exports. The export streams pace themselves under that
  limit (``export_requests_per_minute``, an :class:`ExportPacer` the tap shares between
  them); any ``429`` is retried after its ``Retry-After`` (omnicanal-tapkit's
  ``PlatformRetries``), 5xx and dropped connections with exponential backoff;
- errors come as ``{"error": ..., "description": ...}``: messages quote them, never the
  credentials.
"""

from __future__ import annotations

import base64
import threading
import time
import typing as t
from collections import deque
from collections.abc import Callable
from functools import cached_property
from http import HTTPStatus
from importlib import resources

import requests
from singer_sdk import RESTStream, SchemaDirectory
from singer_sdk.authenticators import APIKeyAuthenticator
from singer_sdk.pagination import BaseAPIPaginator

from omnicanal_tapkit import (
    ConformedRecords,
    PlatformFailures,
    PlatformRetries,
    url_without_query,
)
from tap_zendesk.errors import (
    ZendeskAuthError,
    ZendeskConnectionError,
    ZendeskError,
    ZendeskRetriesExhaustedError,
)

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import RequestFunc

SCHEMAS_DIR = SchemaDirectory(resources.files("tap_zendesk") / "schemas")

DEFAULT_API_URL_EXAMPLE = "https://<subdomain>.zendesk.com"
#: Zendesk's largest cursor page on list endpoints, and on the incremental exports.
MAX_PAGE_SIZE = 100
MAX_EXPORT_PAGE_SIZE = 1000
#: Requests a minute Zendesk allows on the incremental export endpoints.
EXPORT_REQUESTS_PER_MINUTE = 10


def zendesk_errors(response: requests.Response) -> str:
    """``error: description`` from Zendesk's body, or the start of the raw text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        error = body["error"]
        if isinstance(error, dict):  # some endpoints nest it: {"error": {"title", "message"}}
            error, detail = error.get("title", ""), error.get("message", "")
        else:
            detail = body.get("description") or body.get("error_description") or ""
        return f"{error}: {detail}".rstrip(": ") if detail else str(error)
    return response.text.strip()[:300] if response.content else ""


class ExportPacer:
    """At most ``per_minute`` requests in any 60 s: the incremental exports' limit.

    Shared by the tap's export streams (Zendesk counts the account's export requests
    together); ``per_minute=0`` paces nothing and leaves it to ``Retry-After``.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_minute = per_minute
        self._clock, self._sleep = clock, sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited = 0.0

    def wait(self) -> None:
        """Block until one more request fits in the last minute, then count it."""
        if self.per_minute <= 0:
            return
        with self._lock:
            now = self._clock()
            while self._sent and now - self._sent[0] >= 60.0:
                self._sent.popleft()
            if len(self._sent) >= self.per_minute:
                pause = 60.0 - (now - self._sent[0])
                self.waited += pause
                self._sleep(pause)
                now = self._clock()
                self._sent.popleft()
            self._sent.append(now)


class BodyPaginator(BaseAPIPaginator[str | None]):
    """The next page token a function reads from each page's JSON body (None: the end)."""

    def __init__(self, next_token: Callable[[t.Any], str | None]) -> None:
        super().__init__(None)
        self._next_token = next_token

    def get_next(self, response: requests.Response) -> str | None:
        return self._next_token(response.json())


class ZendeskStream(ConformedRecords, PlatformRetries, RESTStream[str]):
    """An endpoint of the Zendesk Support API."""

    failures = PlatformFailures(
        platform="Zendesk",
        connection_error=ZendeskConnectionError,
        retries_exhausted_error=ZendeskRetriesExhaustedError,
        describe=zendesk_errors,
    )

    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    #: Key of the JSON object that holds the records (``{"tickets": [...]}``).
    records_key: t.ClassVar[str]

    @property
    def url_base(self) -> str:
        return str(self.config["api_url"]).strip().rstrip("/")

    @property
    def records_jsonpath(self) -> str:  # type: ignore[override]
        return f"$.{self.records_key}[*]"

    @cached_property
    def authenticator(self) -> APIKeyAuthenticator:
        """Bearer for an OAuth token, else Basic ``<email>/token:<api_token>``."""
        if self.config.get("oauth_token"):
            value = f"Bearer {self.config['oauth_token']}"
        else:
            pair = f"{self.config['email']}/token:{self.config['api_token']}"
            value = "Basic " + base64.b64encode(pair.encode()).decode()
        return APIKeyAuthenticator(key="Authorization", value=value, location="header")

    @property
    def http_headers(self) -> dict:
        return {**super().http_headers, "Accept": "application/json"}

    @cached_property
    def user_agent(self) -> str:
        return self.config.get("user_agent") or "tap-zendesk-omnicanal (singer-sdk)"

    def validate_response(self, response: requests.Response) -> None:
        """Zendesk's client errors become messages naming the setting to fix; 429 and
        5xx are retried by the SDK (``RetriableAPIError``)."""
        status = response.status_code
        endpoint = url_without_query(response.url)
        if status == HTTPStatus.UNAUTHORIZED:
            if self.config.get("oauth_token"):
                msg = (
                    f"Zendesk rejected the OAuth token (HTTP 401 {zendesk_errors(response)}) — "
                    "renew the token and update the `oauth_token` setting"
                )
            else:
                msg = (
                    f"Zendesk could not authenticate the agent (HTTP 401 "
                    f"{zendesk_errors(response)}) — check the `email` and `api_token` settings"
                )
            raise ZendeskAuthError(msg)
        if status == HTTPStatus.FORBIDDEN:
            msg = (
                f"Zendesk refused {endpoint} (HTTP 403 {zendesk_errors(response)}) — the "
                "agent must be an admin to read this"
            )
            raise ZendeskAuthError(msg)
        if HTTPStatus.BAD_REQUEST <= status < HTTPStatus.INTERNAL_SERVER_ERROR and status not in (
            HTTPStatus.TOO_MANY_REQUESTS,
            *self.extra_retry_statuses,
        ):
            method = response.request.method if response.request is not None else "GET"
            msg = (
                f"Zendesk answered HTTP {status} {response.reason} for {method} {endpoint}: "
                f"{zendesk_errors(response)}"
            )
            if status == HTTPStatus.NOT_FOUND and "InvalidEndpoint" in msg:
                msg += " — check the `api_url` setting (https://<subdomain>.zendesk.com)"
            raise ZendeskError(msg)
        super().validate_response(response)


class CursorListStream(ZendeskStream):
    """A list endpoint with cursor pagination: ``page[size]``, ``page[after]``."""

    def get_new_paginator(self) -> BodyPaginator:
        def next_token(body: t.Any) -> str | None:
            meta = (body.get("meta") or {}) if isinstance(body, dict) else {}
            return meta.get("after_cursor") if meta.get("has_more") else None

        return BodyPaginator(next_token)

    def get_url_params(self, context: t.Any, next_page_token: str | None) -> dict:
        params: dict[str, t.Any] = {"page[size]": self.config.get("page_size", MAX_PAGE_SIZE)}
        if next_page_token:
            params["page[after]"] = next_page_token
        return params


class PacedExport:
    """Mixin for the export streams: every attempt waits for the tap's :class:`ExportPacer`."""

    pacer: ExportPacer | None = None

    def request_decorator(self, func: RequestFunc) -> RequestFunc:
        pacer = self.pacer

        def paced(prepared_request, context):  # type: ignore[no-untyped-def]
            if pacer is not None:
                pacer.wait()
            return func(prepared_request, context)

        return super().request_decorator(paced)  # type: ignore[misc]
