"""The one base stream every VTEX stream builds on.

It knows how VTEX's REST APIs behave, so the streams in ``streams.py`` only say what
they read and how they page:

- auth is the ``X-VTEX-API-AppKey`` / ``X-VTEX-API-AppToken`` header pair, on every
  request (never logged);
- the account's base URL is ``https://{account}.{environment}.com.br`` (``api_url``
  overrides it, e.g. for the sandbox);
- rate limits are per account: HTTP 429 with ``Retry-After`` seconds (we wait exactly
  that long and retry); 5xx, timeouts and dropped connections are retried with
  exponential backoff; whatever still fails ends in one clear error that names the URL
  and the setting to check;
- 401 and 403 name the app key and the License Manager resource its role needs;
  other 4xx are fatal with VTEX's own message (OMS ``error.message``, Master Data
  ``Message``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import typing as t
from functools import cached_property
from http import HTTPStatus
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import requests
from singer_sdk import RESTStream, SchemaDirectory
from singer_sdk.exceptions import RetriableAPIError

from tap_vtex.errors import (
    VtexAuthError,
    VtexConnectionError,
    VtexError,
    VtexRetriesExhaustedError,
)

if t.TYPE_CHECKING:
    from backoff.types import Details
    from singer_sdk.helpers.types import Context, RequestFunc

SCHEMAS_DIR = SchemaDirectory(resources.files("tap_vtex") / "schemas")

APP_KEY_HEADER = "X-VTEX-API-AppKey"
APP_TOKEN_HEADER = "X-VTEX-API-AppToken"


def vtex_base_url(config: t.Mapping[str, t.Any]) -> str:
    """The account's base URL (no trailing slash) from ``api_url`` or ``account``."""
    if api_url := (config.get("api_url") or "").strip():
        return api_url.rstrip("/")
    account = (config.get("account") or "").strip().lower()
    environment = (config.get("environment") or "vtexcommercestable").strip().lower()
    return f"https://{account}.{environment}.com.br"


def url_without_query(url: str | None) -> str:
    """Strip the query string: enough to name an endpoint, and keeps filters out of logs."""
    parts = urlsplit(url or "")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``), or ``None`` if it did not say."""
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


def vtex_message(response: requests.Response) -> str:
    """VTEX's own error text: OMS ``{"error": {"message"}}`` or Master Data ``{"Message"}``."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if body.get("Message"):
            return str(body["Message"])
    return response.text.strip()[:300]


