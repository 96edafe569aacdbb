"""A receiver for the webhook tests: a real child process on a free port, its own store.

``whatsapp`` here is any channel name the receiver is told to serve with these secrets:
the tests need no channel in the registry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from omnicanal.webhooks.app import WebhookSecrets
from omnicanal.webhooks.payload import sign
from omnicanal.webhooks.server import WebhooksProcess

APP_SECRET = "test-app-secret-5f1c"
VERIFY_TOKEN = "test-verify-token-9a2e"
READ_TOKEN = "test-read-token-77b0"
SECRETS = {"whatsapp": WebhookSecrets(APP_SECRET, VERIFY_TOKEN)}


def delivery(*messages: str, statuses: tuple[tuple[str, str, str], ...] = ()) -> bytes:
    """A WhatsApp ``messages`` webhook body with these message ids and (id, status, ts)s."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "551140028922", "phone_number_id": "1065"},
        "contacts": [{"profile": {"name": "Zé"}, "wa_id": "551187654321"}],
    }
    if messages:
        value["messages"] = [
            {
                "from": "551187654321",
                "id": m,
                "timestamp": "1764000000",
                "type": "text",
                "text": {"body": "oi"},
            }
            for m in messages
        ]
    if statuses:
        value["statuses"] = [
            {"id": i, "status": s, "timestamp": t, "recipient_id": "551187654321"}
            for i, s, t in statuses
        ]
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1022", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(payload, ensure_ascii=False).encode()


class Receiver:
    """A running receiver and the calls the tests make on it."""

    def __init__(self, process: WebhooksProcess) -> None:
        self.process = process
        self.client = httpx.Client(base_url=process.url, timeout=10)

    def post(self, body: bytes, secret: str | None = APP_SECRET, **headers: str) -> httpx.Response:
        if secret is not None:
            headers.setdefault("X-Hub-Signature-256", sign(secret, body))
        return self.client.post("/webhooks/whatsapp", content=body, headers=headers)

    def events(self, after: int = 0, limit: int | None = None, token: str = READ_TOKEN):
        params = {"after": after} | ({"limit": limit} if limit else {})
        return self.client.get(
            "/events/whatsapp", params=params, headers={"Authorization": f"Bearer {token}"}
        )

    def all_events(self) -> list[dict]:
        found, after = [], 0
        while True:
            page = self.events(after, limit=10_000).json()
            found += page["data"]
            if page["next_after"] is None:
                return found
            after = page["next_after"]

    def quarantine(self) -> list[dict]:
        answer = self.client.get(
            "/events/whatsapp/quarantine", headers={"Authorization": f"Bearer {READ_TOKEN}"}
        )
        answer.raise_for_status()
        return answer.json()["data"]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with WebhooksProcess(
        tmp_path / "store", SECRETS, read_token=READ_TOKEN, log_path=tmp_path / "receiver.log"
    ) as process:
        rx = Receiver(process)
        yield rx
        rx.client.close()
