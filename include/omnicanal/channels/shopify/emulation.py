"""Shopify Admin API emulation over the world's store records: GraphQL, and legacy REST.

The GraphQL Admin API (``POST /admin/api/{version}/graphql.json``, see :mod:`.graphql`,
:mod:`.graph` and :mod:`.bulk`) is what current integrations use: customers, orders,
abandoned checkouts, products, locations, ``node``/``nodes``, calculated query cost and
its throttle, bulk operations whose JSONL result the sandbox serves itself, and the
customer writes a sync sends (``tagsAdd``, ``tagsRemove``, ``metafieldsSet``, see
:mod:`.writes`).

Across both APIs, as on Shopify:

- orders created more than 60 days before the shop's now (the world's ``as_of``) are
  hidden from a token without ``read_all_orders``. The sandbox's default token is an
  app granted that scope (``read_all_orders=True``); ``SANDBOX_RECENT_ORDERS_TOKEN`` is
  one without it;
- ``SANDBOX_READ_ONLY_TOKEN`` is an app without ``write_customers``: its customer writes
  are answered ``ACCESS_DENIED``, as Shopify answers a missing access scope;
- an unsupported or unknown API version (``1999-01``) is served by the oldest supported
  stable version, and every answer names the version served in
  ``X-Shopify-API-Version`` (see :mod:`.versions`);
- an unknown path under ``/admin`` answers 404 ``{"errors": "Not Found"}``.

The legacy REST Admin API serves ``/admin/api/{version}/customers.json`` and
``orders.json`` (plus ``count.json`` and single records) the way Shopify does, so the
REST tap runs unchanged against it:

- auth with the ``X-Shopify-Access-Token`` header (401 with Shopify's body otherwise);
- ``limit`` (default 50, at most 250), ``since_id``, ``ids``, ``created_at_min/max``,
  ``updated_at_min/max`` (inclusive), ``fields``; orders also ``status`` (default
  ``open``: cancelled orders only come with ``status=any`` or ``cancelled``) and
  ``financial_status``. Unknown parameters are ignored, as Shopify does;
- sorted by id ascending; ``order=updated_at asc`` (or ``created_at``/``id``, ``asc``/
  ``desc``) is also accepted, which incremental taps want;
- cursor pagination through ``Link`` headers (``rel="next"``/``rel="previous"``) whose
  opaque ``page_info`` carries the filter; with ``page_info`` only ``limit`` and
  ``fields`` may be sent (400 otherwise);
- a leaky-bucket throttle per token, reported in ``X-Shopify-Shop-Api-Call-Limit`` and
  answered with 429 + ``Retry-After`` when full;
- ``fail_next`` to inject failures (429 with ``Retry-After``, 5xx) and ``stall_next`` to
  hold answers past a client's timeout, ``touch_customer``/``touch_order``/``add_customer``
  to change records for incremental-sync tests, ``delete_customer``/``delete_product``
  to delete one (also over HTTP under ``/_sandbox``; the faults at
  ``POST /_sandbox/shopify/faults``).
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from omnicanal.channels.shopify import (
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_READ_ONLY_TOKEN,
    SANDBOX_RECENT_ORDERS_TOKEN,
)
from omnicanal.channels.shopify import graphql as admin_graphql
from omnicanal.channels.shopify.bulk import BulkOperations
from omnicanal.channels.shopify.graph import ORDER_WINDOW_DAYS, Context, ShopGraph
from omnicanal.channels.shopify.versions import VERSION_HEADER, served_version
from omnicanal.channels.shopify.world import (
    EMBEDDED_CUSTOMER_KEYS,
    SHOP_TZ,
    ShopifyStore,
    shop_timestamp,
)
from omnicanal.channels.shopify.writes import CustomerWrites
from omnicanal.sandbox.throttle import Clock, FaultInjector, LeakyBucket
from omnicanal.sandbox.world import World

DEFAULT_LIMIT = 50
MAX_LIMIT = 250
DEFAULT_BUCKET_SIZE = 40
DEFAULT_LEAK_RATE = 2.0

CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
THROTTLED = (
    "Exceeded 2 calls per second for api client. "
    "Reduce request rates to resume uninterrupted service."
)
_PAGE_INFO_COMPANIONS = {"page_info", "limit", "fields"}
_SORT_FIELDS = ("id", "created_at", "updated_at")
_ORDER_STATUSES = ("open", "closed", "cancelled", "any")
_TIME_FILTERS = {
    "created_at_min": ("created_at", "min"),
    "created_at_max": ("created_at", "max"),
    "updated_at_min": ("updated_at", "min"),
    "updated_at_max": ("updated_at", "max"),
}


class BadRequest(Exception):
    """A parameter Shopify would refuse; the message is sent back to the client."""


def _epoch(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp())


def _parse_time(name: str, value: str) -> int:
    """Parse an ISO-8601 filter value; a value without offset is in the shop's zone."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(
            f"{name} must be an ISO-8601 timestamp such as 2024-10-01T00:00:00-03:00, got {value!r}"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SHOP_TZ)
    return int(moment.timestamp())


