"""VTEX OMS and Master Data v2 emulation over the world's VTEX store.

VTEX publishes no official Python client, so this follows its API reference (the
Orders API and Master Data API v2 OpenAPI documents) for paths, parameters, limits and
error bodies, and the tests drive it over plain HTTP as the tap does:

- **auth**: ``X-VTEX-API-AppKey`` and ``X-VTEX-API-AppToken`` on every call. A missing
  or wrong pair is 401; a known key whose role lacks the resource is 403. OMS errors
  come in its envelope ``{"error": {"code", "message", "exception"}}`` (401:
  ``Unauthorized access``), Master Data's as ``{"Message": …}``;
- **OMS list** ``GET /api/oms/pvt/orders``: ``page`` (from 1), ``per_page`` (default 15,
  at most 100), ``f_creationDate`` / ``f_authorizedDate`` / ``f_invoicedDate`` as
  ``field:[<ISO> TO <ISO>]`` (inclusive), ``f_status`` (comma-separated), ``orderBy``
  ``<field>,<asc|desc>`` (creationDate, orderId, items, totalValue, origin; default
  ``creationDate,desc``). Answers ``list`` (summaries without ``items`` and without
  ``lastChange``), ``facets``, ``paging`` ``{total, pages, currentPage, perPage}`` and
  ``stats``. **Pages beyond 30 are refused** (400, ``Max page exceed ( 30 ), refine
  filter``) whatever ``per_page`` is, so a client must narrow its date filter;
- **OMS detail** ``GET /api/oms/pvt/orders/{orderId}``: the full order, with the masked
  email alias in ``clientProfileData.email`` and the profile's ``userProfileId``;
- **Master Data v2** ``GET /api/dataentities/CL/scroll``: ``_size`` (default 100, at most
  1000), ``_fields`` (comma list or ``_all``; default ``id,accountId,accountName,
  dataEntityId``), ``_where``, ``_sort``; the first answer carries ``X-VTEX-MD-TOKEN``
  and ``REST-Content-Total``; later calls send only ``_token`` until an empty page; a
  token unused for 20 minutes expires (400, ``Operation not found for this token``);
- **Master Data v2** ``GET /api/dataentities/CL/search``: the same filters, paged by the
  ``REST-Range: resources=<from>-<to>`` header (at most 100 a request, the first 10,000
  documents only), answered with ``REST-Content-Range: resources <from>-<to>/<total>``;
- ``_where`` understands ``field=value``, ``field<>value``, ``>``, ``>=``, ``<``, ``<=``,
  ``field between A AND B``, ``field is null``/``is not null``, joined by ``AND``/``OR``
  (AND binds tighter; no parentheses); an unknown field is 400
  ``Field '<name>' not found in schema``;
- a rate limit per account (default 6,000 requests a minute, the OMS documented figure)
  counted in fixed one-minute windows, answered with 429 and ``Retry-After`` (seconds
  until the window resets) once used up; ``X-RateLimit-Remaining`` and
  ``X-RateLimit-Reset`` on every answer;
- unknown paths under ``/api/oms`` and ``/api/dataentities`` answer 404 in the
  platform's body, not FastAPI's;
- faults for retry tests: ``fail_next(n, status)`` (429 with ``Retry-After``, 5xx) and
  ``stall_next(n, seconds)`` (the answer comes late, so a client's timeout fires), also
  over HTTP at ``POST /_sandbox/vtex/faults``; ``touch_order`` / ``touch_profile`` change
  records for incremental tests (``POST /_sandbox/vtex/orders/{id}/touch``,
  ``/_sandbox/vtex/profiles/{id}/touch``), ``delete_profile`` deletes a CL document
  (``POST /_sandbox/vtex/profiles/{id}/delete``).
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from omnicanal.channels.vtex import SANDBOX_APP_KEY, SANDBOX_APP_TOKEN
from omnicanal.channels.vtex.world import (
    VtexStore,
    list_timestamp,
    md_timestamp,
    parse_timestamp,
    vtex_timestamp,
)
from omnicanal.sandbox.throttle import Clock, FaultInjector
from omnicanal.sandbox.world import World

APP_KEY_HEADER = "X-VTEX-API-AppKey"
APP_TOKEN_HEADER = "X-VTEX-API-AppToken"
MD_TOKEN_HEADER = "X-VTEX-MD-TOKEN"

DEFAULT_PER_PAGE = 15
MAX_PER_PAGE = 100
MAX_LIST_PAGES = 30
DEFAULT_SCROLL_SIZE = 100
MAX_SCROLL_SIZE = 1000
MAX_SEARCH_RANGE = 100
MAX_SEARCH_DOCUMENTS = 10_000
SCROLL_TOKEN_TTL_SECONDS = 20 * 60
DEFAULT_REQUESTS_PER_MINUTE = 6000

MAX_PAGE_EXCEEDED = f"Max page exceed ( {MAX_LIST_PAGES} ), refine filter"
OMS_UNAUTHORIZED = "Unauthorized access"
OMS_FORBIDDEN = "The credentials are not enabled to access the service"
MD_UNAUTHORIZED = "Unauthorized"
MD_FORBIDDEN = "Unauthorized access."
TOO_MANY_REQUESTS = "Too Many Requests"

DEFAULT_FIELDS = ("id", "accountId", "accountName", "dataEntityId")
LIST_ORDER_FIELDS = ("creationDate", "orderId", "items", "totalValue", "origin")
DATE_FILTERS = {
    "f_creationDate": "creationDate",
    "f_authorizedDate": "authorizedDate",
    "f_invoicedDate": "invoicedDate",
}
_RANGE = re.compile(r"^\s*(\w+):\[\s*(\S+)\s+TO\s+(\S+)\s*\]\s*$")
_REST_RANGE = re.compile(r"^\s*resources\s*=\s*(\d+)\s*-\s*(\d+)\s*$")
_CONDITION = re.compile(
    r"^\s*(?P<field>[A-Za-z_][\w.]*)\s*"
    r"(?:(?P<between>between)\s+(?P<low>.+?)\s+AND\s+(?P<high>.+?)"
    r"|(?P<isnull>is\s+not\s+null|is\s+null)"
    r"|(?P<op><>|>=|<=|=|>|<)\s*(?P<value>.+?))\s*$",
    re.IGNORECASE,
)

#: The products (License Manager resources) a key may be granted.
RESOURCES = ("oms", "masterdata")


class OmsError(Exception):
    """A request VTEX's OMS refuses: status and message for its error envelope."""

    def __init__(self, status: int, message: str, code: str = "1") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class MasterDataError(Exception):
    """A request Master Data refuses: status and ``Message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@functools.lru_cache(maxsize=100_000)
def _ms(stamp: str) -> datetime:
    """A stored timestamp at the OMS index's precision (milliseconds), parsed once."""
    moment = parse_timestamp(stamp)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def oms_body(message: str, code: str = "1") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "exception": None}}


