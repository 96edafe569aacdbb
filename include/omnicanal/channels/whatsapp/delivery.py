"""Meta's side of webhooks: what the WhatsApp emulation posts to a callback URL, and how.

As Meta's webhooks do (developers.facebook.com/docs/graph-api/webhooks):

- a subscription starts with the verification request, ``GET <callback>?hub.mode=
  subscribe&hub.challenge=<n>&hub.verify_token=<token>``, which must answer 200 with the
  challenge (:meth:`WebhookDeliverer.verify`);
- each notification is ``POST <callback>`` with a JSON body ``{"object":
  "whatsapp_business_account", "entry": [{"id": <WABA id>, "changes": [{"value": {...},
  "field": "messages"}]}]}`` and the header ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256
  of the raw body, keyed with the app secret>``;
- anything but a 200 (an error, a timeout, a refused connection) is retried with
  increasing delays (Meta keeps trying for days; here ``max_attempts`` with back-off from
  ``retry_base`` seconds, doubling, capped) and a body that still fails stays pending for
  the next delivery;
- a notification may arrive more than once: Meta says so and receivers must
  deduplicate. ``duplicate_share`` of the delivered bodies are posted a second time;
- deliveries run in parallel (``concurrency``) and carry no order guarantee.

Bodies are built from the world's events by :func:`webhook_body`: one change per
notification; an inbound message comes with its ``contacts`` entry, a few statuses of
the same moment share one ``statuses`` list.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

#: Meta's crawler identifies itself so; receivers sometimes allow-list it.
USER_AGENT = "facebookexternalua"
SIGNATURE_HEADER = "X-Hub-Signature-256"


def sign(body: bytes, app_secret: str) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of the raw body with the app secret, as Meta signs."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_body(
    waba_id: str, metadata: dict[str, str], events: list[dict[str, Any]]
) -> dict[str, Any]:
    """The notification Meta posts for ``events`` (all messages, all statuses, or all
    user preferences: a ``user_preferences`` change with the users' ``contacts``)."""
    value: dict[str, Any] = {"messaging_product": "whatsapp", "metadata": dict(metadata)}
    messages = [e for e in events if e["kind"] == "message"]
    preferences = [e for e in events if e["kind"] == "user_preference"]
    field = "messages"
    if preferences:
        field = "user_preferences"
        contacts = {e["contact"]["wa_id"]: e["contact"] for e in preferences}
        value["contacts"] = list(contacts.values())
        value["user_preferences"] = [e["preference"] for e in preferences]
    elif messages:
        contacts: dict[str, dict[str, Any]] = {}
        for event in messages:
            contacts.setdefault(event["contact"]["wa_id"], event["contact"])
        value["contacts"] = list(contacts.values())
        value["messages"] = [e["message"] for e in messages]
    else:
        value["statuses"] = [e["status"] for e in events]
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": value, "field": field}]}],
    }


def group_events(rng: random.Random, events: Iterable[dict[str, Any]]) -> list[list[dict]]:
    """One notification per event, except statuses of one second that Meta batches."""
    groups: list[list[dict[str, Any]]] = []
    for event in events:
        last = groups[-1] if groups else None
        if (
            last is not None
            and event["kind"] == "status"
            and last[-1]["kind"] == "status"
            and last[-1]["status"]["timestamp"] == event["status"]["timestamp"]
            and rng.random() < 0.5
        ):
            last.append(event)
        else:
            groups.append([event])
    return groups


@dataclass
class Notification:
    """One signed POST: its raw body and how many events it carries."""

    body: bytes
    events: int
    attempts: int = 0


@dataclass
class DeliveryReport:
    """What one :meth:`WebhookDeliverer.deliver` did."""

    url: str
    delivered: int = 0  # notifications answered 200
    events: int = 0  # events in them
    attempts: int = 0  # POSTs, retries and duplicates included
    retries: int = 0
    duplicates: int = 0
    failed: int = 0  # notifications still failing after max_attempts: kept pending
    statuses: dict[str, int] = field(default_factory=dict)  # HTTP status (or error) → count

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "delivered": self.delivered,
            "events": self.events,
            "attempts": self.attempts,
            "retries": self.retries,
            "duplicates": self.duplicates,
            "failed": self.failed,
            "statuses": dict(sorted(self.statuses.items())),
        }


