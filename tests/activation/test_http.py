"""The destination HTTP client's pacing and retries, without a network."""

from __future__ import annotations

import httpx

from omnicanal.activation.http import RateLimiter, RetryingClient


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_limiter_spaces_requests_at_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(5, clock=clock, sleep=clock.sleep)
    for _ in range(11):
        limiter.wait()
    # 11 requests at 5/s: the first at once, then one every 0.2 s.
    assert abs(clock.now - 102.0) < 1e-9
    assert len(clock.slept) == 10


def test_limiter_does_not_wait_when_requests_are_slow_and_honours_defer():
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    limiter.wait()
    clock.now += 1.0
    limiter.wait()
    assert clock.slept == []
    limiter.defer(3.0)  # Retry-After: 3
    limiter.wait()
    assert clock.slept == [3.0]


def test_client_paces_each_attempt_and_defers_after_retry_after(monkeypatch):
    answers = iter([httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200)])
    client = RetryingClient("http://platform.test", rate_limit=4, backoff=0.01)
    clock = FakeClock()
    client.limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)
    monkeypatch.setattr(client._client, "request", lambda *a, **k: next(answers))
    monkeypatch.setattr("omnicanal.activation.http.time.sleep", lambda s: None)
    assert client.request("GET", "/x").status_code == 200
    assert client.requests_sent == 2
    assert clock.slept == [2.0]  # the retry waited for Retry-After, through the limiter
    client.close()
