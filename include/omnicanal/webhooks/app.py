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
- ``GET /healthz``.

Plain Starlette rather than FastAPI: the POST path is the hot one (the bench wants
thousands a second on two shared cores) and needs no validation layer. Nothing here logs
a request's query string or headers: the handshake carries the verify token in its URL.
"""

from __future__ import annotations

import hmac
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
) -> Starlette:
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

    async def receive(request: Request) -> Response:
        channel = request.path_params["channel"]
        secrets = channels.get(channel)
        if secrets is None:
            return _error(404, f"no webhook channel {channel!r}")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return _error(413, f"body over {MAX_BODY_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"body over {MAX_BODY_BYTES} bytes")
        if not signature_valid(secrets.app_secret, body, request.headers.get(SIGNATURE_HEADER)):
            client = request.client.host if request.client else "?"
            log.warning("%s: delivery from %s refused: missing or wrong signature", channel, client)
            return _error(401, "missing or invalid X-Hub-Signature-256")
        try:
            events = split_events(body)
        except Malformed as bad:
            await store.quarantine(channel, bad.reason, body)
            log.warning("%s: signed body quarantined: %s", channel, bad.reason)
            return JSONResponse({"received": 0, "quarantined": True, "reason": bad.reason})
        result = await store.append(channel, events)
        return Response(
            f'{{"received":{len(events)},"stored":{result.stored},'
            f'"duplicates":{result.duplicates}}}',
            media_type="application/json",
        )

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and _same(token.strip(), read_token)

    def paging(request: Request) -> tuple[int, int] | Response:
        try:
            after = int(request.query_params.get("after") or 0)
            limit = int(request.query_params.get("limit") or DEFAULT_LIMIT)
        except ValueError:
            return _error(400, "after and limit must be whole numbers")
        if after < 0 or not 1 <= limit <= MAX_LIMIT:
            return _error(400, f"after must be >= 0 and limit between 1 and {MAX_LIMIT}")
        return after, limit

    async def events(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "missing or invalid bearer token")
        channel = request.path_params["channel"]
        if channel not in channels:
            return _error(404, f"no webhook channel {channel!r}")
        page = paging(request)
        if isinstance(page, Response):
            return page
        body = await store.page_json(channel, *page)
        return Response(body, media_type="application/json")

    async def quarantine(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "missing or invalid bearer token")
        channel = request.path_params["channel"]
        if channel not in channels:
            return _error(404, f"no webhook channel {channel!r}")
        page = paging(request)
        if isinstance(page, Response):
            return page
        return JSONResponse(await store.quarantined(channel, *page))

    async def healthz(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "channels": sorted(channels),
                "pid": os.getpid(),
                "commits": store.commits,
                "deliveries": store.deliveries,
            }
        )

    app = Starlette(
        routes=[
            Route("/webhooks/{channel}", verify, methods=["GET"]),
            Route("/webhooks/{channel}", receive, methods=["POST"]),
            Route("/events/{channel}", events, methods=["GET"]),
            Route("/events/{channel}/quarantine", quarantine, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
    app.state.store = store
    app.state.channels = channels
    return app
