"""What Meta's Graph API looks like to a client, for every Meta emulation (Instagram, WhatsApp).

The Graph API is one API whatever the product behind a node: the same versioned paths
(``/v26.0/{node-id}/{edge}``), the same access token (``access_token`` in the query or
``Authorization: Bearer``/``OAuth``), the same ``fields=`` selection with nested
``edge.limit(n){field,…}`` expansions, the same cursor paging (``paging.cursors.before`` /
``after``, ``paging.next`` only when there is a next page), the same error envelope
``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`` — HTTP 400 even for
a bad or expired token — and the same throttling headers (``X-App-Usage``,
``X-Business-Use-Case-Usage``: JSON percentages of the hourly budget used). This module
holds those parts so each channel's emulator only says what its nodes are.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:  # the registry imports this module: keep it light (no web framework)
    from fastapi import Request
    from fastapi.responses import JSONResponse

    from omnicanal.sandbox.throttle import Clock

#: The newest Graph API version (released 2026-07-29); older versions still served.
GRAPH_API_VERSION = "v26.0"
#: The oldest version Meta still serves as of the sandbox's time (v21.0 until 2027-01).
OLDEST_GRAPH_VERSION = "v21.0"
_VERSION = re.compile(r"v(\d+)\.(\d+)")
#: What a Graph version looks like in a path (``v26.0``).
VERSION_PATTERN = _VERSION

DEFAULT_PAGE_LIMIT = 25
MAX_PAGE_LIMIT = 100


def graph_time(moment: datetime) -> str:
    """A Graph timestamp: ISO 8601 in UTC with ``+0000`` (``2026-05-19T23:27:28+0000``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def parse_graph_time(value: str) -> datetime:
    """A Graph timestamp (``+0000``), or an ISO one, as an aware datetime."""
    text = value.strip()
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def version_tuple(version: str) -> tuple[int, int] | None:
    match = _VERSION.fullmatch(version)
    return (int(match.group(1)), int(match.group(2))) if match else None


# -- errors ------------------------------------------------------------------------------


class GraphError(Exception):
    """An error the Graph API answers, rendered as its ``{"error": {...}}`` envelope."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        type: str = "OAuthException",  # noqa: A002 - Graph's own field name
        subcode: int | None = None,
        status: int = 400,
        is_transient: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.type, self.subcode = message, code, type, subcode
        self.status, self.is_transient, self.headers = status, is_transient, headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.is_transient is not None:
            error["is_transient"] = self.is_transient
        error["fbtrace_id"] = base64.b64encode(secrets.token_bytes(8)).decode().rstrip("=")
        return {"error": error}

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        from fastapi.responses import JSONResponse

        merged = {**(headers or {}), **self.headers}
        if self.code in (102, 104, 190):
            # Graph names the OAuth failure in WWW-Authenticate too (still HTTP 400).
            reason = "invalid_request" if self.code == 104 else "invalid_token"
            merged["WWW-Authenticate"] = f'OAuth "Facebook Platform" "{reason}" "{self.message}"'
        return JSONResponse(self.body(), status_code=self.status, headers=merged)


def missing_token() -> GraphError:
    return GraphError("An access token is required to request this resource.", code=104)


def invalid_token() -> GraphError:
    return GraphError("Invalid OAuth access token - Cannot parse access token", code=190)


def expired_token(expired_at: datetime, now: datetime | None = None) -> GraphError:
    """Code 190, subcode 463: the token's session has expired (Graph's own wording)."""
    now = now or datetime.now(UTC)
    stamp = "%A, %d-%b-%y %H:%M:%S UTC"
    return GraphError(
        f"Error validating access token: Session has expired on {expired_at.strftime(stamp)}. "
        f"The current time is {now.strftime(stamp)}.",
        code=190,
        subcode=463,
    )


#: Rate-limit errors by code: app (4), user (17), page (32), API-specific (613) and the
#: Instagram business use case (80002).
RATE_LIMIT_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80002: "(#80002) There have been too many calls to this Instagram account. "
    "Wait a bit and try again. For more info, please refer to "
    "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
}


def rate_limited(code: int = 4) -> GraphError:
    if code not in RATE_LIMIT_MESSAGES:
        raise ValueError(f"Graph rate-limit codes are {sorted(RATE_LIMIT_MESSAGES)}, not {code}")
    return GraphError(RATE_LIMIT_MESSAGES[code], code=code, is_transient=True)


def server_error(status: int = 500) -> GraphError:
    """A 5xx with Graph's transient body (code 2), as a Meta outage answers."""
    return GraphError(
        "An unexpected error has occurred. Please retry your request later.",
        code=2,
        status=status,
        is_transient=True,
    )


def unsupported_get(node: str) -> GraphError:
    return GraphError(
        f"Unsupported get request. Object with ID '{node}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation. Please read the "
        "Graph API documentation at https://developers.facebook.com/docs/graph-api",
        code=100,
        subcode=33,
        type="GraphMethodException",
    )


def invalid_parameter(message: str) -> GraphError:
    return GraphError(f"(#100) {message}", code=100)


def unknown_path(path: str) -> GraphError:
    return GraphError(f"Unknown path components: /{path}", code=2500)


def request_token(request: Request) -> str | None:
    """The access token of a request: ``access_token`` in the query (or form), else the
    ``Authorization: Bearer`` / ``OAuth`` header, as Graph reads it."""
    token = request.query_params.get("access_token")
    if token:
        return token
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return None


# -- usage headers -------------------------------------------------------------------------


