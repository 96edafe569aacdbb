"""Rate limits and injected failures shared by the platform emulators.

Real APIs throttle and fail; the taps and the sync engine must back off and retry.
These small, thread-safe helpers let an emulator behave like the real thing (a
Shopify leaky bucket, a Mailchimp requests-per-second cap) and let a test make the
next calls fail on purpose.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


class LeakyBucket:
    """Shopify's REST throttle: each call adds one unit, the bucket leaks at a fixed rate.

    A call that would overflow the bucket is refused and adds nothing, so a client
    that waits ``Retry-After`` gets in again.
    """

    def __init__(self, size: int, leak_per_second: float, clock: Clock = time.monotonic) -> None:
        if size < 1 or leak_per_second < 0:
            raise ValueError("bucket size must be >= 1 and leak rate >= 0")
        self.size = size
        self.leak_per_second = leak_per_second
        self._clock = clock
        self._level = 0.0
        self._at = clock()
        self._lock = threading.Lock()

    def _leak(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._at) * self.leak_per_second)
        self._at = now

    def try_take(self) -> tuple[bool, int]:
        """Add one call; return whether it fits and the bucket level to report."""
        with self._lock:
            self._leak()
            if self._level + 1 > self.size:
                return False, self.size
            self._level += 1
            return True, math.ceil(self._level - 1e-9)

    @property
    def level(self) -> int:
        with self._lock:
            self._leak()
            return math.ceil(self._level - 1e-9)


class RequestWindow:
    """At most ``per_second`` requests in any one-second window (None: unlimited)."""

    def __init__(self, per_second: int | None, clock: Clock = time.monotonic) -> None:
        self.per_second = per_second
        self._clock = clock
        self._seen: deque[float] = deque()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        if self.per_second is None:
            return True
        with self._lock:
            now = self._clock()
            while self._seen and now - self._seen[0] >= 1.0:
                self._seen.popleft()
            if len(self._seen) >= self.per_second:
                return False
            self._seen.append(now)
            return True


@dataclass(frozen=True)
class Fault:
    """A failure to answer instead of the real response, after ``hang_seconds``
    (a client with a shorter timeout sees a timeout)."""

    status: int
    retry_after: str | None = None
    hang_seconds: float = 0.0


class FaultInjector:
    """A queue of failures the next requests answer with, for retry tests."""

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()
        self._lock = threading.Lock()

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        retry_after: str | None = None,
        hang_seconds: float = 0.0,
    ) -> None:
        """Make the next ``n`` requests (that pass authentication) answer ``status``."""
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._queue.extend(Fault(status, retry_after, hang_seconds) for _ in range(n))

    def take(self) -> Fault | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)
