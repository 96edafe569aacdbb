"""Square API (Connect v2) emulation over the world's shops.

Serves what a point-of-sale extract reads, the way Square does, so the real tap and
Square's own SDK run unchanged against it:

- ``Authorization: Bearer <access token>``; anything else is a 401 with Square's body
  ``{"errors": [{"category": "AUTHENTICATION_ERROR", "code": "UNAUTHORIZED", ...}]}``;
- ``Square-Version``: any released version (``YYYY-MM-DD``, from 2019-03-13 up to
  :data:`API_VERSION`) is served; a malformed one is ``INVALID_SQUARE_VERSION_FORMAT``, a
  date after the newest release ``API_VERSION_INCOMPATIBLE``. Without the header Square
  uses the application's default version: here :data:`API_VERSION`. Every answer names
  the version it was served at in its own ``Square-Version`` header;
- ``GET /v2/locations``; ``GET /v2/customers`` (``cursor``, ``limit`` 1-100 default 100,
  ``sort_field`` DEFAULT|CREATED_AT, ``sort_order``, ``count``) and
  ``GET /v2/customers/{id}``; ``POST /v2/customers/search`` (``query.filter`` on
  ``created_at`` / ``updated_at`` / ``email_address`` / ``phone_number`` / ``reference_id``
  / ``creation_source`` / ``group_ids`` (``all``, ``any``, ``none``), ``query.sort``,
  ``cursor``, ``limit``);
  ``POST /v2/orders/search`` (``location_ids`` 1-10 required, ``query.filter`` with
  ``state_filter``, one ``date_time_filter`` whose field must be the ``sort_field``,
  ``customer_filter``, ``source_filter``, ``fulfillment_filter``; ``limit`` default 500,
  at most 1000; ``return_entries``); ``GET /v2/payments`` (``begin_time`` / ``end_time``
  on ``created_at``, default the year before now; ``updated_at_begin_time`` /
  ``updated_at_end_time``; ``sort_field``; only the main location unless
  ``location_id`` is given, as Square does); ``GET /v2/refunds`` (all locations by
  default); ``GET /v2/catalog/list`` (``types``, 100 objects a page);
- lists page with an opaque ``cursor`` in the body; a cursor is valid only with the
  query that produced it (``INVALID_CURSOR`` otherwise). An empty result is ``{}``, as
  Square answers it. ``date_time_filter`` without ``end_at`` ends at the first page's
  moment, kept in the cursor;
- validation errors are ``400 INVALID_REQUEST_ERROR`` with Square's ``code`` and the
  ``field`` at fault; unknown paths and methods answer Square's error body, never
  FastAPI's ``{"detail": ...}``;
- a per-token request rate limit answered with ``429 RATE_LIMIT_ERROR / RATE_LIMITED``
  (Square publishes no figure nor ``Retry-After``: clients back off exponentially);
- the writes of :mod:`.writes`: customer groups and membership, customer custom
  attributes (what omnicanal's Square destination sends);
- ``fail_next`` to inject 429, 5xx or hanging requests (timeouts), ``touch_customer`` /
  ``touch_order`` to change records for incremental tests, ``delete_customer`` to
  delete a profile (Square keeps its orders); also over HTTP under
  ``/_sandbox/square/``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from omnicanal.channels.square import API_VERSION, SANDBOX_ACCESS_TOKEN
from omnicanal.channels.square.world import SquareShop, parse_timestamp, square_timestamp
from omnicanal.channels.square.writes import CustomerWrites
from omnicanal.sandbox.throttle import Clock, RequestWindow
from omnicanal.sandbox.world import World

#: The oldest Square-Version the Connect v2 API still serves.
OLDEST_VERSION = "2019-03-13"
#: Requests per second one access token may send before Square answers 429.
DEFAULT_RATE_LIMIT = 100
CATALOG_PAGE_SIZE = 100
MAX_LOCATION_IDS = 10

_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
_ORDER_STATES = ("OPEN", "COMPLETED", "CANCELED", "DRAFT")
_ORDER_SORT_FIELDS = {
    "CREATED_AT": "created_at",
    "UPDATED_AT": "updated_at",
    "CLOSED_AT": "closed_at",
}
_PAYMENT_SORT_FIELDS = {"CREATED_AT": "created_at", "UPDATED_AT": "updated_at"}
_CATALOG_TYPES = (
    "ITEM",
    "ITEM_VARIATION",
    "CATEGORY",
    "DISCOUNT",
    "TAX",
    "MODIFIER",
    "MODIFIER_LIST",
    "IMAGE",
    "PRICING_RULE",
    "PRODUCT_SET",
    "TIME_PERIOD",
    "MEASUREMENT_UNIT",
    "SUBSCRIPTION_PLAN",
    "ITEM_OPTION",
    "ITEM_OPTION_VAL",
    "CUSTOM_ATTRIBUTE_DEFINITION",
    "QUICK_AMOUNT_SETTINGS",
)


class SquareError(Exception):
    """An error Square would answer; rendered as its ``{"errors": [...]}`` body."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        field: str | None = None,
        category: str = "INVALID_REQUEST_ERROR",
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.field, self.category = (
            status,
            code,
            detail,
            field,
            category,
        )

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        error = {"category": self.category, "code": self.code, "detail": self.detail}
        if self.field:
            error["field"] = self.field
        return JSONResponse({"errors": [error]}, status_code=self.status, headers=headers)


