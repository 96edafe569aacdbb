"""WhatsApp Business Cloud API emulation, and Meta's webhook deliveries, over the world's chats.

The Cloud API side (Graph API, ``/{version}/...``), as Meta serves it, on the Graph
parts every Meta emulation shares (:mod:`omnicanal.channels.meta`):

- auth: ``Authorization: Bearer <token>`` (or ``?access_token=``). The Cloud API answers
  token errors with HTTP 401: no token, ``OAuthException`` code 104 ("An access token is
  required…"); an unknown one, code 190 ("Invalid OAuth access token - Cannot parse
  access token"); after :meth:`WhatsAppEmulator.expire_token`, code 190 subcode 463
  ("Session has expired");
- versions up to the newest Graph version are served (an expired one is served as the
  oldest available, as Graph does); a malformed or future one is 400 code 2500
  "Unknown path components";
- ``GET /{version}/{phone-number-id}`` (``fields`` selects), ``GET /{version}/{waba-id}``
  and ``GET /{version}/{waba-id}/phone_numbers``; posting messages to the account
  instead of its number is 400 ``GraphMethodException`` code 100 subcode 33
  ("Unsupported post request…"). Routes name the sandbox's ids literally: the Graph API
  shares its host with the other Meta channels;
- ``GET|POST /{version}/{waba-id}/message_templates``: the account's templates
  (:mod:`.templates`: Meta's ``hello_world`` sample, the demo's ``carrinho_abandonado``
  and others pending, rejected or paused);
- ``POST /{version}/{phone-number-id}/messages``: ``messaging_product`` must be
  ``whatsapp``, ``to`` is required and must be a phone number (a Brazilian one: a DDD
  without zeros, 8 digits or 9 for a mobile starting with 9), ``type`` one of Meta's
  (default ``text``) with its object (``text.body`` 1-4096 characters; a ``template``
  must exist approved in its language with its variables' parameters, else 132001,
  132015, 132016, 132000, 132018, 132005 …); errors are code 100 "Invalid parameter"
  and 131008 "Required parameter is missing" / 131009 "Parameter value is not valid",
  with ``error_data.details``. Every person of the world has a WhatsApp account but a few
  (:func:`.world.whatsapp_accounts`). A valid message answers ``{"messaging_product",
  "contacts": [{"input", "wa_id"}], "messages": [{"id": "wamid…"}]}``, the ``wa_id`` as
  WhatsApp knows the account (a Brazilian number sent with the ninth digit comes back
  without it when the account is older, and the other way round), and its statuses are
  queued for the webhook, with the message's ``biz_opaque_callback_data``: sent,
  delivered and, for users with read receipts on, read; or ``failed`` 131047
  (re-engagement) for free-form text outside the 24-hour window after the user's last
  message, or 131026 (undeliverable) to a number not on WhatsApp, or 131050 for a
  ``MARKETING`` template to a user whose latest marketing preference is ``stop`` (the
  API accepts the message; only its status says it was not delivered, as Meta does;
  utility and authentication templates still go). A template opens a paid marketing
  conversation (``pricing.category`` ``marketing``);
- limits: the number's throughput (``throughput``, 80 messages a second by default, a
  token bucket: 130429, HTTP 429, beyond it) and the pair rate limit (``pair_interval``:
  one message every 6 seconds to the same user, else 131056 and nothing is sent);
  ``templates_sent()`` (and ``GET /_sandbox/whatsapp/sent``) list the template messages
  accepted, for tests;
- every error body is ``{"error": {"message", "type", "code", ["error_subcode"],
  ["error_data"], "fbtrace_id"}}``;
- ``fail_next`` injects 429 (code 130429 "Rate limit hit"), 5xx (code 2,
  ``is_transient``) or hanging requests (timeouts).

The webhook side (:mod:`.delivery`): :meth:`WhatsAppEmulator.deliver` posts the world's
events not yet delivered (and the statuses of messages sent through the API) to the
callback URL, signed, with Meta's retries and duplicates, after the ``hub.challenge``
handshake the first time a URL is used (the world's stops and resumes of marketing
messages go as ``user_preferences`` changes, and :meth:`WhatsAppEmulator.set_preference`
queues a new one); with ``push_seconds`` (a served sandbox), it does
so on its own every so many seconds, as Meta pushes. Also over HTTP, for the demo and
tests:
``POST /_sandbox/whatsapp/deliver {"url"?, "limit"?, "duplicate_share"?,
"max_attempts"?}``, ``POST /_sandbox/whatsapp/fail_next``,
``POST /_sandbox/whatsapp/expire_token``, ``GET /_sandbox/whatsapp/pending``,
``GET /_sandbox/whatsapp/sent``, ``POST /_sandbox/whatsapp/template_status {"name",
"language", "status"}`` (Meta's review or a quality pause).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import secrets
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from omnicanal.channels.meta import (
    GRAPH_API_VERSION,
    GraphError,
    cursor_page,
    expired_token,
    invalid_parameter,
    invalid_token,
    missing_token,
    page_limit,
    request_token,
    server_error,
    unknown_path,
    unsupported_get,
    version_tuple,
)
from omnicanal.channels.whatsapp import (
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_APP_SECRET,
    SANDBOX_VERIFY_TOKEN,
)
from omnicanal.channels.whatsapp.delivery import (
    DeliveryReport,
    Notification,
    WebhookDeliverer,
    encode,
    group_events,
    webhook_body,
)
from omnicanal.channels.whatsapp.templates import TemplateLibrary
from omnicanal.channels.whatsapp.world import (
    PREFERENCE_DETAILS,
    READ_SHARE,
    WhatsAppInbox,
    epoch,
    wamid,
    whatsapp_accounts,
)
from omnicanal.sandbox.throttle import FaultInjector
from omnicanal.sandbox.world import World

MAX_TEXT_LENGTH = 4096
#: Messages a second a business number may send by default (Cloud API throughput; Meta
#: raises it to 1,000 for numbers that qualify). Beyond it: 130429.
THROUGHPUT = 80
#: A business number may send one message every 6 seconds to the same user (the pair
#: rate limit); sooner: 131056, and the message is not sent.
PAIR_INTERVAL = 6.0
#: What ``biz_opaque_callback_data`` may hold (it comes back in the message's statuses).
MAX_CALLBACK_DATA = 512
#: The customer service window: free-form messages only within 24 h of the user's last.
SERVICE_WINDOW = timedelta(hours=24)
#: The failed status of a marketing template to a user who stopped the business's
#: marketing messages (code 131050; Meta's details text).
MARKETING_STOPPED = {
    "code": 131050,
    "title": "Unable to deliver message",
    "message": "Unable to deliver message",
    "error_data": {
        "details": "Unable to deliver the message. This recipient has chosen to stop "
        "receiving marketing messages on WhatsApp from your business."
    },
}
MESSAGE_TYPES = (
    "text",
    "image",
    "audio",
    "document",
    "video",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "template",
    "reaction",
)
log = logging.getLogger(__name__)
_MEDIA_TYPES = ("image", "audio", "document", "video", "sticker")


class CloudAPIError(GraphError):
    """A Graph error with the Cloud API's ``error_data`` (``messaging_product``, ``details``)."""

    def __init__(self, message: str, *, code: int, details: str, status: int = 400) -> None:
        super().__init__(message, code=code, status=status)
        self.details = details

    def body(self) -> dict[str, Any]:
        body = super().body()
        error = body["error"]
        trace = error.pop("fbtrace_id")
        error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        error["fbtrace_id"] = trace
        return body


