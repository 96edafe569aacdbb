"""Retries a person can follow, and final failures a person can act on.

singer-sdk retries a request through ``backoff`` and, when the last attempt fails,
lets whatever was raised escape: a ``requests`` exception whose text is a chain of
urllib3 wrappers quoting the full URL, or a ``RetriableAPIError``. The pipeline's user
needs one line instead: which platform, which endpoint, how many attempts, and which
setting to look at. This module builds those lines for every tap, while each tap keeps
its own exception classes (its CLI ends them without a traceback, see
:class:`omnicanal_tapkit.tap.PlatformTap`) and its own words for the platform and the
settings that locate it.

No message here quotes a header or a query string: the
endpoint is named without its query, a network failure by a short reason, and any
other text is redacted of the request's credentials.
"""

from __future__ import annotations

import functools
import logging
import typing as t
from dataclasses import dataclass

import requests
from singer_sdk.exceptions import RetriableAPIError

from omnicanal_tapkit.redact import scrub, url_without_query

if t.TYPE_CHECKING:
    from backoff.types import Details
    from singer_sdk.helpers.types import Context, RequestFunc


def network_reason(exc: BaseException) -> str:
    """A short reason for a failure with no HTTP answer (``connection refused``, DNS, TLS).

    The exception's own text is not used as such: it can be long (a chain of urllib3
    wrappers) and can quote the full URL with its query.
    """
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


def _reason_phrase(response: requests.Response) -> str:
    return response.reason or ""


@dataclass(frozen=True)
class PlatformFailures:
    """What a tap says, and raises, when its platform fails for good.

    ``connection_error`` is raised when nothing answered (timeout, refused, DNS);
    ``retries_exhausted_error`` when the platform kept answering 429 or 5xx. Both are
    the tap's own classes, usually subclasses of its ``FatalAPIError`` base, so the
    tap's CLI can end them with their message.
    """

    #: The platform's name as users know it: "Square", "VTEX".
    platform: str
    connection_error: type[Exception]
    retries_exhausted_error: type[Exception]
    #: The settings that say where the platform is, quoted in connection failures.
    address_settings: str = "`api_url`"
    #: Text after ``HTTP <status>`` in a retry's log line: the platform's error code
    #: and detail from the body, or by default the reason phrase.
    describe: t.Callable[[requests.Response], str] = _reason_phrase

    def timeout_message(self, url: str, timeout: float, attempts: int) -> str:
        return (
            f"{self.platform} did not answer {url} within {timeout:g} s ({attempts} "
            "attempt(s)) — check that it is reachable, or raise the `request_timeout` "
            "setting"
        )

    def connection_message(self, url: str, reason: str, attempts: int) -> str:
        return (
            f"Could not connect to {self.platform} at {url} ({attempts} attempt(s)): "
            f"{reason} — check the {self.address_settings} setting and that the server is up"
        )

    def exhausted_message(self, last_error: str, attempts: int) -> str:
        return f"{last_error} — still failing after {attempts} attempt(s); try again later"


def readable_failures(
    retrying: RequestFunc,
    failures: PlatformFailures,
    *,
    attempts: int,
    timeout: float,
) -> RequestFunc:
    """Wrap singer-sdk's retrying request function so its final failures read well.

    ``retrying`` is what ``RESTStream.request_decorator`` returns; ``attempts`` is its
    ``backoff_max_tries()``. A timeout or a network error becomes the tap's
    ``connection_error``, a retriable answer that never stopped its
    ``retries_exhausted_error``; the original stays chained as ``__cause__`` for a
    debugger, but no message carries the request's credentials.
    """

    @functools.wraps(retrying)
    def request_with_readable_failures(
        prepared_request: requests.PreparedRequest,
        context: Context | None,
    ) -> requests.Response:
        url = url_without_query(prepared_request.url)
        try:
            return retrying(prepared_request, context)
        except requests.exceptions.Timeout as exc:
            msg = failures.timeout_message(url, timeout, attempts)
            raise failures.connection_error(msg) from exc
        except (requests.exceptions.RequestException, ConnectionResetError) as exc:
            msg = failures.connection_message(url, network_reason(exc), attempts)
            raise failures.connection_error(msg) from exc
        except RetriableAPIError as exc:
            last = scrub(str(exc), prepared_request)
            raise failures.retries_exhausted_error(
                failures.exhausted_message(last, attempts)
            ) from exc

    return request_with_readable_failures


def backoff_log_handler(
    failures: PlatformFailures,
    logger: logging.Logger,
    *,
    max_tries: int,
) -> t.Callable[[Details], None]:
    """An ``on_backoff`` handler: one WARNING per retry, saying why and for how long.

    ``Square request to https://…/v2/orders/search failed with HTTP 429 RATE_LIMITED:
    …; retrying in 1.04 s (attempt 2 of 6)``. The URL has no query, a network failure
    is a short reason, and the line is redacted of the request's credentials.
    """

    def log_retry(details: Details) -> None:
        exception = details.get("exception")
        args = details.get("args") or ()
        request = args[0] if args else None
        if isinstance(exception, RetriableAPIError) and exception.response is not None:
            response = exception.response
            reason = f"HTTP {response.status_code} {failures.describe(response)}".rstrip()
        elif exception is not None:
            reason = network_reason(exception)
        else:
            reason = "an error"
        logger.warning(
            "%s request to %s failed with %s; retrying in %.2f s (attempt %d of %d)",
            failures.platform,
            url_without_query(getattr(request, "url", None)),
            scrub(reason, request),
            details.get("wait", 0.0),
            details.get("tries", 0) + 1,
            max_tries,
        )

    return log_retry
