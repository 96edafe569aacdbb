"""A lean loopback load generator for the webhook receiver: signed WhatsApp deliveries
over keep-alive HTTP/1.1 connections, on asyncio streams.

A hand-rolled client rather than httpx: httpx costs ~1 ms of CPU a request, which on two
shared cores would measure the client, not the receiver. Each connection sends one
request at a time and waits for its answer, as Meta does per delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def whatsapp_body(event_ids: list[str], rng: random.Random) -> bytes:
    """A WhatsApp Business Cloud API ``messages`` webhook with one text message per id."""
    wa_id = f"55{rng.randint(11, 99)}{rng.randint(10_000_000, 999_999_999)}"
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "551140028922",
                                    "phone_number_id": "106540352242922",
                                },
                                "contacts": [{"profile": {"name": "Maria"}, "wa_id": wa_id}],
                                "messages": [
                                    {
                                        "from": wa_id,
                                        "id": event_id,
                                        "timestamp": str(int(time.time())),
                                        "type": "text",
                                        "text": {
                                            "body": "Oi! O meu pedido ainda não chegou, "
                                            "pode ver para mim por favor?"
                                        },
                                    }
                                    for event_id in event_ids
                                ],
                            },
                        }
                    ],
                }
            ],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def request_bytes(host: str, port: int, path: str, body: bytes, secret: str) -> bytes:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Hub-Signature-256: sha256={signature}\r\n"
        "User-Agent: facebookexternalua\r\n\r\n"
    )
    return head.encode() + body


class Connection:
    """One keep-alive connection; ``send`` returns the status code (raises on I/O error)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(raw)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await self.reader.readexactly(length)
            if b"connection: close" in head.lower():
                self.close()
            return status
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    warmup_ok: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def summary(self, events_per_body: int) -> dict:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None

        return {
            "requests": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "events_per_s": round(self.ok * events_per_body / self.seconds, 1),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        }


async def run_load(
    host: str,
    port: int,
    path: str,
    secret: str,
    make_body: Callable[[int], bytes],
    *,
    clients: int,
    seconds: float,
    rate: float | None = None,
    warmup: float = 1.0,
) -> LoadResult:
    """``clients`` connections for ``seconds`` (after ``warmup`` seconds not counted).

    ``rate`` None: closed loop, each connection sends as soon as its last answer came
    (throughput). ``rate`` R: open loop, request k is due at ``k / R`` and its latency
    counts from when it was due, so a stall shows in full (no coordinated omission).
    """
    result = LoadResult()
    counter = iter(range(10**12))
    start = time.perf_counter() + 0.05
    measure_from = start + warmup
    end = measure_from + seconds

    async def client(c: int) -> None:
        conn = Connection(host, port)
        k = c
        while True:
            due = start + k / rate if rate else time.perf_counter()
            if due >= end:
                break
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            raw = request_bytes(host, port, path, make_body(next(counter)), secret)
            t0 = due if rate else time.perf_counter()
            try:
                status = await conn.send(raw)
            except (OSError, asyncio.IncompleteReadError):
                status = 0
            t1 = time.perf_counter()
            if t0 < measure_from:
                result.warmup_ok += status == 200
            else:
                result.sent += 1
                if status == 200:
                    result.ok += 1
                    result.latencies.append(t1 - t0)
                else:
                    result.errors += 1
            k += clients if rate else 1
        conn.close()

    await asyncio.gather(*(client(c) for c in range(clients)))
    result.seconds = min(time.perf_counter(), end) - measure_from if not rate else seconds
    return result