def _parse_moment(raw: str, name: str, error: type[Exception]) -> datetime:
    text = raw.strip().strip("'\"")
    if text == "*":
        return (
            datetime.min.replace(tzinfo=UTC) if name == "low" else datetime.max.replace(tzinfo=UTC)
        )
    try:
        if len(text) == 10:  # a bare date, 2024-01-31
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        return parse_timestamp(text)
    except ValueError:
        if error is OmsError:
            raise OmsError(400, f"Invalid date {raw!r}: use 2024-01-31T00:00:00.000Z") from None
        raise MasterDataError(400, f"Invalid date value '{raw.strip()}'") from None


class _Window:
    """Requests per account per minute, counted in fixed one-minute windows.

    When a window is used up, every request is refused until it ends, and the answer
    says how long that is (``Retry-After``, ``X-RateLimit-Reset``): a client that waits
    as told keeps the full rate, one that hammers gets nothing more.
    """

    def __init__(self, per_minute: int, clock: Clock) -> None:
        self.per_minute, self._clock = per_minute, clock
        self._started = clock()
        self._used = 0
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, int, float]:
        """Count one request: (allowed, remaining, seconds until the window resets)."""
        with self._lock:
            now = self._clock()
            if now - self._started >= 60.0:
                self._started, self._used = now, 0
            reset = max(0.0, 60.0 - (now - self._started))
            if self._used >= self.per_minute:
                return False, 0, reset
            self._used += 1
            return True, self.per_minute - self._used, reset