def _invalid(code: str, detail: str, field: str | None = None) -> SquareError:
    return SquareError(400, code, detail, field=field)


@dataclass(frozen=True)
class _Fault:
    status: int
    hang_seconds: float = 0.0


class Faults:
    """Failures the next authenticated requests answer with (HTTP status, or a hang)."""

    def __init__(self) -> None:
        self._queue: deque[_Fault] = deque()
        self._lock = threading.Lock()

    def add(self, n: int, fault: _Fault) -> None:
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._queue.extend([fault] * n)

    def take(self) -> _Fault | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)


_FAULT_BODIES = {
    429: ("RATE_LIMIT_ERROR", "RATE_LIMITED", "Rate limit exceeded. Retry the request later."),
    500: ("API_ERROR", "INTERNAL_SERVER_ERROR", "An internal error has occurred."),
    502: ("API_ERROR", "BAD_GATEWAY", "Bad gateway."),
    503: ("API_ERROR", "SERVICE_UNAVAILABLE", "Service temporarily unavailable."),
    504: ("API_ERROR", "GATEWAY_TIMEOUT", "Gateway timeout."),
}


def _fault_error(status: int) -> SquareError:
    category, code, detail = _FAULT_BODIES.get(
        status, ("API_ERROR", "INTERNAL_SERVER_ERROR", "An internal error has occurred.")
    )
    return SquareError(status, code, detail, category=category)


# -- parameters ---------------------------------------------------------------------------


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise _invalid("EXPECTED_INTEGER", f"Expected an integer value for `{field}`.", field)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _invalid(
            "EXPECTED_INTEGER", f"Expected an integer value for `{field}`.", field
        ) from None


def _bounded(value: Any, field: str, low: int, high: int) -> int:
    number = _int(value, field)
    if number < low:
        raise _invalid("VALUE_TOO_LOW", f"`{field}` must be at least {low}.", field)
    if number > high:
        raise _invalid("VALUE_TOO_HIGH", f"`{field}` must be at most {high}.", field)
    return number


def _enum(value: Any, field: str, allowed: tuple[str, ...] | dict[str, str]) -> str:
    if not isinstance(value, str) or value.upper() not in allowed:
        raise _invalid(
            "INVALID_ENUM_VALUE",
            f"`{value}` is not a valid enum value for `{field}`; expected one of "
            f"{', '.join(allowed)}.",
            field,
        )
    return value.upper()


def _object(value: Any, field: str) -> dict[str, Any]:
    """A nested request object (``query``, ``query.filter``...): absent is empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid("EXPECTED_OBJECT", f"Expected an object for `{field}`.", field)
    return value


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise _invalid("INVALID_TIME", f"`{field}` must be an RFC 3339 timestamp.", field)
    try:
        moment = parse_timestamp(value.strip())
    except ValueError:
        raise _invalid(
            "INVALID_TIME",
            f"`{field}` must be an RFC 3339 timestamp such as 2024-01-15T09:30:00Z, got {value!r}.",
            field,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _range(
    spec: Any, field: str, default_end: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """A Square TimeRange ``{start_at, end_at}`` (both inclusive)."""
    if spec is None:
        return None, None
    if not isinstance(spec, dict):
        raise _invalid("EXPECTED_OBJECT", f"Expected an object for `{field}`.", field)
    unknown = set(spec) - {"start_at", "end_at"}
    if unknown:
        name = sorted(unknown)[0]
        raise _invalid(
            "UNKNOWN_BODY_PARAMETER", f"Unknown field `{field}.{name}`.", f"{field}.{name}"
        )
    start = _time(spec["start_at"], f"{field}.start_at") if spec.get("start_at") else None
    end = _time(spec["end_at"], f"{field}.end_at") if spec.get("end_at") else default_end
    if start and end and start > end:
        raise _invalid(
            "INVALID_TIME_RANGE", f"`{field}.start_at` must not be after `end_at`.", field
        )
    return start, end


def _within(value: str | None, start: datetime | None, end: datetime | None) -> bool:
    if start is None and end is None:
        return True
    if not value:
        return False
    moment = parse_timestamp(value)
    return (start is None or moment >= start) and (end is None or moment <= end)


def _fingerprint(kind: str, query: Any) -> str:
    raw = json.dumps([kind, query], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _encode_cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: Any, kind: str, query: Any) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(str(token) + "=" * (-len(str(token)) % 4)))
        if data["q"] != _fingerprint(kind, query):
            raise ValueError("query changed")
        return data
    except (ValueError, KeyError, TypeError):
        raise _invalid(
            "INVALID_CURSOR",
            "The cursor is invalid for this request: send it with the same query that returned it.",
            "cursor",
        ) from None


@dataclass
class _Page:
    records: list[dict[str, Any]]
    cursor: str | None


def _page(
    rows: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], tuple],
    descending: bool,
    limit: int,
    kind: str,
    query: Any,
    cursor: Any,
    extra: dict[str, Any] | None = None,
) -> tuple[_Page, dict[str, Any]]:
    """Keyset paging: rows after the cursor's last key, in order; the next cursor."""
    state = _decode_cursor(cursor, kind, query) if cursor else {}
    rows = sorted(rows, key=key, reverse=descending)
    if "after" in state:
        anchor = tuple(state["after"])
        rows = [r for r in rows if (key(r) < anchor if descending else key(r) > anchor)]
    chunk = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        kept = {k: v for k, v in state.items() if k not in ("q", "after")}
        next_cursor = _encode_cursor(
            {
                **(extra or {}),
                **kept,  # what the first page froze (a default end) stays
                "q": _fingerprint(kind, query),
                "after": list(key(chunk[-1])),
            }
        )
    return _Page(chunk, next_cursor), state


