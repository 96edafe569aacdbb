"""Meta's side of the webhooks: signed notifications, retries with back-off, duplicates.

A recording endpoint stands in for a callback URL so each POST can be inspected (and
failed on purpose); the signature is recomputed here with hmac, independently of the
emulation's code. The real receiver is exercised in test_pipeline.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from omnicanal.channels.whatsapp import SANDBOX_APP_SECRET, SANDBOX_VERIFY_TOKEN
from omnicanal.channels.whatsapp.delivery import VerificationFailed
from omnicanal.channels.whatsapp.emulation import WhatsAppEmulator
from omnicanal.channels.whatsapp.world import DISPLAY_PHONE_NUMBER, PHONE_NUMBER_ID, WABA_ID
from omnicanal.sandbox import SandboxServer, generate_world

AS_OF = datetime(2025, 6, 1, 15, 0, tzinfo=UTC)


@dataclass
class Recorder:
    """What a callback URL received; answers ``fail`` to the first ``failures`` POSTs."""

    posts: list[tuple[float, bytes, dict[str, str]]] = field(default_factory=list)
    challenges: list[dict[str, str]] = field(default_factory=list)
    failures: int = 0
    fail: int = 500
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/healthz")
        def healthz() -> dict:
            return {"ok": True}

        @app.get("/hook")
        def verify(request: Request) -> Response:
            params = dict(request.query_params)
            self.challenges.append(params)
            if params.get("hub.verify_token") != SANDBOX_VERIFY_TOKEN:
                return Response(status_code=403)
            return PlainTextResponse(params["hub.challenge"])

        @app.post("/hook")
        async def receive(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                self.posts.append((time.monotonic(), body, dict(request.headers)))
                if self.failures > 0:
                    self.failures -= 1
                    return Response(status_code=self.fail)
            return Response(status_code=200)

        return app


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, str]]:
    recording = Recorder()
    with SandboxServer(recording.app()) as server:
        yield recording, f"{server.url}/hook"


@pytest.fixture(scope="module")
def world():
    return generate_world(60, 20250601, as_of=AS_OF)


def emulator(world, **options) -> WhatsAppEmulator:
    """A fresh emulator (its own pending queue) over the shared world."""
    return WhatsAppEmulator(world, **{"retry_base": 0.02, "duplicate_share": 0.0, **options})


def test_notifications_are_meta_payloads_signed_with_the_app_secret(world, recorder) -> None:
    rec, url = recorder
    whatsapp = emulator(world)
    total = whatsapp.pending
    report = whatsapp.deliver(url)
    assert report.delivered == total == len(rec.posts) and whatsapp.pending == 0
    assert report.events == len(world.slices["whatsapp"].events)
    # the subscription handshake came first, with Meta's three parameters
    assert rec.challenges[0]["hub.mode"] == "subscribe"
    assert rec.challenges[0]["hub.challenge"].isdigit()
    seen_messages, seen_statuses, seen_preferences = set(), 0, []
    for _, body, headers in rec.posts:
        expected = hmac.new(SANDBOX_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-hub-signature-256"] == f"sha256={expected}"
        assert headers["content-type"] == "application/json"
        assert body.isascii()  # Meta escapes non-ASCII (\\u00e7) in the signed bytes
        payload = json.loads(body)
        assert payload["object"] == "whatsapp_business_account"
        (entry,) = payload["entry"]
        assert entry["id"] == WABA_ID
        (change,) = entry["changes"]
        value = change["value"]
        assert change["field"] == (
            "user_preferences" if "user_preferences" in value else "messages"
        )
        assert value["messaging_product"] == "whatsapp"
        assert value["metadata"] == {
            "display_phone_number": DISPLAY_PHONE_NUMBER,
            "phone_number_id": PHONE_NUMBER_ID,
        }
        if "user_preferences" in value:
            # Meta's user_preferences change: the user's contacts entry and the choice,
            # its timestamp an integer (not a string as in messages)
            assert set(value) == {"messaging_product", "metadata", "contacts", "user_preferences"}
            for preference in value["user_preferences"]:
                assert set(preference) == {"wa_id", "detail", "category", "value", "timestamp"}
                assert preference["category"] == "marketing_messages"
                assert preference["detail"] == (
                    f"User requested to {preference['value']} marketing messages"
                )
                assert type(preference["timestamp"]) is int
            assert {c["wa_id"] for c in value["contacts"]} == {
                p["wa_id"] for p in value["user_preferences"]
            }
            assert all(c["profile"]["name"] for c in value["contacts"])
            seen_preferences += value["user_preferences"]
        elif "messages" in value:
            senders = {m["from"] for m in value["messages"]}
            assert {c["wa_id"] for c in value["contacts"]} == senders
            assert all(c["profile"]["name"] for c in value["contacts"])
            seen_messages |= {m["id"] for m in value["messages"]}
        else:
            assert "contacts" not in value
            seen_statuses += len(value["statuses"])
    inbox = world.slices["whatsapp"]
    assert seen_messages == {m["id"] for m in inbox.messages}
    assert seen_statuses == len(inbox.statuses)
    assert seen_preferences and {p["value"] for p in seen_preferences} == {"stop", "resume"}
    assert sorted(seen_preferences, key=json.dumps) == sorted(
        inbox.user_preferences, key=json.dumps
    )


def test_a_refused_notification_is_retried_with_growing_waits(world, recorder) -> None:
    rec, url = recorder
    whatsapp = emulator(world, concurrency=1)
    rec.failures = 3  # the first notification is refused three times, then accepted
    report = whatsapp.deliver(url, limit=2)
    assert report.delivered == 2 and report.retries == 3 and report.failed == 0
    assert report.statuses == {"500": 3, "200": 2}
    first = [at for at, body, _ in rec.posts if body == rec.posts[0][1]]
    assert len(first) == 4
    waits = [b - a for a, b in zip(first, first[1:], strict=False)]
    assert waits[0] >= 0.02 and waits[1] >= 0.04 and waits[2] >= 0.08  # doubling back-off


def test_a_notification_that_keeps_failing_stays_pending_and_goes_later(world, recorder) -> None:
    rec, url = recorder
    whatsapp = emulator(world, max_attempts=3, concurrency=1)
    rec.failures, rec.fail = 10**6, 503
    total = whatsapp.pending
    report = whatsapp.deliver(url, limit=5)
    assert report.delivered == 0 and report.failed == 5 and report.attempts == 15
    assert whatsapp.pending == total  # nothing lost: Meta keeps trying
    rec.failures = 0
    report = whatsapp.deliver(url)
    assert report.delivered == total and whatsapp.pending == 0
    # the five that failed went first, in their order
    first_ok = [body for _, body, _ in rec.posts[15:20]]
    assert first_ok == [body for _, body, _ in rec.posts[0:15:3]]


def test_unreachable_callback_counts_as_failure(world) -> None:
    whatsapp = emulator(world, max_attempts=2)
    whatsapp._verified.add("http://127.0.0.1:9/hook")  # subscribed earlier; now down
    report = whatsapp.deliver("http://127.0.0.1:9/hook", limit=3)
    assert report.failed == 3 and report.statuses == {"unreachable": 6}


def test_meta_sometimes_delivers_twice(world, recorder) -> None:
    rec, url = recorder
    whatsapp = emulator(world, duplicate_share=0.2)
    report = whatsapp.deliver(url)
    counts = Counter(body for _, body, _ in rec.posts)
    twice = sum(1 for n in counts.values() if n == 2)
    assert report.duplicates == twice > 0 and max(counts.values()) == 2
    assert 0.1 < twice / report.delivered < 0.3


def test_a_wrong_verify_token_stops_the_subscription(world, recorder) -> None:
    rec, url = recorder
    whatsapp = emulator(world, verify_token="not-the-receivers")
    with pytest.raises(VerificationFailed, match="hub.challenge"):
        whatsapp.deliver(url)
    assert rec.posts == [] and whatsapp.pending > 0


def test_deliver_over_http_for_the_demo(recorder) -> None:
    rec, url = recorder
    with SandboxServer(generate_world(30, 3, as_of=AS_OF)) as sandbox:
        pending = httpx.get(f"{sandbox.url}/_sandbox/whatsapp/pending").json()["pending"]
        answer = httpx.post(
            f"{sandbox.url}/_sandbox/whatsapp/deliver",
            json={"url": url, "limit": 4, "duplicate_share": 0},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["delivered"] == 4 and answer.json()["pending"] == pending - 4
        assert len(rec.posts) == 4
        bad = httpx.post(
            f"{sandbox.url}/_sandbox/whatsapp/deliver", json={"url": "http://127.0.0.1:9/x"}
        )
        assert bad.status_code == 502 and "callback URL" in bad.json()["error"]


def test_a_served_sandbox_pushes_on_its_own(world, recorder) -> None:
    """With push_seconds (compose's sandbox), pending notifications go out unasked, and a
    callback that is down at first is tried again on the next round."""
    rec, url = recorder
    whatsapp = emulator(world, callback_url="http://127.0.0.1:9/hook", push_seconds=0.1)
    try:
        time.sleep(0.3)  # rounds against a closed port: nothing lost
        assert whatsapp.pending == len(world.slices["whatsapp"].events)
        whatsapp.callback_url = url
        deadline = time.monotonic() + 20
        while whatsapp.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        assert whatsapp.pending == 0 and len(rec.posts) == len(world.slices["whatsapp"].events)
    finally:
        whatsapp.close()
