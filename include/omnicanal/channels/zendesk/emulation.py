"""Zendesk Support API (``/api/v2``) emulation over the world's help desk.

Serves what a support extract reads, the way Zendesk does, so the real tap runs
unchanged against it:

- auth: ``Authorization: Basic base64(<agent email>/token:<api token>)`` or
  ``Bearer <OAuth access token>``. A missing or wrong API token (or an
  ``email:password`` pair: Zendesk no longer takes passwords on the API) is
  ``401 {"error": "Couldn't authenticate you"}``; an unknown, revoked or expired OAuth
  token is ``401 {"error": "invalid_token", "error_description": ...}``;
- ``GET /api/v2/incremental/tickets/cursor.json`` and
  ``/api/v2/incremental/users/cursor.json``: the cursor-based incremental exports.
  ``start_time`` (Unix epoch) starts an export, ``cursor`` continues it; ``per_page`` up
  to 1000 (the default). Records come in order of ``generated_timestamp`` (then id);
  anything changed in the last minute is held back (``export_delay_seconds``); a
  ``start_time`` within it is ``422 InvalidValue "Too recent start_time..."``. Each page
  carries ``after_cursor``/``after_url`` (also on the last page: the next export starts
  there), ``before_cursor``/``before_url`` and ``end_of_stream``;
- ``GET /api/v2/ticket_metrics``, ``/api/v2/satisfaction_ratings`` (``score``,
  ``start_time``, ``end_time`` filters) and ``/api/v2/tickets/{id}/comments``
  (``sort=created_at|-created_at``): cursor pagination with ``page[size]`` (at most 100),
  ``page[after]``/``page[before]``, answering ``meta {has_more, after_cursor,
  before_cursor}`` and ``links {next, prev}``; without ``page[size]`` the older offset
  pagination (``page``, ``per_page``; ``next_page``, ``previous_page``, ``count``);
  ``GET /api/v2/users/me``;
- rate limits: an account-wide 700 requests a minute and 10 a minute on the incremental
  exports, each answered with ``429`` and ``Retry-After`` (whole seconds) and Zendesk's
  ``{"error": "APIRateLimitExceeded", ...}``; every answer carries ``X-Rate-Limit``,
  ``X-Rate-Limit-Remaining`` and ``ratelimit-limit/-remaining/-reset``;
- errors as Zendesk writes them: ``{"error": "InvalidEndpoint", "description": "Not
  found"}`` for an unknown path, ``RecordNotFound``, ``InvalidPaginationParameter``,
  ``InvalidValue``;
- faults: ``fail_next`` (429 with ``Retry-After``, 5xx, a hang for timeouts),
  ``expire_oauth_token``; mutations for incremental tests: ``touch_ticket``,
  ``touch_user``, ``rate_ticket``; also over HTTP under ``/_sandbox/zendesk/``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from omnicanal.channels.zendesk import SANDBOX_API_TOKEN, SANDBOX_EMAIL
from omnicanal.channels.zendesk.user_writes import UserWriteError, UserWrites
from omnicanal.channels.zendesk.world import ZendeskDesk, parse_timestamp, zendesk_timestamp
from omnicanal.sandbox.throttle import Clock, FaultInjector
from omnicanal.sandbox.world import World

#: Requests a minute per account (Suite Enterprise) and on the incremental exports.
ACCOUNT_LIMIT = (700, 60.0)
EXPORT_LIMIT = (10, 60.0)
EXPORT_PAGE_MAX = 1000
CURSOR_PAGE_MAX = 100
OFFSET_PAGE_DEFAULT = 100
SCORES = ("offered", "unoffered", "good", "bad")
_SCORE_FILTERS = {
    "offered": lambda r: r["score"] == "offered",
    "unoffered": lambda r: r["score"] == "unoffered",
    "received": lambda r: r["score"] in ("good", "bad"),
    "received_with_comment": lambda r: r["score"] in ("good", "bad") and bool(r["comment"]),
    "received_without_comment": lambda r: r["score"] in ("good", "bad") and not r["comment"],
    "good": lambda r: r["score"] == "good",
    "good_with_comment": lambda r: r["score"] == "good" and bool(r["comment"]),
    "good_without_comment": lambda r: r["score"] == "good" and not r["comment"],
    "bad": lambda r: r["score"] == "bad",
    "bad_with_comment": lambda r: r["score"] == "bad" and bool(r["comment"]),
    "bad_without_comment": lambda r: r["score"] == "bad" and not r["comment"],
}


class ZendeskError(Exception):
    """An answer Zendesk would give instead of the data: status, JSON body, headers."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(json.dumps(body))
        self.status, self.body, self.headers = status, body, dict(headers or {})

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(
            self.body, status_code=self.status, headers={**(headers or {}), **self.headers}
        )