def _body_page(name: str, page: _Page, **extra: Any) -> dict[str, Any]:
    """Square leaves empty lists out: an empty result is ``{}``."""
    body: dict[str, Any] = {}
    if page.records:
        body[name] = page.records
    if page.cursor:
        body["cursor"] = page.cursor
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def _customer_name_key(customer: dict[str, Any]) -> tuple[str, str]:
    """Square's DEFAULT order: given + family name, else company, email, phone."""
    name = " ".join(
        part for part in (customer.get("given_name"), customer.get("family_name")) if part
    )
    for fallback in ("company_name", "email_address", "phone_number"):
        if name:
            break
        name = customer.get(fallback) or ""
    return name.strip().lower(), customer["id"]


def _text_filter(value: str | None, spec: Any, field: str) -> bool:
    """A CustomerTextFilter: ``exact`` (case-insensitive) or ``fuzzy`` (contains)."""
    if not isinstance(spec, dict) or not ({"exact", "fuzzy"} & set(spec)):
        raise _invalid("INVALID_VALUE", f"`{field}` needs either `exact` or `fuzzy`.", field)
    if len({"exact", "fuzzy"} & set(spec)) > 1:
        raise _invalid(
            "CONFLICTING_PARAMETERS", f"`{field}` takes `exact` or `fuzzy`, not both.", field
        )
    if value is None:
        return False
    if "exact" in spec:
        return value.strip().lower() == str(spec["exact"]).strip().lower()
    tokens = re.findall(r"\w+", str(spec["fuzzy"]).lower())
    return all(token in value.lower() for token in tokens)


def _in_groups(customer: dict[str, Any], spec: Any) -> bool:
    """Square's FilterValue on ``group_ids``: ``all``, ``any`` and ``none`` of the ids."""
    spec = _object(spec, "query.filter.group_ids")
    held = set(customer.get("group_ids") or [])
    for rule in ("all", "any", "none"):
        values = spec.get(rule)
        if values is not None and not (
            isinstance(values, list) and all(isinstance(v, str) for v in values)
        ):
            raise _invalid(
                "EXPECTED_ARRAY",
                f"Expected an array of ids for `query.filter.group_ids.{rule}`.",
                f"query.filter.group_ids.{rule}",
            )
    return (
        set(spec.get("all") or ()) <= held
        and (not spec.get("any") or bool(held & set(spec["any"])))
        and not held & set(spec.get("none") or ())
    )


def _no_endpoint(path: str) -> JSONResponse:
    """Square's 404 for a path no endpoint serves."""
    return SquareError(
        404, "NOT_FOUND", f"API endpoint for URL path `{path}` not found."
    ).response()


