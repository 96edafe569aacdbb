"""One POST to Shopify's GraphQL Admin API, paced by its cost budget and retried.

Shopify rate-limits GraphQL by *calculated query cost*, not by request count: each
answer ends with ``extensions.cost`` ::

    {"requestedQueryCost": 101, "actualQueryCost": 46,
     "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1954,
                        "restoreRate": 100.0}}

The bucket must hold a query's *requested* cost before the query runs, and refills at
``restoreRate`` points a second. :class:`ShopifyGraphQL` remembers the last status and
the requested cost of each query text, and sleeps before a query the bucket cannot
afford yet, so a well-paced sync is never throttled. When it is anyway (another app of
the same shop spent the budget), Shopify answers HTTP 200 with
``errors[].extensions.code == "THROTTLED"`` and no data: the client waits for the
missing points and asks again. HTTP 429 (``Retry-After``), 5xx and dropped connections
are retried with exponential backoff (omnicanal-tapkit's waits, shared with the other
taps). Every other GraphQL error is final and names the stream it came from.
"""

from __future__ import annotations

import logging
import time
import typing as t
from dataclasses import dataclass
from http import HTTPStatus

import msgspec
import requests

from omnicanal_tapkit import (
    exponential_backoff,
    json_body,
    network_reason,
    retry_after_seconds,
    url_without_query,
)
from tap_shopify.errors import (
    ShopifyAuthError,
    ShopifyConnectionError,
    ShopifyError,
    ShopifyGraphQLError,
    ShopifyRetriesExhaustedError,
)

ACCESS_TOKEN_HEADER = "X-Shopify-Access-Token"
#: The version Shopify actually served, on every answer.
VERSION_HEADER = "X-Shopify-API-Version"

#: Shopify's current stable Admin API release on the day this tap was pinned
#: (quarterly releases, each supported for at least twelve months).
DEFAULT_API_VERSION = "2026-10"

#: Error codes Shopify puts in ``errors[].extensions.code``.
THROTTLED = "THROTTLED"
ACCESS_DENIED = "ACCESS_DENIED"
MAX_COST_EXCEEDED = "MAX_COST_EXCEEDED"

#: A query's JSON body, as ``requests`` would send ``json=``: the same JSON value.
_encode = msgspec.json.Encoder().encode


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


