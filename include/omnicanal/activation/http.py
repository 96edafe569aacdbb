"""An HTTP client for destination APIs: retries what may be retried, and nothing else.

429 and 5xx answers and dropped connections are retried with exponential backoff,
honouring ``Retry-After``; with ``rate_limit`` (requests a second) every request is
paced by a :class:`RateLimiter`; other 4xx answers are returned to the caller, which knows
what they mean. Authorization headers never reach a log line or an error message.
"""

from __future__ import annotations

import logging
import random
import time

import httpx

from omnicanal.errors import SyncError

log = logging.getLogger(__name__)

RETRYABLE = {429, 500, 502, 503, 504}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class RateLimiter:
    """Spaces requests evenly at ``per_second`` at most (no bursts), and holds them back
    for as long as a platform's ``Retry-After`` asked."""

    def __init__(self, per_second: float, *, clock=time.monotonic, sleep=time.sleep) -> None:
        if per_second <= 0:
            raise ValueError("a rate limit must be positive")
        self.interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    def wait(self) -> None:
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self.interval

    def defer(self, seconds: float) -> None:
        """No request before ``seconds`` from now (the platform said so)."""
        self._next = max(self._next, self._clock() + seconds)


class RetryingClient:
    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
        max_attempts: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 30.0,
        service: str = "destination",
        rate_limit: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._client = httpx.Client(
            base_url=self.base_url, auth=auth, headers=headers or {}, timeout=timeout
        )
        self.requests_sent = 0
        #: paces every request (retries too) when the platform has a rate limit
        self.limiter = RateLimiter(rate_limit) if rate_limit else None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RetryingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        delay = self.backoff
        for attempt in range(1, self.max_attempts + 1):
            if self.limiter is not None:
                self.limiter.wait()
            try:
                self.requests_sent += 1
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == self.max_attempts:
                    raise SyncError(
                        f"{self.service} at {self.base_url} cannot be reached "
                        f"({type(exc).__name__}: {exc}); is it up and is its URL right?"
                    ) from None
                wait = delay
            else:
                if response.status_code not in RETRYABLE or attempt == self.max_attempts:
                    return response
                wait = _retry_after(response) or delay
                if self.limiter is not None:
                    self.limiter.defer(wait)
                log.warning(
                    "%s answered %s to %s %s; retrying in %.1fs (attempt %d/%d)",
                    self.service,
                    response.status_code,
                    method,
                    path,
                    wait,
                    attempt,
                    self.max_attempts,
                )
            time.sleep(min(wait, self.max_backoff) * (1 + random.random() * 0.1))
            delay = min(delay * 2, self.max_backoff)
        raise AssertionError("unreachable")  # pragma: no cover
