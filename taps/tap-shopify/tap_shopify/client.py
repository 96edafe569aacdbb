"""The one base stream every Shopify Admin REST resource stream builds on.

It knows how Shopify's REST Admin API behaves, so the streams in ``streams.py``
only say which resource they read:

- auth is the ``X-Shopify-Access-Token`` header;
- lists are paged with cursors: the ``Link`` response header carries the URL of
  the next page with a ``page_info`` token, and a ``page_info`` request may carry
  nothing else but ``limit`` (Shopify rejects other filters next to it), so the
  filters (``updated_at_min``, ``order``, ``status``…) go on the first page only
  and stay baked into the cursor after that;
- rate limits are a leaky bucket: ``X-Shopify-Shop-Api-Call-Limit: used/size`` on
  every answer (we slow down before the bucket overflows) and, when it does, HTTP
  429 with ``Retry-After`` seconds (we wait exactly that long and retry);
- 5xx and dropped connections are retried with exponential backoff, and whatever
  still fails ends in one clear error that names the URL and the setting to check.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import time
import typing as t
from functools import cached_property
from http import HTTPStatus
from importlib import resources
from urllib.parse import ParseResult, parse_qsl, urlsplit, urlunsplit

import requests
from singer_sdk import RESTStream, SchemaDirectory
from singer_sdk.authenticators import APIKeyAuthenticator
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.pagination import HeaderLinkPaginator

from tap_shopify.errors import (
    ShopifyAuthError,
    ShopifyConnectionError,
    ShopifyError,
    ShopifyRetriesExhaustedError,
)

if t.TYPE_CHECKING:
    from backoff.types import Details
    from singer_sdk.helpers.types import Context, RequestFunc
    from singer_sdk.streams.rest import HTTPRequest, PageContext

SCHEMAS_DIR = SchemaDirectory(resources.files("tap_shopify") / "schemas")

#: Shopify's largest allowed ``limit`` for REST list endpoints.
MAX_PAGE_SIZE = 250

ACCESS_TOKEN_HEADER = "X-Shopify-Access-Token"
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"


def shopify_base_url(config: t.Mapping[str, t.Any]) -> str:
    """Return the shop's base URL (no trailing slash) from the ``api_url`` or ``shop`` setting.

    ``api_url`` wins when both are set, so the same config can point at the sandbox
    or a proxy. ``shop`` may be the bare handle (``acme``) or the full
    ``acme.myshopify.com`` domain. The tap validates both before any stream runs.
    """
    if api_url := (config.get("api_url") or "").strip():
        return api_url.rstrip("/")
    shop = (config.get("shop") or "").strip().lower().rstrip("/")
    shop = shop.removeprefix("https://").removeprefix("http://")
    if not shop.endswith(".myshopify.com"):
        shop = f"{shop}.myshopify.com"
    return f"https://{shop}"


def _url_without_query(url: str | None) -> str:
    """Strip the query string: enough to name an endpoint, and keeps cursors out of logs."""
    parts = urlsplit(url or "")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _to_utc_iso(value: str) -> str:
    """Re-express an ISO 8601 timestamp in UTC (same instant, ``+00:00`` offset).

    Shopify writes timestamps in the shop's time zone (``-05:00`` in winter,
    ``-04:00`` in summer). The SDK compares bookmark values as strings, which is
    only safe when every value has the same offset, so the replication key is
    normalised to UTC before it reaches the state.
    """
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).isoformat()


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``), or ``None`` if it did not say.

    Shopify sends a number of seconds, possibly fractional (``2.0``); RFC 9110 also
    allows an HTTP date, which is honoured too.
    """
    if response is None:
        return None
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


