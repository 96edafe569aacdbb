"""The one base stream every Square API stream builds on.

It knows how the Square API (Connect v2) behaves, so the streams in ``streams.py`` only
say which endpoint they read and how they filter:

- auth is ``Authorization: Bearer <access token>``, and every request names the API
  version it was written for in ``Square-Version`` (Square would otherwise answer in
  the application's default version, which a dashboard click can change);
- lists page with an opaque ``cursor`` in the response body. GET endpoints take it back
  as a query parameter; search endpoints (``POST .../search``) take it in the JSON body
  next to the *same* query, which Square requires, so the body is rebuilt identically
  for every page;
- an empty result is ``{}``: no records and no cursor;
- rate limits answer ``429 RATE_LIMITED``, without ``Retry-After``: Square does not
  publish its limits and asks clients to retry RATE_LIMITED with exponential backoff
  and some randomness (its developer forums, and its own SDKs' retry settings). The
  limit is per second, so the first wait lasts until the oldest request *sent* in the
  second before the 429 is a second past its answer, when the window has room again
  (``rate_limit_window_seconds``; a 1 s first wait used 67 % of the limit in
  ``bench/extract``, a 0.25 s one 84 %, this wait 0.968 of the real 100/s read a record a
  page); a second 429 in a row waits for room again, a third backs off exponentially
  from ``rate_limit_base_seconds`` (0.25 s, then 0.5, 1, 2… with up to 10 % jitter,
  capped). A ``Retry-After`` that a proxy adds is honoured. 5xx and dropped connections back off
  from 1 s (an outage does not clear in a quarter second), and whatever still
  fails ends in one clear error naming the endpoint and the setting to check (the
  retry policy and those messages are omnicanal-tapkit's ``PlatformRetries``);
- errors come as ``{"errors": [{"category", "code", "detail", "field"}]}``: the message
  quotes the code and detail, never the token.
"""

from __future__ import annotations

import datetime as dt
import decimal
import typing as t
import weakref
from functools import cached_property
from http import HTTPStatus
from importlib import resources

import msgspec
import requests
from singer_sdk import RESTStream, SchemaDirectory
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.pagination import BaseAPIPaginator

from omnicanal_tapkit import (
    ConformedRecords,
    PlatformFailures,
    PlatformRetries,
    PrefetchedPages,
    records_at,
    url_without_query,
)
from tap_square.errors import (
    SquareAuthError,
    SquareConnectionError,
    SquareError,
    SquareRetriesExhaustedError,
)

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

SCHEMAS_DIR = SchemaDirectory(resources.files("tap_square") / "schemas")

#: The API version this tap's streams and schemas follow.
DEFAULT_API_VERSION = "2026-09-16"
DEFAULT_API_URL = "https://connect.squareup.com"
#: How far before its bookmark an incremental search starts again (``start_time``).
DEFAULT_SEARCH_LOOKBACK = 300
#: Square's largest page for customers, payments and refunds (orders allow 1000).
MAX_PAGE_SIZE = 100


#: Square's bodies decoded as singer-sdk decodes them (numbers with a fraction as exact
#: decimals), by msgspec: the same objects as ``response.json(parse_float=Decimal)``
#: in half the time.
_decode = msgspec.json.Decoder(float_hook=decimal.Decimal).decode


def parse_body(response: requests.Response) -> t.Any:
    """The JSON body (decimals exact); what msgspec refuses gets requests' own error."""
    try:
        return _decode(response.content)
    except msgspec.DecodeError:
        return response.json(parse_float=decimal.Decimal)


def to_utc_iso(value: str) -> str:
    """An RFC 3339 timestamp as UTC ISO 8601 (``+00:00``), for bookmarks that compare."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def square_time(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as Square writes and reads timestamps."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    utc = moment.astimezone(dt.UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def square_errors(response: requests.Response) -> str:
    """``CODE: detail (field)`` for each error in Square's body, or the raw text."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        errors = []
    parts = []
    for error in errors:
        text = f"{error.get('code', '?')}: {error.get('detail', '')}".strip()
        if error.get("field"):
            text += f" (field `{error['field']}`)"
        parts.append(text)
    if parts:
        return "; ".join(parts)
    return response.text.strip()[:300] if response.content else ""