def _encode_cursor(cursor: dict[str, Any]) -> str:
    raw = json.dumps(cursor, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str, resource: str) -> dict[str, Any]:
    try:
        cursor = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if cursor["resource"] != resource or cursor["direction"] not in ("next", "previous"):
            raise ValueError(token)
        return cursor
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest(
            "page_info - Invalid value. Use the page_info exactly as it appears in the "
            "Link header of the previous response."
        ) from exc


def _sort_key(record: dict[str, Any], order: list[str]) -> tuple[int, int]:
    field, direction = order
    primary = record["id"] if field == "id" else _epoch(record[field])
    sign = -1 if direction == "desc" else 1
    return sign * primary, sign * record["id"]


class ShopifyEmulator:
    """The emulated shop: its HTTP router, throttle, fault queue and record mutations."""

    def unknown_path(self, request: Request) -> JSONResponse | None:
        """The shop's answer to a path no route serves, for a request that carries an
        Admin API token (the sandbox asks each emulation in turn): the Admin API's own
        ``{"errors": "Not Found"}``."""
        if "X-Shopify-Access-Token" not in request.headers:
            return None
        return JSONResponse({"errors": "Not Found"}, status_code=404)

    def __init__(
        self,
        world: World,
        *,
        access_token: str = SANDBOX_ACCESS_TOKEN,
        read_all_orders: bool = True,
        recent_orders_token: str = SANDBOX_RECENT_ORDERS_TOKEN,
        bucket_size: int = DEFAULT_BUCKET_SIZE,
        leak_rate: float = DEFAULT_LEAK_RATE,
        maximum_available: float = admin_graphql.DEFAULT_MAXIMUM_AVAILABLE,
        restore_rate: float = admin_graphql.DEFAULT_RESTORE_RATE,
        bulk_delay: float = 1.0,
        clock: Clock = time.monotonic,
        versions_at: Callable[[], datetime] | None = None,
        state_path: str | Path | None = None,
    ) -> None:
        """``access_token`` is the app's token, granted ``read_all_orders`` unless told
        otherwise; ``recent_orders_token`` always lacks it (60 days of orders).
        ``bucket_size``/``leak_rate`` are the REST throttle, ``maximum_available``/
        ``restore_rate`` the GraphQL cost bucket; ``bulk_delay`` is how long a bulk
        operation runs before it completes; ``versions_at`` is the clock that decides
        which API versions are supported (default: the real one); ``state_path`` keeps
        what apps wrote to customers (tags, metafields) between sandbox restarts."""
        self.world = world
        self.store: ShopifyStore = world.slices["shopify"]
        self.access_token = access_token
        self.tokens = {
            access_token: read_all_orders,
            recent_orders_token: False,
            SANDBOX_READ_ONLY_TOKEN: read_all_orders,
        }
        #: tokens of apps granted ``write_customers`` (the read-only app is not)
        self.customer_writers = {access_token, recent_orders_token}
        self.faults = FaultInjector()
        self._stalls: deque[float] = deque()
        self.request_count = 0
        self._clock = clock
        self._bucket_size = bucket_size
        self._leak_rate = leak_rate
        self._buckets: dict[str, LeakyBucket] = {}
        self._maximum_available = maximum_available
        self._restore_rate = restore_rate
        self._cost_buckets: dict[str, admin_graphql.CostBucket] = {}
        self._versions_at = versions_at or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self.graph = ShopGraph(self.store, lambda: world.as_of, "Omnicanal Demo")
        self.bulk = BulkOperations(self, delay=bulk_delay)
        self.writes = CustomerWrites(self, state_path)
        self.router = self._build_router()

    # -- test controls ----------------------------------------------------------

    def set_rate_limit(self, bucket_size: int, leak_rate: float) -> None:
        """Change the bucket size and leak per second, starting from an empty bucket."""
        with self._lock:
            self._bucket_size, self._leak_rate = bucket_size, leak_rate
            self._buckets.clear()

    def stall_next(self, n: int = 1, seconds: float = 30.0) -> None:
        """Hold the next ``n`` requests ``seconds`` before answering: a client timeout."""
        with self._lock:
            self._stalls.extend(float(seconds) for _ in range(n))

    async def _stall(self) -> None:
        with self._lock:
            seconds = self._stalls.popleft() if self._stalls else 0.0
        if seconds:
            await asyncio.sleep(seconds)

    def set_cost_limit(self, maximum_available: float, restore_rate: float) -> None:
        """Change the GraphQL cost bucket, starting full."""
        with self._lock:
            self._maximum_available, self._restore_rate = maximum_available, restore_rate
            self._cost_buckets.clear()

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` authenticated requests with ``status`` instead."""
        self.faults.fail_next(n, status, retry_after="1.0" if status == 429 else None)

    def touch_customer(
        self, customer_id: int, *, at: datetime | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Apply ``fields`` to a customer and bump its ``updated_at``; return the record.

        ``updated_at`` becomes ``at``, or a moment later than every customer's, so an
        incremental tap must pick the change up. Orders embedding the customer follow,
        as Shopify renders them live; the world's ground truth (``Person``) does not.
        """
        with self._lock:
            record = self._replace("customers", customer_id, fields, at)
            embedded = {k: v for k, v in record.items() if k in EMBEDDED_CUSTOMER_KEYS}
            for index, order in enumerate(self.store.orders):
                if (order.get("customer") or {}).get("id") == customer_id:
                    self.store.orders[index] = {**order, "customer": embedded}
                    self.graph.revision += 1
            return record

    def touch_order(
        self, order_id: int, *, at: datetime | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Apply ``fields`` to an order and bump its ``updated_at``; return the record."""
        with self._lock:
            return self._replace("orders", order_id, fields, at)

    def add_customer(
        self, record: dict[str, Any], person_id: str | None = None, *, at: datetime | None = None
    ) -> dict[str, Any]:
        """Add a customer (a new sign-up): fresh id and timestamps unless given.

        ``person_id`` records who it is in the ground truth.
        """
        with self._lock:
            customers = self.store.customers
            moment = shop_timestamp(at or self._next_moment(customers))
            new_id = record.get("id") or max((c["id"] for c in customers), default=7 * 10**12) + 1
            created = {
                "created_at": moment,
                **record,
                "id": new_id,
                "updated_at": moment,
                "admin_graphql_api_id": f"gid://shopify/Customer/{new_id}",
            }
            customers.append(created)
            self.graph.revision += 1
            if person_id is not None:
                self.store.customer_person[new_id] = person_id
            return created

    def delete_customer(self, customer_id: int, *, at: datetime | None = None) -> dict[str, Any]:
        """Delete a customer as ``customerDelete`` does; return the ground-truth entry.

        Shopify deletes only customers who never placed an order (``ValueError``
        otherwise). The customer is gone from every query (``customers``, ``customer``,
        ``nodes``) and leaves no deletion event; ``store.deleted`` keeps what it was.
        """
        with self._lock:
            record = self.graph.customer_record(customer_id)
            if record is None:
                raise KeyError(f"no Shopify customer with id {customer_id}")
            if any((o.get("customer") or {}).get("id") == customer_id for o in self.store.orders):
                raise ValueError("Customer can't be deleted because they have associated orders")
            moment = at or datetime.now(UTC).replace(microsecond=0)
            entry = {"id": customer_id, "deleted_at": shop_timestamp(moment), "record": record}
            self.store.customers.remove(record)
            self.store.deleted.append(entry)
            self.graph.revision += 1
            return entry

    def delete_product(self, product_id: int, *, at: datetime | None = None) -> dict[str, Any]:
        """Delete a product (and its variants) as ``productDelete`` does; return the entry.

        It is gone from ``products``, ``productVariants`` and ``nodes``; the line items
        of past orders keep their title and SKU, their ``product`` and ``variant``
        become null. ``store.deleted_products`` keeps what it was.
        """
        with self._lock:
            record = self.graph.product_record(product_id)
            if record is None:
                raise KeyError(f"no Shopify product with id {product_id}")
            moment = at or datetime.now(UTC).replace(microsecond=0)
            entry = {"id": product_id, "deleted_at": shop_timestamp(moment), "record": record}
            self.store.products.remove(record)
            self.store.deleted_products.append(entry)
            self.graph.revision += 1
            return entry

    # -- internals ----------------------------------------------------------------

    def _records(self, resource: str, read_all_orders: bool = True) -> list[dict[str, Any]]:
        if resource == "customers":
            return self.store.customers
        if read_all_orders:
            return self.store.orders
        cutoff = self.world.as_of - timedelta(days=ORDER_WINDOW_DAYS)
        return [o for o in self.store.orders if datetime.fromisoformat(o["created_at"]) >= cutoff]

    def _next_moment(self, records: list[dict[str, Any]]) -> datetime:
        now = datetime.now(UTC).replace(microsecond=0)
        latest = max((datetime.fromisoformat(r["updated_at"]) for r in records), default=now)
        return max(now, latest + timedelta(seconds=1))

    def _replace(
        self, resource: str, record_id: int, fields: dict[str, Any], at: datetime | None
    ) -> dict[str, Any]:
        records = self._records(resource)
        for index, record in enumerate(records):
            if record["id"] == record_id:
                moment = at or self._next_moment(records)
                updated = {**record, **fields, "updated_at": shop_timestamp(moment)}
                records[index] = updated  # replaced, not mutated: readers keep a consistent copy
                self.graph.revision += 1
                return updated
        raise KeyError(f"no Shopify {resource[:-1]} with id {record_id}")

    def _bucket(self, token: str) -> LeakyBucket:
        with self._lock:
            if token not in self._buckets:
                self._buckets[token] = LeakyBucket(self._bucket_size, self._leak_rate, self._clock)
            return self._buckets[token]

    def _cost_bucket(self, token: str) -> admin_graphql.CostBucket:
        with self._lock:
            if token not in self._cost_buckets:
                self._cost_buckets[token] = admin_graphql.CostBucket(
                    self._maximum_available, self._restore_rate, self._clock
                )
            return self._cost_buckets[token]

    def served_version(self, requested: str) -> str | None:
        """The version that answers ``requested`` (None: not a version, so no such path)."""
        return served_version(requested, self._versions_at())

    def read_all_orders(self, request: Request) -> bool:
        return self.tokens.get(request.headers.get("X-Shopify-Access-Token") or "", False)

    def _authenticate(self, request: Request) -> tuple[JSONResponse | None, dict[str, str]]:
        """Version and token checks shared by REST and GraphQL."""
        self.request_count += 1
        version = self.served_version(request.path_params.get("version", ""))
        if version is None:
            return JSONResponse({"errors": "Not Found"}, status_code=404), {}
        headers = {VERSION_HEADER: version}
        token = request.headers.get("X-Shopify-Access-Token")
        if token not in self.tokens:
            return JSONResponse({"errors": INVALID_TOKEN}, status_code=401, headers=headers), {}
        return None, headers

    def _guard(self, request: Request) -> tuple[JSONResponse | None, dict[str, str]]:
        """Authenticate, throttle and inject faults: an early response, or headers to send."""
        early, version_headers = self._authenticate(request)
        if early is not None:
            return early, {}
        token = request.headers["X-Shopify-Access-Token"]
        bucket = self._bucket(token)
        allowed, level = bucket.try_take()
        headers = {CALL_LIMIT_HEADER: f"{level}/{bucket.size}", **version_headers}
        if not allowed:
            return JSONResponse(
                {"errors": THROTTLED}, status_code=429, headers={**headers, "Retry-After": "1.0"}
            ), headers
        fault = self.faults.take()
        if fault is not None:
            fault_headers = dict(headers)
            if fault.retry_after:
                fault_headers["Retry-After"] = fault.retry_after
            body = {"errors": THROTTLED if fault.status == 429 else "Internal Server Error"}
            return JSONResponse(body, status_code=fault.status, headers=fault_headers), headers
        return None, headers

    def _filters(self, resource: str, params: dict[str, str]) -> dict[str, Any]:
        """Validate the filter parameters of a first-page request into a cursor filter."""
        filters: dict[str, Any] = {}
        for name, (field, bound) in _TIME_FILTERS.items():
            if params.get(name):
                filters[f"{field}_{bound}"] = _parse_time(name, params[name])
        if params.get("since_id"):
            filters["since_id"] = _int_param("since_id", params["since_id"])
        if params.get("ids"):
            filters["ids"] = sorted(_int_param("ids", v) for v in params["ids"].split(",") if v)
        if resource == "orders":
            status = params.get("status", "open")
            if status not in _ORDER_STATUSES:
                raise BadRequest(f"status must be one of {', '.join(_ORDER_STATUSES)}")
            filters["status"] = status
            if params.get("financial_status") and params["financial_status"] != "any":
                filters["financial_status"] = params["financial_status"]
        order = params.get("order", "id asc").split()
        if len(order) == 1:
            order.append("asc")
        if len(order) != 2 or order[0] not in _SORT_FIELDS or order[1] not in ("asc", "desc"):
            raise BadRequest(
                "order must be '<field> asc' or '<field> desc' with field one of "
                f"{', '.join(_SORT_FIELDS)}, e.g. order=updated_at asc"
            )
        filters["order"] = order
        return filters

    @staticmethod
    def _matches(record: dict[str, Any], filters: dict[str, Any]) -> bool:
        for field in ("created_at", "updated_at"):
            low, high = filters.get(f"{field}_min"), filters.get(f"{field}_max")
            if low is not None or high is not None:
                moment = _epoch(record[field])
                if (low is not None and moment < low) or (high is not None and moment > high):
                    return False
        if "since_id" in filters and record["id"] <= filters["since_id"]:
            return False
        if "ids" in filters and record["id"] not in filters["ids"]:
            return False
        status = filters.get("status", "any")
        if status == "open" and (record.get("cancelled_at") or record.get("closed_at")):
            return False
        if status == "closed" and not record.get("closed_at"):
            return False
        if status == "cancelled" and not record.get("cancelled_at"):
            return False
        wanted = filters.get("financial_status")
        return wanted is None or record.get("financial_status") == wanted

    def _list(self, request: Request, resource: str) -> JSONResponse:
        early, headers = self._guard(request)
        if early is not None:
            return early
        params = dict(request.query_params)
        try:
            limit = _int_param("limit", params.get("limit", str(DEFAULT_LIMIT)))
            if not 1 <= limit <= MAX_LIMIT:
                raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
            if "page_info" in params:
                extra = sorted(set(params) - _PAGE_INFO_COMPANIONS)
                if extra:
                    raise BadRequest(
                        f"page_info cannot be combined with {', '.join(extra)}: follow the "
                        "Link header URL as is, changing only limit or fields"
                    )
                cursor = _decode_cursor(params["page_info"], resource)
                filters, direction, anchor = cursor["filters"], cursor["direction"], cursor["key"]
            else:
                filters, direction, anchor = self._filters(resource, params), None, None
        except BadRequest as exc:
            return JSONResponse({"errors": str(exc)}, status_code=400, headers=headers)

        with self._lock:
            records = self._records(resource, self.read_all_orders(request))
            rows = [r for r in records if self._matches(r, filters)]
        rows.sort(key=lambda r: _sort_key(r, filters["order"]))
        keys = [list(_sort_key(r, filters["order"])) for r in rows]
        if direction == "next":
            start = bisect.bisect_right(keys, anchor)
            page = rows[start : start + limit]
        elif direction == "previous":
            end = bisect.bisect_left(keys, anchor)
            start = max(0, end - limit)
            page = rows[start:end]
        else:
            start, page = 0, rows[:limit]

        links = []
        base = f"{str(request.base_url).rstrip('/')}{request.url.path}"
        extra_query = {"fields": params["fields"]} if params.get("fields") else {}

        def link(rel: str, key: list[int]) -> str:
            token = _encode_cursor(
                {"resource": resource, "filters": filters, "direction": rel, "key": key}
            )
            query = urlencode({"limit": limit, **extra_query, "page_info": token})
            return f'<{base}?{query}>; rel="{rel}"'

        if page and direction is not None and start > 0:
            links.append(link("previous", keys[start]))
        if page and start + len(page) < len(rows):
            links.append(link("next", keys[start + len(page) - 1]))
        if links:
            headers["Link"] = ", ".join(links)
        return JSONResponse({resource: _select(page, params.get("fields"))}, headers=headers)

    def _count(self, request: Request, resource: str) -> JSONResponse:
        early, headers = self._guard(request)
        if early is not None:
            return early
        try:
            filters = self._filters(resource, dict(request.query_params))
        except BadRequest as exc:
            return JSONResponse({"errors": str(exc)}, status_code=400, headers=headers)
        with self._lock:
            records = self._records(resource, self.read_all_orders(request))
            count = sum(1 for r in records if self._matches(r, filters))
        return JSONResponse({"count": count}, headers=headers)

    def _one(self, request: Request, resource: str, record_id: int) -> JSONResponse:
        early, headers = self._guard(request)
        if early is not None:
            return early
        with self._lock:
            records = self._records(resource, self.read_all_orders(request))
            found = next((r for r in records if r["id"] == record_id), None)
        if found is None:
            return JSONResponse({"errors": "Not Found"}, status_code=404, headers=headers)
        selected = _select([found], request.query_params.get("fields"))[0]
        return JSONResponse({resource[:-1]: selected}, headers=headers)

    # -- GraphQL -----------------------------------------------------------------------

    async def _graphql(self, request: Request) -> Response:
        early, headers = self._authenticate(request)
        if early is not None:
            return early
        raw = await request.body()
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        variables: Any = None
        operation_name: Any = None
        if content_type == "application/graphql":
            query: Any = raw.decode("utf-8", "replace")
        else:
            try:
                payload = json.loads(raw or b"{}")
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                return JSONResponse(
                    {"errors": {"query": "Required parameter missing or invalid"}},
                    status_code=400,
                    headers=headers,
                )
            query = payload.get("query")
            variables = payload.get("variables")
            operation_name = payload.get("operationName")
        if not isinstance(query, str) or not query.strip():
            return JSONResponse(
                {"errors": {"query": "Required parameter missing or invalid"}},
                status_code=400,
                headers=headers,
            )
        if variables is not None and not isinstance(variables, dict):
            return JSONResponse(
                {"errors": {"variables": "must be a JSON object"}},
                status_code=400,
                headers=headers,
            )
        fault = self.faults.take()
        if fault is not None:
            fault_headers = dict(headers)
            if fault.retry_after:
                fault_headers["Retry-After"] = fault.retry_after
            body = {"errors": THROTTLED if fault.status == 429 else "Internal Server Error"}
            return JSONResponse(body, status_code=fault.status, headers=fault_headers)
        token = request.headers["X-Shopify-Access-Token"]
        context = Context(
            graph=self.graph,
            read_all_orders=self.tokens[token],
            base_url=str(request.base_url).rstrip("/"),
            bulk_operations=self.bulk,
            writes=self.writes if token in self.customer_writers else None,
            token=token,
            version=headers[VERSION_HEADER],
        )
        body = await run_in_threadpool(
            self.execute_graphql, context, query, variables, operation_name
        )
        return JSONResponse(body, headers=headers)

    def execute_graphql(
        self,
        context: Context,
        query: str,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> dict[str, Any]:
        """Run one GraphQL request for ``context.token``: cost, throttle, execution."""
        bucket = self._cost_bucket(context.token)
        prepared = admin_graphql.prepare(query, variables, operation_name, reuse=True)
        if isinstance(prepared, list):
            return {"errors": prepared, "extensions": self._cost(bucket, 0, 0)}
        requested = prepared.cost.requested()
        if requested > admin_graphql.MAX_QUERY_COST:
            return {
                "errors": [admin_graphql.max_cost_error(requested)],
                "extensions": self._cost(bucket, requested, None),
            }
        if not bucket.try_spend(requested):
            return {
                "errors": [admin_graphql.THROTTLED_ERROR],
                "extensions": self._cost(bucket, requested, None),
            }
        with self._lock:
            data, errors = admin_graphql.run(prepared, context)
        actual = prepared.cost.actual(data)
        bucket.refund(requested - actual)
        body: dict[str, Any] = {}
        if errors:
            body["errors"] = errors
        body["data"] = data
        body["extensions"] = self._cost(bucket, requested, actual)
        if context.extras.get("search"):
            body["extensions"]["search"] = context.extras["search"]
        return body

    @staticmethod
    def _cost(
        bucket: admin_graphql.CostBucket, requested: int, actual: int | None
    ) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": bucket.status(),
            }
        }

    def _build_router(self) -> APIRouter:
        router = APIRouter(tags=["shopify"])
        admin = "/admin/api/{version}"

        async def graphql_endpoint(request: Request) -> Response:
            await self._stall()
            return await self._graphql(request)

        router.add_api_route(f"{admin}/graphql.json", graphql_endpoint, methods=["POST"])
        router.add_api_route(
            "/_sandbox/shopify/bulk/{operation_id}.jsonl",
            self.bulk.download,
            methods=["GET"],
            include_in_schema=False,
        )

        def lister(resource: str) -> Callable[[Request], Any]:
            async def handler(request: Request) -> JSONResponse:
                await self._stall()
                return self._list(request, resource)

            return handler

        def counter(resource: str) -> Callable[[Request], Any]:
            async def handler(request: Request) -> JSONResponse:
                await self._stall()
                return self._count(request, resource)

            return handler

        def getter(resource: str) -> Callable[[Request, int], Any]:
            async def handler(request: Request, record_id: int) -> JSONResponse:
                await self._stall()
                return self._one(request, resource, record_id)

            return handler

        def toucher(resource: str) -> Callable[[int, dict[str, Any]], Any]:
            touch = self.touch_customer if resource == "customers" else self.touch_order

            async def handler(
                record_id: int, fields: Annotated[dict[str, Any], Body()]
            ) -> JSONResponse:
                try:
                    return JSONResponse(touch(record_id, **fields))
                except KeyError as exc:
                    return JSONResponse({"errors": str(exc)}, status_code=404)

            return handler

        for resource in ("customers", "orders"):
            router.add_api_route(f"{admin}/{resource}.json", lister(resource), methods=["GET"])
            router.add_api_route(f"{admin}/{resource}/count.json", counter(resource))
            router.add_api_route(f"{admin}/{resource}/{{record_id}}.json", getter(resource))
            router.add_api_route(
                f"/_sandbox/shopify/{resource}/{{record_id}}/touch",
                toucher(resource),
                methods=["POST"],
                include_in_schema=False,
            )

        async def delete_customer(record_id: int) -> JSONResponse:
            try:
                return JSONResponse(self.delete_customer(record_id))
            except KeyError as exc:
                return JSONResponse({"errors": str(exc)}, status_code=404)
            except ValueError as exc:
                return JSONResponse({"errors": str(exc)}, status_code=422)

        router.add_api_route(
            "/_sandbox/shopify/customers/{record_id}/delete",
            delete_customer,
            methods=["POST"],
            include_in_schema=False,
        )

        async def delete_product(record_id: int) -> JSONResponse:
            try:
                return JSONResponse(self.delete_product(record_id))
            except KeyError as exc:
                return JSONResponse({"errors": str(exc)}, status_code=404)

        router.add_api_route(
            "/_sandbox/shopify/products/{record_id}/delete",
            delete_product,
            methods=["POST"],
            include_in_schema=False,
        )

        async def faults(body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
            """The faults knob over HTTP, for a sandbox served from the command line:
            ``{"n": 2, "status": 503}`` (429 comes with ``Retry-After``) or
            ``{"n": 1, "timeout_seconds": 40}``, as VTEX's knob takes."""
            n = int(body.get("n", 1))
            if body.get("timeout_seconds") is not None:
                self.stall_next(n, float(body["timeout_seconds"]))
            else:
                self.fail_next(n, int(body.get("status", 500)))
            with self._lock:
                stalls = len(self._stalls)
            return JSONResponse({"pending_failures": self.faults.pending, "pending_stalls": stalls})

        router.add_api_route(
            "/_sandbox/shopify/faults", faults, methods=["POST"], include_in_schema=False
        )

        async def not_found(request: Request, path: str) -> JSONResponse:
            """Shopify's body for a path it does not have, not the web framework's."""
            headers = {}
            version = request.url.path.split("/")
            if len(version) > 3 and version[1:3] == ["admin", "api"]:
                served = self.served_version(version[3])
                if served:
                    headers[VERSION_HEADER] = served
            return JSONResponse({"errors": "Not Found"}, status_code=404, headers=headers)

        router.add_api_route(
            "/admin/{path:path}",
            not_found,
            methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
            include_in_schema=False,
        )
        return router


def _int_param(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer, got {value!r}") from exc


def _select(records: list[dict[str, Any]], fields: str | None) -> list[dict[str, Any]]:
    """Apply Shopify's ``fields`` parameter: keep only the listed top-level keys."""
    if not fields:
        return records
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    return [{k: r[k] for k in wanted if k in r} for r in records]