def _unauthorized(error: GraphError) -> GraphError:
    """The Cloud API answers its token errors (104, 190) with HTTP 401."""
    error.status = 401
    return error


def _missing(field: str) -> GraphError:
    return CloudAPIError(
        "(#131008) Required parameter is missing",
        code=131008,
        details=f"The parameter {field} is required.",
    )


def _invalid(details: str) -> GraphError:
    return CloudAPIError("(#100) Invalid parameter", code=100, details=details)


def _not_valid(details: str) -> GraphError:
    return CloudAPIError("(#131009) Parameter value is not valid", code=131009, details=details)


def _unsupported_post(object_id: str) -> GraphError:
    error = unsupported_get(object_id)
    error.message = error.message.replace("Unsupported get", "Unsupported post")
    return error


def _fault(status: int) -> GraphError:
    if status == 429:
        return CloudAPIError(
            "(#130429) Rate limit hit",
            code=130429,
            details="Cloud API message throughput has been reached.",
            status=429,
        )
    return server_error(status)


def _pair_limited() -> GraphError:
    return CloudAPIError(
        "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        code=131056,
        details="Message failed to send because there were too many messages sent from "
        "this phone number to the same phone number in a short period of time.",
    )


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def phone_problem(to: str) -> str | None:
    """Why ``to`` cannot be a phone number, or None: the digits (``+``, spaces, dashes,
    dots and brackets are ignored) of an international number, 8 to 15 long; a Brazilian
    one (55) has a DDD without zeros and eight digits, or nine for a mobile (9 first)."""
    if re.search(r"[^\d+\s().-]", to):
        return f"{to!r} has characters a phone number does not"
    digits = _digits(to)
    if not 8 <= len(digits) <= 15:
        return f"{to!r} is not an international phone number (country code and number)"
    if digits.startswith("55"):
        ddd, number = digits[2:4], digits[4:]
        if "0" in ddd:
            return f"{to!r}: {ddd} is not a Brazilian area code (DDD)"
        if len(number) == 9 and number[0] != "9":
            return f"{to!r}: a nine-digit Brazilian number is a mobile and starts with 9"
        if len(number) not in (8, 9) or number[0] in "01":
            return f"{to!r} is not a Brazilian phone number (DDD and 8 or 9 digits)"
    return None