@dataclass
class ThrottleStatus:
    """The cost bucket as Shopify last reported it, and when."""

    maximum_available: float
    currently_available: float
    restore_rate: float
    observed_at: float

    @classmethod
    def from_extensions(cls, extensions: t.Any, now: float) -> ThrottleStatus | None:
        try:
            status = extensions["cost"]["throttleStatus"]
            return cls(
                maximum_available=float(status["maximumAvailable"]),
                currently_available=float(status["currentlyAvailable"]),
                restore_rate=float(status["restoreRate"]),
                observed_at=now,
            )
        except (KeyError, TypeError, ValueError):
            return None

    def available_at(self, now: float) -> float:
        """Points in the bucket at ``now``, refilled since the last report."""
        refilled = self.currently_available + (now - self.observed_at) * self.restore_rate
        return min(self.maximum_available, refilled)

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until the bucket holds ``cost`` points (0 when it already does).

        A cost above the bucket's size can never be met; waiting for a full bucket is
        the best there is (Shopify then answers MAX_COST_EXCEEDED, a clear error).
        """
        needed = min(cost, self.maximum_available) - self.available_at(now)
        if needed <= 0 or self.restore_rate <= 0:
            return 0.0
        return needed / self.restore_rate


def _requested_cost(extensions: t.Any) -> float | None:
    try:
        return float(extensions["cost"]["requestedQueryCost"])
    except (KeyError, TypeError, ValueError):
        return None


def _error_code(error: t.Any) -> str | None:
    if isinstance(error, dict) and isinstance(error.get("extensions"), dict):
        code = error["extensions"].get("code")
        return str(code) if code else None
    return None


def _error_messages(errors: list[t.Any]) -> str:
    parts = []
    for error in errors[:5]:
        if isinstance(error, dict):
            message = str(error.get("message") or error)
            code = _error_code(error)
            path = error.get("path")
            if path:
                message += f" (at {'.'.join(str(p) for p in path)})"
            if code:
                message += f" [{code}]"
            parts.append(message)
        else:
            parts.append(str(error))
    if len(errors) > 5:
        parts.append(f"… and {len(errors) - 5} more")
    return "; ".join(parts)


class _Retry(Exception):  # noqa: N818 - an internal signal, not an error
    """An answer worth asking again, after ``wait`` seconds."""

    def __init__(
        self, reason: str, wait: float | None = None, *, unreachable: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait
        #: True when no HTTP answer came at all (refused, reset, timed out).
        self.unreachable = unreachable


class ShopifyGraphQL:
    """A session on ``POST {base}/admin/api/{version}/graphql.json`` shared by a tap's streams.

    One instance per tap run: the cost bucket is per app and shop, so every stream
    must see the same throttle status.
    """

    #: First wait of the exponential backoff for 429/5xx/connection errors.
    backoff_base_seconds: float = 1.0
    #: Longest wait between two retries, whatever the backoff or Retry-After says.
    backoff_max_seconds: float = 60.0

    def __init__(
        self,
        config: t.Mapping[str, t.Any],
        logger: logging.Logger,
        *,
        sleep: t.Callable[[float], None] = time.sleep,
        clock: t.Callable[[], float] = time.monotonic,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = shopify_base_url(config)
        self.api_version = config.get("api_version") or DEFAULT_API_VERSION
        self.url = f"{self.base_url}/admin/api/{self.api_version}/graphql.json"
        self.timeout = float(config.get("request_timeout", 60))
        self.max_retries = int(config.get("max_retries", 5))
        self.logger = logger
        self.sleep = sleep
        self.clock = clock
        self.session = session or requests.Session()
        self.session.headers.update(
            {
                ACCESS_TOKEN_HEADER: config.get("access_token") or "",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": config.get("user_agent") or "tap-shopify-omnicanal (singer-sdk)",
            }
        )
        self.throttle: ThrottleStatus | None = None
        #: Requested cost of each query text, from Shopify's last answer to it.
        self.query_costs: dict[str, float] = {}
        #: Seconds slept to respect the cost budget (before queries and on THROTTLED).
        self.throttle_wait_total = 0.0
        #: The version Shopify says it served (``X-Shopify-API-Version``), if any.
        self.served_version: str | None = None
        #: The POST every query is a copy of, and what the environment adds to sending
        #: it (proxies, CA bundle): both prepared once, see :meth:`_prepare`.
        self._template: requests.PreparedRequest | None = None
        self._send_settings: dict[str, t.Any] | None = None

    # --- public -------------------------------------------------------------------

    def execute(
        self,
        query: str,
        variables: dict[str, t.Any] | None = None,
        *,
        stream: str = "",
        estimated_cost: float | None = None,
    ) -> dict[str, t.Any]:
        """Run one query and return its ``data``; raise a :class:`ShopifyError` on failure.

        ``stream`` names the stream in error messages. ``estimated_cost`` is used
        for pacing until Shopify has told us the query's real requested cost.
        """
        where = f"stream '{stream}'" if stream else "tap-shopify"
        attempt = 0
        while True:
            self._pace(query, estimated_cost)
            try:
                return self._post_once(query, variables, where)
            except _Retry as retry:
                attempt += 1
                if attempt > self.max_retries and retry.unreachable:
                    msg = (
                        f"{where}: could not connect to Shopify at {self.url} "
                        f"({attempt} attempt(s)): {retry.reason} — check the `shop` / "
                        "`api_url` setting and that the server is up"
                    )
                    raise ShopifyConnectionError(msg) from None
                if attempt > self.max_retries:
                    msg = (
                        f"{where}: Shopify kept answering {retry.reason} at "
                        f"{url_without_query(self.url)} after {attempt} attempt(s) — try "
                        "again later, or raise `max_retries`"
                    )
                    raise ShopifyRetriesExhaustedError(msg) from None
                wait = retry.wait if retry.wait is not None else self._backoff(attempt)
                wait = min(wait, self.backoff_max_seconds)
                self.logger.warning(
                    "%s: Shopify answered %s; retrying in %.2f s (attempt %d of %d)",
                    where,
                    retry.reason,
                    wait,
                    attempt + 1,
                    self.max_retries + 1,
                )
                if retry.reason == THROTTLED:
                    self.throttle_wait_total += wait
                self.sleep(wait)

    def download(self, url: str, *, stream: str = "") -> requests.Response:
        """GET a bulk operation's result file, streamed, retried like a query.

        The URL is a signed link to Shopify's storage: the access token is not sent
        there, and the signature is kept out of the logs.
        """
        where = f"stream '{stream}'" if stream else "tap-shopify"
        attempt = 0
        while True:
            try:
                response = requests.get(url, stream=True, timeout=self.timeout)
                if response.status_code == HTTPStatus.TOO_MANY_REQUESTS or (
                    response.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR
                ):
                    raise _Retry(f"HTTP {response.status_code}", retry_after_seconds(response))
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                reason = type(exc).__name__
                response = None
                retry = _Retry(reason)
            except _Retry as exc:
                retry = exc
            else:
                if response.status_code >= HTTPStatus.BAD_REQUEST:
                    msg = (
                        f"{where}: downloading the bulk operation result from "
                        f"{url_without_query(url)} failed with HTTP {response.status_code}"
                        " — the link expires a week after the operation; run the sync again"
                    )
                    raise ShopifyError(msg)
                return response
            attempt += 1
            if attempt > self.max_retries:
                msg = (
                    f"{where}: downloading {url_without_query(url)} kept failing "
                    f"({retry.reason}) after {attempt} attempt(s)"
                )
                raise ShopifyRetriesExhaustedError(msg)
            self.sleep(min(retry.wait or self._backoff(attempt), self.backoff_max_seconds))

    # --- internals ----------------------------------------------------------------

    def _note_served_version(self, served: str | None) -> None:
        """Warn once when Shopify served another version than the one asked for.

        Shopify answers a request for an unsupported (too old) version with the oldest
        supported one and says so only in ``X-Shopify-API-Version``: the sync works,
        but on a schema the queries were not written for, until fields disappear.
        """
        if not served or served == self.served_version:
            return
        self.served_version = served
        if served != self.api_version and self.api_version != "unstable":
            self.logger.warning(
                "Shopify served Admin API version %s instead of the requested %s, which it "
                "no longer supports (or does not know): set `api_version` to a supported "
                "release, e.g. %s",
                served,
                self.api_version,
                DEFAULT_API_VERSION,
            )

    def _backoff(self, attempt: int) -> float:
        """1 s, 2 s, 4 s… with up to 10 % jitter so parallel taps do not retry in step."""
        return exponential_backoff(
            attempt - 1, base=self.backoff_base_seconds, cap=self.backoff_max_seconds
        )

    def _pace(self, query: str, estimated_cost: float | None) -> None:
        """Sleep until the bucket can afford this query's requested cost."""
        if self.throttle is None:
            return
        cost = self.query_costs.get(query, estimated_cost)
        if not cost:
            return
        wait = self.throttle.wait_for(cost, self.clock())
        if wait > 0:
            self.logger.info(
                "Shopify cost budget at %.0f/%.0f points; pausing %.2f s before a query "
                "that costs %.0f",
                self.throttle.available_at(self.clock()),
                self.throttle.maximum_available,
                wait,
                cost,
            )
            self.throttle_wait_total += wait
            self.sleep(wait)

    def _prepare(self, body: bytes) -> requests.PreparedRequest:
        """The POST of ``body`` to the GraphQL endpoint, as ``Session.post`` prepares it.

        ``Session.prepare_request`` merges the session's headers, cookies, hooks and
        ``.netrc`` auth and re-parses the URL: about 1 ms of CPU a query, most of the
        client's own cost per page in ``bench/extract`` (806 queries for 5,910 records).
        All of that is the same for every query while the session holds no cookie and no
        auth of its own (neither does it here: the token is a header), so the POST
        prepared for the first query is copied and given each query's body. Once
        Shopify sets a cookie (or a caller's session brings auth, which may sign the
        body), every query is prepared in full again, as requests would send it.
        """
        session = self.session
        if session.cookies or session.auth is not None:
            return session.prepare_request(requests.Request("POST", self.url, data=body))
        if self._template is None:
            self._template = session.prepare_request(requests.Request("POST", self.url))
        prepared = self._template.copy()
        prepared.prepare_body(data=body, files=None)
        return prepared

    def _settings(self) -> dict[str, t.Any]:
        """What ``Session.request`` passes to ``send`` besides the timeout: proxies, CA
        bundle and the like from the environment (``HTTPS_PROXY``, ``NO_PROXY``,
        ``REQUESTS_CA_BUNDLE``…), merged with the session's. Looking them up walks all of
        ``os.environ`` (about 0.3-0.8 ms a query); they depend on the URL, which is fixed,
        and the environment, which does not change during a sync: looked up once."""
        if self._send_settings is None:
            self._send_settings = {
                "allow_redirects": True,
                **self.session.merge_environment_settings(self.url, {}, None, None, None),
            }
        settings = dict(self._send_settings)
        settings["proxies"] = dict(settings.get("proxies") or {})
        return settings

    def _post_once(
        self, query: str, variables: dict[str, t.Any] | None, where: str
    ) -> dict[str, t.Any]:
        payload: dict[str, t.Any] = {"query": query}
        if variables:
            payload["variables"] = variables
        try:
            response = self.session.send(
                self._prepare(_encode(payload)), timeout=self.timeout, **self._settings()
            )
        except requests.exceptions.Timeout:
            reason = f"no answer within {self.timeout:g} s (raise `request_timeout`?)"
            raise _Retry(reason, unreachable=True) from None
        except requests.exceptions.ConnectionError as exc:
            raise _Retry(network_reason(exc), unreachable=True) from None
        self._note_served_version(response.headers.get(VERSION_HEADER))
        status = response.status_code
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            raise _Retry("HTTP 429 Too Many Requests", retry_after_seconds(response))
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise _Retry(f"HTTP {status}", retry_after_seconds(response))
        if status == HTTPStatus.UNAUTHORIZED:
            msg = (
                f"{where}: Shopify rejected the access token (HTTP 401) — check the "
                "`access_token` setting"
            )
            raise ShopifyAuthError(msg)
        if status == HTTPStatus.FORBIDDEN:
            msg = (
                f"{where}: Shopify refused the request (HTTP 403) — the app lacks an "
                f"access scope: {_body_excerpt(response)}"
            )
            raise ShopifyAuthError(msg)
        if status == HTTPStatus.NOT_FOUND:
            msg = (
                f"{where}: {url_without_query(self.url)} answered HTTP 404 — check the "
                "`shop` / `api_url` and `api_version` settings"
            )
            raise ShopifyError(msg)
        try:
            body = json_body(response)
        except ValueError:
            msg = f"{where}: Shopify answered HTTP {status} with a body that is not JSON"
            if status >= HTTPStatus.BAD_REQUEST:
                msg += f": {_body_excerpt(response)}"
            raise ShopifyError(msg) from None
        if not isinstance(body, dict):
            msg = f"{where}: Shopify answered HTTP {status} with unexpected JSON"
            raise ShopifyError(msg)
        extensions = body.get("extensions")
        now = self.clock()
        if (throttle := ThrottleStatus.from_extensions(extensions, now)) is not None:
            self.throttle = throttle
        if (cost := _requested_cost(extensions)) is not None:
            self.query_costs[query] = cost
        errors = body.get("errors")
        if status >= HTTPStatus.BAD_REQUEST and not errors:
            msg = f"{where}: Shopify answered HTTP {status}: {_body_excerpt(response)}"
            raise ShopifyError(msg)
        if errors:
            if isinstance(errors, str):  # a 400 can carry ``{"errors": "…"}``
                errors = [{"message": errors}]
            codes = {_error_code(error) for error in errors}
            if THROTTLED in codes:
                wait = None
                if self.throttle is not None and cost is not None:
                    wait = self.throttle.wait_for(cost, now)
                # No cost figures (or a bucket that looks full): back off exponentially.
                raise _Retry(THROTTLED, wait or None)
            if ACCESS_DENIED in codes:
                msg = (
                    f"{where}: Shopify denied access — the app lacks an access scope: "
                    f"{_error_messages(errors)}"
                )
                raise ShopifyAuthError(msg)
            msg = f"{where}: Shopify's GraphQL API answered with errors: {_error_messages(errors)}"
            raise ShopifyGraphQLError(msg)
        data = body.get("data")
        if not isinstance(data, dict):
            msg = f"{where}: Shopify answered without data"
            raise ShopifyGraphQLError(msg)
        return data


def _body_excerpt(response: requests.Response) -> str:
    text = (response.text or "").strip().replace("\n", " ")
    return text[:300] or f"HTTP {response.status_code} {response.reason}"


__all__ = [
    "ACCESS_TOKEN_HEADER",
    "DEFAULT_API_VERSION",
    "ShopifyError",
    "ShopifyGraphQL",
    "ThrottleStatus",
    "shopify_base_url",
]