class VtexStream(RESTStream[t.Any]):
    """A VTEX REST endpoint with VTEX's auth, errors, retries and rate limits."""

    #: The License Manager resource the app key's role needs, named in a 403.
    required_resource: t.ClassVar[str] = ""
    #: First wait of the exponential backoff for 5xx and connection errors.
    backoff_base_seconds: t.ClassVar[float] = 1.0
    #: Longest wait between two retries, whatever the backoff or Retry-After says.
    backoff_max_seconds: t.ClassVar[float] = 60.0

    @property
    def url_base(self) -> str:
        return vtex_base_url(self.config)

    @property
    def http_headers(self) -> dict:
        """JSON both ways, and the app key/token pair VTEX authenticates with."""
        return {
            **super().http_headers,
            "Accept": "application/json",
            "Content-Type": "application/json",
            APP_KEY_HEADER: self.config["app_key"],
            APP_TOKEN_HEADER: self.config["app_token"],
        }

    @cached_property
    def user_agent(self) -> str:
        return self.config.get("user_agent") or "tap-vtex-omnicanal (singer-sdk)"

    @property
    def timeout(self) -> int:
        """Seconds to wait for one HTTP answer (``request_timeout`` setting)."""
        return int(self.config.get("request_timeout", 60))

    # --- a request outside the stream's own paging (the order detail) ---------------

    @cached_property
    def _retried_send(self) -> RequestFunc:
        return self.request_decorator(self._send)

    def _send(
        self, prepared_request: requests.PreparedRequest, context: Context | None
    ) -> requests.Response:
        response = self.requests_session.send(prepared_request, timeout=self.timeout)
        self.validate_response(response)
        return response

    def get_json(self, path: str, context: Context | None = None) -> t.Any:
        """GET ``path`` with the stream's headers, retries and error handling."""
        request = requests.Request("GET", f"{self.url_base}{path}", headers=self.http_headers)
        prepared = self.requests_session.prepare_request(request)
        return self._retried_send(prepared, context).json()

    # --- errors, retries and rate limits ------------------------------------------

    def validate_response(self, response: requests.Response) -> None:
        """Turn VTEX's client errors into messages that say which setting to fix.

        429 and 5xx are left to the SDK, which raises ``RetriableAPIError`` so the
        request is retried.
        """
        status = response.status_code
        endpoint = url_without_query(response.url)
        if status == HTTPStatus.UNAUTHORIZED:
            msg = (
                f"VTEX rejected the app key/token (HTTP 401: {vtex_message(response)}) — "
                "check the `app_key` and `app_token` settings"
            )
            raise VtexAuthError(msg)
        if status == HTTPStatus.FORBIDDEN:
            msg = (
                f"VTEX refused access to {endpoint} (HTTP 403: {vtex_message(response)}) — "
                f"the role of the `app_key` needs the License Manager resource "
                f"{self.required_resource}"
            )
            raise VtexAuthError(msg)
        if status == HTTPStatus.NOT_FOUND:
            msg = (
                f"VTEX has no {endpoint} (HTTP 404: {vtex_message(response)}) — check the "
                "`api_url` / `account` settings"
            )
            raise VtexError(msg)
        if (
            HTTPStatus.BAD_REQUEST <= status < HTTPStatus.INTERNAL_SERVER_ERROR
            and status not in self.extra_retry_statuses
        ):
            raise VtexError(self.response_error_message(response))
        super().validate_response(response)

    def response_error_message(self, response: requests.Response) -> str:
        """``HTTP 400 Bad Request for GET <url>: <VTEX's message>`` — no headers, no query."""
        method = response.request.method if response.request is not None else "GET"
        msg = (
            f"VTEX answered HTTP {response.status_code} {response.reason} for "
            f"{method} {url_without_query(response.url)}"
        )
        detail = vtex_message(response) if response.content else ""
        return f"{msg}: {detail}" if detail else msg

    def backoff_max_tries(self) -> int:
        """The first attempt plus ``max_retries`` retries."""
        return int(self.config.get("max_retries", 5)) + 1

    def backoff_wait_generator(self) -> t.Generator[float, t.Any, None]:
        """Wait what ``Retry-After`` says on 429; otherwise back off exponentially."""
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
        url = url_without_query(getattr(request, "url", None))
        if isinstance(exception, RetriableAPIError) and exception.response is not None:
            reason = f"HTTP {exception.response.status_code} {exception.response.reason}"
        else:
            reason = type(exception).__name__ if exception else "an error"
        self.log(
            "VTEX request to %s failed with %s; retrying in %.2f s (attempt %d of %d)",
            url,
            reason,
            details.get("wait", 0.0),
            details.get("tries", 0) + 1,
            self.backoff_max_tries(),
            level=logging.WARNING,
        )

    def request_decorator(self, func: RequestFunc) -> RequestFunc:
        """Retry as the SDK does, then make final failures readable."""
        retrying = super().request_decorator(func)
        attempts = self.backoff_max_tries()

        def request_once_retried(
            prepared_request: requests.PreparedRequest,
            context: Context | None,
        ) -> requests.Response:
            url = url_without_query(prepared_request.url)
            try:
                return retrying(prepared_request, context)
            except requests.exceptions.Timeout as exc:
                msg = (
                    f"VTEX did not answer {url} within {self.timeout} s ({attempts} "
                    "attempt(s)) — check that the account is reachable, or raise the "
                    "`request_timeout` setting"
                )
                raise VtexConnectionError(msg) from exc
            except (requests.exceptions.RequestException, ConnectionResetError) as exc:
                msg = (
                    f"Could not connect to VTEX at {url} ({attempts} attempt(s)): "
                    f"{_short_reason(exc)} — check the `api_url` / `account` setting and "
                    "that the server is up"
                )
                raise VtexConnectionError(msg) from exc
            except RetriableAPIError as exc:
                msg = f"{exc} — still failing after {attempts} attempt(s); try again later"
                raise VtexRetriesExhaustedError(msg) from exc

        return request_once_retried


def _short_reason(exc: BaseException) -> str:
    """A one-line reason for a network failure (``connection refused``, DNS…)."""
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not found"),
        ("Temporary failure in name resolution", "host name not found"),
        ("Connection reset", "connection reset"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__