class _Where:
    """A parsed Master Data ``_where``: OR of ANDs of simple conditions."""

    def __init__(self, text: str, fields: set[str]) -> None:
        self.groups: list[list[tuple[str, str, Any]]] = []
        for group in re.split(r"\s+OR\s+", text.strip(), flags=re.IGNORECASE):
            conditions = []
            # "between A AND B" contains AND: protect it before splitting on AND
            protected = re.sub(r"(between\s+\S+)\s+AND\s+", "\\1 \x00 ", group, flags=re.IGNORECASE)
            for part in re.split(r"\s+AND\s+", protected, flags=re.IGNORECASE):
                conditions.append(self._condition(part.replace("\x00", "AND"), fields))
            self.groups.append(conditions)

    @staticmethod
    def _condition(text: str, fields: set[str]) -> tuple[str, str, Any]:
        match = _CONDITION.match(text)
        if not match or "(" in text or ")" in text:
            raise MasterDataError(400, f"Invalid where clause: '{text.strip()}'")
        field = match["field"]
        if field not in fields:
            raise MasterDataError(400, f"Field '{field}' not found in schema")
        if match["between"]:
            return field, "between", (match["low"], match["high"])
        if match["isnull"]:
            return field, match["isnull"].lower().replace("  ", " "), None
        return field, match["op"], match["value"].strip().strip("'\"")

    def matches(self, record: dict[str, Any]) -> bool:
        return any(all(_holds(record, c) for c in group) for group in self.groups)


def _holds(record: dict[str, Any], condition: tuple[str, str, Any]) -> bool:
    field, op, operand = condition
    value = record.get(field)
    if op == "is null":
        return value in (None, "")
    if op == "is not null":
        return value not in (None, "")
    if value is None:
        return False
    if field.endswith(("In", "Date")) and isinstance(value, str):
        moment = parse_timestamp(value)
        if op == "between":
            low = _parse_moment(operand[0], "low", MasterDataError)
            high = _parse_moment(operand[1], "high", MasterDataError)
            return low <= moment <= high
        other = _parse_moment(operand, "value", MasterDataError)
        return _compare(moment, op, other)
    if op == "between":
        return str(operand[0]) <= str(value) <= str(operand[1])
    if isinstance(value, bool):
        return _compare(str(value).lower(), op, operand.lower())
    if operand.startswith("*") or operand.endswith("*"):
        needle = operand.strip("*").lower()
        found = needle in str(value).lower()
        return found if op == "=" else not found
    return _compare(str(value).lower(), op, operand.lower())


def _compare(left: Any, op: str, right: Any) -> bool:
    return {
        "=": left == right,
        "<>": left != right,
        ">": left > right,
        ">=": left >= right,
        "<": left < right,
        "<=": left <= right,
    }[op]