class SquareEmulator:
    """The emulated Square seller: its HTTP router, rate limit, faults and mutations."""

    def unknown_path(self, request: Request) -> JSONResponse | None:
        """Square's answer to a path no route serves (``/v1/...``, retired), for a request
        that carries ``Square-Version`` or goes to a Square version prefix (the sandbox
        asks each emulation in turn): the errors body the ``/v2`` catch-all gives."""
        path = request.url.path
        if "Square-Version" not in request.headers and not path.startswith("/v1/"):
            return None
        return _no_endpoint(path)

    def __init__(
        self,
        world: World,
        *,
        access_token: str = SANDBOX_ACCESS_TOKEN,
        rate_limit: int | None = DEFAULT_RATE_LIMIT,
        catalog_page_size: int = CATALOG_PAGE_SIZE,
        clock: Clock = time.monotonic,
        state_path: str | Path | None = None,
    ) -> None:
        """``state_path`` keeps what applications wrote to customers (groups, custom
        attributes) between sandbox restarts."""
        self.world = world
        self.shop: SquareShop = world.slices["square"]
        self.access_token = access_token
        self.faults = Faults()
        self.request_count = 0
        self.catalog_page_size = catalog_page_size
        self._clock = clock
        self._rate_limit = rate_limit
        self._windows: dict[str, RequestWindow] = {}
        self._lock = threading.RLock()
        self.writes = CustomerWrites(self, state_path)
        self.router = self._build_router()

    # -- test controls ----------------------------------------------------------------

    def set_rate_limit(self, per_second: int | None) -> None:
        """Requests per second per token (None: unlimited), starting from an empty window."""
        with self._lock:
            self._rate_limit = per_second
            self._windows.clear()

    def fail_next(self, n: int = 1, status: int = 500, *, hang_seconds: float = 0.0) -> None:
        """Answer the next ``n`` authenticated requests with ``status`` instead.

        ``hang_seconds`` first holds each answer that long: a client whose timeout is
        shorter sees a timeout (and the late answer is the ``status`` error).
        """
        self.faults.add(n, _Fault(status, hang_seconds))

    def now(self) -> datetime:
        """Square's "now" for default time windows: the wall clock, or the world's as_of."""
        return max(datetime.now(UTC), self.world.as_of)

    def _next_moment(self, records: list[dict[str, Any]]) -> datetime:
        latest = max((parse_timestamp(r["updated_at"]) for r in records), default=self.now())
        return max(self.now(), latest + timedelta(milliseconds=1))

    def _replace(
        self,
        records: list[dict[str, Any]],
        record_id: str,
        fields: dict[str, Any],
        at: datetime | None,
    ) -> dict[str, Any]:
        for index, record in enumerate(records):
            if record["id"] == record_id:
                moment = at or self._next_moment(records)
                updated = {**record, **fields, "updated_at": square_timestamp(moment)}
                if "version" in record:
                    updated["version"] = int(record["version"]) + 1
                records[index] = updated  # replaced, not mutated: readers keep their copy
                return updated
        raise KeyError(record_id)

    def touch_customer(
        self, customer_id: str, *, at: datetime | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Apply ``fields`` to a customer, bump ``updated_at`` (and ``version``); return it."""
        with self._lock:
            return self._replace(self.shop.customers, customer_id, fields, at)

    def touch_order(
        self, order_id: str, *, at: datetime | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Apply ``fields`` to an order, bump ``updated_at`` (and ``version``); return it."""
        with self._lock:
            return self._replace(self.shop.orders, order_id, fields, at)

    def delete_customer(self, customer_id: str, *, at: datetime | None = None) -> dict[str, Any]:
        """Delete a customer profile as DeleteCustomer does; return the ground-truth entry.

        The profile is gone from ListCustomers, SearchCustomers and RetrieveCustomer
        (404); its orders, payments and refunds stay, ``customer_id`` included.
        """
        with self._lock:
            for record in self.shop.customers:
                if record["id"] == customer_id:
                    moment = at or self.now()
                    entry = {
                        "id": customer_id,
                        "deleted_at": square_timestamp(moment),
                        "record": record,
                    }
                    self.shop.customers.remove(record)
                    self.shop.deleted.append(entry)
                    return entry
        raise KeyError(customer_id)

    # -- guard ------------------------------------------------------------------------

    def _version(self, request: Request) -> str:
        asked = request.headers.get("Square-Version")
        if asked is None or not asked.strip():
            return API_VERSION
        asked = asked.strip()
        if not _VERSION.fullmatch(asked):
            raise _invalid(
                "INVALID_SQUARE_VERSION_FORMAT",
                f"Invalid Square-Version format {asked!r}: expected YYYY-MM-DD, e.g. "
                f"{API_VERSION}.",
            )
        if asked < OLDEST_VERSION or asked > API_VERSION:
            raise _invalid(
                "API_VERSION_INCOMPATIBLE",
                f"Square-Version {asked} is not a supported API version; use one from "
                f"{OLDEST_VERSION} to {API_VERSION}.",
            )
        return asked

    def _window(self, token: str) -> RequestWindow:
        with self._lock:
            if token not in self._windows:
                self._windows[token] = RequestWindow(self._rate_limit, self._clock)
            return self._windows[token]

    async def _guard(self, request: Request) -> dict[str, str]:
        """Authenticate, check the version, throttle and inject faults; the headers to send."""
        self.request_count += 1
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if not authorization:
            raise SquareError(
                401,
                "UNAUTHORIZED",
                "Your request did not include an `Authorization` http header with an access "
                'token. The header value is expected to be of the format "Bearer TOKEN" '
                "(without quotation marks), where TOKEN is to be replaced with your access "
                "token.",
                category="AUTHENTICATION_ERROR",
            )
        if scheme != "Bearer" or token.strip() != self.access_token:
            raise SquareError(
                401,
                "UNAUTHORIZED",
                "This request could not be authorized.",
                category="AUTHENTICATION_ERROR",
            )
        headers = {"Square-Version": self._version(request)}
        if not self._window(token.strip()).allow():
            error = SquareError(
                429,
                "RATE_LIMITED",
                "Rate limit exceeded. Retry the request later.",
                category="RATE_LIMIT_ERROR",
            )
            error.headers = headers  # type: ignore[attr-defined]
            raise error
        fault = self.faults.take()
        if fault is not None:
            if fault.hang_seconds:
                await asyncio.sleep(fault.hang_seconds)
            error = _fault_error(fault.status)
            error.headers = headers  # type: ignore[attr-defined]
            raise error
        return headers

    async def _serve(
        self, request: Request, handler: Callable[[Request, Any], dict[str, Any]], json_body: bool
    ) -> JSONResponse:
        try:
            headers = await self._guard(request)
        except SquareError as exc:
            return exc.response(getattr(exc, "headers", None))
        body: Any = None
        try:
            if json_body:
                raw = await request.body()
                try:
                    body = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    raise _invalid(
                        "EXPECTED_JSON_BODY", "The request body is not valid JSON."
                    ) from None
                if not isinstance(body, dict):
                    raise _invalid("EXPECTED_JSON_BODY", "The request body must be a JSON object.")
            with self._lock:
                payload = handler(request, body)
        except SquareError as exc:
            return exc.response(headers)
        return JSONResponse(payload, headers=headers)

    # -- endpoints --------------------------------------------------------------------

    def _locations(self, request: Request, body: Any) -> dict[str, Any]:
        return {"locations": self.shop.locations}

    def _list_customers(self, request: Request, body: Any) -> dict[str, Any]:
        params = request.query_params
        limit = _bounded(params.get("limit", 100), "limit", 1, 100)
        field = _enum(params.get("sort_field", "DEFAULT"), "sort_field", ("DEFAULT", "CREATED_AT"))
        order = _enum(params.get("sort_order", "ASC"), "sort_order", ("ASC", "DESC"))
        count = params.get("count", "false").lower() == "true"
        key = _customer_name_key if field == "DEFAULT" else (lambda c: (c["created_at"], c["id"]))
        query = {"sort_field": field, "sort_order": order}
        page, _ = _page(
            self.shop.customers,
            key,
            order == "DESC",
            limit,
            "customers",
            query,
            params.get("cursor"),
        )
        return _body_page("customers", page, count=len(self.shop.customers) if count else None)

    def _get_customer(self, request: Request, body: Any) -> dict[str, Any]:
        customer_id = request.path_params["customer_id"]
        for customer in self.shop.customers:
            if customer["id"] == customer_id:
                return {"customer": customer}
        raise SquareError(
            404, "NOT_FOUND", f"Customer with ID `{customer_id}` not found.", field="customer_id"
        )

    def _search_customers(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - {"cursor", "limit", "query", "count"}
        if unknown:
            name = sorted(unknown)[0]
            raise _invalid("UNKNOWN_BODY_PARAMETER", f"Unknown field `{name}`.", name)
        limit = _bounded(body.get("limit", 100), "limit", 1, 100)
        query = _object(body.get("query"), "query")
        filters = _object(query.get("filter"), "query.filter")
        sort = _object(query.get("sort"), "query.sort")
        rows = list(self.shop.customers)
        for name in ("created_at", "updated_at"):
            if name in filters:
                start, end = _range(filters[name], f"query.filter.{name}")
                rows = [c for c in rows if _within(c.get(name), start, end)]
        for name, record_field in (
            ("email_address", "email_address"),
            ("phone_number", "phone_number"),
            ("reference_id", "reference_id"),
        ):
            if name in filters:
                spec = filters[name]
                rows = [
                    c
                    for c in rows
                    if _text_filter(c.get(record_field), spec, f"query.filter.{name}")
                ]
        if "creation_source" in filters:
            spec = filters["creation_source"] or {}
            values = set(spec.get("values") or [])
            rule = _enum(
                spec.get("rule", "INCLUDE"),
                "query.filter.creation_source.rule",
                ("INCLUDE", "EXCLUDE"),
            )
            rows = [c for c in rows if (c.get("creation_source") in values) == (rule == "INCLUDE")]
        if "group_ids" in filters:
            rows = [c for c in rows if _in_groups(c, filters["group_ids"])]
        unknown_filters = set(filters) - {
            "created_at",
            "updated_at",
            "email_address",
            "phone_number",
            "reference_id",
            "creation_source",
            "group_ids",
            "segment_ids",
        }
        if unknown_filters:
            name = sorted(unknown_filters)[0]
            raise _invalid(
                "UNKNOWN_BODY_PARAMETER",
                f"Unknown field `query.filter.{name}`.",
                f"query.filter.{name}",
            )
        field = _enum(sort.get("field", "DEFAULT"), "query.sort.field", ("DEFAULT", "CREATED_AT"))
        order = _enum(sort.get("order", "ASC"), "query.sort.order", ("ASC", "DESC"))
        key = _customer_name_key if field == "DEFAULT" else (lambda c: (c["created_at"], c["id"]))
        page, _ = _page(
            rows, key, order == "DESC", limit, "customers/search", query, body.get("cursor")
        )
        return _body_page("customers", page, count=len(rows) if body.get("count") else None)

    def _search_orders(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - {"location_ids", "cursor", "query", "limit", "return_entries"}
        if unknown:
            name = sorted(unknown)[0]
            raise _invalid("UNKNOWN_BODY_PARAMETER", f"Unknown field `{name}`.", name)
        location_ids = body.get("location_ids")
        if not location_ids:
            raise _invalid(
                "MISSING_REQUIRED_PARAMETER",
                "Must provide at least one location_id.",
                "location_ids",
            )
        if not isinstance(location_ids, list):
            raise _invalid(
                "EXPECTED_ARRAY", "Expected an array for `location_ids`.", "location_ids"
            )
        if len(location_ids) > MAX_LOCATION_IDS:
            raise _invalid(
                "ARRAY_LENGTH_TOO_LONG",
                f"Cannot provide more than {MAX_LOCATION_IDS} location_ids.",
                "location_ids",
            )
        known = {loc["id"] for loc in self.shop.locations}
        for index, location_id in enumerate(location_ids):
            if not isinstance(location_id, str) or location_id not in known:
                raise _invalid(
                    "INVALID_VALUE",
                    f"Location `{location_id}` is not a location of this seller.",
                    f"location_ids[{index}]",
                )
        limit = _bounded(body.get("limit", 500), "limit", 1, 1000)
        query = _object(body.get("query"), "query")
        filters = _object(query.get("filter"), "query.filter")
        sort = _object(query.get("sort"), "query.sort")
        sort_field = _enum(
            sort.get("sort_field", "CREATED_AT"), "query.sort.sort_field", _ORDER_SORT_FIELDS
        )
        sort_order = _enum(sort.get("sort_order", "DESC"), "query.sort.sort_order", ("ASC", "DESC"))

        cursor_state = (
            _decode_cursor(body["cursor"], "orders/search", [location_ids, query])
            if body.get("cursor")
            else {}
        )
        frozen_end = parse_timestamp(cursor_state["end"]) if "end" in cursor_state else self.now()
        rows = [o for o in self.shop.orders if o["location_id"] in location_ids]
        extra: dict[str, Any] = {}
        date_filter = _object(filters.get("date_time_filter"), "query.filter.date_time_filter")
        if len(date_filter) > 1:
            raise _invalid(
                "INVALID_VALUE",
                "`date_time_filter` takes one of created_at, updated_at or closed_at.",
                "query.filter.date_time_filter",
            )
        for name, spec in date_filter.items():
            if name not in ("created_at", "updated_at", "closed_at"):
                raise _invalid(
                    "UNKNOWN_BODY_PARAMETER",
                    f"Unknown field `query.filter.date_time_filter.{name}`.",
                    f"query.filter.date_time_filter.{name}",
                )
            if _ORDER_SORT_FIELDS[sort_field] != name:
                raise _invalid(
                    "INVALID_SORT_ORDER",
                    f"When filtering on `{name}`, `query.sort.sort_field` must be "
                    f"{name.upper()}, got {sort_field}.",
                    "query.sort.sort_field",
                )
            start, end = _range(spec, f"query.filter.date_time_filter.{name}", frozen_end)
            extra["end"] = square_timestamp(frozen_end)
            rows = [o for o in rows if _within(o.get(name), start, end)]
        if "state_filter" in filters:
            states = (filters["state_filter"] or {}).get("states") or []
            if not states:
                raise _invalid(
                    "MISSING_REQUIRED_PARAMETER",
                    "`state_filter.states` must list at least one state.",
                    "query.filter.state_filter.states",
                )
            wanted = {
                _enum(s, f"query.filter.state_filter.states[{i}]", _ORDER_STATES)
                for i, s in enumerate(states)
            }
            rows = [o for o in rows if o["state"] in wanted]
        if "customer_filter" in filters:
            ids = set((filters["customer_filter"] or {}).get("customer_ids") or [])
            rows = [o for o in rows if o.get("customer_id") in ids]
        if "source_filter" in filters:
            names = set((filters["source_filter"] or {}).get("source_names") or [])
            rows = [o for o in rows if (o.get("source") or {}).get("name") in names]
        if "fulfillment_filter" in filters:
            spec = filters["fulfillment_filter"] or {}
            types = set(spec.get("fulfillment_types") or [])
            states = set(spec.get("fulfillment_states") or [])
            rows = [
                o
                for o in rows
                if any(
                    (not types or f.get("type") in types)
                    and (not states or f.get("state") in states)
                    for f in o.get("fulfillments") or []
                )
            ]
        field_name = _ORDER_SORT_FIELDS[sort_field]
        if field_name == "closed_at":
            rows = [o for o in rows if o.get("closed_at")]
        page, _ = _page(
            rows,
            lambda o: (o.get(field_name) or "", o["id"]),
            sort_order == "DESC",
            limit,
            "orders/search",
            [location_ids, query],
            body.get("cursor"),
            extra,
        )
        if body.get("return_entries"):
            entries = _Page(
                [
                    {"order_id": o["id"], "location_id": o["location_id"], "version": o["version"]}
                    for o in page.records
                ],
                page.cursor,
            )
            return _body_page("order_entries", entries)
        return _body_page("orders", page)

    def _money_list(
        self,
        request: Request,
        records: list[dict[str, Any]],
        name: str,
        *,
        main_location_default: bool,
    ) -> dict[str, Any]:
        """ListPayments and ListPaymentRefunds share their windows, sort and paging."""
        params = dict(request.query_params)
        query = {k: v for k, v in params.items() if k not in ("cursor", "limit")}
        state = _decode_cursor(params["cursor"], name, query) if params.get("cursor") else {}
        if "begin" in state:  # the window a first page defaulted to stays the cursor's
            begin, end = parse_timestamp(state["begin"]), parse_timestamp(state["end"])
        else:
            end = _time(params["end_time"], "end_time") if params.get("end_time") else self.now()
            begin = (
                _time(params["begin_time"], "begin_time")
                if params.get("begin_time")
                else end - timedelta(days=365)
            )
        if begin > end:
            raise _invalid(
                "INVALID_TIME_RANGE", "`begin_time` must not be after `end_time`.", "begin_time"
            )
        updated_begin = updated_end = None
        if params.get("updated_at_begin_time"):
            updated_begin = _time(params["updated_at_begin_time"], "updated_at_begin_time")
        if params.get("updated_at_end_time"):
            updated_end = _time(params["updated_at_end_time"], "updated_at_end_time")
        sort_field = _enum(
            params.get("sort_field", "CREATED_AT"), "sort_field", _PAYMENT_SORT_FIELDS
        )
        sort_order = _enum(params.get("sort_order", "DESC"), "sort_order", ("ASC", "DESC"))
        limit = _int(params.get("limit", 100), "limit")
        if limit < 1:
            raise _invalid("VALUE_TOO_LOW", "`limit` must be at least 1.", "limit")
        # payments: a limit over 100 is ignored (the default, 100, applies); refunds: capped
        limit = min(limit, 100)
        location_id = params.get("location_id")
        if location_id is None and main_location_default:
            location_id = self.shop.locations[0]["id"]
        rows = [
            r
            for r in records
            if (location_id is None or r.get("location_id") == location_id)
            and _within(r.get("created_at"), begin, end)
            and _within(r.get("updated_at"), updated_begin, updated_end)
        ]
        card = lambda r: (r.get("card_details") or {}).get("card") or {}  # noqa: E731
        for param, getter in (
            ("status", lambda r: r.get("status")),
            ("source_type", lambda r: r.get("destination_type") or r.get("source_type")),
            ("card_brand", lambda r: card(r).get("card_brand")),
            ("last_4", lambda r: card(r).get("last_4")),
        ):
            if params.get(param):
                rows = [r for r in rows if (getter(r) or "").upper() == params[param].upper()]
        if params.get("total"):
            total = _int(params["total"], "total")
            rows = [r for r in rows if (r.get("total_money") or {}).get("amount") == total]
        field = _PAYMENT_SORT_FIELDS[sort_field]
        page, _ = _page(
            rows,
            lambda r: (r.get(field) or "", r["id"]),
            sort_order == "DESC",
            limit,
            name,
            query,
            params.get("cursor"),
            {"begin": square_timestamp(begin), "end": square_timestamp(end)},
        )
        return _body_page(name, page)

    def _list_payments(self, request: Request, body: Any) -> dict[str, Any]:
        return self._money_list(request, self.shop.payments, "payments", main_location_default=True)

    def _list_refunds(self, request: Request, body: Any) -> dict[str, Any]:
        return self._money_list(request, self.shop.refunds, "refunds", main_location_default=False)

    def _list_catalog(self, request: Request, body: Any) -> dict[str, Any]:
        params = request.query_params
        raw_types = params.get("types")
        if raw_types:
            types = {
                _enum(t.strip(), "types", _CATALOG_TYPES) for t in raw_types.split(",") if t.strip()
            }
        else:
            types = {"ITEM", "CATEGORY", "TAX", "DISCOUNT", "MODIFIER_LIST"}
        rows = [
            o for o in self.shop.catalog_items if o["type"] in types and not o.get("is_deleted")
        ]
        if params.get("catalog_version"):
            version = _int(params["catalog_version"], "catalog_version")
            rows = [o for o in rows if o.get("version", 0) <= version]
        page, _ = _page(
            rows,
            lambda o: (o["id"],),
            False,
            self.catalog_page_size,
            "catalog/list",
            {"types": sorted(types), "catalog_version": params.get("catalog_version")},
            params.get("cursor"),
        )
        return _body_page("objects", page)

    # -- router -----------------------------------------------------------------------

    def _build_router(self) -> APIRouter:
        router = APIRouter(tags=["square"])

        def route(
            path: str, handler: Callable[[Request, Any], dict[str, Any]], method: str = "GET"
        ) -> None:
            async def endpoint(request: Request) -> JSONResponse:
                return await self._serve(request, handler, json_body=method in ("POST", "PUT"))

            router.add_api_route(path, endpoint, methods=[method])

        writes = self.writes
        route("/v2/locations", self._locations)
        route("/v2/customers", self._list_customers)
        route("/v2/customers/search", self._search_customers, "POST")
        # before /v2/customers/{customer_id}, which "groups" would otherwise match
        route("/v2/customers/groups", writes.list_groups)
        route("/v2/customers/groups", writes.create_group, "POST")
        route("/v2/customers/groups/{group_id}", writes.get_group)
        route("/v2/customers/groups/{group_id}", writes.update_group, "PUT")
        route("/v2/customers/groups/{group_id}", writes.delete_group, "DELETE")
        route("/v2/customers/custom-attribute-definitions", writes.list_definitions)
        route("/v2/customers/custom-attribute-definitions", writes.create_definition, "POST")
        route("/v2/customers/custom-attributes/bulk-upsert", writes.bulk_upsert, "POST")
        route("/v2/customers/{customer_id}", self._get_customer)
        route("/v2/customers/{customer_id}/custom-attributes", writes.list_attributes)
        route("/v2/customers/{customer_id}/groups/{group_id}", writes.add_to_group, "PUT")
        route("/v2/customers/{customer_id}/groups/{group_id}", writes.remove_from_group, "DELETE")
        route("/v2/orders/search", self._search_orders, "POST")
        route("/v2/payments", self._list_payments)
        route("/v2/refunds", self._list_refunds)
        route("/v2/catalog/list", self._list_catalog)

        async def fail_next(spec: Annotated[dict[str, Any], Body()]) -> JSONResponse:
            """``{n, status, hang_seconds}``; also the body Shopify's and VTEX's knobs take
            for a timeout, ``{n, timeout_seconds}``: a hang, then the 504 a gateway gives."""
            timeout = spec.get("timeout_seconds")
            self.fail_next(
                int(spec.get("n", 1)),
                int(spec.get("status", 500 if timeout is None else 504)),
                hang_seconds=float(spec.get("hang_seconds", timeout or 0.0)),
            )
            return JSONResponse({"pending": self.faults.pending})

        async def rate_limit(spec: Annotated[dict[str, Any], Body()]) -> JSONResponse:
            self.set_rate_limit(spec.get("per_second"))
            return JSONResponse({"per_second": self._rate_limit})

        def toucher(touch: Callable[..., dict[str, Any]]) -> Callable[..., Any]:
            async def handler(
                record_id: str, fields: Annotated[dict[str, Any], Body()]
            ) -> JSONResponse:
                try:
                    return JSONResponse(touch(record_id, **fields))
                except KeyError:
                    return SquareError(404, "NOT_FOUND", f"No record `{record_id}`.").response()

            return handler

        hidden = {"include_in_schema": False}
        router.add_api_route("/_sandbox/square/fail_next", fail_next, methods=["POST"], **hidden)
        router.add_api_route("/_sandbox/square/rate_limit", rate_limit, methods=["POST"], **hidden)
        router.add_api_route(
            "/_sandbox/square/customers/{record_id}/touch",
            toucher(self.touch_customer),
            methods=["POST"],
            **hidden,
        )
        router.add_api_route(
            "/_sandbox/square/orders/{record_id}/touch",
            toucher(self.touch_order),
            methods=["POST"],
            **hidden,
        )

        async def delete_customer(record_id: str) -> JSONResponse:
            try:
                return JSONResponse(self.delete_customer(record_id))
            except KeyError:
                return SquareError(404, "NOT_FOUND", f"No record `{record_id}`.").response()

        router.add_api_route(
            "/_sandbox/square/customers/{record_id}/delete",
            delete_customer,
            methods=["POST"],
            **hidden,
        )

        async def not_found(request: Request, path: str = "") -> JSONResponse:
            known = {
                r.path
                for r in router.routes
                if hasattr(r, "path") and getattr(r, "endpoint", None) is not not_found
            }
            if request.url.path in known:
                return SquareError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    f"Method {request.method} is not allowed for {request.url.path}.",
                ).response()
            return _no_endpoint(request.url.path)

        for pattern in ("/v2", "/v2/{path:path}"):
            router.add_api_route(
                pattern,
                not_found,
                methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
                include_in_schema=False,
            )
        return router