class ShopifyStream(RESTStream[ParseResult]):
    """A list endpoint of the Shopify Admin REST API, synced incrementally on ``updated_at``."""

    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    replication_key = "updated_at"

    #: We ask Shopify for ``order=updated_at asc``, so records arrive sorted by the
    #: replication key. Declaring that makes every STATE the SDK writes a valid,
    #: resumable bookmark, including the checkpoints it writes mid-stream: a sync
    #: that dies half-way resumes from its last checkpoint instead of from the
    #: previous run's bookmark. The SDK also compares each record with the one
    #: before and fails loudly (instead of saving a wrong bookmark) if a server
    #: ever ignores the requested order. Unsorted (``is_sorted = False``) would be
    #: correct too, but only resumable once a whole stream has finished.
    is_sorted = True

    #: Key of the JSON object that holds the records (``{"customers": [...]}``).
    records_key: t.ClassVar[str]
    #: Extra filters sent on the first page only (e.g. ``status=any`` for orders).
    first_page_params: t.ClassVar[dict[str, str]] = {}
    #: The access scope the endpoint needs, named in the HTTP 403 message.
    required_scope: t.ClassVar[str] = ""

    #: Leak rate assumed when pacing from the call-limit header: 2 requests/s is
    #: the standard plan, the slowest one, so pacing is safe on every plan.
    bucket_leak_per_second: t.ClassVar[float] = 2.0
    #: Start slowing down once the bucket is fuller than this fraction.
    bucket_high_water: t.ClassVar[float] = 0.8
    #: First wait of the exponential backoff for 5xx and connection errors.
    backoff_base_seconds: t.ClassVar[float] = 1.0
    #: Longest wait between two retries, whatever the backoff or Retry-After says.
    backoff_max_seconds: t.ClassVar[float] = 60.0

    # --- where and how to ask ----------------------------------------------------

    @property
    def url_base(self) -> str:
        """``https://{shop}.myshopify.com/admin/api/{api_version}`` (or ``api_url`` instead)."""
        return f"{shopify_base_url(self.config)}/admin/api/{self.config['api_version']}"

    @property
    def records_jsonpath(self) -> str:  # type: ignore[override]
        """Records live in a list under the resource's plural name."""
        return f"$.{self.records_key}[*]"

    @cached_property
    def authenticator(self) -> APIKeyAuthenticator:
        """Send the Admin API access token in the ``X-Shopify-Access-Token`` header."""
        return APIKeyAuthenticator(
            key=ACCESS_TOKEN_HEADER,
            value=self.config["access_token"],
            location="header",
        )

    @property
    def http_headers(self) -> dict:
        """Ask for JSON explicitly; the User-Agent comes from the ``user_agent`` setting."""
        return {**super().http_headers, "Accept": "application/json"}

    @cached_property
    def user_agent(self) -> str:
        """The ``user_agent`` setting, or a name Shopify support can recognise in their logs."""
        return self.config.get("user_agent") or "tap-shopify-omnicanal (singer-sdk)"

    @property
    def timeout(self) -> int:
        """Seconds to wait for one HTTP answer (``request_timeout`` setting)."""
        return int(self.config.get("request_timeout", 60))

    @property
    def page_size(self) -> int:
        """Records per page (``page_size`` setting, at most 250)."""
        return int(self.config.get("page_size", MAX_PAGE_SIZE))

    # --- pagination ----------------------------------------------------------------

    def get_new_paginator(self) -> HeaderLinkPaginator:
        """Follow the ``Link: <…page_info=…>; rel="next"`` header until there is none."""
        return HeaderLinkPaginator()

    def get_url_params(
        self,
        context: Context | None,
        next_page_token: ParseResult | None,
    ) -> dict[str, t.Any]:
        """Filters and sort order on the first page; only ``page_info`` + ``limit`` after.

        The first request carries ``updated_at_min`` (the bookmark from the state, or
        ``start_date`` on the first sync) and ``order=updated_at asc``. Every later
        request follows the ``next`` link, whose ``page_info`` cursor already encodes
        those filters; Shopify answers 400 if any filter is repeated next to it.
        """
        if next_page_token is not None:
            linked = dict(parse_qsl(next_page_token.query))
            if "page_info" not in linked:  # not a Shopify cursor: follow the link verbatim
                return linked
            return {"page_info": linked["page_info"], "limit": self.page_size}

        params: dict[str, t.Any] = {
            "limit": self.page_size,
            "order": "updated_at asc",
            **self.first_page_params,
        }
        if (start := self.get_starting_timestamp(context)) is not None:
            params["updated_at_min"] = start.isoformat()
        return params

    def get_http_request(self, *, page: PageContext) -> HTTPRequest:
        """Send cursor pages to the host and path the ``next`` link names (HATEOAS)."""
        request = super().get_http_request(page=page)
        if page.next_page_token is not None:
            request.url = page.next_page_token._replace(query="", fragment="").geturl()
        return request

    # --- records -------------------------------------------------------------------

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Normalise the replication key to UTC so bookmarks compare correctly."""
        if isinstance(value := row.get(self.replication_key), str):
            row[self.replication_key] = _to_utc_iso(value)
        return row

    # --- errors, retries and rate limits ------------------------------------------

    def validate_response(self, response: requests.Response) -> None:
        """Turn Shopify's client errors into messages that say which setting to fix.

        401 and 403 are about the token, 404 about the shop URL or API version; other
        4xx (except 429) are fatal with Shopify's own error text. 429 and 5xx are left
        to the SDK, which raises ``RetriableAPIError`` so the request is retried.
        """
        status = response.status_code
        endpoint = _url_without_query(response.url)
        if status == HTTPStatus.UNAUTHORIZED:
            msg = "Shopify rejected the access token (HTTP 401) — check the `access_token` setting"
            raise ShopifyAuthError(msg)
        if status == HTTPStatus.FORBIDDEN:
            msg = (
                f"Shopify refused access to {endpoint} (HTTP 403) — the app that owns "
                f"the `access_token` needs the `{self.required_scope}` access scope"
            )
            raise ShopifyAuthError(msg)
        if status == HTTPStatus.NOT_FOUND:
            msg = (
                f"Shopify has no {endpoint} (HTTP 404) — check the `shop` / `api_url` "
                "and `api_version` settings"
            )
            raise ShopifyError(msg)
        if (
            HTTPStatus.BAD_REQUEST <= status < HTTPStatus.INTERNAL_SERVER_ERROR
            and status not in self.extra_retry_statuses
        ):
            raise ShopifyError(self.response_error_message(response))
        super().validate_response(response)

    def response_error_message(self, response: requests.Response) -> str:
        """``HTTP 503 Service Unavailable for GET <url>: <body>`` — no headers, no query."""
        body = response.text.strip()[:500] if response.content else ""
        method = response.request.method if response.request is not None else "GET"
        msg = (
            f"Shopify answered HTTP {response.status_code} {response.reason} for "
            f"{method} {_url_without_query(response.url)}"
        )
        return f"{msg}: {body}" if body else msg

    def backoff_max_tries(self) -> int:
        """The first attempt plus ``max_retries`` retries."""
        return int(self.config.get("max_retries", 5)) + 1

    def backoff_wait_generator(self) -> t.Generator[float, t.Any, None]:
        """Wait what ``Retry-After`` says on 429; otherwise back off exponentially.

        ``backoff`` primes the generator with ``None`` and then sends it each
        exception, so the wait can depend on the response that failed.
        """
        backoffs = 0
        exception = yield 0.0
        while True:
            response = getattr(exception, "response", None)
            wait = retry_after_seconds(response)
            if wait is None:
                wait = self.backoff_base_seconds * 2**backoffs
                wait += random.uniform(0, self.backoff_base_seconds / 2)  # noqa: S311
                backoffs += 1
            exception = yield min(wait, self.backoff_max_seconds)

    def backoff_jitter(self, value: float) -> float:
        """No extra jitter: ``Retry-After`` is exact, and the generator jitters the rest."""
        return value

    def backoff_handler(self, details: Details) -> None:
        """Log each retry with the status or error, the URL (no query) and the wait."""
        exception = details.get("exception")
        request = details["args"][0] if details.get("args") else None
        url = _url_without_query(getattr(request, "url", None))
        if isinstance(exception, RetriableAPIError) and exception.response is not None:
            reason = f"HTTP {exception.response.status_code} {exception.response.reason}"
        else:
            reason = type(exception).__name__ if exception else "an error"
        self.log(
            "Shopify request to %s failed with %s; retrying in %.2f s (attempt %d of %d)",
            url,
            reason,
            details.get("wait", 0.0),
            details.get("tries", 0) + 1,
            self.backoff_max_tries(),
            level=logging.WARNING,
        )

    def request_decorator(self, func: RequestFunc) -> RequestFunc:
        """Retry as the SDK does, then pace by the bucket and make final failures readable."""
        retrying = super().request_decorator(func)
        attempts = self.backoff_max_tries()

        def request_once_retried(
            prepared_request: requests.PreparedRequest,
            context: Context | None,
        ) -> requests.Response:
            url = _url_without_query(prepared_request.url)
            try:
                response = retrying(prepared_request, context)
            except requests.exceptions.Timeout as exc:
                msg = (
                    f"Shopify did not answer {url} within {self.timeout} s "
                    f"({attempts} attempt(s)) — check that the shop is reachable, or "
                    "raise the `request_timeout` setting"
                )
                raise ShopifyConnectionError(msg) from exc
            except (requests.exceptions.RequestException, ConnectionResetError) as exc:
                msg = (
                    f"Could not connect to Shopify at {url} ({attempts} attempt(s)): "
                    f"{_short_reason(exc)} — check the `shop` / `api_url` setting and "
                    "that the server is up"
                )
                raise ShopifyConnectionError(msg) from exc
            except RetriableAPIError as exc:
                msg = f"{exc} — still failing after {attempts} attempt(s); try again later"
                raise ShopifyRetriesExhaustedError(msg) from exc
            self._pace(response)
            return response

        return request_once_retried

    def _pace(self, response: requests.Response) -> None:
        """Sleep when the leaky bucket is nearly full, so we never hit the 429 wall.

        ``X-Shopify-Shop-Api-Call-Limit: 32/40`` means 32 of 40 slots are used. Above
        ``bucket_high_water`` we wait until the bucket has leaked back to one slot
        below that mark, so the next call lands under it again (this also holds for
        tiny buckets, where "back to the mark" would leave no room for the next call).
        """
        used, size = _parse_call_limit(response.headers.get(CALL_LIMIT_HEADER))
        if not size or used / size <= self.bucket_high_water:
            return
        target = max(0.0, self.bucket_high_water * size - 1)
        wait = (used - target) / self.bucket_leak_per_second
        self.logger.info(
            "Shopify API call bucket at %d/%d; pausing %.2f s to let it drain",
            used,
            size,
            wait,
        )
        time.sleep(wait)


def _parse_call_limit(header: str | None) -> tuple[int, int]:
    """``"32/40"`` → ``(32, 40)``; anything unreadable → ``(0, 0)``."""
    if not header or "/" not in header:
        return 0, 0
    used, _, size = header.partition("/")
    try:
        return int(used.strip()), int(size.strip())
    except ValueError:
        return 0, 0


def _short_reason(exc: BaseException) -> str:
    """A one-line reason for a network failure (``connection refused``, DNS…)."""
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("Temporary failure in name resolution", "host name not found"),
        ("Connection reset", "connection reset"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__
