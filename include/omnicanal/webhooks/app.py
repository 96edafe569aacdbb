"""The receiver's HTTP side: Meta's webhook contract, the read API, health.

- ``GET /webhooks/<channel>``: the subscription handshake; echoes ``hub.challenge`` when
  ``hub.mode=subscribe`` and ``hub.verify_token`` is the channel's verify token, else 403.
- ``POST /webhooks/<channel>``: 401 unless ``X-Hub-Signature-256`` signs the raw body with
  the channel's app secret (nothing is stored); else the body's events are appended
  durably and only then answered 200. A signed body that is no Meta payload is
  quarantined with its reason and also answered 200: Meta retries anything else for
  days, and a retry would not make it better.
- ``GET /events/<channel>?after=&limit=`` and ``GET /events/<channel>/quarantine``: what
  was stored, for the channel's tap, behind ``Authorization: Bearer <read token>``.
- ``GET /healthz``: up, with the store's id (``store``), so that a client can tell
  the receiver of its own store from another one answering on the same port.

The POST path is the hot one (the bench wants thousands a second on two shared cores):
it is plain ASGI (:class:`Receiver`); the rest is a small Starlette app. Nothing here
logs a request's query string or headers: the handshake carries the verify token in its
URL (and the server runs without an access log for that reason).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from omnicanal.webhooks.payload import SIGNATURE_HEADER, Malformed, signature_valid, split_events
from omnicanal.webhooks.store import EventStore

log = logging.getLogger(__name__)

#: Largest body accepted; Meta's deliveries are a few KB.
MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
_SIGNATURE = SIGNATURE_HEADER.encode()


@dataclass(frozen=True)
class WebhookSecrets:
    """What authenticates one channel's deliveries: Meta's app secret and verify token."""

    app_secret: str
    verify_token: str

    def __repr__(self) -> str:
        return "WebhookSecrets(app_secret=***, verify_token=***)"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "code": status}}, status_code=status)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def create_app(
    store: EventStore, channels: Mapping[str, WebhookSecrets], read_token: str
) -> Receiver:
    """The receiver for ``channels`` (name → secrets), storing into ``store``."""
    channels = dict(channels)

    async def verify(request: Request) -> Response:
        channel = request.path_params["channel"]
        secrets = channels.get(channel)
        if secrets is None:
            return _error(404, f"no webhook channel {channel!r}")
        params = request.query_params
        token = params.get("hub.verify_token", "")
        if params.get("hub.mode") != "subscribe" or not _same(token, secrets.verify_token):
            log.warning("%s: verification refused (wrong mode or verify token)", channel)
            return _error(403, "verification failed: wrong hub.mode or hub.verify_token")
        challenge = params.get("hub.challenge")
        if challenge is None:
            return _error(400, "hub.challenge is missing")
        return PlainTextResponse(challenge)

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and _same(token.strip(), read_token)

    def read_request(request: Request) -> tuple[str, int, int] | Response:
        """The channel, ``after`` and ``limit`` of a read, or the error to answer."""
        if not authorized(request):
            return _error(401, "missing or invalid bearer token")
        channel = request.path_params["channel"]
        if channel not in channels:
            return _error(404, f"no webhook channel {channel!r}")
        try:
            after = int(request.query_params.get("after") or 0)
            limit = int(request.query_params.get("limit") or DEFAULT_LIMIT)
        except ValueError:
            return _error(400, "after and limit must be whole numbers")
        if after < 0 or not 1 <= limit <= MAX_LIMIT:
            return _error(400, f"after must be >= 0 and limit between 1 and {MAX_LIMIT}")
        return channel, after, limit

    async def events(request: Request) -> Response:
        read = read_request(request)
        if isinstance(read, Response):
            return read
        return Response(await store.page_json(*read), media_type="application/json")

    async def quarantine(request: Request) -> Response:
        read = read_request(request)
        if isinstance(read, Response):
            return read
        return JSONResponse(await store.quarantined(*read))

    async def healthz(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "channels": sorted(channels),
                "pid": os.getpid(),
                "store": store.id,
                "commits": store.commits,
                "deliveries": store.deliveries,
            }
        )

    api = Starlette(
        routes=[
            Route("/webhooks/{channel}", verify, methods=["GET"]),
            Route("/events/{channel}", events, methods=["GET"]),
            Route("/events/{channel}/quarantine", quarantine, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
    return Receiver(api, store, channels)


def _answer(status: int, body: bytes) -> tuple[dict, dict]:
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


def _error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": {"message": message, "code": status}}).encode()


class Receiver:
    """The ASGI app: deliveries (``POST /webhooks/<channel>``) on a lean path of their
    own, everything else through Starlette (``api``).

    The POST is the one path under load: raw ASGI skips the router, the middleware stack
    and the request/response objects, about a third of a delivery's CPU, which on two
    busy cores is ack latency.
    """

    def __init__(
        self, api: Starlette, store: EventStore, channels: Mapping[str, WebhookSecrets]
    ) -> None:
        self.api = api
        self.store = store
        self.channels = channels

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path.startswith("/webhooks/") and "/" not in path[10:]:
                status, body = await self._deliver(path[10:], scope, receive)
                for message in _answer(status, body):
                    await send(message)
                return
        await self.api(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        # At shutdown (after the server has answered every request in flight) the store
        # commits what is queued and checkpoints: a stopped receiver leaves no WAL behind.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _deliver(self, channel: str, scope: dict, receive) -> tuple[int, bytes]:
        secrets = self.channels.get(channel)
        if secrets is None:
            return 404, _error_body(404, f"no webhook channel {channel!r}")
        signature = None
        for name, value in scope["headers"]:
            if name == _SIGNATURE:
                signature = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
                return 413, _error_body(413, f"body over {MAX_BODY_BYTES} bytes")
        chunks = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return 400, b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return 413, _error_body(413, f"body over {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not signature_valid(secrets.app_secret, body, signature):
            client = scope.get("client") or ("?",)
            log.warning(
                "%s: delivery from %s refused: missing or wrong signature", channel, client[0]
            )
            return 401, _error_body(401, "missing or invalid X-Hub-Signature-256")
        try:
            events = split_events(body)
        except Malformed as bad:
            events, reason = None, bad.reason
        try:
            if events is None:
                await self.store.quarantine(channel, reason, body)
            else:
                result = await self.store.append(channel, events)
        except Exception:  # the store logged why; no 200, so Meta delivers it again
            return 500, _error_body(500, "the delivery could not be stored; retry later")
        if events is None:
            log.warning("%s: signed body quarantined: %s", channel, reason)
            return 200, json.dumps({"received": 0, "quarantined": True, "reason": reason}).encode()
        return 200, (
            f'{{"received":{len(events)},"stored":{result.stored},'
            f'"duplicates":{result.duplicates}}}'
        ).encode()