class VerificationFailed(RuntimeError):
    """The callback URL did not pass Meta's ``hub.challenge`` handshake."""


class WebhookDeliverer:
    """Posts notifications to a callback URL the way Meta does (see the module docstring)."""

    def __init__(
        self,
        app_secret: str,
        *,
        retry_base: float = 0.05,
        retry_cap: float = 2.0,
        max_attempts: int = 5,
        duplicate_share: float = 0.02,
        concurrency: int = 4,
        timeout: float = 20.0,
        seed: int | str = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.app_secret = app_secret
        self.retry_base, self.retry_cap, self.max_attempts = retry_base, retry_cap, max_attempts
        self.duplicate_share = duplicate_share
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self._rng = random.Random(f"{seed}:deliveries")
        self._rng_lock = threading.Lock()
        self._sleep = sleep

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1-based): doubling from the base, capped."""
        return min(self.retry_cap, self.retry_base * 2 ** (attempt - 1))

    def verify(self, url: str, verify_token: str, client: httpx.Client | None = None) -> None:
        """Meta's subscription check: the callback must echo ``hub.challenge``."""
        with self._rng_lock:
            challenge = str(self._rng.randrange(10**9, 10**10))
        query = urlencode(
            {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
        )
        try:
            response = (client or httpx).get(
                f"{url}?{query}", headers={"User-Agent": USER_AGENT}, timeout=self.timeout
            )
        except httpx.TransportError as exc:
            raise VerificationFailed(f"could not reach the callback URL {url}: {exc}") from exc
        if response.status_code != 200 or response.text != challenge:
            raise VerificationFailed(
                f"the callback URL {url} did not echo hub.challenge (HTTP "
                f"{response.status_code}); check the verify token"
            )

    def _post(self, client: httpx.Client, url: str, body: bytes) -> str:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(body, self.app_secret),
        }
        try:
            return str(client.post(url, content=body, headers=headers).status_code)
        except httpx.TimeoutException:
            return "timeout"
        except httpx.TransportError:
            return "unreachable"

    def _send(self, client: httpx.Client, url: str, note: Notification, report: DeliveryReport,
              lock: threading.Lock) -> bool:  # fmt: skip
        outcome = ""
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                self._sleep(self.backoff(attempt - 1))
            outcome = self._post(client, url, note.body)
            note.attempts += 1
            with lock:
                report.attempts += 1
                report.retries += attempt > 1
                report.statuses[outcome] = report.statuses.get(outcome, 0) + 1
            if outcome == "200":
                break
        if outcome != "200":
            return False
        with self._rng_lock:
            again = self._rng.random() < self.duplicate_share
        if again:
            outcome = self._post(client, url, note.body)
            with lock:
                report.attempts += 1
                report.duplicates += 1
                report.statuses[outcome] = report.statuses.get(outcome, 0) + 1
        return True

    def deliver(self, url: str, notes: list[Notification]) -> tuple[DeliveryReport, list[int]]:
        """Post every notification to ``url``; returns the report and the indexes of the
        notifications that still failed (the caller keeps them pending)."""
        report = DeliveryReport(url=url)
        lock = threading.Lock()
        failed: list[int] = []
        limits = httpx.Limits(max_connections=self.concurrency)
        with httpx.Client(timeout=self.timeout, limits=limits) as client:

            def one(index: int) -> None:
                note = notes[index]
                if self._send(client, url, note, report, lock):
                    with lock:
                        report.delivered += 1
                        report.events += note.events
                else:
                    with lock:
                        report.failed += 1
                        failed.append(index)

            if self.concurrency == 1 or len(notes) < 2:
                for index in range(len(notes)):
                    one(index)
            else:
                with ThreadPoolExecutor(self.concurrency) as pool:
                    list(pool.map(one, range(len(notes))))
        return report, sorted(failed)


def encode(body: dict[str, Any]) -> bytes:
    """The raw bytes Meta posts (compact JSON, non-ASCII escaped as Meta does)."""
    return json.dumps(body, separators=(",", ":")).encode()
