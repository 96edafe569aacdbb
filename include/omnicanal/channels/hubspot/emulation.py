"""HubSpot CRM API emulation (CRM v3 objects and search, v4 associations) over the portal.

Serves what a CRM extract reads, the way HubSpot does, so the real tap and HubSpot's own
Python client (``hubspot-api-client``) run unchanged against it:

- ``Authorization: Bearer <private-app token>``; without it, or with a token HubSpot does
  not know, a 401 with ``X-HubSpot-Auth-Failure`` and HubSpot's body ``{"status": "error",
  "message": "Authentication credentials not found. ...", "correlationId", "category":
  "INVALID_AUTHENTICATION"}``; an expired token (the faults knob) says
  ``EXPIRED_AUTHENTICATION``;
- objects ``contacts`` (``0-1``), ``companies`` (``0-2``), ``deals`` (``0-3``),
  ``tickets`` (``0-5``), ``calls`` (``0-48``), ``emails`` (``0-49``), ``notes``
  (``0-46``) and ``meetings`` (``0-47``), by name or object type id;
- ``GET /crm/v3/objects/{type}``: ``limit`` (default 10, at most 100), ``after`` (the
  body's ``paging.next.after``, with a ``link``), ``properties`` (comma-separated or
  repeated; unknown names are left out, known ones without a value come back null; the
  type's default properties otherwise), ``associations`` (ids of associated objects per
  type), ``archived``; ordered by id. ``GET /crm/v3/objects/{type}/{id}`` reads one;
- ``POST /crm/v3/objects/{type}/search``: ``filterGroups`` (OR of ANDs; at most 5 groups,
  6 filters a group, 18 in all) with EQ, NEQ, LT, LTE, GT, GTE, BETWEEN, IN, NOT_IN,
  HAS_PROPERTY, NOT_HAS_PROPERTY, CONTAINS_TOKEN, NOT_CONTAINS_TOKEN (dates as epoch
  milliseconds or ISO 8601), one ``sorts`` entry, ``query``, ``properties``, ``limit``
  (at most 200), ``after``. The answer carries ``total``; a query serves at most 10,000
  results: asking for a page at or beyond ``after`` 10,000 is a 400 (``search_cap``
  lowers it for tests). Search has its own limit, 5 requests a second per token, and its
  answers carry no rate-limit headers;
- associations: ``GET /crm/v4/objects/{from}/{id}/associations/{to}`` (paged by ``after``,
  ``limit`` at most 500) and ``POST /crm/v4/associations/{from}/{to}/batch/read`` (at
  most 1,000 inputs; ids with no association come back as errors in a 207), each with
  HubSpot-defined association type ids;
- every other answer carries ``X-HubSpot-RateLimit-Daily``, ``-Daily-Remaining``,
  ``-Interval-Milliseconds`` (10,000), ``-Max`` and ``-Remaining`` for a rolling window of
  ``burst`` requests per 10 s (190, a Professional portal's private app); over it, or
  over the daily limit, a 429 ``{"status": "error", "message": "You have reached your
  ten_secondly_rolling limit.", "errorType": "RATE_LIMIT", "correlationId",
  "policyName": "TEN_SECONDLY_ROLLING"}`` (``SECONDLY`` for search, ``DAILY``). HubSpot
  sends no ``Retry-After``;
- errors are HubSpot's ``{"status": "error", "message", "correlationId", "category"}``
  (``VALIDATION_ERROR``, ``OBJECT_NOT_FOUND``), never FastAPI's ``{"detail": ...}``;
- ``fail_next`` to inject 429, 5xx, hanging requests (timeouts) or an expired token;
  ``touch`` to change a record (its last-modified date moves); ``add_records`` to grow a
  type for window tests; ``archive`` to delete one (listed only with ``archived=true``,
  gone from its associations); also over HTTP under ``/_sandbox/hubspot/``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from omnicanal.channels.hubspot import SANDBOX_ACCESS_TOKEN
from omnicanal.channels.hubspot.crm_writes import MEMBERSHIPS_MAX_LIMIT, CrmWrites, WriteError
from omnicanal.channels.hubspot.world import (
    OBJECT_TYPES,
    HubSpotPortal,
    hubspot_timestamp,
    last_modified_property,
    parse_timestamp,
)
from omnicanal.sandbox.throttle import Clock, Fault, FaultInjector, RequestWindow
from omnicanal.sandbox.world import World

LIST_MAX_LIMIT = 100
LIST_DEFAULT_LIMIT = 10
SEARCH_MAX_LIMIT = 200
SEARCH_DEFAULT_LIMIT = 10
#: Results one search query can page through.
SEARCH_CAP = 10_000
SEARCH_PER_SECOND = 5
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
BATCH_READ_MAX_INPUTS = 1000
ASSOCIATIONS_MAX_LIMIT = 500
#: A private app of a Professional portal: 190 requests per 10 s, 650,000 a day.
DEFAULT_BURST = 190
BURST_INTERVAL_MS = 10_000
DEFAULT_DAILY = 650_000

OBJECT_TYPE_IDS = {
    "0-1": "contacts",
    "0-2": "companies",
    "0-3": "deals",
    "0-5": "tickets",
    "0-48": "calls",
    "0-49": "emails",
    "0-46": "notes",
    "0-47": "meetings",
}
_SINGULAR: dict[str, str] = {
    "contact": "contacts",
    "company": "companies",
    "deal": "deals",
    "ticket": "tickets",
    "call": "calls",
    "email": "emails",
    "note": "notes",
    "meeting": "meetings",
}
_ONE = {plural: singular for singular, plural in _SINGULAR.items()}

#: Properties an object returns when the request names none.
DEFAULT_PROPERTIES = {
    "contacts": ("firstname", "lastname", "email"),
    "companies": ("name", "domain"),
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage"),
    "tickets": ("subject", "content", "hs_pipeline", "hs_pipeline_stage"),
    "calls": ("hs_timestamp",),
    "emails": ("hs_timestamp",),
    "notes": ("hs_timestamp",),
    "meetings": ("hs_timestamp",),
}
#: Properties HubSpot answers with whatever was asked.
_ALWAYS = ("createdate", "hs_object_id")

#: Date-time and number properties compare as values in search filters and sorts.
_DATE_PROPERTIES = {
    "createdate",
    "lastmodifieddate",
    "hs_lastmodifieddate",
    "hs_createdate",
    "closedate",
    "closed_date",
    "hs_timestamp",
    "hs_meeting_start_time",
    "hs_meeting_end_time",
}
_NUMBER_PROPERTIES = {"hs_object_id", "amount", "hs_call_duration"}

#: HubSpot-defined association type ids, per (from, to) pair.
ASSOCIATION_TYPE_IDS = {
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("tickets", "contacts"): 16,
    ("contacts", "tickets"): 15,
    ("tickets", "companies"): 339,
    ("companies", "tickets"): 340,
    ("tickets", "deals"): 28,
    ("deals", "tickets"): 27,
    ("calls", "contacts"): 194,
    ("contacts", "calls"): 193,
    ("calls", "deals"): 206,
    ("deals", "calls"): 205,
    ("calls", "tickets"): 220,
    ("tickets", "calls"): 219,
    ("emails", "contacts"): 198,
    ("contacts", "emails"): 197,
    ("emails", "deals"): 210,
    ("deals", "emails"): 209,
    ("emails", "tickets"): 224,
    ("tickets", "emails"): 223,
    ("meetings", "contacts"): 200,
    ("contacts", "meetings"): 199,
    ("meetings", "deals"): 212,
    ("deals", "meetings"): 211,
    ("meetings", "tickets"): 226,
    ("tickets", "meetings"): 225,
    ("notes", "contacts"): 202,
    ("contacts", "notes"): 201,
    ("notes", "deals"): 214,
    ("deals", "notes"): 213,
    ("notes", "tickets"): 228,
    ("tickets", "notes"): 227,
}
_OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}
_AUTH_MISSING = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
    "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


class HubSpotError(Exception):
    """An error HubSpot would answer, rendered as its ``{"status": "error", ...}`` body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        category: str | None = "VALIDATION_ERROR",
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.category = status, message, category
        self.extra = extra or {}
        self.headers = headers or {}

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        correlation = str(uuid.uuid4())
        body: dict[str, Any] = {"status": "error", "message": self.message}
        body["correlationId"] = correlation
        if self.category:
            body["category"] = self.category
        body.update(self.extra)
        merged = {**(headers or {}), **self.headers, "X-HubSpot-Correlation-Id": correlation}
        return JSONResponse(body, status_code=self.status, headers=merged)