class VtexEmulator:
    """The emulated VTEX account: its HTTP router, rate limit, faults and mutations."""

    def unknown_path(self, request: Request) -> JSONResponse | None:
        """The account's answer to a path no route serves, for a request that carries a
        VTEX app key (the sandbox asks each emulation in turn): the OMS error body its
        ``/api/oms`` catch-all gives."""
        if APP_KEY_HEADER not in request.headers:
            return None
        return JSONResponse(oms_body(f"No route matches {request.method} {request.url.path}"), 404)

    def __init__(
        self,
        world: World,
        *,
        app_key: str = SANDBOX_APP_KEY,
        app_token: str = SANDBOX_APP_TOKEN,
        requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE,
        clock: Clock = time.monotonic,
    ) -> None:
        self.world = world
        self.store: VtexStore = world.slices["vtex"]
        self._keys: dict[str, tuple[str, frozenset[str]]] = {
            app_key: (app_token, frozenset(RESOURCES))
        }
        self.faults = FaultInjector()
        self._stalls: deque[float] = deque()
        self.request_count = 0
        self._clock = clock
        self._window = _Window(requests_per_minute, clock)
        self._scrolls: dict[str, dict[str, Any]] = {}
        self._order_index: dict[str, int] = {}
        self._lock = threading.RLock()
        self.router = self._build_router()

    # -- test controls ----------------------------------------------------------

    def add_app_key(self, app_key: str, app_token: str, resources: tuple[str, ...] = ()) -> None:
        """Register another key pair; ``resources`` (oms, masterdata) its role grants."""
        unknown = set(resources) - set(RESOURCES)
        if unknown:
            raise ValueError(f"unknown resources {sorted(unknown)}; known: {RESOURCES}")
        self._keys[app_key] = (app_token, frozenset(resources))

    def set_rate_limit(self, requests_per_minute: int) -> None:
        """Change the account's requests per minute, starting from an empty window."""
        self._window = _Window(requests_per_minute, self._clock)

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` authenticated requests with ``status`` instead."""
        self.faults.fail_next(n, status, retry_after="1" if status == 429 else None)

    def stall_next(self, n: int = 1, seconds: float = 5.0) -> None:
        """Make the next ``n`` authenticated requests answer only after ``seconds``."""
        with self._lock:
            self._stalls.extend([seconds] * n)

    def clear_faults(self) -> None:
        self.faults.clear()
        with self._lock:
            self._stalls.clear()

    def expire_scroll_tokens(self) -> None:
        """Forget every scroll, as 20 idle minutes would."""
        with self._lock:
            self._scrolls.clear()

    def touch_order(self, order_id: str, *, at: datetime | None = None, **fields: Any) -> dict:
        """Apply ``fields`` to an order and move its ``lastChange``; return the order."""
        with self._lock:
            for index, order in enumerate(self.store.orders):
                if order["orderId"] == order_id:
                    moment = at or self._next_moment(o["lastChange"] for o in self.store.orders)
                    updated = {**order, **fields, "lastChange": vtex_timestamp(moment)}
                    self.store.orders[index] = updated
                    return updated
        raise KeyError(f"no VTEX order {order_id}")

    def touch_profile(self, profile_id: str, *, at: datetime | None = None, **fields: Any) -> dict:
        """Apply ``fields`` to a CL profile and move its ``updatedIn``; return it."""
        with self._lock:
            for index, profile in enumerate(self.store.profiles):
                if profile["id"] == profile_id:
                    moment = at or self._next_moment(p["updatedIn"] for p in self.store.profiles)
                    stamp = md_timestamp(moment)
                    updated = {**profile, **fields, "updatedIn": stamp, "lastInteractionIn": stamp}
                    self.store.profiles[index] = updated
                    return updated
        raise KeyError(f"no VTEX CL profile {profile_id}")

    def delete_profile(self, profile_id: str, *, at: datetime | None = None) -> dict:
        """Delete a CL document as Master Data's DELETE does; return the ground-truth entry.

        The document is gone from scroll and search (and from scrolls opened after);
        the OMS orders keep their ``userProfileId``, which now leads nowhere.
        """
        with self._lock:
            for profile in self.store.profiles:
                if profile["id"] == profile_id:
                    moment = at or datetime.now(UTC)
                    entry = {
                        "id": profile_id,
                        "deleted_at": md_timestamp(moment),
                        "record": profile,
                    }
                    self.store.profiles.remove(profile)
                    self.store.deleted.append(entry)
                    return entry
        raise KeyError(f"no VTEX CL profile {profile_id}")

    @staticmethod
    def _next_moment(stamps: Any) -> datetime:
        now = datetime.now(UTC)
        latest = max((parse_timestamp(s) for s in stamps), default=now)
        return max(now, latest + timedelta(seconds=1))

    # -- the guard every API call passes ---------------------------------------

    async def _guard(self, request: Request, product: str) -> tuple[JSONResponse | None, dict]:
        """Authenticate, rate-limit and inject faults: an early answer, or headers to send."""
        self.request_count += 1
        key = request.headers.get(APP_KEY_HEADER)
        token = request.headers.get(APP_TOKEN_HEADER)
        known = self._keys.get(key or "")
        if known is None or not token or not secrets.compare_digest(known[0], token):
            return self._error(product, 401, OMS_UNAUTHORIZED, MD_UNAUTHORIZED), {}
        if product not in known[1]:
            return self._error(product, 403, OMS_FORBIDDEN, MD_FORBIDDEN), {}
        allowed, remaining, reset = self._window.take()
        headers = {
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(max(1, math.ceil(reset))),
        }
        if not allowed:
            headers = {**headers, "Retry-After": str(max(1, math.ceil(reset)))}
            return self._error(product, 429, TOO_MANY_REQUESTS, TOO_MANY_REQUESTS, headers), {}
        with self._lock:
            stall = self._stalls.popleft() if self._stalls else None
        if stall:
            await asyncio.sleep(stall)
        fault = self.faults.take()
        if fault is not None:
            fault_headers = dict(headers)
            if fault.retry_after:
                fault_headers["Retry-After"] = fault.retry_after
            message = TOO_MANY_REQUESTS if fault.status == 429 else "Internal Server Error"
            return self._error(product, fault.status, message, message, fault_headers), {}
        return None, headers

    @staticmethod
    def _error(
        product: str, status: int, oms: str, md: str, headers: dict | None = None
    ) -> JSONResponse:
        body = oms_body(oms) if product == "oms" else {"Message": md}
        return JSONResponse(body, status_code=status, headers=headers)

    # -- OMS ----------------------------------------------------------------------

    def _list_params(self, params: dict[str, str]) -> dict[str, Any]:
        def integer(name: str, default: int) -> int:
            raw = params.get(name)
            if raw in (None, ""):
                return default
            try:
                return int(raw)
            except ValueError:
                raise OmsError(400, f"The value '{raw}' is not valid for {name}.") from None

        page, per_page = integer("page", 1), integer("per_page", DEFAULT_PER_PAGE)
        if page < 1:
            raise OmsError(400, f"The value '{page}' is not valid for page.")
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise OmsError(400, f"per_page must be between 1 and {MAX_PER_PAGE}, got {per_page}")
        ranges = {}
        for name, field in DATE_FILTERS.items():
            if not params.get(name):
                continue
            match = _RANGE.match(params[name])
            if not match or match[1] != field:
                raise OmsError(
                    400,
                    f"Invalid {name} filter {params[name]!r}: use "
                    f"{field}:[2024-01-01T00:00:00.000Z TO 2024-01-31T23:59:59.999Z]",
                )
            ranges[field] = (
                _parse_moment(match[2], "low", OmsError),
                _parse_moment(match[3], "high", OmsError),
            )
        statuses = None
        if params.get("f_status"):
            statuses = {s.strip() for s in params["f_status"].split(",") if s.strip()}
        order_by = params.get("orderBy", "creationDate,desc").split(",")
        if len(order_by) == 1:
            order_by.append("asc")
        if (
            len(order_by) != 2
            or order_by[0] not in LIST_ORDER_FIELDS
            or order_by[1].lower() not in ("asc", "desc")
        ):
            raise OmsError(
                400,
                "orderBy must be <field>,<asc|desc> with field one of "
                f"{', '.join(LIST_ORDER_FIELDS)}",
            )
        return {
            "page": page,
            "per_page": per_page,
            "ranges": ranges,
            "statuses": statuses,
            "order_by": (order_by[0], order_by[1].lower()),
        }

    @staticmethod
    def _summary(order: dict[str, Any]) -> dict[str, Any]:
        payments = [
            p["paymentSystemName"]
            for t in order["paymentData"]["transactions"]
            for p in t["payments"]
        ]
        client = order["clientProfileData"]
        logistics = order["shippingData"]["logisticsInfo"]
        return {
            "orderId": order["orderId"],
            "creationDate": list_timestamp(parse_timestamp(order["creationDate"])),
            "clientName": f"{client['firstName']} {client['lastName']}",
            "items": None,
            "totalValue": order["value"],
            "paymentNames": ", ".join(payments),
            "status": order["status"],
            "statusDescription": order["statusDescription"],
            "marketPlaceOrderId": order["marketplaceOrderId"],
            "sequence": order["sequence"],
            "salesChannel": order["salesChannel"],
            "affiliateId": order["affiliateId"],
            "origin": order["origin"],
            "workflowInErrorState": False,
            "workflowInRetry": False,
            "lastMessageUnread": None,
            "ShippingEstimatedDate": None,
            "ShippingEstimatedDateMax": None,
            "ShippingEstimatedDateMin": None,
            "orderIsComplete": order["isCompleted"],
            "listId": None,
            "listType": None,
            "authorizedDate": (
                list_timestamp(parse_timestamp(order["authorizedDate"]))
                if order["authorizedDate"]
                else None
            ),
            "callCenterOperatorName": None,
            "totalItems": sum(i["quantity"] for i in order["items"]),
            "currencyCode": "BRL",
            "isAllDelivered": order["status"] == "invoiced",
            "isAnyDelivered": order["status"] == "invoiced",
            "deliveryChannel": logistics[0]["deliveryChannel"] if logistics else None,
        }

    @staticmethod
    def _in_ranges(order: dict[str, Any], query: dict[str, Any]) -> bool:
        for field, (low, high) in query["ranges"].items():
            if not order.get(field):
                return False
            # the OMS index keeps milliseconds: filters compare at that precision
            if not low <= _ms(order[field]) <= high:
                return False
        return query["statuses"] is None or order["status"] in query["statuses"]

    @staticmethod
    def _list_key(order: dict[str, Any], field: str) -> tuple:
        value: Any
        if field == "creationDate":
            value = _ms(order["creationDate"])
        elif field == "items":
            value = sum(i["quantity"] for i in order["items"])
        elif field == "totalValue":
            value = order["value"]
        else:
            value = order[field]
        return value, order["orderId"]

    async def list_orders(self, request: Request) -> JSONResponse:
        early, headers = await self._guard(request, "oms")
        if early is not None:
            return early
        try:
            query = self._list_params(dict(request.query_params))
        except OmsError as exc:
            return JSONResponse(oms_body(exc.message, exc.code), exc.status, headers=headers)
        if query["page"] > MAX_LIST_PAGES:
            return JSONResponse(oms_body(MAX_PAGE_EXCEEDED), 400, headers=headers)
        with self._lock:
            rows = [o for o in self.store.orders if self._in_ranges(o, query)]
        field, direction = query["order_by"]
        rows.sort(key=lambda o: self._list_key(o, field), reverse=direction == "desc")
        per_page, page = query["per_page"], query["page"]
        chosen = rows[(page - 1) * per_page : page * per_page]
        values = [o["value"] for o in rows]
        body = {
            "list": [self._summary(o) for o in chosen],
            "facets": [],
            "paging": {
                "total": len(rows),
                "pages": math.ceil(len(rows) / per_page),
                "currentPage": page,
                "perPage": per_page,
            },
            "stats": {
                "stats": {
                    "totalValue": {
                        "Count": len(values),
                        "Max": max(values, default=0),
                        "Mean": sum(values) / len(values) if values else 0,
                        "Min": min(values, default=0),
                        "Missing": 0,
                        "Sum": sum(values),
                        "Facets": {},
                    }
                }
            },
        }
        return JSONResponse(body, headers=headers)

    def _find_order(self, order_id: str) -> dict[str, Any] | None:
        """The order with ``order_id``: by index, rebuilt when the orders changed."""
        orders = self.store.orders
        index = self._order_index.get(order_id)
        if index is None or index >= len(orders) or orders[index]["orderId"] != order_id:
            self._order_index = {o["orderId"]: i for i, o in enumerate(orders)}
            index = self._order_index.get(order_id)
        return None if index is None else orders[index]

    async def get_order(self, request: Request, order_id: str) -> JSONResponse:
        early, headers = await self._guard(request, "oms")
        if early is not None:
            return early
        with self._lock:
            found = self._find_order(order_id)
        if found is None:
            return JSONResponse(oms_body("Order not found", "OMS002"), 404, headers=headers)
        return JSONResponse(found, headers=headers)

    # -- Master Data v2 -------------------------------------------------------------

    def _profile_fields(self) -> set[str]:
        return {key for profile in self.store.profiles[:1] for key in profile} | set(DEFAULT_FIELDS)

    def _md_query(self, params: dict[str, str]) -> tuple[list[dict], list[str]]:
        """The matching CL documents, sorted, and the fields to return."""
        known = self._profile_fields()
        raw_fields = params.get("_fields")
        if not raw_fields:
            fields = list(DEFAULT_FIELDS)
        elif raw_fields.strip() == "_all":
            fields = sorted(known)
        else:
            fields = [f.strip() for f in raw_fields.split(",") if f.strip()]
            for field in fields:
                if field not in known:
                    raise MasterDataError(400, f"Field '{field}' not found in schema")
        where = _Where(params["_where"], known) if params.get("_where") else None
        with self._lock:
            rows = [p for p in self.store.profiles if where is None or where.matches(p)]
        if params.get("_sort"):
            parts = params["_sort"].split()
            if len(parts) != 2 or parts[1].upper() not in ("ASC", "DESC") or parts[0] not in known:
                raise MasterDataError(
                    400, f"Invalid sort '{params['_sort']}': use '<field> ASC' or '<field> DESC'"
                )
            field = parts[0]

            def key(profile: dict[str, Any]) -> tuple:
                value = profile.get(field)
                return (value is None, "" if value is None else str(value), profile["id"])

            rows.sort(key=key, reverse=parts[1].upper() == "DESC")
        return rows, fields

    @staticmethod
    def _select(rows: list[dict], fields: list[str]) -> list[dict]:
        return [{f: row.get(f) for f in fields} for row in rows]

    def _check_entity(self, entity: str) -> None:
        if entity != "CL":
            raise MasterDataError(404, f"Data entity '{entity}' not found")

    async def scroll(self, request: Request, entity: str) -> JSONResponse:
        early, headers = await self._guard(request, "masterdata")
        if early is not None:
            return early
        params = dict(request.query_params)
        try:
            self._check_entity(entity)
            token = params.get("_token")
            if token:
                with self._lock:
                    scroll = self._scrolls.get(token)
                    now = self._clock()
                    if scroll is None or now - scroll["used"] > SCROLL_TOKEN_TTL_SECONDS:
                        self._scrolls.pop(token, None)
                        raise MasterDataError(400, f"Operation not found for this token: '{token}'")
                    scroll["used"] = now
                    start = scroll["position"]
                    chunk = scroll["rows"][start : start + scroll["size"]]
                    scroll["position"] = start + len(chunk)
                    if not chunk:
                        self._scrolls.pop(token, None)
                return JSONResponse(self._select(chunk, scroll["fields"]), headers=headers)
            size = self._int(params.get("_size"), DEFAULT_SCROLL_SIZE, "_size")
            if not 1 <= size <= MAX_SCROLL_SIZE:
                raise MasterDataError(
                    400, f"The maximum value of _size is {MAX_SCROLL_SIZE}, got {size}"
                )
            rows, fields = self._md_query(params)
        except MasterDataError as exc:
            return JSONResponse({"Message": exc.message}, exc.status, headers=headers)
        token = secrets.token_hex(16)
        with self._lock:
            self._scrolls[token] = {
                "rows": rows,
                "fields": fields,
                "size": size,
                "position": min(size, len(rows)),
                "used": self._clock(),
            }
        headers = {**headers, MD_TOKEN_HEADER: token, "REST-Content-Total": str(len(rows))}
        return JSONResponse(self._select(rows[:size], fields), headers=headers)

    async def search(self, request: Request, entity: str) -> JSONResponse:
        early, headers = await self._guard(request, "masterdata")
        if early is not None:
            return early
        try:
            self._check_entity(entity)
            low, high = 0, MAX_SEARCH_RANGE
            raw_range = request.headers.get("REST-Range")
            if raw_range:
                match = _REST_RANGE.match(raw_range)
                if not match:
                    raise MasterDataError(
                        400, f"Invalid REST-Range '{raw_range}': use resources=0-100"
                    )
                low, high = int(match[1]), int(match[2])
                if high <= low:
                    raise MasterDataError(400, f"Invalid REST-Range '{raw_range}'")
                if high - low > MAX_SEARCH_RANGE:
                    raise MasterDataError(
                        400, f"The maximum number of documents per page is {MAX_SEARCH_RANGE}"
                    )
                if high > MAX_SEARCH_DOCUMENTS:
                    raise MasterDataError(
                        400,
                        f"The maximum number of documents returned by search is "
                        f"{MAX_SEARCH_DOCUMENTS}; use scroll or narrow the filter",
                    )
            rows, fields = self._md_query(dict(request.query_params))
        except MasterDataError as exc:
            return JSONResponse({"Message": exc.message}, exc.status, headers=headers)
        chosen = rows[low:high]
        end = low + len(chosen)
        headers = {**headers, "REST-Content-Range": f"resources {low}-{end}/{len(rows)}"}
        return JSONResponse(self._select(chosen, fields), headers=headers)

    @staticmethod
    def _int(raw: str | None, default: int, name: str) -> int:
        if raw in (None, ""):
            return default
        try:
            return int(raw)
        except ValueError:
            raise MasterDataError(400, f"The value '{raw}' is not valid for {name}") from None

    # -- routes -------------------------------------------------------------------

    def _build_router(self) -> APIRouter:
        router = APIRouter(tags=["vtex"])

        async def list_orders(request: Request) -> JSONResponse:
            return await self.list_orders(request)

        async def get_order(request: Request, order_id: str) -> JSONResponse:
            return await self.get_order(request, order_id)

        async def scroll(request: Request, entity: str) -> JSONResponse:
            return await self.scroll(request, entity)

        async def search(request: Request, entity: str) -> JSONResponse:
            return await self.search(request, entity)

        async def oms_unknown(request: Request, rest: str) -> JSONResponse:
            early, headers = await self._guard(request, "oms")
            if early is not None:
                return early
            return JSONResponse(
                oms_body(f"No route matches {request.method} {request.url.path}"),
                404,
                headers=headers,
            )

        async def md_unknown(request: Request, rest: str) -> JSONResponse:
            early, headers = await self._guard(request, "masterdata")
            if early is not None:
                return early
            return JSONResponse(
                {"Message": f"No route matches {request.method} {request.url.path}"},
                404,
                headers=headers,
            )

        def toucher(touch: Callable[..., dict]) -> Callable[..., Any]:
            async def handler(
                record_id: str, fields: Annotated[dict[str, Any], Body()]
            ) -> JSONResponse:
                try:
                    return JSONResponse(touch(record_id, **fields))
                except KeyError as exc:
                    return JSONResponse({"Message": str(exc)}, status_code=404)

            return handler

        async def faults(body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
            n = int(body.get("n", 1))
            if body.get("timeout_seconds") is not None:
                self.stall_next(n, float(body["timeout_seconds"]))
            else:
                self.fail_next(n, int(body.get("status", 500)))
            return JSONResponse(
                {"pending_failures": self.faults.pending, "pending_stalls": len(self._stalls)}
            )

        router.add_api_route("/api/oms/pvt/orders", list_orders, methods=["GET"])
        router.add_api_route("/api/oms/pvt/orders/{order_id}", get_order, methods=["GET"])
        router.add_api_route("/api/dataentities/{entity}/scroll", scroll, methods=["GET"])
        router.add_api_route("/api/dataentities/{entity}/search", search, methods=["GET"])
        for prefix, handler in (("/api/oms", oms_unknown), ("/api/dataentities", md_unknown)):
            router.add_api_route(
                f"{prefix}/{{rest:path}}",
                handler,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                include_in_schema=False,
            )
        router.add_api_route(
            "/_sandbox/vtex/orders/{record_id}/touch",
            toucher(self.touch_order),
            methods=["POST"],
            include_in_schema=False,
        )
        router.add_api_route(
            "/_sandbox/vtex/profiles/{record_id}/touch",
            toucher(self.touch_profile),
            methods=["POST"],
            include_in_schema=False,
        )

        async def delete_profile(record_id: str) -> JSONResponse:
            try:
                return JSONResponse(self.delete_profile(record_id))
            except KeyError as exc:
                return JSONResponse({"Message": str(exc)}, status_code=404)

        router.add_api_route(
            "/_sandbox/vtex/profiles/{record_id}/delete",
            delete_profile,
            methods=["POST"],
            include_in_schema=False,
        )
        router.add_api_route(
            "/_sandbox/vtex/faults", faults, methods=["POST"], include_in_schema=False
        )
        return router
