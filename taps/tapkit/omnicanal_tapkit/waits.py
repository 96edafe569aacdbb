"""How long to wait before asking a platform again.

Every platform omnicanal reads says the same two things when it is overloaded: a
``Retry-After`` header when it knows when to come back (Shopify's 429, VTEX's 429, a
proxy in front of Square), and nothing at all otherwise (Square's 429, any 5xx, a
dropped connection). The first is obeyed exactly; the second gets exponential backoff
with a little jitter, so the taps of one deployment do not retry in step. Both are capped,
so a misconfigured server cannot park a sync for an hour.
"""

from __future__ import annotations

import collections
import datetime as dt
import email.utils
import random
import time
import typing as t
from http import HTTPStatus

if t.TYPE_CHECKING:
    from collections.abc import Callable

    import requests

#: Share of a backoff step added at random (up to 10 % more), enough to spread the
#: retries of parallel taps without making the schedule unpredictable.
DEFAULT_JITTER = 0.1


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``), or ``None`` if it did not say.

    RFC 9110 allows a number of seconds (platforms send fractions too, ``2.0``) or an
    HTTP date; a date in the past means "now" (0). A header that is neither is ignored,
    so the caller falls back to its own backoff instead of failing.
    """
    if response is None:
        return None
    raw = (response.headers.get("Retry-After") or "").strip()
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
    if when.tzinfo is None:  # "-0000" dates parse naive; HTTP dates are always GMT
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def exponential_backoff(
    step: int,
    *,
    base: float = 1.0,
    cap: float = 60.0,
    jitter: float = DEFAULT_JITTER,
) -> float:
    """The wait before retry number ``step + 1``: ``base``, ``2·base``, ``4·base``… plus jitter.

    ``jitter`` is the largest share added at random (0.1: up to 10 % more). The cap
    applies last, so it really is the longest wait.
    """
    wait = base * 2**step
    wait *= 1 + random.uniform(0, jitter)  # noqa: S311 - spreading retries, not crypto
    return min(wait, cap)


#: 429s in a row answered by a wait for room in the window, before exponential backoff.
WINDOWED_WAITS = 2
#: The least wait before the second of those tries.
WINDOW_RETRY_FLOOR = 0.05


class AnsweredRequests:
    """When a platform answered the requests it accepted, over its rate window.

    A platform that limits requests per window (Square: per second) and says nothing
    about when to come back is full when it answers 429; it has room again as soon as
    the oldest request it counted leaves the window. The client knows when that is: it
    sent that request. :meth:`wait_for_room` is the time until then, measured from the
    answer (a little after the platform counted the request, so never early).
    """

    def __init__(self, window_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.window_seconds = window_seconds
        self._clock = clock
        self._answered: collections.deque[float] = collections.deque()

    def _forget_old(self, now: float) -> None:
        while self._answered and now - self._answered[0] >= self.window_seconds:
            self._answered.popleft()

    def note(self) -> None:
        """A request was answered (anything but 429: that one the platform did not count)."""
        now = self._clock()
        self._answered.append(now)
        self._forget_old(now)

    def wait_for_room(self) -> float | None:
        """Seconds until the oldest answered request leaves the window; None if none is in."""
        now = self._clock()
        self._forget_old(now)
        if not self._answered:
            return None
        return max(0.0, self._answered[0] + self.window_seconds - now)


def retry_waits(
    *,
    base: float = 1.0,
    cap: float = 60.0,
    jitter: float = DEFAULT_JITTER,
    rate_limit_base: float | None = None,
    rate_window: AnsweredRequests | None = None,
) -> t.Generator[float, t.Any, None]:
    """A wait generator for singer-sdk's ``RESTStream.backoff_wait_generator`` hook.

    ``backoff`` (which the SDK retries with) primes the generator with ``None`` and then
    sends each exception it caught, so the wait can depend on the answer that failed:
    the failed response's ``Retry-After`` wins (capped); otherwise the next step of
    :func:`exponential_backoff`. Steps count only the waits the client chose, so a
    server that says ``Retry-After`` does not make the next unannounced failure wait
    longer. Pair it with a ``backoff_jitter`` that returns its value unchanged: this
    generator already jitters, and a ``Retry-After`` must stay exact.

    ``rate_limit_base`` (default ``base``) is the first wait of a 429 that names no
    ``Retry-After``: a platform whose rate window is short (Square's frees within a
    second) would sit idle for most of a 1 s first wait, while an outage (5xx, a dropped
    connection) deserves the longer ``base``. Both double on the same step count.

    ``rate_window`` (the requests this client had answered in the platform's rate
    window, see :class:`AnsweredRequests`) decides the first wait of a 429 without
    ``Retry-After``: until the window has room again, so a per-second limit is used
    fully (a doubling wait overshoots the moment the window frees by up to half its
    length). A second 429 in a row waits for room again, at least
    :data:`WINDOW_RETRY_FLOOR`; a third means the window is not the whole story (other
    clients of the same token): the exponential backoff takes over.
    """
    steps = 0
    windowed = 0
    exception = yield 0.0
    while True:
        response = getattr(exception, "response", None)
        wait = retry_after_seconds(response)
        if wait is None:
            status = getattr(response, "status_code", None)
            limited = status == HTTPStatus.TOO_MANY_REQUESTS
            room = rate_window.wait_for_room() if limited and rate_window else None
            if room is not None and windowed < WINDOWED_WAITS:
                # the second try waits at least WINDOW_RETRY_FLOOR: the window was
                # fuller than the client's count (its clock, or another client)
                floor = WINDOW_RETRY_FLOOR if windowed else 0.0
                windowed += 1
                exception = yield min(max(room, floor), cap)
                continue
            first = rate_limit_base if limited and rate_limit_base is not None else base
            wait = exponential_backoff(steps, base=first, cap=cap, jitter=jitter)
            steps += 1
        exception = yield min(wait, cap)