def _invalid(message: str) -> HubSpotError:
    return HubSpotError(400, message, category="VALIDATION_ERROR")


def _rate_limited(policy: str, headers: dict[str, str] | None = None) -> HubSpotError:
    """HubSpot's 429 body (no ``category``; ``errorType`` and ``policyName`` instead)."""
    return HubSpotError(
        429,
        f"You have reached your {policy.lower()} limit.",
        category=None,
        extra={"errorType": "RATE_LIMIT", "policyName": policy},
        headers=headers,
    )


class RollingWindow:
    """At most ``limit`` requests in any ``interval`` seconds (HubSpot's 10-second burst)."""

    def __init__(self, limit: int | None, interval: float, clock: Clock = time.monotonic) -> None:
        self.limit, self.interval, self._clock = limit, interval, clock
        self._seen: deque[float] = deque()
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, int]:
        """Count one request if it fits; whether it did and what remains in the window."""
        with self._lock:
            if self.limit is None:
                return True, 0
            now = self._clock()
            while self._seen and now - self._seen[0] >= self.interval:
                self._seen.popleft()
            if len(self._seen) >= self.limit:
                return False, 0
            self._seen.append(now)
            return True, self.limit - len(self._seen)


# -- values -------------------------------------------------------------------------------


def _date_millis(value: Any) -> float | None:
    """A date filter value: epoch milliseconds, or ISO 8601 (a date alone is midnight UTC)."""
    text = str(value).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = parse_timestamp(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000


def _comparable(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _DATE_PROPERTIES:
        return _date_millis(value)
    if name in _NUMBER_PROPERTIES:
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    return str(value).strip().lower()


def _tokens(value: Any) -> set[str]:
    return {t for t in str(value or "").lower().replace("@", " ").replace(".", " ").split() if t}


class HubSpotEmulator:
    """The emulated HubSpot portal: its HTTP router, rate limits, faults and mutations."""

    def __init__(
        self,
        world: World,
        *,
        access_token: str = SANDBOX_ACCESS_TOKEN,
        burst: int | None = DEFAULT_BURST,
        daily: int | None = DEFAULT_DAILY,
        search_per_second: int | None = SEARCH_PER_SECOND,
        search_cap: int = SEARCH_CAP,
        clock: Clock = time.monotonic,
        state_path: str | None = None,
    ) -> None:
        self.world = world
        self.portal: HubSpotPortal = world.slices["hubspot"]
        self.access_token = access_token
        self.faults = FaultInjector()
        self.request_count = 0
        #: 429s answered for a rate limit (not injected faults), per policy.
        self.throttled: dict[str, int] = defaultdict(int)
        self.search_cap = search_cap
        self._clock = clock
        self._burst, self._daily, self._search_rate = burst, daily, search_per_second
        self._bursts: dict[str, RollingWindow] = {}
        self._searches: dict[str, RequestWindow] = {}
        self._daily_used: dict[str, int] = defaultdict(int)
        self._lock = threading.RLock()
        self._index_associations()
        #: contacts written, properties, property groups and lists (crm_writes)
        self.writes = CrmWrites(self.portal, state_path, lock=self._lock)
        self.router = self._build_router()

    # -- test controls ----------------------------------------------------------------

    def set_rate_limits(
        self,
        *,
        burst: int | None = DEFAULT_BURST,
        search_per_second: int | None = SEARCH_PER_SECOND,
        daily: int | None = DEFAULT_DAILY,
    ) -> None:
        """Change the limits (None: unlimited), starting from empty windows."""
        with self._lock:
            self._burst, self._search_rate, self._daily = burst, search_per_second, daily
            self._bursts.clear()
            self._searches.clear()
            self._daily_used.clear()

    def fail_next(
        self, n: int = 1, status: int = 500, *, hang_seconds: float = 0.0, expired: bool = False
    ) -> None:
        """Answer the next ``n`` authenticated requests with ``status`` instead.

        ``hang_seconds`` first holds each answer that long (a shorter client timeout sees
        a timeout); ``expired`` answers 401 EXPIRED_AUTHENTICATION, as when a token lapses.
        """
        self.faults.fail_next(n, 401 if expired else status, hang_seconds=hang_seconds)

    def now(self) -> datetime:
        return max(datetime.now(UTC), self.world.as_of)

    def records(self, object_type: str) -> list[dict[str, Any]]:
        return self.portal.objects[object_type]

    def _stamp_after(self, object_type: str) -> datetime:
        latest = max(
            (parse_timestamp(r["updatedAt"]) for r in self.records(object_type)),
            default=self.now(),
        )
        return max(self.now(), latest + timedelta(milliseconds=1))

    def touch(
        self, object_type: str, object_id: str, *, at: datetime | None = None, **properties: Any
    ) -> dict[str, Any]:
        """Set ``properties`` on a record and move its last-modified date; return it."""
        object_type = self._object_type(object_type)
        with self._lock:
            records = self.records(object_type)
            for index, record in enumerate(records):
                if record["id"] == str(object_id):
                    stamp = hubspot_timestamp(at or self._stamp_after(object_type))
                    props = {
                        **record["properties"],
                        **{k: None if v is None else str(v) for k, v in properties.items()},
                        last_modified_property(object_type): stamp,
                    }
                    updated = {**record, "properties": props, "updatedAt": stamp}
                    records[index] = updated  # replaced: readers keep their copy
                    return updated
        raise KeyError(object_id)

    def add_records(
        self, object_type: str, count: int, *, at: datetime, **properties: Any
    ) -> list[dict[str, Any]]:
        """Create ``count`` records all last modified at ``at`` (a bulk import)."""
        object_type = self._object_type(object_type)
        stamp = hubspot_timestamp(at)
        with self._lock:
            records = self.records(object_type)
            next_id = max((int(r["id"]) for r in records), default=1000) + 1
            added = []
            for offset in range(count):
                object_id = str(next_id + offset)
                props = {k: None if v is None else str(v) for k, v in properties.items()}
                props |= {
                    "createdate": stamp,
                    last_modified_property(object_type): stamp,
                    "hs_object_id": object_id,
                }
                added.append(
                    {
                        "id": object_id,
                        "properties": props,
                        "createdAt": stamp,
                        "updatedAt": stamp,
                        "archived": False,
                    }
                )
            records.extend(added)
            return added

    def archive(self, object_type: str, object_id: str, *, at: datetime | None = None):
        """Archive (delete) a record as HubSpot does: gone from lists, reads and searches,
        listed only with ``archived=true`` (with ``archivedAt``); return it."""
        object_type = self._object_type(object_type)
        with self._lock:
            records = self.records(object_type)
            for index, record in enumerate(records):
                if record["id"] == str(object_id) and not record.get("archived"):
                    stamp = hubspot_timestamp(at or self._stamp_after(object_type))
                    archived = {**record, "archived": True, "archivedAt": stamp}
                    records[index] = archived
                    self._archived.add((object_type, archived["id"]))
                    return archived
        raise KeyError(object_id)

    # -- associations -----------------------------------------------------------------

    def _index_associations(self) -> None:
        self._archived: set[tuple[str, str]] = set()
        self._associated: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for from_type, from_id, to_type, to_id in self.portal.associations:
            self._associated[(from_type, from_id, to_type)].append(to_id)
            self._associated[(to_type, to_id, from_type)].append(from_id)

    def associated(self, from_type: str, from_id: str, to_type: str) -> list[str]:
        """Ids of the ``to_type`` objects associated with one object, in id order."""
        ids = self._associated.get((from_type, from_id, to_type), [])
        return sorted((i for i in ids if (to_type, i) not in self._archived), key=int)

    def _association_types(self, from_type: str, to_type: str) -> list[dict[str, Any]]:
        type_id = ASSOCIATION_TYPE_IDS.get((from_type, to_type))
        if type_id is None:
            return []
        return [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}]

    # -- guard ------------------------------------------------------------------------

    def _object_type(self, raw: str) -> str:
        name = OBJECT_TYPE_IDS.get(raw) or _SINGULAR.get(raw.lower()) or raw.lower()
        if name not in OBJECT_TYPES:
            raise HubSpotError(
                400, f"Unable to infer object type from: {raw}", category="VALIDATION_ERROR"
            )
        return name

    def _rate_headers(self, token: str, remaining: int) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._burst is not None:
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(BURST_INTERVAL_MS)
            headers["X-HubSpot-RateLimit-Max"] = str(self._burst)
            headers["X-HubSpot-RateLimit-Remaining"] = str(remaining)
        if self._daily is not None:
            headers["X-HubSpot-RateLimit-Daily"] = str(self._daily)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(0, self._daily - self._daily_used[token])
            )
        return headers

    async def _guard(self, request: Request, *, search: bool) -> dict[str, str]:
        """Authenticate, throttle and inject faults; the headers an answer carries."""
        self.request_count += 1
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or token != self.access_token:
            raise HubSpotError(
                401,
                _AUTH_MISSING,
                category="INVALID_AUTHENTICATION",
                headers={"X-HubSpot-Auth-Failure": "401 Unauthorized"},
            )
        with self._lock:
            if self._daily is not None and self._daily_used[token] >= self._daily:
                self.throttled["DAILY"] += 1
                raise _rate_limited("DAILY", self._rate_headers(token, 0))
            if search:
                if token not in self._searches:
                    self._searches[token] = RequestWindow(self._search_rate, self._clock)
                if not self._searches[token].allow():
                    self.throttled["SECONDLY"] += 1
                    raise _rate_limited("SECONDLY")
                headers: dict[str, str] = {}
            else:
                if token not in self._bursts:
                    self._bursts[token] = RollingWindow(
                        self._burst, BURST_INTERVAL_MS / 1000, self._clock
                    )
                fits, remaining = self._bursts[token].take()
                if not fits:
                    self.throttled["TEN_SECONDLY_ROLLING"] += 1
                    raise _rate_limited("TEN_SECONDLY_ROLLING", self._rate_headers(token, 0))
                self._daily_used[token] += 1
                headers = self._rate_headers(token, remaining)
        fault = self.faults.take()
        if fault is not None:
            if fault.hang_seconds:
                await asyncio.sleep(fault.hang_seconds)
            raise self._fault_error(fault, headers)
        return headers

    @staticmethod
    def _fault_error(fault: Fault, headers: dict[str, str]) -> HubSpotError:
        if fault.status == 401:  # the one 401 a fault stands for: the token lapsed
            return HubSpotError(
                401,
                "The OAuth token used to make this call expired 5 minute(s) ago.",
                category="EXPIRED_AUTHENTICATION",
                headers={**headers, "X-HubSpot-Auth-Failure": "401 Unauthorized"},
            )
        if fault.status == 429:
            return _rate_limited("TEN_SECONDLY_ROLLING", headers)
        return HubSpotError(
            fault.status,
            "internal error" if fault.status == 500 else "Service unavailable, try again later.",
            category=None,
            headers=headers,
        )

    async def _serve(
        self, request: Request, handler: Callable[..., Any], *, search: bool = False
    ) -> JSONResponse:
        try:
            headers = await self._guard(request, search=search)
        except HubSpotError as exc:
            return exc.response()
        try:
            body: Any = None
            if request.method in ("POST", "PUT"):
                raw = await request.body()
                try:
                    body = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    raise _invalid("Invalid input JSON on line 1: the body is not JSON.") from None
                # membership changes take a JSON array of record ids; the rest an object
                if not isinstance(body, dict) and not (
                    request.method == "PUT" and isinstance(body, list)
                ):
                    raise _invalid("Invalid input JSON: expected an object.")
            with self._lock:
                try:
                    result = handler(request, body)
                except WriteError as exc:
                    raise HubSpotError(
                        exc.status, exc.message, category=exc.category, extra=exc.extra
                    ) from None
        except HubSpotError as exc:
            return exc.response(headers)
        status, payload = result if isinstance(result, tuple) else (200, result)
        return JSONResponse(payload, status_code=status, headers=headers)

    # -- shaping ----------------------------------------------------------------------

    @staticmethod
    def _requested(values: list[str]) -> list[str]:
        names: list[str] = []
        for value in values:
            names += [v.strip() for v in str(value).split(",") if v.strip()]
        return names

    def _shape(self, object_type: str, record: dict[str, Any], names: list[str] | None):
        """The record with only the asked properties (and those HubSpot always adds)."""
        wanted = list(names) if names else list(DEFAULT_PROPERTIES[object_type])
        wanted += [*_ALWAYS, last_modified_property(object_type)]
        known = self._known_properties(object_type)
        props = record["properties"]
        shaped = {n: props.get(n) for n in dict.fromkeys(wanted) if n in known or n in props}
        return {
            "id": record["id"],
            "properties": shaped,
            "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"],
            "archived": record.get("archived", False),
            **({"archivedAt": record["archivedAt"]} if record.get("archived") else {}),
        }

    def _known_properties(self, object_type: str) -> set[str]:
        cache = self.__dict__.setdefault("_known_cache", {})
        if object_type not in cache:
            names: set[str] = set(DEFAULT_PROPERTIES[object_type]) | set(_ALWAYS)
            names.add(last_modified_property(object_type))
            for record in self.records(object_type):
                names.update(record["properties"])
            cache[object_type] = names
        if object_type == "contacts":  # properties created through the API count too
            return cache[object_type] | set(self.writes.properties)
        return cache[object_type]

    def _link(self, request: Request, after: str) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "after"]
        params.append(("after", after))
        query = urlencode(params, safe=",")
        return f"{str(request.base_url).rstrip('/')}{request.url.path}?{query}"

    # -- endpoints --------------------------------------------------------------------

    @staticmethod
    def _limit(raw: Any, default: int, high: int) -> int:
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise _invalid(f"Invalid value for limit: {raw!r} is not a number.") from None
        if value < 1 or value > high:
            raise _invalid(f"limit must be between 1 and {high}, got {value}.")
        return value

    def _list(self, request: Request, body: Any) -> dict[str, Any]:
        object_type = self._object_type(request.path_params["object_type"])
        params = request.query_params
        limit = self._limit(params.get("limit"), LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT)
        archived = params.get("archived", "false").lower() == "true"
        names = self._requested(params.getlist("properties")) or None
        to_types = [self._object_type(t) for t in self._requested(params.getlist("associations"))]
        after = params.get("after")
        rows = [r for r in self.records(object_type) if bool(r.get("archived")) == archived]
        if after:
            try:
                anchor = int(after)
            except ValueError:
                raise _invalid(f"Invalid value for after: {after!r}.") from None
            rows = [r for r in rows if int(r["id"]) >= anchor]
        page = rows[:limit]
        results = []
        for record in page:
            shaped = self._shape(object_type, record, names)
            links = {}
            for to_type in to_types:
                ids = self.associated(object_type, record["id"], to_type)
                if ids:
                    kind = f"{_ONE[object_type]}_to_{_ONE[to_type]}"
                    links[to_type] = {"results": [{"id": i, "type": kind} for i in ids]}
            if links:
                shaped["associations"] = links
            results.append(shaped)
        payload: dict[str, Any] = {"results": results}
        if len(rows) > limit:
            next_after = str(int(page[-1]["id"]) + 1)
            payload["paging"] = {
                "next": {"after": next_after, "link": self._link(request, next_after)}
            }
        return payload

    def _read(self, request: Request, body: Any) -> dict[str, Any]:
        object_type = self._object_type(request.path_params["object_type"])
        object_id = request.path_params["object_id"]
        names = self._requested(request.query_params.getlist("properties")) or None
        archived = request.query_params.get("archived", "false").lower() == "true"
        for record in self.records(object_type):
            if record["id"] == object_id and bool(record.get("archived")) == archived:
                return self._shape(object_type, record, names)
        raise HubSpotError(
            404,
            "Object not found.  objectId are usually numeric.",
            category="OBJECT_NOT_FOUND",
            extra={"context": {"id": [object_id]}},
        )

    def _filter(self, object_type: str, spec: Any) -> Callable[[dict[str, Any]], bool]:
        if not isinstance(spec, dict) or not spec.get("propertyName"):
            raise _invalid("Each filter needs a propertyName and an operator.")
        name, operator = spec["propertyName"], str(spec.get("operator", "EQ")).upper()
        if operator not in _OPERATORS:
            raise _invalid(f"Invalid operator {operator!r} for property {name}.")
        if name not in self._known_properties(object_type):
            raise _invalid(f"There was a problem with the request. Unknown property: {name}")
        if operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            has = operator == "HAS_PROPERTY"
            return lambda r: (r["properties"].get(name) not in (None, "")) == has
        if operator in ("IN", "NOT_IN"):
            values = spec.get("values")
            if not isinstance(values, list):
                raise _invalid(f"{operator} on {name} needs a list of values.")
            wanted = {_comparable(name, v) for v in values}
            inside = operator == "IN"
            return lambda r: (_comparable(name, r["properties"].get(name)) in wanted) == inside
        if "value" not in spec:
            raise _invalid(f"{operator} on {name} needs a value.")
        value = _comparable(name, spec["value"])
        if value is None and (name in _DATE_PROPERTIES or name in _NUMBER_PROPERTIES):
            raise _invalid(f"Invalid value {spec['value']!r} for property {name}.")
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            token = str(spec["value"]).strip().lower().strip("*")
            present = operator == "CONTAINS_TOKEN"

            def contains(r: dict[str, Any]) -> bool:
                text = str(r["properties"].get(name) or "").lower()
                return (token in _tokens(text) or (token and token in text)) == present

            return contains
        high = _comparable(name, spec.get("highValue")) if operator == "BETWEEN" else None
        if operator == "BETWEEN" and high is None:
            raise _invalid(f"BETWEEN on {name} needs a highValue.")

        def matches(record: dict[str, Any]) -> bool:
            have = _comparable(name, record["properties"].get(name))
            if operator == "NEQ":
                return have != value
            if have is None:
                return False
            if operator == "EQ":
                return have == value
            if operator == "LT":
                return have < value
            if operator == "LTE":
                return have <= value
            if operator == "GT":
                return have > value
            if operator == "GTE":
                return have >= value
            return value <= have <= high  # BETWEEN

        return matches

    def _search(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        object_type = self._object_type(request.path_params["object_type"])
        limit = self._limit(body.get("limit"), SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT)
        try:
            after = int(body.get("after") or 0)
        except (TypeError, ValueError):
            raise _invalid(f"Invalid value for after: {body.get('after')!r}.") from None
        if after >= self.search_cap:
            raise _invalid(
                f"Search results are limited to {self.search_cap:,} per query: `after` "
                f"{after} is beyond them. Narrow the query with filters."
            )
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list):
            raise _invalid("filterGroups must be a list.")
        if len(groups) > MAX_FILTER_GROUPS:
            raise _invalid(f"Too many filter groups: at most {MAX_FILTER_GROUPS}.")
        if sum(len((g or {}).get("filters") or []) for g in groups) > MAX_FILTERS:
            raise _invalid(f"Too many filters: at most {MAX_FILTERS} across all groups.")
        predicates = []
        for group in groups:
            filters = (group or {}).get("filters") or []
            if len(filters) > MAX_FILTERS_PER_GROUP:
                raise _invalid(f"Too many filters in a group: at most {MAX_FILTERS_PER_GROUP}.")
            predicates.append([self._filter(object_type, f) for f in filters])
        rows = [
            r
            for r in self.records(object_type)
            if not r.get("archived")
            and (not predicates or any(all(p(r) for p in group) for group in predicates))
        ]
        if body.get("query"):
            needle = str(body["query"]).strip().lower()
            rows = [
                r
                for r in rows
                if any(needle in str(v or "").lower() for v in r["properties"].values())
            ]
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            raise _invalid("Only one sort is supported.")
        if sorts:
            sort = sorts[0]
            if isinstance(sort, str):
                name, descending = sort.lstrip("-"), sort.startswith("-")
            else:
                name = sort.get("propertyName")
                descending = str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"
            if name not in self._known_properties(object_type):
                raise _invalid(f"There was a problem with the request. Unknown property: {name}")

            def key(r: dict[str, Any]) -> tuple:
                value = _comparable(name, r["properties"].get(name))
                return (value is None, value if value is not None else 0, int(r["id"]))

            rows.sort(key=key, reverse=descending)
        else:
            rows.sort(key=lambda r: int(r["id"]))
        total = len(rows)
        served = rows[: self.search_cap]
        page = served[after : after + limit]
        names = self._requested(body.get("properties") or []) or None
        payload: dict[str, Any] = {
            "total": total,
            "results": [self._shape(object_type, r, names) for r in page],
        }
        if after + limit < len(served):
            payload["paging"] = {"next": {"after": str(after + limit)}}
        return payload

    def _associations_page(self, request: Request, body: Any) -> dict[str, Any]:
        from_type = self._object_type(request.path_params["object_type"])
        to_type = self._object_type(request.path_params["to_object_type"])
        object_id = request.path_params["object_id"]
        params = request.query_params
        limit = self._limit(params.get("limit"), ASSOCIATIONS_MAX_LIMIT, ASSOCIATIONS_MAX_LIMIT)
        ids = self.associated(from_type, object_id, to_type)
        after = params.get("after")
        if after:
            ids = [i for i in ids if int(i) > int(after)]
        page = ids[:limit]
        payload: dict[str, Any] = {
            "results": [
                {
                    "toObjectId": int(i),
                    "associationTypes": self._association_types(from_type, to_type),
                }
                for i in page
            ]
        }
        if len(ids) > limit:
            payload["paging"] = {"next": {"after": page[-1], "link": self._link(request, page[-1])}}
        return payload

    def _batch_read(self, request: Request, body: dict[str, Any]):
        from_type = self._object_type(request.path_params["from_object_type"])
        to_type = self._object_type(request.path_params["to_object_type"])
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise _invalid('inputs must be a list of {"id": ...} objects.')
        if len(inputs) > BATCH_READ_MAX_INPUTS:
            raise _invalid(f"Too many inputs: at most {BATCH_READ_MAX_INPUTS} per batch.")
        started = hubspot_timestamp(datetime.now(UTC))
        results, errors = [], []
        for item in inputs:
            object_id = str((item or {}).get("id", ""))
            ids = self.associated(from_type, object_id, to_type)
            if not ids:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "context": {"fromObjectId": [object_id]},
                        "message": f"No {to_type} is associated with {from_type[:-1]} {object_id}.",
                    }
                )
                continue
            results.append(
                {
                    "from": {"id": object_id},
                    "to": [
                        {
                            "toObjectId": int(i),
                            "associationTypes": self._association_types(from_type, to_type),
                        }
                        for i in ids
                    ],
                }
            )
        payload: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": hubspot_timestamp(datetime.now(UTC)),
        }
        if errors:
            payload["numErrors"] = len(errors)
            payload["errors"] = errors
            return 207, payload
        return 200, payload

    # -- router -----------------------------------------------------------------------

    def _build_router(self) -> APIRouter:
        router = APIRouter(tags=["hubspot"])

        def route(path: str, handler: Callable[..., Any], method: str = "GET", **kw: Any):
            async def endpoint(request: Request) -> JSONResponse:
                return await self._serve(request, handler, **kw)

            router.add_api_route(path, endpoint, methods=[method])

        writes = self.writes
        # the write side (crm_writes): contact batches, properties, groups, lists
        for action in ("upsert", "update", "read"):
            route(
                f"/crm/v3/objects/contacts/batch/{action}",
                lambda request, body, action=action: getattr(writes, f"batch_{action}")(body),
                "POST",
            )
        route("/crm/v3/properties/contacts", lambda r, b: writes.property_list())
        route("/crm/v3/properties/contacts", lambda r, b: writes.property_create(b), "POST")
        route("/crm/v3/properties/contacts/groups", lambda r, b: writes.group_list())
        route("/crm/v3/properties/contacts/groups", lambda r, b: writes.group_create(b), "POST")
        route(
            "/crm/v3/properties/contacts/{name}",
            lambda r, b: writes.property_read(r.path_params["name"]),
        )
        route("/crm/v3/lists/", lambda r, b: writes.list_create(b), "POST")
        route("/crm/v3/lists", lambda r, b: writes.list_create(b), "POST")
        route(
            "/crm/v3/lists/object-type-id/{object_type_id}/name/{list_name}",
            lambda r, b: writes.list_by_name_read(
                r.path_params["object_type_id"], r.path_params["list_name"]
            ),
        )
        route("/crm/v3/lists/{list_id}", lambda r, b: writes.list_read(r.path_params["list_id"]))
        route(
            "/crm/v3/lists/{list_id}/memberships",
            lambda r, b: writes.memberships(
                r.path_params["list_id"],
                self._limit(r.query_params.get("limit"), 100, MEMBERSHIPS_MAX_LIMIT),
                r.query_params.get("after"),
            ),
        )
        for change in ("add", "remove"):
            route(
                f"/crm/v3/lists/{{list_id}}/memberships/{change}",
                lambda r, b, change=change: writes.change_memberships(
                    r.path_params["list_id"], b, add=change == "add"
                ),
                "PUT",
            )
        route("/crm/v3/objects/{object_type}", self._list)
        route("/crm/v3/objects/{object_type}/search", self._search, "POST", search=True)
        route("/crm/v3/objects/{object_type}/{object_id}", self._read)
        route(
            "/crm/v4/objects/{object_type}/{object_id}/associations/{to_object_type}",
            self._associations_page,
        )
        route(
            "/crm/v4/associations/{from_object_type}/{to_object_type}/batch/read",
            self._batch_read,
            "POST",
        )

        hidden = {"include_in_schema": False}

        async def fail_next(spec: Annotated[dict[str, Any], Body()]) -> JSONResponse:
            self.fail_next(
                int(spec.get("n", 1)),
                int(spec.get("status", 500)),
                hang_seconds=float(spec.get("hang_seconds", 0.0)),
                expired=bool(spec.get("expired", False)),
            )
            return JSONResponse({"pending": self.faults.pending})

        async def rate_limits(spec: Annotated[dict[str, Any], Body()]) -> JSONResponse:
            self.set_rate_limits(
                burst=spec.get("burst", DEFAULT_BURST),
                search_per_second=spec.get("search_per_second", SEARCH_PER_SECOND),
                daily=spec.get("daily", DEFAULT_DAILY),
            )
            return JSONResponse({"burst": self._burst, "search_per_second": self._search_rate})

        async def touch(
            object_type: str, object_id: str, properties: Annotated[dict[str, Any], Body()]
        ) -> JSONResponse:
            try:
                return JSONResponse(self.touch(object_type, object_id, **properties))
            except (KeyError, HubSpotError):
                return HubSpotError(
                    404, f"No {object_type} {object_id}.", category="OBJECT_NOT_FOUND"
                ).response()

        router.add_api_route("/_sandbox/hubspot/fail_next", fail_next, methods=["POST"], **hidden)
        router.add_api_route(
            "/_sandbox/hubspot/rate_limits", rate_limits, methods=["POST"], **hidden
        )
        router.add_api_route(
            "/_sandbox/hubspot/{object_type}/{object_id}/touch", touch, methods=["POST"], **hidden
        )

        async def not_found(request: Request, path: str = "") -> JSONResponse:
            return HubSpotError(
                404,
                f"Resource not found: {request.method} {request.url.path}",
                category="OBJECT_NOT_FOUND",
            ).response()

        for pattern in ("/crm/{path:path}",):
            router.add_api_route(
                pattern,
                not_found,
                methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
                include_in_schema=False,
            )
        return router
