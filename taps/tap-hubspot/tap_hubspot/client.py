"""The one base stream every HubSpot CRM object stream builds on.

It knows how the HubSpot CRM API behaves, so ``streams.py`` only says which object type
it reads, which properties and which associations:

- auth is a private app's token, ``Authorization: Bearer <access_token>``; a 401 is
  ``INVALID_AUTHENTICATION`` (unknown token) or ``EXPIRED_AUTHENTICATION``, a 403 a
  missing scope: both end the sync with a message naming the setting;
- a **full** sync (no bookmark in the state) lists the objects,
  ``GET /crm/v3/objects/<type>?limit=100&properties=…&associations=…&after=…``, ordered by
  id, following ``paging.next.after``: a list has no result cap, and the associated ids
  come in the same answer;
- an **incremental** sync searches, ``POST /crm/v3/objects/<type>/search``, filtered on the
  object's last-modified property (``lastmodifieddate`` for contacts,
  ``hs_lastmodifieddate`` otherwise) ``GTE`` the bookmark and sorted on it ascending, 200
  a page. A search serves at most 10,000 results per query (HubSpot answers 400 beyond),
  so before a page would cross the cap the walk starts a new query from the last
  record's timestamp (:class:`WindowPaginator`); records seen on that boundary are not
  emitted twice. Should 10,000 records share one timestamp, that instant is walked by
  ``hs_object_id`` instead. Each page's associations come from the v4 batch read
  ``POST /crm/v4/associations/<type>/<to>/batch/read`` (a 207 lists the ids without any);
- rate limits: most answers carry ``X-HubSpot-RateLimit-*`` headers for a rolling
  10-second window; a 429 (``errorType: RATE_LIMIT``) comes without ``Retry-After``, so
  the tap backs off exponentially from 0.5 s (jitter, capped); a ``Retry-After`` a proxy
  adds is obeyed. Search has its own limit (5 requests a second per account) and no
  headers: the tap paces its searches (``search_requests_per_second``, default 4).
  ``DAILY`` 429s are not retried: the allowance returns at midnight. 5xx and dropped
  connections back off from 1 s; whatever still fails ends in one clear error
  (omnicanal-tapkit's ``PlatformRetries``);
- errors come as ``{"status": "error", "message", "correlationId", "category"}``: a
  message quotes the category and message, never the token.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import typing as t
from functools import cached_property
from http import HTTPStatus

import requests
from singer_sdk import RESTStream
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.pagination import BaseAPIPaginator

from omnicanal_tapkit import (
    ConformedRecords,
    PlatformFailures,
    PlatformRetries,
    url_without_query,
)
from tap_hubspot.errors import (
    HubSpotAuthError,
    HubSpotConnectionError,
    HubSpotDailyLimitError,
    HubSpotError,
    HubSpotRetriesExhaustedError,
)

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, RequestFunc

DEFAULT_API_URL = "https://api.hubapi.com"
LIST_PAGE_SIZE = 100
SEARCH_PAGE_SIZE = 200
#: Results HubSpot lets one search query page through.
SEARCH_RESULT_CAP = 10_000
BATCH_READ_SIZE = 1000
DEFAULT_SEARCHES_PER_SECOND = 4


def hubspot_errors(response: requests.Response) -> str:
    """``CATEGORY: message`` (or the policy of a 429) from HubSpot's body, or the raw text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        kind = body.get("category") or body.get("policyName") or body.get("errorType") or ""
        return f"{kind}: {body['message']}".strip(": ")
    return response.text.strip()[:300] if response.content else response.reason or ""


def to_millis(value: str) -> int:
    """An ISO 8601 timestamp as epoch milliseconds, how HubSpot's search compares dates."""
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(round(moment.timestamp() * 1000))


def to_utc_iso(value: str) -> str:
    """A timestamp as UTC ISO 8601 with milliseconds (``+00:00``): bookmarks that compare."""
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")


class Window(t.NamedTuple):
    """Where a search walk stands: from ``start`` (epoch ms), page offset ``after``.

    ``strict``: records modified after ``start`` only (the instant was walked already);
    ``tie_id``: walking the records modified exactly at ``start`` by ``hs_object_id``.
    """

    start: int
    after: int = 0
    strict: bool = False
    tie_id: int | None = None


class WindowPaginator(BaseAPIPaginator[Window]):
    """Pages of one search query, then a new query before 10,000 results are reached.

    HubSpot numbers a query's results from 0 (``paging.next.after``) and refuses a page
    at or past the cap. When the next page would cross it, the walk restarts at the
    last record's last-modified time (inclusive: the stream drops what it has already
    emitted). If a whole query's worth of records share that instant, the walk goes
    through it by ``hs_object_id`` and then carries on strictly after it.
    """

    def __init__(self, start: Window, *, page_size: int, cap: int, modified: str) -> None:
        super().__init__(start)
        self.page_size, self.cap, self.modified = page_size, cap, modified

    def get_next(self, response: requests.Response) -> Window | None:
        body = response.json()
        current = self.current_value
        results = body.get("results") or []
        following = ((body.get("paging") or {}).get("next") or {}).get("after")
        if following is not None and int(following) + self.page_size <= self.cap:
            return current._replace(after=int(following))
        if following is None:
            if current.tie_id is not None:  # the crowded instant is done: carry on after it
                return Window(current.start, strict=True)
            return None
        last = results[-1]
        last_ms = to_millis(last["properties"][self.modified])
        if current.tie_id is not None:
            return Window(current.start, tie_id=int(last["id"]))
        if last_ms > current.start:
            return Window(last_ms)
        return Window(current.start, tie_id=int(last["id"]))


