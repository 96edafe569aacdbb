"""The retry behaviour of omnicanal's REST streams, on singer-sdk's public backoff hooks.

``RESTStream`` documents ``backoff_wait_generator``, ``backoff_max_tries``,
``backoff_jitter``, ``backoff_handler`` and ``request_decorator`` as the methods a tap
overrides to change how it retries. :class:`PlatformRetries` overrides exactly those
(and ``timeout``), so a tap's base stream, ``class SquareStream(PlatformRetries,
RESTStream)``, only says who its platform is, in a ``failures`` class attribute (a
:class:`~omnicanal_tapkit.failures.PlatformFailures`). It gets: ``max_retries``
retries after the first attempt, ``Retry-After`` obeyed (capped at
``backoff_max_seconds``), exponential backoff with jitter from ``backoff_base_seconds``
otherwise, one WARNING per retry, and one readable error at the end (see
:mod:`omnicanal_tapkit.failures`). Which answers are retriable stays the stream's own
business (``validate_response``, ``extra_retry_statuses``).
"""

from __future__ import annotations

import typing as t
from http import HTTPStatus
from urllib.parse import urlsplit

import requests
from requests.utils import resolve_proxies

from omnicanal_tapkit.failures import PlatformFailures, backoff_log_handler, readable_failures
from omnicanal_tapkit.settings import DEFAULT_MAX_RETRIES, DEFAULT_REQUEST_TIMEOUT
from omnicanal_tapkit.waits import AnsweredRequests, retry_waits

if t.TYPE_CHECKING:
    from backoff.types import Details
    from singer_sdk.helpers.types import RequestFunc


class ProxiesOnceSession(requests.Session):
    """A ``requests.Session`` that looks the proxy environment up once per origin.

    ``Session.send`` resolves the proxies of every request from the environment
    (``HTTPS_PROXY``, ``NO_PROXY``…), walking all of ``os.environ`` three times: about
    0.13 ms a request with 35 variables, more in a worker's larger environment; VTEX asks
    once per order (1,707 requests for 2,430 records in ``bench/extract``). The answer
    depends only on the scheme and host, the session's ``proxies`` and ``trust_env``,
    none of which changes during a sync, so it is kept per origin; what requests decides
    is unchanged.
    """

    def __init__(self, answered: AnsweredRequests | None = None) -> None:
        super().__init__()
        self._resolved: dict[t.Hashable, dict[str, str]] = {}
        #: Where the requests the platform counted are noted (a rate window), if anywhere.
        self.answered = answered

    def send(self, request: requests.PreparedRequest, **kwargs: t.Any) -> requests.Response:
        if "proxies" not in kwargs and request.url:
            scheme, netloc = urlsplit(request.url)[:2]
            proxies = self.proxies or {}
            key = (scheme, netloc, tuple(sorted(proxies.items())), bool(self.trust_env))
            if key not in self._resolved:
                self._resolved[key] = resolve_proxies(request, proxies, self.trust_env)
            kwargs["proxies"] = dict(self._resolved[key])
        if self.answered is None:
            return super().send(request, **kwargs)
        sent = self.answered.now()
        response = super().send(request, **kwargs)
        if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
            self.answered.refused()
        else:
            self.answered.note(sent)
        return response


#: Per platform origin, the requests answered in its rate window: one tap's streams run
#: one after another on the same token, so they share the platform's window.
_ANSWERED: dict[tuple[str, float], AnsweredRequests] = {}


def answered_requests(url_base: str, window_seconds: float) -> AnsweredRequests:
    """The :class:`AnsweredRequests` of ``url_base``'s rate window, shared by its streams."""
    key = (url_base, window_seconds)
    if key not in _ANSWERED:
        _ANSWERED[key] = AnsweredRequests(window_seconds)
    return _ANSWERED[key]


class PlatformRetries:
    """Mixin for a singer-sdk ``RESTStream``; put it before ``RESTStream`` in the bases.

    Reads the ``max_retries`` and ``request_timeout`` settings (see
    :func:`omnicanal_tapkit.settings.request_settings`).
    """

    #: The platform's name and exception classes; every subclass sets it.
    failures: t.ClassVar[PlatformFailures]
    #: First wait of the exponential backoff for 429, 5xx and connection errors.
    backoff_base_seconds: t.ClassVar[float] = 1.0
    #: First wait after a 429 without ``Retry-After``; ``None``: ``backoff_base_seconds``.
    rate_limit_base_seconds: t.ClassVar[float | None] = None
    #: Longest wait between two retries, whatever the backoff or ``Retry-After`` says.
    backoff_max_seconds: t.ClassVar[float] = 60.0
    #: The platform's rate window when it limits requests per window and answers 429
    #: without ``Retry-After`` (Square: 1 s). Set, the first wait after such a 429 lasts
    #: until the window has room (see :class:`~omnicanal_tapkit.waits.AnsweredRequests`).
    rate_limit_window_seconds: t.ClassVar[float | None] = None

    if t.TYPE_CHECKING:  # provided by RESTStream
        import logging

        config: t.Mapping[str, t.Any]
        logger: logging.Logger
        url_base: str

    @property
    def requests_session(self) -> requests.Session:
        """One :class:`ProxiesOnceSession` per stream, as singer-sdk keeps one session."""
        session = self.__dict__.get("_proxies_once_session")
        if session is None:
            session = self.__dict__["_proxies_once_session"] = ProxiesOnceSession(
                self._rate_window()
            )
        return session

    def _rate_window(self) -> AnsweredRequests | None:
        if self.rate_limit_window_seconds is None:
            return None
        return answered_requests(self.url_base, self.rate_limit_window_seconds)

    @property
    def timeout(self) -> int:
        """Seconds to wait for one HTTP answer (``request_timeout`` setting)."""
        return int(self.config.get("request_timeout", DEFAULT_REQUEST_TIMEOUT))

    def backoff_max_tries(self) -> int:
        """The first attempt plus ``max_retries`` retries."""
        return int(self.config.get("max_retries", DEFAULT_MAX_RETRIES)) + 1

    def backoff_wait_generator(self) -> t.Generator[float, t.Any, None]:
        """``Retry-After`` when the platform says it, else exponential backoff with jitter."""
        return retry_waits(
            base=self.backoff_base_seconds,
            cap=self.backoff_max_seconds,
            rate_limit_base=self.rate_limit_base_seconds,
            rate_window=self._rate_window(),
        )

    def backoff_jitter(self, value: float) -> float:
        """No extra jitter: the generator jitters its own waits, ``Retry-After`` stays exact."""
        return value

    def backoff_handler(self, details: Details) -> None:
        """Log each retry with the status or error, the endpoint (no query) and the wait."""
        backoff_log_handler(self.failures, self.logger, max_tries=self.backoff_max_tries())(details)

    def request_decorator(self, func: RequestFunc) -> RequestFunc:
        """Retry as the SDK does, then turn the final failure into the tap's readable error."""
        retrying = super().request_decorator(func)  # type: ignore[misc]
        return readable_failures(
            retrying, self.failures, attempts=self.backoff_max_tries(), timeout=self.timeout
        )
