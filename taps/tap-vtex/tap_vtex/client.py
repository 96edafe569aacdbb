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
  and the setting to check (omnicanal-tapkit's ``PlatformRetries``);
- 401 and 403 name the app key and the License Manager resource its role needs;
  other 4xx are fatal with VTEX's own message (OMS ``error.message``, Master Data
  ``Message``).
"""

from __future__ import annotations

import typing as t
from functools import cached_property
from http import HTTPStatus
from importlib import resources

import requests
from singer_sdk import RESTStream, SchemaDirectory

from omnicanal_tapkit import (
    ConformedRecords,
    PlatformFailures,
    PlatformRetries,
    json_body,
    records_at,
    url_without_query,
)
from tap_vtex.errors import (
    VtexAuthError,
    VtexConnectionError,
    VtexError,
    VtexRetriesExhaustedError,
)

if t.TYPE_CHECKING:
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


class VtexStream(ConformedRecords, PlatformRetries, RESTStream[t.Any]):
    """A VTEX REST endpoint with VTEX's auth, errors, retries and rate limits."""

    #: Retries, their log lines and final errors speak of VTEX and raise its errors.
    failures = PlatformFailures(
        platform="VTEX",
        connection_error=VtexConnectionError,
        retries_exhausted_error=VtexRetriesExhaustedError,
        address_settings="`api_url` / `account`",
    )
    #: The License Manager resource the app key's role needs, named in a 403.
    required_resource: t.ClassVar[str] = ""

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
        """GET ``path`` with the stream's headers, retries and error handling.

        Called once per order (its detail), so the request is not prepared anew each
        time: ``Session.prepare_request`` merges the session's headers, cookies, hooks
        and auth into every request and re-parses the URL, most of a request's CPU in
        the tap (``bench/extract``). While the session holds no cookie, what it merges
        is the same for every request, so the GET prepared for the first path is copied
        and given each next path (an absolute path of unreserved characters and
        %-escapes, which preparing would leave as it is); the stream's authenticator
        still signs each copy. Once the platform sets a cookie, every request is
        prepared in full again, so it carries the cookies as requests would send them.
        """
        session = self.requests_session
        if session.cookies:
            request = requests.Request("GET", f"{self.url_base}{path}", headers=self.http_headers)
            prepared = session.prepare_request(request)
        else:
            template = self.__dict__.get("_prepared_get")
            if template is None:
                request = requests.Request("GET", f"{self.url_base}/", headers=self.http_headers)
                template = self.__dict__["_prepared_get"] = session.prepare_request(request)
            prepared = template.copy()
            prepared.url = f"{template.url[:-1]}{path}"
            prepared = self.authenticator(prepared)
        return json_body(self._retried_send(prepared, context))

    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        """The records under ``records_jsonpath``, decimals exact, as singer-sdk reads
        them, by omnicanal-tapkit's ``json_body`` and ``records_at`` (no JSONPath
        parser built at each start)."""
        yield from records_at(self.records_jsonpath, json_body(response, exact_decimals=True))

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
