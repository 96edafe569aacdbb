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
    """The requests a platform accepted, over its rate window, as the client saw them.

    A platform that limits requests per window (Square: at most ``L`` in any second) and
    says nothing about when to come back is full when it answers 429: it counted ``L``
    requests arriving in the last window, and has room again when the oldest of them
    leaves it. The client does not know ``L``, nor when its requests arrived, only that
    each arrived between the moment it was sent and the moment it was answered. So, at a
    429 answered at ``r``: a request *sent* after ``r - window`` arrived inside the
    platform's window, surely; the oldest of those arrived no later than it was
    answered, so the window has room by that answer plus the window
    (:meth:`wait_for_room`), never early. (Counting from the oldest request *answered*
    in the last window, as this did before, was early when that request had arrived
    before the window: a data request takes longer to answer than a 429, so its answer
    can be inside the window while its arrival is not. Its retry was refused again.)
    """

    def __init__(self, window_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.window_seconds = window_seconds
        self._clock = clock
        #: (sent, answered) of each accepted request still of interest, oldest first.
        self._answered: collections.deque[tuple[float, float]] = collections.deque()
        #: When the last 429 was answered (None: no 429 yet).
        self._refused_at: float | None = None

    def now(self) -> float:
        return self._clock()

    def _forget_old(self, now: float) -> None:
        # a request answered a window ago was sent earlier still: it can be inside no
        # future 429's window
        while self._answered and now - self._answered[0][1] >= self.window_seconds:
            self._answered.popleft()

    def note(self, sent: float | None = None) -> None:
        """A request sent at ``sent`` (default: now) was answered now, not with a 429."""
        now = self._clock()
        self._answered.append((now if sent is None else sent, now))
        self._forget_old(now)

    def refused(self) -> None:
        """A request was answered 429 now: the platform's window is full."""
        self._refused_at = self._clock()

    def wait_for_room(self) -> float | None:
        """Seconds until the window the last 429 found full has room; None if the client
        sent none of the requests in it (another client filled it, or no 429 yet)."""
        now = self._clock()
        self._forget_old(now)
        refused_at = now if self._refused_at is None else self._refused_at
        since = refused_at - self.window_seconds
        oldest = next((answered for sent, answered in self._answered if sent > since), None)
        if oldest is None:
            return None
        return max(0.0, oldest + self.window_seconds - now)


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

    ``rate_window`` (the requests the platform accepted from this client in its rate
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