def _error(status: int, error: str, description: str) -> ZendeskError:
    return ZendeskError(status, {"error": error, "description": description})


def _not_found() -> ZendeskError:
    return _error(404, "RecordNotFound", "Not found")


_COULD_NOT_AUTHENTICATE = ZendeskError(401, {"error": "Couldn't authenticate you"})
_INVALID_TOKEN = ZendeskError(
    401,
    {
        "error": "invalid_token",
        "error_description": "The access token provided is expired, revoked, malformed or "
        "invalid for other reasons.",
    },
)
_FAULT_BODIES = {
    500: ("InternalError", "Something went wrong. Please try again later."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "Zendesk is temporarily unavailable. Please try again later."),
    504: ("GatewayTimeout", "Gateway timeout."),
}


class MinuteWindow:
    """At most ``limit`` requests in any ``seconds``-long window, as Zendesk counts them."""

    def __init__(self, limit: int, seconds: float, clock: Clock) -> None:
        self.limit, self.seconds, self._clock = limit, seconds, clock
        self._seen: deque[float] = deque()

    def take(self) -> tuple[bool, int, int]:
        """Count one request: (allowed, remaining, seconds until a slot frees)."""
        now = self._clock()
        while self._seen and now - self._seen[0] >= self.seconds:
            self._seen.popleft()
        allowed = len(self._seen) < self.limit
        if allowed:
            self._seen.append(now)
        reset = self.seconds - (now - self._seen[0]) if self._seen else self.seconds
        return allowed, self.limit - len(self._seen), max(1, math.ceil(reset))


# -- paging ---------------------------------------------------------------------------


def _encode(data: Any) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def _fingerprint(query: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(query.items())).encode()).hexdigest()[:12]


def _export_cursor(timestamp: int, record_id: int) -> str:
    """Zendesk's export cursor: base64 of ``<generated_timestamp>.0||<id>|``."""
    return base64.b64encode(f"{timestamp}.0||{record_id}|".encode()).decode()


