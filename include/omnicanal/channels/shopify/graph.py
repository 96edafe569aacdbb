"""The shop's records as GraphQL Admin API objects: root fields, nodes and connections.

The store keeps records in the REST Admin API's JSON shape (see :mod:`.world`); this
module renders them in the GraphQL schema's shape when a query asks, so REST and
GraphQL always serve the same, live data. Objects are dicts whose relations and
connections are callables that graphql-core calls with the field's arguments, so
only what a query selects is built.

Connections follow Shopify: ``first``/``last`` (at most 250, one of them required
outside bulk operations), opaque ``after``/``before`` cursors, ``reverse``,
``sortKey`` and a ``query`` in Shopify's search syntax. Orders created more than 60
days before the shop's now are invisible to a token without ``read_all_orders``, in
every query, as on Shopify.
"""

from __future__ import annotations

import base64
import bisect
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo

from omnicanal.channels.shopify.search import Field, matcher
from omnicanal.channels.shopify.world import ShopifyStore

MAX_PAGE_SIZE = 250
#: What the sandbox app was granted (``read_all_orders`` on top, per token).
APP_SCOPES = ("read_customers", "read_orders", "read_products", "read_locations")
ORDER_WINDOW_DAYS = 60
CURRENCY = "BRL"

Record = dict[str, Any]
Node = dict[str, Any]


def gid(kind: str, legacy_id: int | str, model: str | None = None) -> str:
    suffix = f"?model_name={model}" if model else ""
    return f"gid://shopify/{kind}/{legacy_id}{suffix}"


def parse_gid(value: str) -> tuple[str, int] | None:
    """``gid://shopify/Customer/42`` → ("Customer", 42); None if it is not one."""
    if not isinstance(value, str) or not value.startswith("gid://shopify/"):
        return None
    parts = value[len("gid://shopify/") :].split("?", 1)[0].split("/")
    if len(parts) != 2 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


@lru_cache(maxsize=1_000_000)
def utc(timestamp: str | None) -> str | None:
    """GraphQL's DateTime: the REST timestamp in UTC with a ``Z`` (memoised)."""
    if not timestamp:
        return None
    moment = datetime.fromisoformat(timestamp).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=1_000_000)
def _epoch(timestamp: str | None) -> int:
    """Epoch seconds of a REST timestamp; memoised, since every page sorts by them."""
    return int(datetime.fromisoformat(timestamp).timestamp()) if timestamp else 0


def money(amount: Any) -> Node:
    return {"amount": Decimal(str(amount or "0")), "currencyCode": CURRENCY}


def money_bag(amount: Any) -> Node:
    return {"shopMoney": money(amount), "presentmentMoney": money(amount)}


def _tags(value: str | list[str] | None) -> list[str]:
    if isinstance(value, list):
        return value
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def _upper(value: str | None) -> str | None:
    return value.upper() if value else None


# -- cursors and connections -----------------------------------------------------------