class WhatsAppEmulator:
    """The Cloud API over ``world.slices["whatsapp"]``, and Meta's webhook deliverer.

    ``deliverer_options`` tune :class:`~.delivery.WebhookDeliverer` (``retry_base``,
    ``max_attempts``, ``duplicate_share``, ``concurrency`` …).
    """

    def __init__(
        self,
        world: World,
        *,
        access_token: str = SANDBOX_ACCESS_TOKEN,
        app_secret: str = SANDBOX_APP_SECRET,
        verify_token: str = SANDBOX_VERIFY_TOKEN,
        callback_url: str | None = None,
        push_seconds: float = 0,
        throughput: float = THROUGHPUT,
        pair_interval: float = PAIR_INTERVAL,
        **deliverer_options: Any,
    ) -> None:
        self.world = world
        self.inbox: WhatsAppInbox = world.slices["whatsapp"]
        #: every WhatsApp account, wa_id -> person id (the inbox's writers and the others)
        self.accounts = whatsapp_accounts(world.seed, world.people, self.inbox)
        self.templates = TemplateLibrary()
        self.throughput = throughput
        self.pair_interval = pair_interval
        self._bucket = (float(throughput), time.monotonic())
        self._pair_last: dict[str, float] = {}
        self.access_token = access_token
        self.verify_token = verify_token
        self.callback_url = callback_url
        self.deliverer = WebhookDeliverer(app_secret, seed=world.seed, **deliverer_options)
        self.faults = FaultInjector()
        self.token_expired = False
        self.request_count = 0
        self.sent: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self._ids = random.Random(f"{world.seed}:whatsapp-sent")
        self._verified: set[str] = set()
        #: Notifications not yet answered 200, oldest first.
        self._pending: deque[Notification] = deque(
            Notification(encode(self._body(group)), len(group))
            for group in group_events(
                random.Random(f"{world.seed}:whatsapp-batches"), self.inbox.events
            )
        )
        #: each user's latest marketing preference, wa_id -> (timestamp, stop | resume)
        self._preferences: dict[str, tuple[int, str]] = {}
        for preference in self.inbox.user_preferences:
            self._note_preference(preference)
        self._last_inbound: dict[str, int] = {}
        for message in self.inbox.messages:
            ts, sender = int(message["timestamp"]), message["from"]
            self._last_inbound[sender] = max(self._last_inbound.get(sender, 0), ts)
        self.router = self._build_router()
        self._stop = threading.Event()
        if push_seconds > 0:
            threading.Thread(
                target=self._push, args=(push_seconds,), name="whatsapp-webhooks", daemon=True
            ).start()

    def _push(self, every: float) -> None:
        """Meta's push: post what is pending every ``every`` seconds, as long as the
        sandbox runs; a receiver that is down is tried again next time."""
        while not self._stop.wait(every):
            if not self.pending or not self.callback_url:
                continue
            try:
                report = self.deliver()
            except Exception as exc:  # noqa: BLE001 - the receiver may come up later
                log.warning("whatsapp webhooks to %s: %s", self.callback_url, exc)
                continue
            log.info("whatsapp webhooks: %s", report.as_dict())

    def close(self) -> None:
        """Stop pushing (a served sandbox pushes until its process ends)."""
        self._stop.set()

    # --- knobs -----------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500, *, hang_seconds: float = 0.0) -> None:
        """The next ``n`` authenticated Cloud API requests answer ``status``, after
        ``hang_seconds`` (a client with a shorter timeout sees a timeout)."""
        self.faults.fail_next(n, status, hang_seconds=hang_seconds)

    def expire_token(self, expired: bool = True) -> None:
        """The access token's session expires: every call answers 190/463 until renewed."""
        self.token_expired = expired

    @property
    def pending(self) -> int:
        """Notifications not yet delivered (those being posted right now included)."""
        with self._lock:
            return len(self._pending) + self._in_flight

    # --- webhooks --------------------------------------------------------------------

    def _body(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        metadata = {
            "display_phone_number": self.inbox.display_phone_number,
            "phone_number_id": self.inbox.phone_number_id,
        }
        return webhook_body(self.inbox.waba_id, metadata, events)

    def deliver(
        self,
        url: str | None = None,
        *,
        limit: int | None = None,
        duplicate_share: float | None = None,
        max_attempts: int | None = None,
    ) -> DeliveryReport:
        """Post pending notifications (at most ``limit``) to ``url`` (default: the
        configured callback URL), Meta's way; what still fails stays pending."""
        target = url or self.callback_url
        if not target:
            raise ValueError("no callback URL: pass url or configure callback_url")
        if target not in self._verified:
            self.deliverer.verify(target, self.verify_token)
            self._verified.add(target)
        with self._lock:
            count = len(self._pending) if limit is None else min(limit, len(self._pending))
            batch = [self._pending.popleft() for _ in range(count)]
            self._in_flight += len(batch)
        saved = self.deliverer.duplicate_share, self.deliverer.max_attempts
        if duplicate_share is not None:
            self.deliverer.duplicate_share = duplicate_share
        if max_attempts is not None:
            self.deliverer.max_attempts = max_attempts
        failed: list[int] = list(range(len(batch)))
        try:
            report, failed = self.deliverer.deliver(target, batch)
        finally:
            self.deliverer.duplicate_share, self.deliverer.max_attempts = saved
            with self._lock:
                self._pending.extendleft(batch[i] for i in reversed(failed))
                self._in_flight -= len(batch)
        return report

    def _queue_statuses(
        self,
        message_id: str,
        wa_id: str | None,
        to: str,
        error: dict | None,
        *,
        template: bool = False,
        callback_data: str | None = None,
    ) -> None:
        """Queue a sent message's statuses for the webhook: sent, delivered and, when the
        user has read receipts on, read; or failed with the error. A template opens a
        paid marketing conversation; a reply inside the window is free."""
        now = datetime.now(UTC).replace(microsecond=0)
        recipient = wa_id or to
        if error is not None:
            statuses = [("failed", now, {"errors": [error]})]
        else:
            category = "marketing" if template else "service"
            conversation = {"id": secrets.token_hex(16), "origin": {"type": category}}
            pricing = {
                "billable": template,
                "pricing_model": "PMP",
                "category": category,
                "type": "regular" if template else "free_customer_service",
            }
            expiring = {**conversation, "expiration_timestamp": epoch(now + SERVICE_WINDOW)}
            statuses = [
                ("sent", now, {"conversation": expiring, "pricing": pricing}),
                ("delivered", now, {"conversation": conversation, "pricing": pricing}),
            ]
            if self.reads_receipts(recipient):
                statuses.append(("read", now + timedelta(seconds=1), {}))
        extra_data = {"biz_opaque_callback_data": callback_data} if callback_data else {}
        with self._lock:
            for status, moment, extra in statuses:
                event = {
                    "kind": "status",
                    "status": {
                        "id": message_id,
                        "status": status,
                        "timestamp": epoch(moment),
                        "recipient_id": recipient,
                        **extra_data,
                        **extra,
                    },
                }
                self._pending.append(Notification(encode(self._body([event])), 1))

    # --- Cloud API -------------------------------------------------------------------

    async def _guard(self, request: Request, version: str) -> None:
        """Version, then token, then injected faults, as the Graph front end orders them."""
        self.request_count += 1
        served = version_tuple(version)
        if served is None or served > version_tuple(GRAPH_API_VERSION):
            raise unknown_path(version)
        token = request_token(request)
        if not token:
            raise _unauthorized(missing_token())
        if token != self.access_token:
            raise _unauthorized(invalid_token())
        if self.token_expired:
            raise _unauthorized(expired_token(datetime.now(UTC) - timedelta(hours=1)))
        fault = self.faults.take()
        if fault is not None:
            if fault.hang_seconds:
                await asyncio.sleep(fault.hang_seconds)
            raise _fault(fault.status)

    def phone_number(self, fields: str | None = None) -> dict[str, Any]:
        inbox = self.inbox
        display = inbox.display_phone_number
        record = {
            "verified_name": inbox.verified_name,
            "code_verification_status": "VERIFIED",
            "display_phone_number": f"+{display[:2]} {display[2:4]} {display[4:8]}-{display[8:]}",
            "quality_rating": "GREEN",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "messaging_limit_tier": "TIER_10K",
            "name_status": "APPROVED",
            "id": inbox.phone_number_id,
        }
        if not fields:
            keys = (
                "verified_name",
                "code_verification_status",
                "display_phone_number",
                "quality_rating",
                "platform_type",
                "throughput",
                "id",
            )
            return {k: record[k] for k in keys}
        wanted = [f.strip() for f in fields.split(",") if f.strip()]
        unknown = [f for f in wanted if f not in record]
        if unknown:
            raise invalid_parameter(
                f"Tried accessing nonexisting field ({unknown[0]}) on node type "
                "(WhatsAppBusinessPhoneNumber)"
            )
        return {**{k: record[k] for k in wanted}, "id": record["id"]}

    def _resolve(self, to: str) -> str | None:
        """The wa_id WhatsApp knows for a number, if any (with or without the ninth digit)."""
        digits = _digits(to)
        candidates = {digits}
        if digits.startswith("55") and len(digits) == 13 and digits[4] == "9":
            candidates.add(digits[:4] + digits[5:])
        if digits.startswith("55") and len(digits) == 12:
            candidates.add(digits[:4] + "9" + digits[4:])
        for candidate in sorted(candidates):
            if candidate in self.accounts:
                return candidate
        return None

    def _take_throughput(self) -> None:
        """A token bucket of ``throughput`` messages a second (bursts up to one second's)."""
        with self._lock:
            tokens, then = self._bucket
            now = time.monotonic()
            tokens = min(float(self.throughput), tokens + (now - then) * self.throughput)
            if tokens < 1:
                self._bucket = (tokens, now)
                raise _fault(429)
            self._bucket = (tokens - 1, now)

    def _take_pair(self, recipient: str) -> None:
        with self._lock:
            now = time.monotonic()
            last = self._pair_last.get(recipient)
            if last is not None and now - last < self.pair_interval:
                raise _pair_limited()
            self._pair_last[recipient] = now

    def _note_preference(self, preference: dict[str, Any]) -> None:
        wa_id, moment = preference["wa_id"], int(preference["timestamp"])
        known = self._preferences.get(wa_id)
        if known is None or moment >= known[0]:
            self._preferences[wa_id] = (moment, preference["value"])

    def marketing_stopped(self, wa_id: str) -> bool:
        """Whether the user's latest marketing preference is ``stop``: WhatsApp then
        delivers them no marketing template from this business (131050)."""
        known = self._preferences.get(wa_id)
        return known is not None and known[1] == "stop"

    def reads_receipts(self, wa_id: str) -> bool:
        """Whether a user has read receipts on (most do; always the same for a user)."""
        return random.Random(f"{self.world.seed}:read:{wa_id}").random() < READ_SHARE

    def templates_sent(self) -> list[dict[str, Any]]:
        """The template messages accepted, oldest first: ``id`` (wamid), ``to``, ``wa_id``,
        ``name``, ``language``, ``parameters`` (name or position → text) and
        ``biz_opaque_callback_data``."""
        found = []
        for message in list(self.sent):
            body = message["body"]
            if body.get("type") != "template":
                continue
            template = body["template"]
            parameters: dict[str, str] = {}
            for component in template.get("components") or []:
                if str(component.get("type", "")).lower() != "body":
                    continue
                for n, parameter in enumerate(component.get("parameters") or [], 1):
                    parameters[parameter.get("parameter_name") or str(n)] = parameter.get("text")
            found.append(
                {
                    "id": message["id"],
                    "to": message["to"],
                    "wa_id": message["wa_id"],
                    "name": template["name"],
                    "language": template["language"]["code"],
                    "parameters": parameters,
                    "biz_opaque_callback_data": body.get("biz_opaque_callback_data"),
                }
            )
        return found

    def send_message(self, body: Any) -> dict[str, Any]:
        """Validate a ``/messages`` body as the Cloud API does; queue its statuses."""
        if not isinstance(body, dict):
            raise _invalid("The request body must be a JSON object.")
        product = body.get("messaging_product")
        if product is None:
            raise _missing("messaging_product")
        if product != "whatsapp":
            raise _invalid(
                f'Param messaging_product must be one of {{WHATSAPP}} - got "{product}".'
            )
        recipient_type = body.get("recipient_type", "individual")
        if recipient_type not in ("individual", "group"):
            raise _invalid(
                "Param recipient_type must be one of {INDIVIDUAL, GROUP} - got "
                f'"{recipient_type}".'
            )
        to = body.get("to")
        if to is None or to == "":
            raise _missing("to")
        if not isinstance(to, str) or not _digits(to):
            raise _invalid("Param to must be a phone number or a WhatsApp ID.")
        problem = phone_problem(to)
        if problem is not None:
            raise _invalid(f"Param to must be a valid phone number: {problem}.")
        callback_data = body.get("biz_opaque_callback_data")
        if callback_data is not None and (
            not isinstance(callback_data, str) or len(callback_data) > MAX_CALLBACK_DATA
        ):
            raise _invalid(
                f"Param biz_opaque_callback_data must be a string of at most "
                f"{MAX_CALLBACK_DATA} characters."
            )
        kind = body.get("type", "text")
        template = None
        if kind not in MESSAGE_TYPES:
            raise _invalid(
                f"Param type must be one of {{{', '.join(t.upper() for t in MESSAGE_TYPES)}}} "
                f'- got "{kind}".'
            )
        content = body.get(kind)
        if content is None:
            raise _missing(kind)
        if not isinstance(content, dict):
            raise _invalid(f"Param {kind} must be a JSON object.")
        if kind == "text":
            text = content.get("body")
            if text is None:
                raise _missing("text['body']")
            if not isinstance(text, str) or not text.strip():
                raise _not_valid("Param text['body'] must be a non-empty string.")
            if len(text) > MAX_TEXT_LENGTH:
                raise _not_valid(
                    f"Param text['body'] must be at most {MAX_TEXT_LENGTH} characters long."
                )
        elif kind in _MEDIA_TYPES and not (content.get("id") or content.get("link")):
            raise _missing(f"{kind}['id'] or {kind}['link']")
        elif kind == "template" and not content.get("name"):
            raise _missing("template['name']")
        elif kind == "template":
            template = self.templates.check_send(content)
        elif kind == "interactive" and not content.get("type"):
            raise _missing("interactive['type']")
        elif kind == "reaction" and not content.get("message_id"):
            raise _missing("reaction['message_id']")
        elif kind == "location" and ("latitude" not in content or "longitude" not in content):
            raise _missing("location['latitude'] and location['longitude']")

        wa_id = self._resolve(to)
        self._take_throughput()
        self._take_pair(wa_id or _digits(to))
        message_id = wamid(self._ids, wa_id or _digits(to), outbound=True)
        error = None
        if wa_id is None:
            error = {
                "code": 131026,
                "title": "Message undeliverable",
                "message": "Message undeliverable",
                "error_data": {"details": "Message could not be delivered to the recipient."},
            }
        elif kind == "template":
            # a template may open a conversation; a marketing one not with a user who
            # stopped the business's marketing messages
            if (
                template is not None
                and template.category == "MARKETING"
                and self.marketing_stopped(wa_id)
            ):
                error = MARKETING_STOPPED
        elif time.time() - self._last_inbound.get(wa_id, 0) > SERVICE_WINDOW.total_seconds():
            error = {
                "code": 131047,
                "title": "Re-engagement message",
                "message": "Re-engagement message",
                "error_data": {
                    "details": "Message failed to send because more than 24 hours have "
                    "passed since the customer last replied to this number."
                },
            }
        self.sent.append({"id": message_id, "to": to, "wa_id": wa_id, "body": body})
        self._queue_statuses(
            message_id,
            wa_id,
            _digits(to),
            error,
            template=kind == "template",
            callback_data=callback_data,
        )
        answer: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": wa_id or _digits(to)}],
            "messages": [{"id": message_id}],
        }
        if kind == "template":
            answer["messages"][0]["message_status"] = "accepted"
        return answer

    def receive(self, wa_id: str, text: str, name: str | None = None) -> dict[str, Any]:
        """A user writes now (opens the service window); queued for the webhook."""
        now = datetime.now(UTC)
        message = {
            "from": wa_id,
            "id": wamid(self._ids, wa_id, outbound=False),
            "timestamp": epoch(now),
            "type": "text",
            "text": {"body": text},
        }
        names = self.inbox.profile_names.get(wa_id) or [name or wa_id]
        event = {
            "kind": "message",
            "contact": {"profile": {"name": name or names[-1]}, "wa_id": wa_id},
            "message": message,
        }
        with self._lock:
            self._last_inbound[wa_id] = int(now.timestamp())
            self._pending.append(Notification(encode(self._body([event])), 1))
        return message

    def set_preference(self, wa_id: str, value: str, at: datetime | None = None) -> dict:
        """A user stops (``stop``) or resumes (``resume``) the business's marketing
        messages from the chat, now (or ``at``): the ``user_preferences`` webhook is
        queued, and the inbox keeps the event (the world's truth follows it)."""
        if value not in PREFERENCE_DETAILS:
            raise ValueError(f"a marketing preference is stop or resume, not {value!r}")
        moment = at or datetime.now(UTC)
        preference = {
            "wa_id": wa_id,
            "detail": PREFERENCE_DETAILS[value],
            "category": "marketing_messages",
            "value": value,
            "timestamp": int(moment.timestamp()),
        }
        names = self.inbox.profile_names.get(wa_id) or [wa_id]
        event = {
            "kind": "user_preference",
            "contact": {"profile": {"name": names[-1]}, "wa_id": wa_id},
            "preference": preference,
        }
        with self._lock:
            self.inbox.events.append(event)
            self._note_preference(preference)
            self._pending.append(Notification(encode(self._body([event])), 1))
        return preference

    # --- routes ----------------------------------------------------------------------

    def _build_router(self) -> APIRouter:
        router = APIRouter()
        inbox = self.inbox

        async def node(version: str, request: Request) -> JSONResponse:
            object_id = request.url.path.rstrip("/").rsplit("/", 1)[-1]
            try:
                await self._guard(request, version)
                if object_id == inbox.phone_number_id:
                    return JSONResponse(self.phone_number(request.query_params.get("fields")))
                if object_id == inbox.waba_id:
                    return JSONResponse(
                        {
                            "id": inbox.waba_id,
                            "name": inbox.verified_name,
                            "timezone_id": "25",
                            "message_template_namespace": "a1b2c3d4_e5f6_7890_abcd_ef1234567890",
                            "currency": "BRL",
                        }
                    )
                raise unsupported_get(object_id)
            except GraphError as exc:
                return exc.response()

        async def edge(version: str, request: Request) -> JSONResponse:
            object_id, edge_name = request.url.path.rstrip("/").rsplit("/", 2)[-2:]
            try:
                await self._guard(request, version)
                if object_id == inbox.waba_id and edge_name == "phone_numbers":
                    number = self.phone_number()
                    cursor = "QVFIU" + secrets.token_urlsafe(12)
                    paging = {"cursors": {"before": cursor, "after": cursor}}
                    return JSONResponse({"data": [number], "paging": paging})
                raise unsupported_get(object_id)
            except GraphError as exc:
                return exc.response()

        async def message_templates(version: str, request: Request) -> JSONResponse:
            try:
                await self._guard(request, version)
                if request.method == "POST":
                    try:
                        body = await request.json()
                    except ValueError:
                        raise _invalid("The request body is not valid JSON.") from None
                    return JSONResponse(self.templates.create(body))
                params = request.query_params
                found = self.templates.listing(
                    name=params.get("name"),
                    status=params.get("status"),
                    language=params.get("language"),
                    category=params.get("category"),
                )
                fields = [f.strip() for f in (params.get("fields") or "").split(",") if f.strip()]
                if fields:
                    found = [{k: t[k] for k in (*fields, "id") if k in t} for t in found]
                page, paging = cursor_page(
                    found,
                    limit=page_limit(params.get("limit")),
                    after=params.get("after"),
                    before=params.get("before"),
                    url=str(request.url).split("?")[0],
                    params=dict(params),
                )
                answer: dict[str, Any] = {"data": page}
                if paging:
                    answer["paging"] = paging
                return JSONResponse(answer)
            except GraphError as exc:
                return exc.response()

        async def messages(version: str, request: Request) -> JSONResponse:
            object_id = request.url.path.rstrip("/").rsplit("/", 2)[-2]
            try:
                await self._guard(request, version)
                if object_id != inbox.phone_number_id:
                    raise _unsupported_post(object_id)
                try:
                    body = await request.json()
                except ValueError:
                    raise _invalid("The request body is not valid JSON.") from None
                return JSONResponse(self.send_message(body))
            except GraphError as exc:
                return exc.response()

        # Literal ids: the Graph API shares its host with other Meta channels, whose
        # objects must reach their own routes.
        phone, waba = inbox.phone_number_id, inbox.waba_id
        router.add_api_route(f"/{{version}}/{phone}", node, methods=["GET"], tags=["whatsapp"])
        router.add_api_route(f"/{{version}}/{waba}", node, methods=["GET"], tags=["whatsapp"])
        router.add_api_route(
            f"/{{version}}/{phone}/messages", messages, methods=["POST"], tags=["whatsapp"]
        )
        router.add_api_route(
            f"/{{version}}/{waba}/messages", messages, methods=["POST"], tags=["whatsapp"]
        )
        router.add_api_route(
            f"/{{version}}/{waba}/phone_numbers", edge, methods=["GET"], tags=["whatsapp"]
        )
        router.add_api_route(
            f"/{{version}}/{waba}/message_templates",
            message_templates,
            methods=["GET", "POST"],
            tags=["whatsapp"],
        )

        hidden = {"include_in_schema": False}

        def deliver(spec: dict[str, Any] | None = None) -> JSONResponse:
            spec = spec or {}
            try:
                report = self.deliver(
                    spec.get("url"),
                    limit=spec.get("limit"),
                    duplicate_share=spec.get("duplicate_share"),
                    max_attempts=spec.get("max_attempts"),
                )
            except Exception as exc:  # noqa: BLE001 - said to the caller, who asked for it
                return JSONResponse({"error": str(exc)}, status_code=502)
            return JSONResponse({**report.as_dict(), "pending": self.pending})

        def fail_next(spec: dict[str, Any]) -> dict[str, Any]:
            self.fail_next(
                int(spec.get("n", 1)),
                int(spec.get("status", 500)),
                hang_seconds=float(spec.get("hang_seconds", 0)),
            )
            return {"pending_faults": self.faults.pending}

        def expire_token(spec: dict[str, Any] | None = None) -> dict[str, Any]:
            self.expire_token(bool((spec or {}).get("expired", True)))
            return {"token_expired": self.token_expired}

        def pending() -> dict[str, Any]:
            return {"pending": self.pending, "callback_url": self.callback_url}

        router.add_api_route("/_sandbox/whatsapp/deliver", deliver, methods=["POST"], **hidden)
        router.add_api_route("/_sandbox/whatsapp/fail_next", fail_next, methods=["POST"], **hidden)
        router.add_api_route(
            "/_sandbox/whatsapp/expire_token", expire_token, methods=["POST"], **hidden
        )

        def sent() -> dict[str, Any]:
            return {"templates": self.templates_sent(), "messages": len(self.sent)}

        def template_status(spec: dict[str, Any]) -> JSONResponse:
            try:
                template = self.templates.set_status(
                    str(spec.get("name")), str(spec.get("language")), str(spec.get("status"))
                )
            except (KeyError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return JSONResponse(template.as_graph())

        router.add_api_route("/_sandbox/whatsapp/pending", pending, methods=["GET"], **hidden)
        router.add_api_route("/_sandbox/whatsapp/sent", sent, methods=["GET"], **hidden)
        router.add_api_route(
            "/_sandbox/whatsapp/template_status", template_status, methods=["POST"], **hidden
        )
        return router