class _SearchPace:
    """Searches of one token at most ``per_second`` a second, across the tap's streams."""

    _lock = threading.Lock()
    _last: t.ClassVar[dict[str, float]] = {}

    @classmethod
    def wait(cls, token: str, per_second: float) -> None:
        if per_second <= 0:
            return
        with cls._lock:
            gap = 1.0 / per_second
            now = time.monotonic()
            ready = cls._last.get(token, 0.0) + gap
            if ready > now:
                time.sleep(ready - now)
            cls._last[token] = max(now, ready)


class HubSpotStream(ConformedRecords, PlatformRetries, RESTStream[t.Any]):
    """A HubSpot API endpoint; see the module docstring for paths, auth and limits."""

    failures = PlatformFailures(
        platform="HubSpot",
        connection_error=HubSpotConnectionError,
        retries_exhausted_error=HubSpotRetriesExhaustedError,
        describe=hubspot_errors,
    )
    #: First wait after a 429 (HubSpot sends no ``Retry-After``).
    rate_limit_base_seconds = 0.5
    #: The scope a 403 names.
    required_scope: t.ClassVar[str] = ""

    @property
    def url_base(self) -> str:
        """``api_url`` (default ``https://api.hubapi.com``), without trailing slash."""
        return (self.config.get("api_url") or DEFAULT_API_URL).strip().rstrip("/")

    @cached_property
    def authenticator(self) -> BearerTokenAuthenticator:
        """``Authorization: Bearer <access_token>`` (a private app's token)."""
        return BearerTokenAuthenticator(token=self.config["access_token"])

    @property
    def http_headers(self) -> dict:
        return {**super().http_headers, "Accept": "application/json"}

    @cached_property
    def user_agent(self) -> str:
        return self.config.get("user_agent") or "tap-hubspot-omnicanal (singer-sdk)"

    # --- requests outside the stream's own paging (association batches) -------------

    @cached_property
    def _retried_send(self) -> RequestFunc:
        return self.request_decorator(self._send)

    def _send(
        self, prepared_request: requests.PreparedRequest, context: Context | None
    ) -> requests.Response:
        response = self.requests_session.send(prepared_request, timeout=self.timeout)
        self.validate_response(response)
        return response

    def post_json(self, path: str, body: dict[str, t.Any], context: Context | None) -> t.Any:
        """POST ``body`` to ``path`` with the stream's auth, retries and error handling."""
        request = requests.Request(
            "POST", f"{self.url_base}{path}", headers=self.http_headers, json=body
        )
        prepared = self.requests_session.prepare_request(request)
        self.authenticator.authenticate_request(prepared)
        return self._retried_send(prepared, context).json()

    def pace_search(self) -> None:
        """Keep searches under HubSpot's per-second search limit (no headers tell it)."""
        per_second = float(
            self.config.get("search_requests_per_second", DEFAULT_SEARCHES_PER_SECOND)
        )
        _SearchPace.wait(self.config["access_token"], per_second)

    # --- errors, retries and rate limits --------------------------------------------

    def validate_response(self, response: requests.Response) -> None:
        """HubSpot's client errors become messages that name the setting to fix.

        401/403 are about the token or its scopes; a 429 of the ``DAILY`` policy ends the
        sync (the allowance returns at midnight); other 429s and 5xx are retried by the
        SDK (``RetriableAPIError``); any other 4xx quotes HubSpot's category and message.
        """
        status = response.status_code
        if status == HTTPStatus.UNAUTHORIZED:
            detail = hubspot_errors(response)
            hint = (
                "the token expired: issue a new one"
                if "EXPIRED" in detail
                else "check the `access_token` setting (a private app's token)"
            )
            raise HubSpotAuthError(
                f"HubSpot rejected the access token (HTTP 401 {detail}) — {hint}"
            )
        if status == HTTPStatus.FORBIDDEN:
            msg = (
                f"HubSpot refused {url_without_query(response.url)} (HTTP 403 "
                f"{hubspot_errors(response)}) — the private app needs the "
                f"{self.required_scope} scope"
            )
            raise HubSpotAuthError(msg)
        if status == HTTPStatus.TOO_MANY_REQUESTS and "DAILY" in hubspot_errors(response):
            daily = response.headers.get("X-HubSpot-RateLimit-Daily", "?")
            msg = (
                f"HubSpot's daily API allowance ({daily} requests) is used up — the next "
                "extract after midnight resumes from the saved state"
            )
            raise HubSpotDailyLimitError(msg)
        if (
            HTTPStatus.BAD_REQUEST <= status < HTTPStatus.INTERNAL_SERVER_ERROR
            and status != HTTPStatus.TOO_MANY_REQUESTS
            and status not in self.extra_retry_statuses
        ):
            raise HubSpotError(self.response_error_message(response))
        super().validate_response(response)

    def response_error_message(self, response: requests.Response) -> str:
        method = response.request.method if response.request is not None else "GET"
        msg = (
            f"HubSpot answered HTTP {response.status_code} {response.reason} for "
            f"{method} {url_without_query(response.url)}"
        )
        errors = hubspot_errors(response)
        return f"{msg}: {errors}" if errors else msg