def encode_cursor(key: tuple[Any, int]) -> str:
    raw = json.dumps({"last_id": key[1], "last_value": key[0]}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def decode_cursor(cursor: str, argument: str) -> tuple[Any, int]:
    try:
        data = json.loads(base64.b64decode(cursor, validate=True))
        return data["last_value"], int(data["last_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise GraphQLError(f"Invalid cursor for current pagination sort ({argument}).") from exc


@dataclass
class Context:
    """What one request may see and how it pages: the token's scopes, bulk or not."""

    graph: ShopGraph
    read_all_orders: bool = True
    bulk: bool = False
    base_url: str = ""
    #: Bulk operation tools, set by the emulator (see :mod:`.bulk`).
    bulk_operations: Any = None
    #: Customer writes (tags, metafields), set by the emulator (see :mod:`.writes`).
    writes: Any = None
    token: str = ""
    #: The API version serving the request (some behaviour changed between versions).
    version: str = "unstable"
    extras: dict[str, Any] = field(default_factory=dict)


def connection(
    info: GraphQLResolveInfo,
    records: Iterable[Record],
    key: Callable[[Record], tuple[Any, int]],
    build: Callable[[Record], Node],
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    reverse: bool = False,
    sorted_rows: list[tuple[tuple[Any, int], Record]] | None = None,
    sorted_keys: list[tuple[Any, int]] | None = None,
    **_: Any,
) -> Node:
    """One page of ``records`` as a Relay connection, the way Shopify pages.

    Records are ordered by ``key`` (a sort value and the legacy id, which breaks ties),
    descending with ``reverse``; cursors carry the key of their record. ``sorted_rows``
    ((key, record) pairs already in key order) stands in for ``records`` and ``key``
    when the caller keeps a sorted copy; ``sorted_keys`` (their keys, in the same
    order) spares listing them again.
    """
    context: Context = info.context
    for name, value in (("first", first), ("last", last)):
        if value is not None and value < 0:
            raise GraphQLError(f"Argument '{name}' on Field '{info.field_name}' must be positive.")
        if value is not None and value > MAX_PAGE_SIZE:
            raise GraphQLError(
                f"The {name} argument must be less than or equal to {MAX_PAGE_SIZE}."
            )
    if first is None and last is None and not context.bulk:
        raise GraphQLError("you must provide one of first or last")
    if sorted_rows is not None:
        rows = sorted_rows
    else:
        rows = sorted(((key(r), r) for r in records), key=lambda pair: pair[0])
    keys = sorted_keys if sorted_keys is not None else [k for k, _ in rows]
    lo, hi = 0, len(rows)
    if after is not None:
        cursor = decode_cursor(after, "after")
        if reverse:
            hi = min(hi, bisect.bisect_left(keys, _comparable(cursor, keys)))
        else:
            lo = max(lo, bisect.bisect_right(keys, _comparable(cursor, keys)))
    if before is not None:
        cursor = decode_cursor(before, "before")
        if reverse:
            lo = max(lo, bisect.bisect_right(keys, _comparable(cursor, keys)))
        else:
            hi = min(hi, bisect.bisect_left(keys, _comparable(cursor, keys)))
    # Indices between the cursors in paging order, as a range: a page costs its size
    # (plus the bisects), not the length of the list.
    window = range(hi - 1, lo - 1, -1) if reverse else range(lo, hi)
    if first is not None:
        window = window[:first]
    if last is not None:
        window = window[-last:] if last else range(0)
    count = len(rows)

    def position(index: int) -> int:  # where ``index`` stands in paging order
        return count - 1 - index if reverse else index

    start = position(window[0]) if window else None
    end = position(window[-1]) if window else None
    nodes = [build(rows[i][1]) for i in window]
    edges = [
        {"cursor": _lazy_cursor(rows[i][0]), "node": node}
        for i, node in zip(window, nodes, strict=True)
    ]
    return {
        "edges": edges,
        "nodes": nodes,
        "pageInfo": {
            "hasNextPage": end is not None and end < count - 1,
            "hasPreviousPage": start is not None and start > 0,
            "startCursor": _lazy_cursor(rows[window[0]][0]) if window else None,
            "endCursor": _lazy_cursor(rows[window[-1]][0]) if window else None,
        },
    }


def _lazy_cursor(key: tuple[Any, int]) -> Callable[..., str]:
    """A cursor encoded only if the query asks for it (bulk exports never do)."""
    return lambda info, **_: encode_cursor(key)


def _comparable(cursor: tuple[Any, int], keys: list[tuple[Any, int]]) -> tuple[Any, int]:
    """A decoded cursor key of the same types as the connection's keys."""
    value, legacy_id = cursor
    if keys and isinstance(keys[0][0], int | float) and not isinstance(value, int | float):
        raise GraphQLError("Invalid cursor for current pagination sort.")
    if keys and isinstance(keys[0][0], str) and not isinstance(value, str):
        raise GraphQLError("Invalid cursor for current pagination sort.")
    return value, legacy_id


def _list_first(items: list[Node], first: int | None) -> list[Node]:
    return items if first is None else items[:first]


# -- searchable fields ------------------------------------------------------------------

CUSTOMER_FIELDS: dict[str, Field] = {
    "default": Field("text", lambda c: [c.get("first_name"), c.get("last_name"), c.get("email")]),
    "created_at": Field("time", lambda c: c.get("created_at")),
    "updated_at": Field("time", lambda c: c.get("updated_at")),
    "customer_date": Field("time", lambda c: c.get("created_at")),
    "id": Field("id", lambda c: c["id"]),
    "email": Field("text", lambda c: (c.get("email") or "").strip()),
    "first_name": Field("text", lambda c: c.get("first_name")),
    "last_name": Field("text", lambda c: c.get("last_name")),
    "phone": Field("text", lambda c: c.get("phone")),
    "state": Field("text", lambda c: c.get("state")),
    "tag": Field("tags", lambda c: _tags(c.get("tags"))),
    "orders_count": Field("number", lambda c: c.get("orders_count")),
    "total_spent": Field("number", lambda c: c.get("total_spent")),
    "accepts_marketing": Field(
        "bool", lambda c: (c.get("email_marketing_consent") or {}).get("state") == "subscribed"
    ),
}


def _order_status(order: Record) -> list[str]:
    if order.get("cancelled_at"):
        return ["cancelled", "closed"] if order.get("closed_at") else ["cancelled", "not_closed"]
    return ["closed"] if order.get("closed_at") else ["open", "not_closed"]


ORDER_FIELDS: dict[str, Field] = {
    "default": Field("text", lambda o: [o.get("name"), o.get("email")]),
    "created_at": Field("time", lambda o: o.get("created_at")),
    "updated_at": Field("time", lambda o: o.get("updated_at")),
    "processed_at": Field("time", lambda o: o.get("processed_at")),
    "id": Field("id", lambda o: o["id"]),
    "name": Field("text", lambda o: [o.get("name"), (o.get("name") or "").lstrip("#")]),
    "email": Field("text", lambda o: (o.get("email") or "").strip()),
    "status": Field("text", _order_status),
    "financial_status": Field("text", lambda o: o.get("financial_status")),
    "fulfillment_status": Field(
        "text",
        lambda o: ["fulfilled", "shipped"] if o.get("fulfillment_status") else ["unfulfilled"],
    ),
    "source_name": Field("text", lambda o: o.get("source_name")),
    "location_id": Field("id", lambda o: o.get("location_id")),
    "customer_id": Field("id", lambda o: (o.get("customer") or {}).get("id")),
    "tag": Field("tags", lambda o: _tags(o.get("tags"))),
    "test": Field("bool", lambda o: o.get("test")),
}

CHECKOUT_FIELDS: dict[str, Field] = {
    "default": Field("text", lambda a: [a.get("email"), a.get("name")]),
    "created_at": Field("time", lambda a: a.get("created_at")),
    "updated_at": Field("time", lambda a: a.get("updated_at")),
    "id": Field("id", lambda a: a["id"]),
    "email": Field("text", lambda a: a.get("email")),
    "status": Field("text", lambda a: "closed" if a.get("completed_at") else "open"),
}

PRODUCT_FIELDS: dict[str, Field] = {
    "default": Field("text", lambda p: [p.get("title")]),
    "created_at": Field("time", lambda p: p.get("created_at")),
    "updated_at": Field("time", lambda p: p.get("updated_at")),
    "id": Field("id", lambda p: p["id"]),
    "title": Field("text", lambda p: p.get("title")),
    "status": Field("text", lambda p: p.get("status")),
    "vendor": Field("text", lambda p: p.get("vendor")),
    "product_type": Field("text", lambda p: p.get("product_type")),
    "sku": Field("text", lambda p: [v.get("sku") for v in p.get("variants", [])]),
    "tag": Field("tags", lambda p: _tags(p.get("tags"))),
}

VARIANT_FIELDS: dict[str, Field] = {
    "default": Field("text", lambda v: [v.get("title"), v.get("sku")]),
    "created_at": Field("time", lambda v: v.get("created_at")),
    "updated_at": Field("time", lambda v: v.get("updated_at")),
    "id": Field("id", lambda v: v["id"]),
    "product_id": Field("id", lambda v: v.get("product_id")),
    "sku": Field("text", lambda v: v.get("sku")),
    "title": Field("text", lambda v: v.get("title")),
}

LOCATION_FIELDS: dict[str, Field] = {
    "default": Field("text", lambda loc: [loc.get("name")]),
    "id": Field("id", lambda loc: loc["id"]),
    "name": Field("text", lambda loc: loc.get("name")),
    "active": Field("bool", lambda loc: loc.get("active")),
    "created_at": Field("time", lambda loc: loc.get("created_at")),
    "updated_at": Field("time", lambda loc: loc.get("updated_at")),
}


def _name_key(first: str | None, last: str | None) -> str:
    return f"{first or ''} {last or ''}".strip().lower()


_SORTS: dict[str, dict[str, Callable[[Record], Any]]] = {
    "customers": {
        "ID": lambda c: 0,
        "CREATED_AT": lambda c: _epoch(c.get("created_at")),
        "UPDATED_AT": lambda c: _epoch(c.get("updated_at")),
        "NAME": lambda c: _name_key(c.get("first_name"), c.get("last_name")),
        "LOCATION": lambda c: ((c.get("default_address") or {}).get("city") or "").lower(),
        "RELEVANCE": lambda c: 0,
    },
    "orders": {
        "ID": lambda o: 0,
        "CREATED_AT": lambda o: _epoch(o.get("created_at")),
        "UPDATED_AT": lambda o: _epoch(o.get("updated_at")),
        "PROCESSED_AT": lambda o: _epoch(o.get("processed_at")),
        "ORDER_NUMBER": lambda o: o.get("order_number") or 0,
        "TOTAL_PRICE": lambda o: float(o.get("total_price") or 0),
        "CURRENT_TOTAL_PRICE": lambda o: float(
            o.get("current_total_price") or o.get("total_price") or 0
        ),
        "DESTINATION": lambda o: " ".join(
            str((o.get("shipping_address") or {}).get(k) or "") for k in ("country", "city")
        ).lower(),
        "CUSTOMER_NAME": lambda o: _name_key(
            (o.get("customer") or {}).get("first_name"), (o.get("customer") or {}).get("last_name")
        ),
        "FINANCIAL_STATUS": lambda o: o.get("financial_status") or "",
        "FULFILLMENT_STATUS": lambda o: o.get("fulfillment_status") or "",
        "TOTAL_ITEMS_QUANTITY": lambda o: sum(i["quantity"] for i in o.get("line_items", [])),
        "PO_NUMBER": lambda o: 0,
        "RELEVANCE": lambda o: 0,
    },
    "abandoned_checkouts": {
        "ID": lambda a: 0,
        "CHECKOUT_ID": lambda a: 0,
        "CREATED_AT": lambda a: _epoch(a.get("created_at")),
        "TOTAL_PRICE": lambda a: float(a.get("total_price") or 0),
        "CUSTOMER_NAME": lambda a: _name_key(
            (a.get("customer") or {}).get("first_name"), (a.get("customer") or {}).get("last_name")
        ),
        "RELEVANCE": lambda a: 0,
    },
    "products": {
        "ID": lambda p: 0,
        "CREATED_AT": lambda p: _epoch(p.get("created_at")),
        "UPDATED_AT": lambda p: _epoch(p.get("updated_at")),
        "PUBLISHED_AT": lambda p: _epoch(p.get("published_at")),
        "TITLE": lambda p: (p.get("title") or "").lower(),
        "VENDOR": lambda p: (p.get("vendor") or "").lower(),
        "PRODUCT_TYPE": lambda p: (p.get("product_type") or "").lower(),
        "INVENTORY_TOTAL": lambda p: sum(v.get("inventory_quantity") or 0 for v in p["variants"]),
        "RELEVANCE": lambda p: 0,
    },
    "variants": {
        "ID": lambda v: 0,
        "POSITION": lambda v: v.get("position") or 0,
        "SKU": lambda v: (v.get("sku") or "").lower(),
        "TITLE": lambda v: (v.get("title") or "").lower(),
        "FULL_TITLE": lambda v: (v.get("title") or "").lower(),
        "NAME": lambda v: (v.get("title") or "").lower(),
        "RELEVANCE": lambda v: 0,
    },
    "locations": {
        "ID": lambda loc: 0,
        "NAME": lambda loc: (loc.get("name") or "").lower(),
        "RELEVANCE": lambda loc: 0,
    },
}


def sort_key(resource: str, sort: str | None) -> Callable[[Record], tuple[Any, int]]:
    """The (value, id) key a connection of ``resource`` is ordered and paged by."""
    value = _SORTS[resource].get(sort or "ID", _SORTS[resource]["ID"])
    return lambda record: (value(record), record["id"])


# -- the graph ----------------------------------------------------------------------------

#: Filtered copies a graph keeps (one per resource, sort and search being paged).
_FILTERS_KEPT = 32


class ShopGraph:
    """Builds GraphQL objects over one store, live: every call reads the current records."""

    def __init__(self, store: ShopifyStore, now: Callable[[], datetime], shop_name: str) -> None:
        self.store = store
        self._now = now
        self.shop_name = shop_name
        self._positions: dict[str, tuple[int, int, dict[int, int]]] = {}
        self._refunds: tuple[tuple[int, int, int], dict[int, int]] | None = None
        #: Bumped by every change made through the emulator, so sorted copies refresh.
        self.revision = 0
        #: Metafields set through ``metafieldsSet``: customer id → (namespace, key) → record.
        self.metafields: dict[int, dict[tuple[str, str], Record]] = {}
        self._sorted: dict[tuple[str, str], tuple[list, tuple[int, int], list]] = {}
        self._filtered: OrderedDict[tuple, tuple[list, list, list]] = OrderedDict()
        self._filtered_lock = threading.Lock()

    def sorted_records(
        self, resource: str, sort: str | None, records: list[Record]
    ) -> list[tuple[tuple[Any, int], Record]]:
        """``records`` as (key, record) pairs in ``sort`` order, kept between requests.

        Paging a large shop asks for the same order hundreds of times; the copy is
        rebuilt when the list, its length or the store's revision changes.
        """
        cached = self._sorted.get((resource, sort or "ID"))
        if (
            cached is not None
            and cached[0] is records  # held by the cache, so its identity cannot be reused
            and cached[1] == (len(records), self.revision)
        ):
            return cached[2]
        key = sort_key(resource, sort)
        rows = sorted(((key(r), r) for r in records), key=lambda pair: pair[0])
        self._sorted[(resource, sort or "ID")] = (records, (len(records), self.revision), rows)
        return rows

    def filtered_records(
        self,
        resource: str,
        sort: str | None,
        records: list[Record],
        scope: tuple,
        keep: Callable[[Record], bool],
    ) -> tuple[list[tuple[tuple[Any, int], Record]], list[tuple[Any, int]]]:
        """The sorted (key, record) pairs ``keep`` accepts, and their keys, kept between pages.

        ``scope`` names the filter (the search query, who may see what): paging asks
        for the same filtered list once per page, and filtering a large shop per page
        made a page cost the shop's size. An entry holds the sorted copy it was made
        from, so it lapses with it (any change through the emulator) and is dropped
        at the next miss; the few most recent filters are kept.
        """
        ordered = self.sorted_records(resource, sort, records)
        cache_key = (resource, sort or "ID", scope)
        with self._filtered_lock:  # requests run in a thread pool, bulk operations in threads
            cached = self._filtered.get(cache_key)
            if cached is not None and cached[0] is ordered:
                self._filtered.move_to_end(cache_key)
                return cached[1], cached[2]
        rows = [(key, record) for key, record in ordered if keep(record)]
        keys = [key for key, _ in rows]
        with self._filtered_lock:
            for stale in [k for k, v in self._filtered.items() if k[:2] == cache_key[:2]]:
                if self._filtered[stale][0] is not ordered:  # made from a superseded copy
                    del self._filtered[stale]
            self._filtered[cache_key] = (ordered, rows, keys)
            self._filtered.move_to_end(cache_key)
            while len(self._filtered) > _FILTERS_KEPT:
                self._filtered.popitem(last=False)
        return rows, keys

    def visibility_scope(self, context: Context) -> tuple[bool, float | None]:
        """What decides which orders ``context`` may see (see ``order_visible``)."""
        if context.read_all_orders:
            return (True, None)
        return (False, (self._now() - timedelta(days=ORDER_WINDOW_DAYS)).timestamp())

    # lookups --------------------------------------------------------------------------

    def _find(self, attribute: str, record_id: int | None) -> Record | None:
        """A record by id through a position index, rebuilt when the list changed.

        Records are replaced in place when touched (same position, same id), so a
        position is checked against the id it should hold before it is trusted.
        """
        if record_id is None:
            return None
        records = getattr(self.store, attribute)
        cached = self._positions.get(attribute)
        if cached is None or cached[0] != id(records) or cached[1] != len(records):
            cached = (id(records), len(records), {r["id"]: i for i, r in enumerate(records)})
            self._positions[attribute] = cached
        position = cached[2].get(record_id)
        if position is not None and records[position]["id"] == record_id:
            return records[position]
        return next((r for r in records if r["id"] == record_id), None)

    def customer_record(self, customer_id: int | None) -> Record | None:
        return self._find("customers", customer_id)

    def order_record(self, order_id: int | None) -> Record | None:
        return self._find("orders", order_id)

    def refund_record(self, refund_id: int | None) -> tuple[Record, Record] | None:
        """A refund by id and the order it belongs to, through an index of the orders'
        refunds rebuilt when the orders change (``nodes(ids:)`` asks for refunds in
        batches after a bulk export)."""
        if refund_id is None:
            return None
        orders = self.store.orders
        stamp = (id(orders), len(orders), self.revision)
        if self._refunds is None or self._refunds[0] != stamp:
            index = {
                refund["id"]: order["id"]
                for order in orders
                for refund in order.get("refunds") or []
            }
            self._refunds = (stamp, index)
        order = self.order_record(self._refunds[1].get(refund_id))
        if order is None:
            return None
        refund = next((r for r in order.get("refunds") or [] if r["id"] == refund_id), None)
        return (refund, order) if refund is not None else None

    def order_visible(self, context: Context, order: Record) -> bool:
        """Orders older than 60 days exist only for tokens with ``read_all_orders``."""
        if context.read_all_orders:
            return True
        cutoff = self._now() - timedelta(days=ORDER_WINDOW_DAYS)
        return _epoch(order["created_at"]) >= cutoff.timestamp()

    def orders(self, context: Context) -> list[Record]:
        return [o for o in self.store.orders if self.order_visible(context, o)]

    def location_record(self, location_id: int | None) -> Record | None:
        if location_id is None:
            return None
        return next((loc for loc in self.store.locations if loc["id"] == location_id), None)

    def product_record(self, product_id: int | None) -> Record | None:
        return next((p for p in self.store.products if p["id"] == product_id), None)

    def variant_record(self, variant_id: int | None) -> Record | None:
        for product in self.store.products:
            for variant in product["variants"]:
                if variant["id"] == variant_id:
                    return variant
        return None

    def details(self, order_id: int) -> Record:
        return self.store.order_details.get(order_id) or {}

    # root fields ---------------------------------------------------------------------

    def lookup(self, context: Context, global_id: str) -> Node | None:
        """``node(id:)``: whatever object the global id names, if the token may see it."""
        parsed = parse_gid(global_id)
        if parsed is None:
            raise GraphQLError(f"Invalid global id '{global_id}'")
        kind, legacy_id = parsed
        if kind == "Customer":
            record = self.customer_record(legacy_id)
            return self.customer(record) if record else None
        if kind == "Order":
            order = self.order_record(legacy_id)
            if order is None or not self.order_visible(context, order):
                return None
            return self.order(order)
        if kind == "Refund":
            found = self.refund_record(legacy_id)
            if found is None or not self.order_visible(context, found[1]):
                return None
            refund, order = found
            items = {i["id"]: i for i in order.get("line_items") or []}
            return self.refund(refund, order, items)
        if kind == "AbandonedCheckout":
            found = next((a for a in self.store.abandoned_checkouts if a["id"] == legacy_id), None)
            return self.checkout(found) if found else None
        if kind == "Product":
            product = self.product_record(legacy_id)
            return self.product(product) if product else None
        if kind == "ProductVariant":
            variant = self.variant_record(legacy_id)
            return self.variant(variant) if variant else None
        if kind == "Location":
            location = self.location_record(legacy_id)
            return self.location(location) if location else None
        if kind == "BulkOperation" and context.bulk_operations is not None:
            return context.bulk_operations.node(legacy_id)
        return None

    def installation(self, context: Context) -> Node:
        """``currentAppInstallation``: the sandbox app and the scopes its token holds."""
        scopes = list(APP_SCOPES)
        if context.read_all_orders:
            scopes.append("read_all_orders")
        return {
            "__typename": "AppInstallation",
            "id": gid("AppInstallation", 51_234_567_890),
            "app": {
                "__typename": "App",
                "id": gid("App", 41_234_567_890),
                "title": "omnicanal",
                "handle": "omnicanal",
            },
            "accessScopes": [
                {"handle": scope, "description": scope.replace("_", " ").capitalize()}
                for scope in scopes
            ],
        }

    def shop(self) -> Node:
        return {
            "__typename": "Shop",
            "id": gid("Shop", 61_234_567_890),
            "name": self.shop_name,
            "email": "contato@omnicanal-demo.com.br",
            "myshopifyDomain": "omnicanal-demo.myshopify.com",
            "currencyCode": CURRENCY,
            "ianaTimezone": "America/Sao_Paulo",
        }

    # objects --------------------------------------------------------------------------

    def address(self, data: Record | None, global_id: str) -> Node | None:
        if not data:
            return None
        area = ", ".join(x for x in (data.get("city"), data.get("province_code")) if x)
        return {
            "__typename": "MailingAddress",
            "id": global_id,
            "address1": data.get("address1"),
            "address2": data.get("address2"),
            "city": data.get("city"),
            "company": data.get("company"),
            "country": data.get("country"),
            "countryCodeV2": data.get("country_code"),
            "firstName": data.get("first_name"),
            "lastName": data.get("last_name"),
            "name": data.get("name"),
            "phone": data.get("phone"),
            "province": data.get("province"),
            "provinceCode": data.get("province_code"),
            "zip": data.get("zip"),
            "formattedArea": f"{area}, {data.get('country')}" if area else data.get("country"),
        }

    def customer(self, c: Record) -> Node:
        email = c.get("email")
        consent = c.get("email_marketing_consent") or {}
        sms = c.get("sms_marketing_consent")
        phone = c.get("phone")
        addresses = [
            self.address(a, gid("MailingAddress", a["id"], "CustomerAddress"))
            for a in c.get("addresses") or []
        ]
        default = c.get("default_address")
        first, last = c.get("first_name"), c.get("last_name")

        def orders(info: GraphQLResolveInfo, sortKey: str = "ID", query: str | None = None, **a):
            context: Context = info.context
            mine = [
                o for o in self.orders(context) if (o.get("customer") or {}).get("id") == c["id"]
            ]
            wanted = matcher(query, ORDER_FIELDS)
            return connection(
                info, filter(wanted, mine), sort_key("orders", sortKey), self.order, **a
            )

        def last_order(info: GraphQLResolveInfo) -> Node | None:
            order = self.order_record(c.get("last_order_id"))
            if order is None or not self.order_visible(info.context, order):
                return None
            return self.order(order)

        def address_list(info: GraphQLResolveInfo, first: int | None = None) -> list[Node]:
            return _list_first([a for a in addresses if a], first)

        def address_connection(info: GraphQLResolveInfo, **a: Any) -> Node:
            return connection(
                info,
                c.get("addresses") or [],
                lambda r: (0, r["id"]),
                lambda r: self.address(r, gid("MailingAddress", r["id"], "CustomerAddress")),
                **a,
            )

        return {
            "__typename": "Customer",
            "id": gid("Customer", c["id"]),
            "legacyResourceId": c["id"],
            "email": email,
            "phone": phone,
            "defaultEmailAddress": (
                {
                    "emailAddress": email,
                    "marketingState": _upper(consent.get("state")) or "NOT_SUBSCRIBED",
                    "marketingOptInLevel": _upper(consent.get("opt_in_level")),
                    "marketingUpdatedAt": utc(consent.get("consent_updated_at")),
                    "validFormat": "@" in email.strip() and " " not in email.strip(),
                }
                if email
                else None
            ),
            "defaultPhoneNumber": (
                {
                    "phoneNumber": phone,
                    "marketingState": _upper((sms or {}).get("state")) or "NOT_SUBSCRIBED",
                    "marketingOptInLevel": _upper((sms or {}).get("opt_in_level")),
                    "marketingUpdatedAt": utc((sms or {}).get("consent_updated_at")),
                    "marketingCollectedFrom": (sms or {}).get("consent_collected_from"),
                }
                if phone
                else None
            ),
            "firstName": first,
            "lastName": last,
            "displayName": f"{first or ''} {last or ''}".strip() or email or phone or "",
            "note": c.get("note"),
            "tags": _tags(c.get("tags")),
            "locale": "pt-BR",
            "state": _upper(c.get("state")) or "DISABLED",
            "verifiedEmail": bool(c.get("verified_email")),
            "validEmailAddress": bool(email) and "@" in (email or ""),
            "taxExempt": bool(c.get("tax_exempt")),
            "numberOfOrders": c.get("orders_count") or 0,
            "amountSpent": money(c.get("total_spent")),
            "lifetimeDuration": _lifetime(c.get("created_at"), self._now()),
            "createdAt": utc(c.get("created_at")),
            "updatedAt": utc(c.get("updated_at")),
            "defaultAddress": (
                self.address(default, gid("MailingAddress", default["id"], "CustomerAddress"))
                if default
                else None
            ),
            "addresses": address_list,
            "addressesV2": address_connection,
            "emailMarketingConsent": (
                {
                    "marketingState": _upper(consent.get("state")),
                    "marketingOptInLevel": _upper(consent.get("opt_in_level")),
                    "consentUpdatedAt": utc(consent.get("consent_updated_at")),
                }
                if consent
                else None
            ),
            "smsMarketingConsent": (
                {
                    "marketingState": _upper(sms.get("state")),
                    "marketingOptInLevel": _upper(sms.get("opt_in_level")) or "UNKNOWN",
                    "consentUpdatedAt": utc(sms.get("consent_updated_at")),
                    "consentCollectedFrom": sms.get("consent_collected_from"),
                }
                if sms
                else None
            ),
            "lastOrder": last_order,
            "orders": orders,
            **self._metafield_fields(c["id"]),
        }

    def metafield(self, m: Record) -> Node:
        return {
            "__typename": "Metafield",
            "id": gid("Metafield", m["id"]),
            "legacyResourceId": m["id"],
            "namespace": m["namespace"],
            "key": m["key"],
            "type": m["type"],
            "value": m["value"],
            "compareDigest": m["compare_digest"],
            "ownerType": "CUSTOMER",
            "owner": lambda info: self.lookup(info.context, gid("Customer", m["owner_id"])),
            "createdAt": m["created_at"],
            "updatedAt": m["updated_at"],
        }

    def _metafield_fields(self, customer_id: int) -> dict[str, Any]:
        """``metafield(namespace:, key:)`` and ``metafields(...)`` of one customer."""

        def held() -> dict[tuple[str, str], Record]:
            return self.metafields.get(customer_id) or {}

        def one(info: GraphQLResolveInfo, key: str, namespace: str | None = None) -> Node | None:
            found = held().get((namespace or "$app", key))
            return self.metafield(found) if found else None

        def many(
            info: GraphQLResolveInfo,
            namespace: str | None = None,
            keys: list[str] | None = None,
            **a: Any,
        ) -> Node:
            wanted = set(keys or ())
            rows = [
                m
                for (ns, key), m in held().items()
                if (namespace is None or ns == namespace)
                and (not wanted or f"{ns}.{key}" in wanted)
            ]
            return connection(info, rows, lambda m: (0, m["id"]), self.metafield, **a)

        return {"metafield": one, "metafields": many}

    def location(self, loc: Record) -> Node:
        lines = [
            loc.get("address1"),
            ", ".join(x for x in (loc.get("city"), loc.get("province_code"), loc.get("zip")) if x),
            loc.get("country_name"),
        ]
        return {
            "__typename": "Location",
            "id": gid("Location", loc["id"]),
            "legacyResourceId": loc["id"],
            "name": loc["name"],
            "isActive": bool(loc.get("active")),
            "fulfillsOnlineOrders": bool(loc.get("fulfills_online_orders")),
            "hasActiveInventory": bool(loc.get("active")),
            "shipsInventory": bool(loc.get("fulfills_online_orders")),
            "address": {
                "address1": loc.get("address1"),
                "address2": loc.get("address2"),
                "city": loc.get("city"),
                "country": loc.get("country_name"),
                "countryCode": loc.get("country_code"),
                "formatted": [line for line in lines if line],
                "phone": loc.get("phone"),
                "province": loc.get("province"),
                "provinceCode": loc.get("province_code"),
                "zip": loc.get("zip"),
            },
            "createdAt": utc(loc.get("created_at")),
            "updatedAt": utc(loc.get("updated_at")),
            "deactivatedAt": utc(loc.get("deactivated_at")),
        }

    def _location_node(self, location_id: int | None) -> Node | None:
        record = self.location_record(location_id)
        return self.location(record) if record else None

    def product(self, p: Record) -> Node:
        def variants(info: GraphQLResolveInfo, sortKey: str = "POSITION", **a: Any) -> Node:
            return connection(info, p["variants"], sort_key("variants", sortKey), self.variant, **a)

        return {
            "__typename": "Product",
            "id": gid("Product", p["id"]),
            "legacyResourceId": p["id"],
            "title": p["title"],
            "handle": p["handle"],
            "vendor": p.get("vendor") or "",
            "productType": p.get("product_type") or "",
            "status": _upper(p.get("status")) or "ACTIVE",
            "tags": _tags(p.get("tags")),
            "descriptionHtml": p.get("body_html") or "",
            "totalInventory": sum(v.get("inventory_quantity") or 0 for v in p["variants"]),
            "createdAt": utc(p.get("created_at")),
            "updatedAt": utc(p.get("updated_at")),
            "publishedAt": utc(p.get("published_at")),
            "variants": variants,
        }

    def variant(self, v: Record) -> Node:
        product = self.product_record(v.get("product_id"))
        options = [
            {"name": name, "value": v.get(f"option{n}")}
            for n, name in enumerate((product or {}).get("option_names", []), start=1)
            if v.get(f"option{n}")
        ]
        title = (product or {}).get("title", "")
        return {
            "__typename": "ProductVariant",
            "id": gid("ProductVariant", v["id"]),
            "legacyResourceId": v["id"],
            "title": v["title"],
            "displayName": f"{title} - {v['title']}" if title else v["title"],
            "sku": v.get("sku"),
            "barcode": v.get("barcode"),
            "price": v.get("price"),
            "compareAtPrice": v.get("compare_at_price"),
            "position": v.get("position") or 1,
            "taxable": bool(v.get("taxable", True)),
            "inventoryQuantity": v.get("inventory_quantity"),
            "selectedOptions": options,
            "createdAt": utc(v.get("created_at")),
            "updatedAt": utc(v.get("updated_at")),
            "product": lambda info: self.product(product) if product else None,
        }

    def _product_node(self, product_id: int | None) -> Node | None:
        record = self.product_record(product_id)
        return self.product(record) if record else None

    def _variant_node(self, variant_id: int | None) -> Node | None:
        record = self.variant_record(variant_id)
        return self.variant(record) if record else None

    def line_item(self, item: Record, refunded: int = 0) -> Node:
        quantity = item["quantity"]
        price = Decimal(item["price"])
        discount = Decimal(item.get("total_discount") or "0")
        total = price * quantity
        return {
            "__typename": "LineItem",
            "id": gid("LineItem", item["id"]),
            "name": item.get("name") or item.get("title"),
            "title": item.get("title"),
            "sku": item.get("sku"),
            "vendor": item.get("vendor"),
            "variantTitle": item.get("variant_title"),
            "quantity": quantity,
            "currentQuantity": max(quantity - refunded, 0),
            "refundableQuantity": max(quantity - refunded, 0),
            "taxable": bool(item.get("taxable")),
            "requiresShipping": bool(item.get("requires_shipping")),
            "product": lambda info: self._product_node(item.get("product_id")),
            "variant": lambda info: self._variant_node(item.get("variant_id")),
            "originalUnitPriceSet": money_bag(price),
            "discountedUnitPriceSet": money_bag(price - discount / quantity),
            "discountedUnitPriceAfterAllDiscountsSet": money_bag(price - discount / quantity),
            "originalTotalSet": money_bag(total),
            "discountedTotalSet": money_bag(total - discount),
            "totalDiscountSet": money_bag(discount),
        }

    def order(self, o: Record) -> Node:
        details = self.details(o["id"])
        items = o.get("line_items") or []
        refunded_qty: dict[int, int] = {}
        for refund in o.get("refunds") or []:
            for line in refund.get("refund_line_items") or []:
                refunded_qty[line["line_item_id"]] = (
                    refunded_qty.get(line["line_item_id"], 0) + line["quantity"]
                )
        items_by_id = {i["id"]: i for i in items}
        refunded_total = sum(
            (
                Decimal(t["amount"])
                for r in o.get("refunds") or []
                for t in r.get("transactions") or []
                if t.get("kind") == "refund"
            ),
            Decimal(0),
        )
        shipping_lines = o.get("shipping_lines") or []
        shipping = sum((Decimal(s["price"]) for s in shipping_lines), Decimal(0))
        pos = o.get("source_name") == "pos"
        codes = [d["code"] for d in o.get("discount_codes") or []]
        pickup = details.get("delivery_method") == "PICK_UP"

        def line_items(info: GraphQLResolveInfo, **a: Any) -> Node:
            return connection(
                info,
                items,
                lambda r: (0, r["id"]),
                lambda r: self.line_item(r, refunded_qty.get(r["id"], 0)),
                **a,
            )

        def discount_applications(info: GraphQLResolveInfo, **a: Any) -> Node:
            applications = [
                {
                    "__typename": "DiscountCodeApplication",
                    "id": index,
                    "allocationMethod": "ACROSS",
                    "index": index,
                    "targetSelection": "ALL",
                    "targetType": "LINE_ITEM",
                    "value": (
                        {"__typename": "PricingPercentageValue", "percentage": 10.0}
                        if d.get("type") == "percentage"
                        else {"__typename": "MoneyV2", **money(d.get("amount"))}
                    ),
                    "code": d["code"],
                }
                for index, d in enumerate(o.get("discount_codes") or [])
            ]
            return connection(info, applications, lambda r: (0, r["id"]), lambda r: r, **a)

        def fulfillments(info: GraphQLResolveInfo, first: int | None = None) -> list[Node]:
            return _list_first(
                [self.fulfillment(f, items_by_id) for f in details.get("fulfillments", [])], first
            )

        def fulfillment_orders(info: GraphQLResolveInfo, **a: Any) -> Node:
            a.pop("displayable", None)
            a.pop("query", None)
            return connection(
                info,
                details.get("fulfillment_orders", []),
                lambda r: (0, r["id"]),
                self.fulfillment_order,
                **a,
            )

        def refunds(info: GraphQLResolveInfo, first: int | None = None) -> list[Node]:
            return _list_first(
                [self.refund(r, o, items_by_id) for r in o.get("refunds") or []], first
            )

        def returns(info: GraphQLResolveInfo, query: str | None = None, **a: Any) -> Node:
            return connection(
                info,
                details.get("returns", []),
                lambda r: (0, r["id"]),
                lambda r: self.return_(r, o, items_by_id),
                **a,
            )

        channel = (
            ("pos", "Point of Sale", "Point of Sale", 129_785_857)
            if pos
            else ("web", "Online Store", "Online Store", 580_111)
        )
        shipping_line = shipping_lines[0] if shipping_lines else None
        return {
            "__typename": "Order",
            "id": gid("Order", o["id"]),
            "legacyResourceId": o["id"],
            "name": o["name"],
            "number": o.get("number") or 0,
            "email": o.get("email"),
            "phone": o.get("phone"),
            "createdAt": utc(o["created_at"]),
            "updatedAt": utc(o["updated_at"]),
            "processedAt": utc(o.get("processed_at") or o["created_at"]),
            "closed": bool(o.get("closed_at")),
            "closedAt": utc(o.get("closed_at")),
            "cancelledAt": utc(o.get("cancelled_at")),
            "cancelReason": _upper(o.get("cancel_reason")),
            "confirmed": bool(o.get("confirmed", True)),
            "test": bool(o.get("test")),
            "sourceName": o.get("source_name"),
            "sourceIdentifier": str(o["id"]) if pos else None,
            "channelInformation": {
                "__typename": "ChannelInformation",
                "id": gid("ChannelInformation", o["id"]),
                "channelId": gid("Channel", channel[3]),
                "displayName": channel[1],
                "app": {
                    "__typename": "App",
                    "id": gid("App", channel[3]),
                    "title": channel[2],
                    "handle": channel[0],
                },
                "channelDefinition": {
                    "__typename": "ChannelDefinition",
                    "id": gid("ChannelDefinition", channel[3]),
                    "handle": channel[0],
                    "channelName": channel[1],
                    "subChannelName": channel[1],
                    "isMarketplace": False,
                },
            },
            "retailLocation": lambda info: self._location_node(o.get("location_id")),
            "physicalLocation": lambda info: self._location_node(o.get("location_id")),
            "customer": lambda info: self._order_customer(o),
            "customerLocale": o.get("customer_locale"),
            "customerAcceptsMarketing": bool(o.get("buyer_accepts_marketing")),
            "displayFinancialStatus": _upper(o.get("financial_status")),
            "displayFulfillmentStatus": (
                "FULFILLED" if o.get("fulfillment_status") == "fulfilled" else "UNFULFILLED"
            ),
            "currencyCode": o.get("currency") or CURRENCY,
            "presentmentCurrencyCode": o.get("presentment_currency") or CURRENCY,
            "taxesIncluded": bool(o.get("taxes_included")),
            "subtotalLineItemsQuantity": sum(i["quantity"] for i in items),
            "totalPriceSet": money_bag(o.get("total_price")),
            "subtotalPriceSet": money_bag(o.get("subtotal_price")),
            "totalDiscountsSet": money_bag(o.get("total_discounts")),
            "totalTaxSet": money_bag(o.get("total_tax")),
            "totalShippingPriceSet": money_bag(shipping),
            "totalRefundedSet": money_bag(refunded_total),
            "totalOutstandingSet": money_bag(o.get("total_outstanding")),
            "currentTotalPriceSet": money_bag(o.get("current_total_price", o.get("total_price"))),
            "currentSubtotalPriceSet": money_bag(
                o.get("current_subtotal_price", o.get("subtotal_price"))
            ),
            "currentTotalDiscountsSet": money_bag(
                o.get("current_total_discounts", o.get("total_discounts"))
            ),
            "currentTotalTaxSet": money_bag(o.get("current_total_tax", o.get("total_tax"))),
            "discountCode": codes[0] if codes else None,
            "discountCodes": codes,
            "discountApplications": discount_applications,
            "paymentGatewayNames": list(o.get("payment_gateway_names") or []),
            "shippingLine": (
                {
                    "id": gid("ShippingLine", shipping_line["id"]),
                    "title": shipping_line["title"],
                    "code": shipping_line.get("code"),
                    "source": "shopify",
                    "carrierIdentifier": None,
                    "deliveryCategory": "pick-up" if pickup else "shipping",
                    "originalPriceSet": money_bag(shipping_line["price"]),
                    "discountedPriceSet": money_bag(shipping_line["price"]),
                }
                if shipping_line
                else None
            ),
            "lineItems": line_items,
            "shippingAddress": self.address(
                o.get("shipping_address"), gid("MailingAddress", o["id"] * 10 + 1, "Address")
            ),
            "billingAddress": self.address(
                o.get("billing_address"), gid("MailingAddress", o["id"] * 10 + 2, "Address")
            ),
            "fulfillments": fulfillments,
            "fulfillmentOrders": fulfillment_orders,
            "refunds": refunds,
            "returns": returns,
            "tags": _tags(o.get("tags")),
            "note": o.get("note"),
        }

    def _order_customer(self, order: Record) -> Node | None:
        record = self.customer_record((order.get("customer") or {}).get("id"))
        return self.customer(record) if record else None

    def fulfillment(self, f: Record, items_by_id: dict[int, Record]) -> Node:
        def lines(info: GraphQLResolveInfo, **a: Any) -> Node:
            return connection(
                info,
                f.get("line_items", []),
                lambda r: (0, r["id"]),
                lambda r: self._fulfillment_line(r, items_by_id),
                **a,
            )

        def tracking(info: GraphQLResolveInfo, first: int | None = None) -> list[Node]:
            return _list_first(list(f.get("tracking") or []), first)

        return {
            "__typename": "Fulfillment",
            "id": gid("Fulfillment", f["id"]),
            "legacyResourceId": f["id"],
            "name": f["name"],
            "status": f.get("status", "SUCCESS"),
            "displayStatus": f.get("display_status"),
            "createdAt": utc(f["created_at"]),
            "updatedAt": utc(f.get("updated_at") or f["created_at"]),
            "deliveredAt": utc(f.get("delivered_at")),
            "location": lambda info: self._location_node(f.get("location_id")),
            "trackingInfo": tracking,
            "fulfillmentLineItems": lines,
        }

    def _fulfillment_line(self, line: Record, items_by_id: dict[int, Record]) -> Node:
        item = items_by_id.get(line["line_item_id"])
        return {
            "__typename": "FulfillmentLineItem",
            "id": gid("FulfillmentLineItem", line["id"]),
            "lineItem": self.line_item(item) if item else None,
            "quantity": line.get("quantity"),
        }

    def fulfillment_order(self, fo: Record) -> Node:
        location = self.location_record(fo.get("location_id"))
        return {
            "__typename": "FulfillmentOrder",
            "id": gid("FulfillmentOrder", fo["id"]),
            "status": fo["status"],
            "requestStatus": fo.get("request_status", "UNSUBMITTED"),
            "createdAt": utc(fo["created_at"]),
            "updatedAt": utc(fo.get("updated_at") or fo["created_at"]),
            "deliveryMethod": {
                "__typename": "DeliveryMethod",
                "id": gid("DeliveryMethod", fo["id"]),
                "methodType": fo["delivery_method"],
            },
            "assignedLocation": {
                "name": (location or {}).get("name"),
                "location": lambda info: self.location(location) if location else None,
            },
        }

    def refund(self, r: Record, order: Record, items_by_id: dict[int, Record]) -> Node:
        amount = sum(
            (
                Decimal(t["amount"])
                for t in r.get("transactions") or []
                if t.get("kind") == "refund"
            ),
            Decimal(0),
        )
        details = self.details(order["id"])
        location_id = details.get("refund_locations", {}).get(str(r["id"]))
        return_record = next(
            (x for x in details.get("returns", []) if x.get("refund_id") == r["id"]), None
        )

        def refund_line(line: Record) -> Node:
            item = items_by_id.get(line["line_item_id"])
            restock = (line.get("restock_type") or "no_restock").upper()
            restocked = restock in ("RETURN", "CANCEL", "LEGACY_RESTOCK")
            return {
                "id": gid("RefundLineItem", line["id"]),
                "lineItem": self.line_item(item) if item else None,
                "quantity": line["quantity"],
                "restockType": restock,
                "restocked": restocked,
                # where the goods went back into stock: none when nothing was restocked
                "location": lambda info: self._location_node(location_id) if restocked else None,
                "subtotalSet": money_bag(line.get("subtotal")),
                "totalTaxSet": money_bag(line.get("total_tax")),
            }

        def lines(info: GraphQLResolveInfo, **a: Any) -> Node:
            return connection(
                info, r.get("refund_line_items") or [], lambda x: (0, x["id"]), refund_line, **a
            )

        def transactions(info: GraphQLResolveInfo, **a: Any) -> Node:
            return connection(
                info,
                r.get("transactions") or [],
                lambda x: (0, x["id"]),
                lambda t: {
                    "__typename": "OrderTransaction",
                    "id": gid("OrderTransaction", t["id"]),
                    "kind": t["kind"].upper(),
                    "status": t["status"].upper(),
                    "gateway": t.get("gateway"),
                    "amountSet": money_bag(t["amount"]),
                    "createdAt": utc(t["created_at"]),
                    "processedAt": utc(t.get("created_at")),
                },
                **a,
            )

        return {
            "__typename": "Refund",
            "id": gid("Refund", r["id"]),
            "legacyResourceId": r["id"],
            "createdAt": utc(r.get("created_at")),
            "updatedAt": utc(r.get("processed_at") or r.get("created_at")),
            "note": r.get("note"),
            "order": lambda info: self.order(order),
            "return": lambda info: (
                self.return_(return_record, order, items_by_id) if return_record else None
            ),
            "totalRefundedSet": money_bag(amount),
            "refundLineItems": lines,
            "transactions": transactions,
        }

    def return_(self, ret: Record, order: Record, items_by_id: dict[int, Record]) -> Node:
        def lines(info: GraphQLResolveInfo, **a: Any) -> Node:
            return connection(
                info,
                ret.get("line_items", []),
                lambda x: (0, x["id"]),
                lambda x: {
                    "__typename": "ReturnLineItem",
                    "id": gid("ReturnLineItem", x["id"]),
                    "quantity": x["quantity"],
                    "returnReason": x.get("reason", "UNKNOWN"),
                    "returnReasonNote": x.get("reason_note") or "",
                    "customerNote": x.get("customer_note"),
                    "fulfillmentLineItem": {
                        "id": gid("FulfillmentLineItem", x["fulfillment_line_item_id"]),
                        "lineItem": (
                            self.line_item(items_by_id[x["line_item_id"]])
                            if x["line_item_id"] in items_by_id
                            else None
                        ),
                        "quantity": x["quantity"],
                    },
                },
                **a,
            )

        def refunds(info: GraphQLResolveInfo, **a: Any) -> Node:
            mine = [r for r in order.get("refunds") or [] if r["id"] == ret.get("refund_id")]
            return connection(
                info,
                mine,
                lambda x: (0, x["id"]),
                lambda r: self.refund(r, order, items_by_id),
                **a,
            )

        return {
            "__typename": "Return",
            "id": gid("Return", ret["id"]),
            "name": ret["name"],
            "status": ret["status"],
            "createdAt": utc(ret["created_at"]),
            "closedAt": utc(ret.get("closed_at")),
            "totalQuantity": sum(x["quantity"] for x in ret.get("line_items", [])),
            "order": lambda info: self.order(order),
            "returnLineItems": lines,
            "refunds": refunds,
        }

    def checkout(self, a: Record) -> Node:
        items = a.get("line_items") or []
        line_total = sum((Decimal(i["price"]) * i["quantity"] for i in items), Decimal(0))

        def lines(info: GraphQLResolveInfo, **args: Any) -> Node:
            return connection(
                info,
                items,
                lambda x: (0, x["id"]),
                lambda x: {
                    "__typename": "AbandonedCheckoutLineItem",
                    "id": gid("AbandonedCheckoutLineItem", x["id"]),
                    "title": x.get("title"),
                    "variantTitle": x.get("variant_title"),
                    "sku": x.get("sku"),
                    "quantity": x["quantity"],
                    "product": lambda info: self._product_node(x.get("product_id")),
                    "variant": lambda info: self._variant_node(x.get("variant_id")),
                    "originalUnitPriceSet": money_bag(x["price"]),
                    "originalTotalPriceSet": money_bag(Decimal(x["price"]) * x["quantity"]),
                    "discountedTotalPriceSet": money_bag(Decimal(x["price"]) * x["quantity"]),
                },
                **args,
            )

        return {
            "__typename": "AbandonedCheckout",
            "id": gid("AbandonedCheckout", a["id"]),
            "name": a.get("name") or f"#{a['id']}",
            "abandonedCheckoutUrl": a["abandoned_checkout_url"],
            "createdAt": utc(a["created_at"]),
            "updatedAt": utc(a["updated_at"]),
            "completedAt": utc(a.get("completed_at")),
            "customer": lambda info: self._order_customer(a),
            "discountCodes": [d["code"] for d in a.get("discount_codes") or []],
            "note": a.get("note"),
            "taxesIncluded": bool(a.get("taxes_included", True)),
            "lineItemsQuantity": sum(i["quantity"] for i in items),
            "lineItems": lines,
            "billingAddress": self.address(
                a.get("billing_address"), gid("MailingAddress", a["id"] * 10 + 2, "Address")
            ),
            "shippingAddress": self.address(
                a.get("shipping_address"), gid("MailingAddress", a["id"] * 10 + 1, "Address")
            ),
            "subtotalPriceSet": money_bag(a.get("subtotal_price")),
            "totalDiscountSet": money_bag(a.get("total_discounts")),
            "totalTaxSet": money_bag(a.get("total_tax")),
            "totalLineItemsPriceSet": money_bag(line_total),
            "totalPriceSet": money_bag(a.get("total_price")),
        }


def _lifetime(created_at: str | None, now: datetime) -> str:
    """Shopify's ``lifetimeDuration``, in words: "about 1 year", "3 months", "12 days"."""
    if not created_at:
        return ""
    days = max((now - datetime.fromisoformat(created_at)).days, 0)
    if days >= 365:
        years = days // 365
        return f"about {years} year{'s' if years > 1 else ''}"
    if days >= 30:
        months = days // 30
        return f"{months} month{'s' if months > 1 else ''}"
    return f"{days} day{'s' if days != 1 else ''}"