def _read_export_cursor(cursor: str) -> tuple[int, int]:
    try:
        text = base64.b64decode(cursor + "=" * (-len(cursor) % 4), validate=True).decode()
        stamp, _, rest = text.partition("||")
        return int(float(stamp)), int(rest.rstrip("|"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _error(400, "InvalidValue", "Invalid cursor") from None


def _int_param(params: Any, name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _error(400, "InvalidValue", f"{name} must be an integer") from None


class ZendeskEmulator:
    """The emulated Zendesk account: its HTTP router, rate limits, faults and mutations."""

    def __init__(
        self,
        world: World,
        *,
        email: str = SANDBOX_EMAIL,
        api_token: str = SANDBOX_API_TOKEN,
        oauth_token: str | None = None,
        rate_limit: tuple[int, float] | None = ACCOUNT_LIMIT,
        export_rate_limit: tuple[int, float] | None = EXPORT_LIMIT,
        export_delay_seconds: float = 60.0,
        clock: Clock = time.monotonic,
        state_path: str | None = None,
    ) -> None:
        from omnicanal.channels.zendesk import SANDBOX_OAUTH_TOKEN

        self.world = world
        self.desk: ZendeskDesk = world.slices["zendesk"]
        self.email, self.api_token = email, api_token
        self.oauth_token = oauth_token or SANDBOX_OAUTH_TOKEN
        self.oauth_expired = False
        self.export_delay = timedelta(seconds=export_delay_seconds)
        self.faults = FaultInjector()
        self._hangs: deque[float] = deque()
        self.request_count = 0
        self.export_requests = 0
        self._clock = clock
        self._lock = threading.RLock()
        self.set_rate_limits(rate_limit, export_rate_limit)
        #: users written, and bulk jobs, by a destination (user_writes)
        self.writes = UserWrites(self.desk, state_path=state_path, lock=self._lock)
        self.router = self._build_router()

    # -- knobs ----------------------------------------------------------------------

    def set_rate_limits(
        self,
        account: tuple[int, float] | None = ACCOUNT_LIMIT,
        export: tuple[int, float] | None = EXPORT_LIMIT,
    ) -> None:
        """Requests allowed per window (count, seconds) account-wide and on the exports."""
        with self._lock:
            self._account_window = MinuteWindow(*account, self._clock) if account else None
            self._export_window = MinuteWindow(*export, self._clock) if export else None

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        retry_after: int | None = None,
        hang_seconds: float = 0.0,
    ) -> None:
        """Answer the next ``n`` authenticated requests with ``status`` (after a hang)."""
        with self._lock:
            self.faults.fail_next(n, status, None if retry_after is None else str(retry_after))
            self._hangs.extend([hang_seconds] * n)

    def expire_oauth_token(self) -> None:
        """The OAuth access token expires: every Bearer request is 401 ``invalid_token``."""
        self.oauth_expired = True

    def now(self) -> datetime:
        return max(datetime.now(UTC), self.world.as_of)

    def _moment(self, records: list[dict[str, Any]]) -> datetime:
        """Now (never later: an export hides the future), or the latest change if later."""
        latest = max((parse_timestamp(r["updated_at"]) for r in records), default=self.now())
        return max(self.now().replace(microsecond=0), latest)

    def touch_ticket(self, ticket_id: int, **fields: Any) -> dict[str, Any]:
        """Apply ``fields`` to a ticket and bump ``updated_at``/``generated_timestamp``."""
        with self._lock:
            for index, ticket in enumerate(self.desk.tickets):
                if ticket["id"] == ticket_id:
                    moment = self._moment(self.desk.tickets)
                    self.desk.tickets[index] = {
                        **ticket,
                        **fields,
                        "updated_at": zendesk_timestamp(moment),
                        "generated_timestamp": int(moment.timestamp()),
                    }
                    return self.desk.tickets[index]
        raise KeyError(ticket_id)

    def touch_user(self, user_id: int, **fields: Any) -> dict[str, Any]:
        """Apply ``fields`` to a user and bump ``updated_at``."""
        with self._lock:
            for index, user in enumerate(self.desk.users):
                if user["id"] == user_id:
                    moment = self._moment(self.desk.users)
                    self.desk.users[index] = {
                        **user,
                        **fields,
                        "updated_at": zendesk_timestamp(moment),
                    }
                    return self.desk.users[index]
        raise KeyError(user_id)

    def rate_ticket(self, ticket_id: int, score: str, comment: str | None = None) -> dict[str, Any]:
        """The requester answers the survey: the rating changes, and so does the ticket."""
        with self._lock:
            for index, rating in enumerate(self.desk.satisfaction_ratings):
                if rating["ticket_id"] == ticket_id:
                    moment = self._moment(self.desk.satisfaction_ratings)
                    rating = {
                        **rating,
                        "score": score,
                        "comment": comment,
                        "updated_at": zendesk_timestamp(moment),
                    }
                    self.desk.satisfaction_ratings[index] = rating
                    self.touch_ticket(
                        ticket_id,
                        satisfaction_rating={
                            "id": rating["id"],
                            "score": score,
                            "comment": comment,
                        },
                    )
                    return rating
        raise KeyError(ticket_id)

    # -- guard ----------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer":
            if credentials != self.oauth_token or self.oauth_expired:
                raise _INVALID_TOKEN
            return
        if scheme.lower() != "basic":
            raise _COULD_NOT_AUTHENTICATE
        try:
            user, _, secret = base64.b64decode(credentials).decode().partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise _COULD_NOT_AUTHENTICATE from None
        email, _, kind = user.partition("/")
        if kind != "token" or email.lower() != self.email.lower() or secret != self.api_token:
            raise _COULD_NOT_AUTHENTICATE

    async def _guard(self, request: Request, export: bool) -> dict[str, str]:
        """Authenticate, count against the limits, inject faults; the headers to send."""
        with self._lock:
            self.request_count += 1
        self._authenticate(request)
        headers: dict[str, str] = {}
        with self._lock:
            if self._account_window:
                allowed, remaining, reset = self._account_window.take()
                limit = str(self._account_window.limit)
                headers = {
                    "X-Rate-Limit": limit,
                    "X-Rate-Limit-Remaining": str(remaining),
                    "ratelimit-limit": limit,
                    "ratelimit-remaining": str(remaining),
                    "ratelimit-reset": str(reset),
                }
                if not allowed:
                    raise ZendeskError(
                        429,
                        {
                            "error": "APIRateLimitExceeded",
                            "description": "Number of allowed API requests per minute exceeded",
                        },
                        {**headers, "Retry-After": str(reset)},
                    )
            if export:
                self.export_requests += 1
            if export and self._export_window:
                allowed, _, reset = self._export_window.take()
                if not allowed:
                    raise ZendeskError(
                        429,
                        {
                            "error": "APIRateLimitExceeded",
                            "description": "Number of allowed incremental export API requests "
                            "per minute exceeded",
                        },
                        {**headers, "Retry-After": str(reset)},
                    )
            fault = self.faults.take()
            hang = self._hangs.popleft() if fault is not None and self._hangs else 0.0
        if fault is not None:
            if hang:
                await asyncio.sleep(hang)
            if fault.status == 429:
                body = {"error": "APIRateLimitExceeded", "description": "Rate limit exceeded"}
            else:
                name, text = _FAULT_BODIES.get(fault.status, _FAULT_BODIES[500])
                body = {"error": name, "description": text}
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            raise ZendeskError(fault.status, body, {**headers, **extra})
        return headers

    async def _serve(
        self, request: Request, handler: Callable[[Request], dict[str, Any]], export: bool
    ) -> JSONResponse:
        try:
            headers = await self._guard(request, export)
        except ZendeskError as exc:
            return exc.response()
        try:
            with self._lock:
                try:
                    payload = handler(request)
                except UserWriteError as exc:
                    raise ZendeskError(exc.status, exc.body) from None
        except ZendeskError as exc:
            return exc.response(headers)
        status, payload = payload if isinstance(payload, tuple) else (200, payload)
        return JSONResponse(payload, status_code=status, headers=headers)

    # -- endpoints ------------------------------------------------------------------

    def _base(self, request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}{request.url.path}"

    def _export(
        self, request: Request, name: str, records: list[dict[str, Any]], stamp: Callable
    ) -> dict[str, Any]:
        params = request.query_params
        per_page = _int_param(params, "per_page", EXPORT_PAGE_MAX)
        if per_page is None or per_page < 1:
            raise _error(400, "InvalidValue", "per_page must be between 1 and 1000")
        per_page = min(per_page, EXPORT_PAGE_MAX)
        horizon = int((self.now() - self.export_delay).timestamp())
        if params.get("cursor"):
            after = _read_export_cursor(params["cursor"])
        elif params.get("start_time") is not None:
            start = _int_param(params, "start_time")
            assert start is not None
            if start > horizon:
                raise _error(
                    422,
                    "InvalidValue",
                    "Too recent start_time. Use a start_time older than 1 minute",
                )
            after = (start, 0)  # (generated_timestamp, id) > (start, 0): changed at or after
        else:
            raise _error(400, "InvalidValue", "start_time or cursor is required")
        rows = sorted(
            (r for r in records if (stamp(r), r["id"]) > after and stamp(r) <= horizon),
            key=lambda r: (stamp(r), r["id"]),
        )
        page = rows[:per_page]
        last = (stamp(page[-1]), page[-1]["id"]) if page else after
        base = self._base(request)
        after_cursor = _export_cursor(*last)
        before_cursor = _export_cursor(stamp(page[0]), page[0]["id"] - 1) if page else None
        return {
            name: page,
            "after_url": f"{base}?{urlencode({'cursor': after_cursor})}",
            "after_cursor": after_cursor,
            "before_url": f"{base}?{urlencode({'cursor': before_cursor})}" if page else None,
            "before_cursor": before_cursor,
            "end_of_stream": len(rows) <= per_page,
        }

    def _export_tickets(self, request: Request) -> dict[str, Any]:
        return self._export(
            request, "tickets", self.desk.tickets, lambda t: t["generated_timestamp"]
        )

    def _export_users(self, request: Request) -> dict[str, Any]:
        return self._export(
            request,
            "users",
            self.desk.users,
            lambda u: int(parse_timestamp(u["updated_at"]).timestamp()),
        )

    def _list(
        self,
        request: Request,
        name: str,
        rows: list[dict[str, Any]],
        key: Callable[[dict[str, Any]], Any],
        descending: bool = False,
    ) -> dict[str, Any]:
        """Cursor pagination with ``page[size]``, else offset pagination."""
        params = request.query_params
        rows = sorted(rows, key=key, reverse=descending)
        base = self._base(request)
        if "page[size]" in params or "page[after]" in params or "page[before]" in params:
            size = _int_param(params, "page[size]", CURSOR_PAGE_MAX)
            if size is None or not 1 <= size <= CURSOR_PAGE_MAX:
                raise _error(
                    400,
                    "InvalidPaginationParameter",
                    f"page[size] must be between 1 and {CURSOR_PAGE_MAX}",
                )
            query = {k: v for k, v in params.items() if k not in ("page[after]", "page[before]")}
            query.pop("page[size]", None)
            token = params.get("page[after]") or params.get("page[before]")
            backwards = "page[before]" in params and "page[after]" not in params
            if token:
                try:
                    state = _decode(token)
                    if state["q"] != _fingerprint(query):
                        raise ValueError
                except (ValueError, KeyError, TypeError, binascii.Error):
                    raise _error(
                        400, "InvalidPaginationParameter", "page[after] is not a valid cursor"
                    ) from None
                anchor = state["k"]
                positions = [json.loads(json.dumps(key(r))) for r in rows]
                if backwards:
                    index = next((i for i, p in enumerate(positions) if p == anchor), 0)
                    chunk = rows[max(0, index - size) : index]
                    start = max(0, index - size)
                else:
                    index = next((i for i, p in enumerate(positions) if p == anchor), len(rows) - 1)
                    start = index + 1
                    chunk = rows[start : start + size]
            else:
                start, chunk = 0, rows[:size]
            has_more = start + len(chunk) < len(rows)
            fp = _fingerprint(query)
            after = _encode({"q": fp, "k": key(chunk[-1])}) if chunk else None
            before = _encode({"q": fp, "k": key(chunk[0])}) if chunk else None
            common = {**query, "page[size]": str(size)}
            return {
                name: chunk,
                "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
                "links": {
                    "next": f"{base}?{urlencode({**common, 'page[after]': after})}"
                    if has_more and after
                    else None,
                    "prev": f"{base}?{urlencode({**common, 'page[before]': before})}"
                    if start > 0 and before
                    else None,
                },
            }
        per_page = _int_param(params, "per_page", OFFSET_PAGE_DEFAULT)
        page = _int_param(params, "page", 1)
        if per_page is None or page is None or per_page < 1 or page < 1:
            raise _error(400, "InvalidPaginationParameter", "page and per_page must be positive")
        per_page = min(per_page, 100)
        chunk = rows[(page - 1) * per_page : page * per_page]
        query = {k: v for k, v in params.items() if k != "page"}

        def link(number: int) -> str:
            return f"{base}?{urlencode({**query, 'page': str(number)})}"

        return {
            name: chunk,
            "next_page": link(page + 1) if page * per_page < len(rows) else None,
            "previous_page": link(page - 1) if page > 1 else None,
            "count": len(rows),
        }

    def _ticket_metrics(self, request: Request) -> dict[str, Any]:
        return self._list(request, "ticket_metrics", self.desk.ticket_metrics, lambda m: m["id"])

    def _satisfaction_ratings(self, request: Request) -> dict[str, Any]:
        params = request.query_params
        rows = list(self.desk.satisfaction_ratings)
        if params.get("score"):
            score = params["score"]
            if score not in _SCORE_FILTERS:
                raise _error(
                    400,
                    "InvalidValue",
                    f"score must be one of {', '.join(_SCORE_FILTERS)}",
                )
            rows = [r for r in rows if _SCORE_FILTERS[score](r)]
        start, end = _int_param(params, "start_time"), _int_param(params, "end_time")
        if start is not None:
            rows = [r for r in rows if parse_timestamp(r["created_at"]).timestamp() >= start]
        if end is not None:
            rows = [r for r in rows if parse_timestamp(r["created_at"]).timestamp() <= end]
        return self._list(request, "satisfaction_ratings", rows, lambda r: r["id"])

    def _comments(self, request: Request) -> dict[str, Any]:
        try:
            ticket_id = int(request.path_params["ticket_id"].removesuffix(".json"))
        except ValueError:
            raise _not_found() from None
        if ticket_id not in self.desk.comments:
            raise _not_found()
        sort = request.query_params.get("sort", "created_at")
        if sort not in ("created_at", "-created_at"):
            raise _error(400, "InvalidValue", "sort must be created_at or -created_at")
        return self._list(
            request,
            "comments",
            self.desk.comments[ticket_id],
            lambda c: [c["created_at"], c["id"]],
            descending=sort.startswith("-"),
        )

    def _me(self, request: Request) -> dict[str, Any]:
        for user in self.desk.users:
            if user["email"] and user["email"].lower() == self.email.lower():
                return {"user": user}
        raise _not_found()

    # -- the write side (user_writes) -------------------------------------------------

    def _write_routes(self, router: APIRouter) -> None:
        writes = self.writes

        def add(path: str, methods: list[str], handler: Callable[[Request, Any], Any]) -> None:
            async def endpoint(request: Request) -> JSONResponse:
                raw = await request.body() if request.method != "GET" else b""

                def call(req: Request) -> Any:
                    body: Any = None
                    if raw.strip():
                        try:
                            body = json.loads(raw)
                        except ValueError:
                            raise _error(
                                400, "InvalidJSON", "The request body is not JSON"
                            ) from None
                    return handler(req, body)

                return await self._serve(request, call, False)

            for variant in (path, f"{path}.json"):
                router.add_api_route(variant, endpoint, methods=methods)

        params = lambda r, name: r.query_params.get(name)  # noqa: E731
        add(
            "/api/v2/users/search",
            ["GET"],
            lambda r, b: writes.search(params(r, "query"), params(r, "external_id")),
        )
        add("/api/v2/users/show_many", ["GET"], lambda r, b: writes.show_many(params(r, "ids")))
        add(
            "/api/v2/users/update_many",
            ["PUT"],
            lambda r, b: writes.update_many(params(r, "ids"), params(r, "external_ids"), b),
        )
        add("/api/v2/users", ["POST"], lambda r, b: writes.create(b))
        add("/api/v2/user_fields", ["GET"], lambda r, b: writes.field_list())
        add("/api/v2/user_fields", ["POST"], lambda r, b: writes.field_create(b))
        add(
            "/api/v2/job_statuses/{job_id}",
            ["GET"],
            lambda r, b: writes.job_status(r.path_params["job_id"]),
        )
        add(
            "/api/v2/users/{user_id}/tags",
            ["GET", "POST", "PUT", "DELETE"],
            lambda r, b: writes.tags(r.path_params["user_id"], r.method, b),
        )
        add("/api/v2/users/{user_id}", ["GET"], lambda r, b: writes.show(r.path_params["user_id"]))

    # -- router ---------------------------------------------------------------------

    def _build_router(self) -> APIRouter:
        router = APIRouter(tags=["zendesk"])

        def route(path: str, handler: Callable[[Request], dict[str, Any]], export=False) -> None:
            async def endpoint(request: Request) -> JSONResponse:
                return await self._serve(request, handler, export)

            for variant in (path, f"{path}.json"):
                router.add_api_route(variant, endpoint, methods=["GET"])

        route("/api/v2/incremental/tickets/cursor", self._export_tickets, export=True)
        route("/api/v2/incremental/users/cursor", self._export_users, export=True)
        route("/api/v2/ticket_metrics", self._ticket_metrics)
        route("/api/v2/satisfaction_ratings", self._satisfaction_ratings)
        route("/api/v2/users/me", self._me)
        self._write_routes(router)

        async def comments(request: Request) -> JSONResponse:
            return await self._serve(request, self._comments, False)

        router.add_api_route("/api/v2/tickets/{ticket_id}/comments", comments, methods=["GET"])
        router.add_api_route("/api/v2/tickets/{ticket_id}/comments.json", comments, methods=["GET"])

        hidden = {"include_in_schema": False}

        async def fail_next(spec: Annotated[dict[str, Any], Body()]) -> JSONResponse:
            self.fail_next(
                int(spec.get("n", 1)),
                int(spec.get("status", 500)),
                retry_after=spec.get("retry_after"),
                hang_seconds=float(spec.get("hang_seconds", 0.0)),
            )
            return JSONResponse({"pending": self.faults.pending})

        async def expire() -> JSONResponse:
            self.expire_oauth_token()
            return JSONResponse({"oauth_expired": True})

        def toucher(touch: Callable[..., dict[str, Any]]) -> Callable[..., Any]:
            async def handler(
                record_id: int, fields: Annotated[dict[str, Any], Body()]
            ) -> JSONResponse:
                try:
                    return JSONResponse(touch(record_id, **fields))
                except KeyError:
                    return _not_found().response()

            return handler

        router.add_api_route("/_sandbox/zendesk/fail_next", fail_next, methods=["POST"], **hidden)
        router.add_api_route(
            "/_sandbox/zendesk/expire_oauth_token", expire, methods=["POST"], **hidden
        )
        for kind, touch in (("tickets", self.touch_ticket), ("users", self.touch_user)):
            router.add_api_route(
                f"/_sandbox/zendesk/{kind}/{{record_id}}/touch",
                toucher(touch),
                methods=["POST"],
                **hidden,
            )

        async def not_found(request: Request, path: str = "") -> JSONResponse:
            try:
                await self._guard(request, False)
            except ZendeskError as exc:
                return exc.response()
            return _error(404, "InvalidEndpoint", "Not found").response()

        router.add_api_route(
            "/api/v2/{path:path}",
            not_found,
            methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
            include_in_schema=False,
        )
        return router