class UsageMeter:
    """The share of an hourly call budget used, as Graph reports it in its usage headers.

    ``calls_per_hour`` is the budget of one app (``X-App-Usage``) or one business object
    (``X-Business-Use-Case-Usage``); CPU and time shares follow the call share here. A
    test can pin the figures with ``force`` (e.g. 96 % to see a client slow down, 100 % to
    see it refused).
    """

    def __init__(self, calls_per_hour: int | None, clock: Clock | None = None) -> None:
        self.calls_per_hour = calls_per_hour
        self._clock = clock or time.monotonic
        self._calls: deque[float] = deque()
        self._forced: int | None = None
        self._lock = threading.Lock()

    def force(self, percent: int | None) -> None:
        """Report ``percent`` (None: the real count again)."""
        with self._lock:
            self._forced = percent

    def record(self) -> int:
        """Count one call; return the percentage used, counting it."""
        with self._lock:
            now = self._clock()
            self._calls.append(now)
            while self._calls and now - self._calls[0] >= 3600:
                self._calls.popleft()
            if self._forced is not None:
                return self._forced
            if not self.calls_per_hour:
                return 0
            return min(100, len(self._calls) * 100 // self.calls_per_hour)

    @staticmethod
    def app_usage_header(percent: int) -> str:
        return json.dumps({"call_count": percent, "total_cputime": percent, "total_time": percent})

    @staticmethod
    def business_usage_header(business_id: str, kind: str, percent: int) -> str:
        regain = 0 if percent < 100 else 1  # minutes
        return json.dumps(
            {
                business_id: [
                    {
                        "type": kind,
                        "call_count": percent,
                        "total_cputime": percent,
                        "total_time": percent,
                        "estimated_time_to_regain_access": regain,
                    }
                ]
            }
        )


# -- fields= ---------------------------------------------------------------------------------


@dataclass
class FieldSpec:
    """One entry of ``fields=``: a name, an optional ``.limit(n)`` and nested fields."""

    name: str
    limit: int | None = None
    fields: list[FieldSpec] = field(default_factory=list)


_TOKEN = re.compile(r"\s*([A-Za-z_][\w]*)((?:\.\w+\([^)]*\))*)\s*")


def parse_fields(text: str | None) -> list[FieldSpec]:
    """Parse ``id,text,from{id,username},replies.limit(5){id,text}``; 100 if malformed."""
    if not text or not text.strip():
        return []
    specs, position = _parse_list(text, 0)
    if position != len(text):
        raise invalid_parameter(
            f'Syntax error "Expected end of string instead of "{text[position]}"." '
            f"at character {position}: {text}"
        )
    return specs


def _parse_list(text: str, position: int) -> tuple[list[FieldSpec], int]:
    specs: list[FieldSpec] = []
    while True:
        match = _TOKEN.match(text, position)
        if not match:
            raise invalid_parameter(f"Syntax error in fields at character {position}: {text}")
        spec = FieldSpec(match.group(1))
        for modifier in re.findall(r"\.(\w+)\(([^)]*)\)", match.group(2) or ""):
            if modifier[0] == "limit" and modifier[1].strip().isdigit():
                spec.limit = int(modifier[1])
        position = match.end()
        if position < len(text) and text[position] == "{":
            spec.fields, position = _parse_list(text, position + 1)
            if position >= len(text) or text[position] != "}":
                raise invalid_parameter(f"Syntax error in fields: missing }} in {text}")
            position += 1
        specs.append(spec)
        if position < len(text) and text[position] == ",":
            position += 1
            continue
        return specs, position


# -- paging -----------------------------------------------------------------------------------


def encode_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"pos:{index}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, _, value = base64.urlsafe_b64decode(padded).decode().partition(":")
        if kind == "pos":
            return int(value)
    except (ValueError, UnicodeDecodeError):
        pass
    raise invalid_parameter("The after or before cursor is invalid or expired.")


def page_limit(
    raw: str | None, default: int = DEFAULT_PAGE_LIMIT, maximum: int = MAX_PAGE_LIMIT
) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_parameter(f"Param limit must be a non-negative integer, got {raw}") from None
    if value < 0:
        raise invalid_parameter("Param limit must be a non-negative integer")
    return min(value or default, maximum)


def cursor_page(
    items: list[Any],
    *,
    limit: int,
    after: str | None,
    before: str | None,
    url: str,
    params: dict[str, str],
) -> tuple[list[Any], dict[str, Any] | None]:
    """One page of ``items`` and Graph's ``paging`` object (None for an empty list).

    Cursors point at positions; ``next`` is given only while items remain after the page
    and ``previous`` only when some lie before it. ``url`` and ``params`` rebuild the
    links (the access token included, as Graph does).
    """
    if after:
        start = decode_cursor(after) + 1
    elif before:
        start = max(0, decode_cursor(before) - limit)
    else:
        start = 0
    start = max(0, min(start, len(items)))
    page = items[start : start + limit]
    if not page:
        return [], None
    first, last = start, start + len(page) - 1
    paging: dict[str, Any] = {
        "cursors": {"before": encode_cursor(first), "after": encode_cursor(last)}
    }
    kept = {k: v for k, v in params.items() if k not in ("after", "before")}
    if last + 1 < len(items):
        paging["next"] = (
            f"{url}?{urlencode({**kept, 'limit': limit, 'after': encode_cursor(last)})}"
        )
    if first > 0:
        paging["previous"] = (
            f"{url}?{urlencode({**kept, 'limit': limit, 'before': encode_cursor(first)})}"
        )
    return page, paging