class BodyCursorPaginator(BaseAPIPaginator[str | None]):
    """Square's ``cursor``, read from the body :meth:`SquareStream.parse_response` parsed.

    singer-sdk's ``JSONPathPaginator`` parses every page a second time to find it; a
    page of 100 orders is most of a tap's per-page cost, so the body is parsed once.
    A body nobody parsed (no records were asked for) is parsed here.
    """

    def __init__(self, bodies: weakref.WeakKeyDictionary[requests.Response, t.Any]) -> None:
        super().__init__(None)
        self._bodies = bodies

    def get_next(self, response: requests.Response) -> str | None:
        body = self._bodies.pop(response, None)
        if body is None:
            body = parse_body(response)
        return body.get("cursor") if isinstance(body, dict) else None


class SquareStream(ConformedRecords, PlatformRetries, PrefetchedPages, RESTStream[str]):
    """A list or search endpoint of the Square API, paged by cursor.

    Each next page is asked for while the records of the page before it are processed
    (``PrefetchedPages``): its request is the page's cursor and the same query, which
    the records do not change (``start_time`` reads the bookmark the sync started
    from, and the look-back never reaches before ``start_date``).
    """

    #: Retries, their log lines and final errors speak of Square and raise its errors.
    failures = PlatformFailures(
        platform="Square",
        connection_error=SquareConnectionError,
        retries_exhausted_error=SquareRetriesExhaustedError,
        describe=square_errors,
    )

    #: Square's limit is per second and its 429 says no ``Retry-After``: the first wait
    #: lasts until the second since the oldest request answered in it has passed.
    rate_limit_window_seconds = 1.0
    #: Waits after a second 429 in a row start here (then 0.5, 1, 2 s…).
    rate_limit_base_seconds = 0.25

    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    #: Key of the JSON object that holds the records (``{"customers": [...]}``).
    records_key: t.ClassVar[str]
    #: The OAuth permission the endpoint needs, named in the 401/403 message.
    required_permission: t.ClassVar[str] = ""

    # --- where and how to ask ----------------------------------------------------

    @property
    def url_base(self) -> str:
        """``api_url`` (default ``https://connect.squareup.com``), without trailing slash."""
        return (self.config.get("api_url") or DEFAULT_API_URL).strip().rstrip("/")

    @property
    def records_jsonpath(self) -> str:  # type: ignore[override]
        """Records live in a list under the resource's name; ``{}`` means none."""
        return f"$.{self.records_key}[*]"

    @cached_property
    def authenticator(self) -> BearerTokenAuthenticator:
        """``Authorization: Bearer <access_token>``."""
        return BearerTokenAuthenticator(token=self.config["access_token"])

    @property
    def http_headers(self) -> dict:
        """JSON, and the API version every schema here follows."""
        return {
            **super().http_headers,
            "Accept": "application/json",
            "Square-Version": self.config.get("api_version") or DEFAULT_API_VERSION,
        }

    @cached_property
    def user_agent(self) -> str:
        return self.config.get("user_agent") or "tap-square-omnicanal (singer-sdk)"

    @property
    def page_size(self) -> int:
        """Records per page (``page_size`` setting; Square's maximum is 100 here)."""
        return min(int(self.config.get("page_size", MAX_PAGE_SIZE)), MAX_PAGE_SIZE)

    def start_time(self, context: Context | None) -> dt.datetime | None:
        """Where a search starts: the bookmark of this stream (or partition) less the
        look-back, else ``start_date``.

        Square's search endpoints are eventually consistent: a profile or order updated
        just before the last sync may only become searchable after it, with an
        ``updated_at`` below the bookmark that sync saved. Starting each incremental
        search ``search_lookback_seconds`` before the bookmark reads such late arrivals;
        the records read twice are upserted by id downstream, so nothing is duplicated.
        The look-back never reaches before ``start_date``.
        """
        start_date = self.config.get("start_date")
        floor = dt.datetime.fromisoformat(start_date.replace("Z", "+00:00")) if start_date else None
        if not self.replication_key:
            return floor
        start = self.get_starting_timestamp(context)
        bookmarked = self.get_context_state(context).get("replication_key_value") is not None
        lookback = int(self.config.get("search_lookback_seconds", DEFAULT_SEARCH_LOOKBACK))
        if start is None or not bookmarked or lookback <= 0:
            return start
        start -= dt.timedelta(seconds=lookback)
        return max(start, floor) if floor is not None else start

    # --- pagination ----------------------------------------------------------------

    @cached_property
    def _parsed_bodies(self) -> weakref.WeakKeyDictionary[requests.Response, t.Any]:
        """Each page's parsed body, until the paginator has read its cursor."""
        return weakref.WeakKeyDictionary()

    def get_new_paginator(self) -> BodyCursorPaginator:
        """Follow the body's ``cursor`` until a page comes without one."""
        return BodyCursorPaginator(self._parsed_bodies)

    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        """The records, as singer-sdk parses them (decimals exact); the body is kept
        for the paginator, so a page is parsed once. The records are read by
        omnicanal-tapkit's ``records_at``, not a JSONPath engine built at each start."""
        body = parse_body(response)
        self._parsed_bodies[response] = body
        yield from records_at(self.records_jsonpath, body)

    # --- records -------------------------------------------------------------------

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Bookmarks compare as strings: the replication key is written in UTC."""
        key = self.replication_key
        if key and isinstance(value := row.get(key), str):
            row[key] = to_utc_iso(value)
        return row

    # --- errors, retries and rate limits ------------------------------------------

    def validate_response(self, response: requests.Response) -> None:
        """Square's client errors become messages that name the setting to fix.

        401/403 are about the token or its permissions; 400 quotes Square's code, detail
        and field; 429 and 5xx are retried by the SDK (``RetriableAPIError``).
        """
        status = response.status_code
        endpoint = url_without_query(response.url)
        if status == HTTPStatus.UNAUTHORIZED:
            msg = (
                "Square rejected the access token (HTTP 401 "
                f"{square_errors(response)}) — check the `access_token` setting"
            )
            raise SquareAuthError(msg)
        if status == HTTPStatus.FORBIDDEN:
            msg = (
                f"Square refused {endpoint} (HTTP 403 {square_errors(response)}) — the token "
                f"needs the {self.required_permission} permission"
            )
            raise SquareAuthError(msg)
        if (
            HTTPStatus.BAD_REQUEST <= status < HTTPStatus.INTERNAL_SERVER_ERROR
            and status not in self.extra_retry_statuses
        ):
            raise SquareError(self.response_error_message(response))
        super().validate_response(response)

    def response_error_message(self, response: requests.Response) -> str:
        """``Square answered HTTP 400 for POST <url>: CODE: detail (field)`` — no query."""
        method = response.request.method if response.request is not None else "GET"
        msg = (
            f"Square answered HTTP {response.status_code} {response.reason} for "
            f"{method} {url_without_query(response.url)}"
        )
        errors = square_errors(response)
        hint = ""
        version_codes = ("INVALID_SQUARE_VERSION_FORMAT", "API_VERSION_INCOMPATIBLE")
        if response.status_code == HTTPStatus.BAD_REQUEST and any(
            c in errors for c in version_codes
        ):
            hint = " — check the `api_version` setting"
        return f"{msg}: {errors}{hint}" if errors else msg


class SquareSearchStream(SquareStream):
    """A ``POST .../search`` endpoint: the query and the cursor travel in the JSON body."""

    http_method = "POST"  # type: ignore[assignment]

    def search_body(self, context: Context | None) -> dict[str, t.Any]:
        """The request body without the cursor: identical on every page, as Square needs."""
        raise NotImplementedError

    def get_url_params(self, context: Context | None, next_page_token: str | None) -> dict:
        return {}

    def prepare_request_payload(
        self, context: Context | None, next_page_token: str | None
    ) -> dict | None:
        body = self.search_body(context)
        if next_page_token:
            body["cursor"] = next_page_token
        return body
