"""The Shopify resources this tap reads, over the GraphQL Admin API.

Every stream is one root connection (see :mod:`tap_shopify.queries`) read in one of
two ways, chosen per run:

- **bulk** (``bulkOperationRunQuery``) for a full extract or a large increment: the
  first run, or a bookmark older than ``bulk_threshold_days``;
- **pages** (``first``/``after``) for the small increments of a scheduled sync, where
  starting a bulk operation and waiting for it costs more than it saves.

A connection inside a list field (a refund's ``refundLineItems``, see
:class:`tap_shopify.queries.ListField`) rides along in page queries; Shopify refuses it
in a bulk query, so after a bulk operation the stream asks for it with ``nodes(ids:)``
in batches of the items the bulk result carried, paced by the same cost budget.

``extraction`` forces one or the other. Both paths give the same records (see
:mod:`tap_shopify.shapes`). The increment is ``updated_at >= bookmark`` (inclusive:
delivery is at-least-once, and loaders upsert on ``id``). Bulk output is unordered,
so the streams are not declared sorted: the bookmark is the largest ``updated_at``
seen, saved when a stream finishes.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel

from omnicanal_tapkit import ConformedRecords, RetiresMissingOnFullSync
from tap_shopify import queries, shapes
from tap_shopify.bulk import BulkOperationRunner

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_shopify.graphql import ShopifyGraphQL

SCOPES_QUERY = "query AccessScopes { currentAppInstallation { accessScopes { handle } } }"
#: Without read_all_orders, Shopify shows an app only the orders of the last 60 days.
ORDER_HISTORY_DAYS = 60


def _search_timestamp(value: str) -> str:
    """A bookmark as Shopify's search syntax expects it: UTC, seconds, ``Z``."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ShopifyStream(ConformedRecords, Stream):
    """A root connection of the GraphQL Admin API, synced incrementally on ``updated_at``.

    Records are conformed to the schema by omnicanal-tapkit's compiled conformer, not the
    SDK's: in ``get_records``, in the same pass that shapes a GraphQL node into a record
    (``shapes.conformed_record``), so ``post_process`` passes them on as they are.
    """

    resource: t.ClassVar[queries.Resource]
    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    replication_key = "updated_at"
    #: Bulk results come in no particular order; see the module docstring.
    is_sorted = False
    #: Whether a large extract may use a bulk operation (tiny resources never need it).
    bulk_capable: t.ClassVar[bool] = True
    #: ``UnsignedInt64`` fields (JSON strings) to emit as integers.
    integer_fields: t.ClassVar[tuple[str, ...]] = ()

    def __init__(self, tap: Tap, client: ShopifyGraphQL) -> None:
        super().__init__(tap=tap)
        self.client = client
        #: How the last sync of this stream read Shopify: "bulk" or "pages".
        self.extraction_used: str | None = None

    # --- choosing the path ------------------------------------------------------------

    def extraction_mode(self, start: str | None) -> str:
        """``bulk`` or ``pages`` for a run starting at ``start`` (None: whole history)."""
        setting = self.config.get("extraction", "auto")
        if not self.bulk_capable or setting == "pages":
            return "pages"
        if setting == "bulk" or not start:
            return "bulk"
        threshold = dt.timedelta(days=float(self.config.get("bulk_threshold_days", 3)))
        started = dt.datetime.fromisoformat(_search_timestamp(start).replace("Z", "+00:00"))
        return "bulk" if dt.datetime.now(dt.UTC) - started > threshold else "pages"

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        start = None
        if self.replication_key:
            value = self.get_starting_replication_key_value(context)
            start = _search_timestamp(str(value)) if value else None
        search = None
        if start and self.resource.filter_field:
            search = queries.search_since(self.resource.filter_field, start)
        mode = self.extraction_mode(start)
        self.extraction_used = mode
        self.logger.info(
            "stream '%s': reading %s by %s",
            self.name,
            f"records updated since {start}" if search else "every record",
            "bulk operation" if mode == "bulk" else "paginated queries",
        )
        nodes = self._bulk(search) if mode == "bulk" else self._pages(search)
        # A resource Shopify cannot filter on updated_at is read whole and filtered here.
        since = None
        if start and not self.resource.filter_field:
            since = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        conformer = self.schema_conformer()
        # tapkit conforms (the SDK's switch off): in the same pass as the shaping
        fused = self.TYPE_CONFORMANCE_LEVEL is TypeConformanceLevel.NONE
        for node in nodes:
            if fused:
                record, dropped = shapes.conformed_record(node, conformer, self.integer_fields)
            else:
                record, dropped = shapes.to_record(node, self.integer_fields), []
            if since is not None and self._updated_before(record, since):
                continue
            self.warn_dropped(dropped)
            self.__dict__["_conformed"] = record
            yield record

    def conform_record(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """The record ``get_records`` built and conformed in one pass (see
        ``shapes.conformed_record``) goes out as it is; any other (a ``post_process``
        that returns a new one) is conformed as ``ConformedRecords`` does."""
        if record is self.__dict__.get("_conformed"):
            return record
        return super().conform_record(record)

    @staticmethod
    def _updated_before(record: dict[str, t.Any], since: dt.datetime) -> bool:
        value = record.get("updated_at")
        if not isinstance(value, str):
            return False  # no timestamp: keep it rather than lose it
        return dt.datetime.fromisoformat(value) < since

    # --- bulk ---------------------------------------------------------------------------

    def _bulk(self, search: str | None) -> Iterator[dict[str, t.Any]]:
        runner = BulkOperationRunner(
            self.client,
            self.logger,
            poll_interval=float(self.config.get("bulk_poll_interval", 10)),
            timeout=float(self.config.get("bulk_timeout", 6 * 3600)),
            sleep=self.client.sleep,
            clock=self.client.clock,
        )
        nodes = runner.records(self.resource, search, stream=self.name)
        for listed in self.resource.lists:
            nodes = self._fill_list(nodes, listed)
        yield from nodes

    def _fill_list(
        self, nodes: Iterable[dict[str, t.Any]], listed: queries.ListField
    ) -> Iterator[dict[str, t.Any]]:
        """Give the items of ``listed`` in bulk-read nodes their connections.

        Nodes are held back until their items fill one ``nodes(ids:)`` query (as many
        ids as the cost cap allows), so every query but the last is full whatever the
        number of nodes without items in between; memory holds one batch of nodes.
        Items are taken in node order and a batch is sent as soon as one fills, so the
        items left over are all the last node's: it waits for the next batch.
        """
        batch = listed.items_batch()
        held: list[dict[str, t.Any]] = []
        items: list[dict[str, t.Any]] = []
        for node in nodes:
            held.append(node)
            items += [item for item in node.get(listed.field) or [] if item.get("id")]
            if len(items) >= batch:
                while len(items) >= batch:
                    self._fetch_items(listed, items[:batch])
                    items = items[batch:]
                ready, held = (held[:-1], held[-1:]) if items else (held, [])
                yield from ready
        if items:
            self._fetch_items(listed, items)
        yield from held

    def _fetch_items(self, listed: queries.ListField, items: list[dict[str, t.Any]]) -> None:
        by_id = {item["id"]: item for item in items}
        ids = list(by_id)
        batch = listed.items_batch()
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            data = self.client.execute(
                listed.items_query(),
                {"ids": chunk},
                stream=self.name,
                estimated_cost=listed.items_cost(len(chunk)),
            )
            found = {
                answer["id"]: answer
                for answer in data.get("nodes") or []
                if isinstance(answer, dict) and answer.get("id")
            }
            for item_id in chunk:
                answer = found.get(item_id)
                if answer is None:
                    msg = (
                        f"stream '{self.name}': Shopify did not return {item_id} asked for "
                        f"its {', '.join(c.field for c in listed.connections)} (deleted since "
                        "the bulk operation? run the sync again)"
                    )
                    raise RuntimeError(msg)
                self._complete_item(listed, by_id[item_id], answer)

    def _complete_item(
        self, listed: queries.ListField, item: dict[str, t.Any], source: dict[str, t.Any]
    ) -> None:
        """Put each connection of ``source`` on ``item`` as a list, paging the rest."""
        for connection in listed.connections:
            value = source.get(connection.field) or {}
            children = list(value.get("nodes") or [])
            info = value.get("pageInfo") or {}
            while info.get("hasNextPage") and info.get("endCursor"):
                data = self.client.execute(
                    listed.more_query(connection),
                    {"id": item["id"], "after": info["endCursor"]},
                    stream=self.name,
                    estimated_cost=listed.more_cost(connection),
                )
                more = ((data.get("node") or {}).get(connection.field)) or {}
                children += more.get("nodes") or []
                info = more.get("pageInfo") or {}
            item[connection.field] = children

    # --- pages --------------------------------------------------------------------------

    def _pages(self, search: str | None) -> Iterator[dict[str, t.Any]]:
        resource = self.resource
        first = resource.page_size_for(int(self.config.get("page_size", queries.MAX_PAGE_SIZE)))
        query = resource.page_query()
        after: str | None = None
        while True:
            variables: dict[str, t.Any] = {"first": first, "after": after}
            if resource.filter_field:
                variables["query"] = search
            data = self.client.execute(
                query, variables, stream=self.name, estimated_cost=resource.page_cost(first)
            )
            page = data.get(resource.root) or {}
            for node in page.get("nodes") or []:
                yield self._complete(node)
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")
            if not after:
                msg = f"stream '{self.name}': Shopify said there is a next page but gave no cursor"
                raise RuntimeError(msg)

    def _complete(self, node: dict[str, t.Any]) -> dict[str, t.Any]:
        """Turn each nested connection into a list, fetching what its first page left out."""
        for listed in self.resource.lists:
            for item in node.get(listed.field) or []:
                self._complete_item(listed, item, dict(item))
        for connection in self.resource.connections:
            value = node.get(connection.field) or {}
            items = [self._child(child, connection) for child in value.get("nodes") or []]
            info = value.get("pageInfo") or {}
            while info.get("hasNextPage") and info.get("endCursor"):
                data = self.client.execute(
                    self.resource.more_query(connection),
                    {"id": node["id"], "after": info["endCursor"]},
                    stream=self.name,
                    estimated_cost=self.resource.more_cost(connection),
                )
                more = ((data.get("node") or {}).get(connection.field)) or {}
                items += [self._child(child, connection) for child in more.get("nodes") or []]
                info = more.get("pageInfo") or {}
            node[connection.field] = items
        return node

    @staticmethod
    def _child(child: dict[str, t.Any], connection: queries.Connection) -> dict[str, t.Any]:
        if not connection.keep_typename:
            child.pop("__typename", None)
        return child


class CustomersStream(RetiresMissingOnFullSync, ShopifyStream):
    """``customers``: accounts with their email/SMS consent, addresses and tags.

    Carries the identifiers identity resolution needs (email, phone, addresses; a
    Brazilian store keeps the CPF in the default address's ``company``).
    Needs ``read_customers``.
    """

    name = "customers"
    resource = queries.CUSTOMERS
    schema = shapes.CUSTOMER_SCHEMA
    integer_fields = ("number_of_orders",)


class OrdersStream(ShopifyStream):
    """``orders``: every order, open, closed or cancelled, online or at the till (POS).

    With line items, discounts, channel and retail location, fulfillments (with how
    they are delivered: shipped or picked up, and where), refunds and returns. Needs
    ``read_orders``; without ``read_all_orders`` Shopify shows only the last 60 days,
    which the stream checks and reports (see :meth:`check_order_history`).
    """

    name = "orders"
    resource = queries.ORDERS
    schema = shapes.ORDER_SCHEMA

    #: True/False once checked; None if the scopes could not be read.
    read_all_orders: bool | None = None

    def check_order_history(self) -> bool | None:
        """Ask Shopify for the app's scopes and warn when ``read_all_orders`` is missing.

        The answer is also kept in the stream's state (``order_history``), so whoever
        reads the state (or the warehouse's copy of it) can tell a short history from
        a quiet shop.
        """
        try:
            data = self.client.execute(SCOPES_QUERY, stream=self.name)
        except Exception as exc:  # noqa: BLE001 - the check must not stop the extract
            self.logger.warning(
                "stream 'orders': could not read the app's access scopes (%s); cannot tell "
                "whether Shopify hides orders older than %d days",
                exc,
                ORDER_HISTORY_DAYS,
            )
            return None
        installation = data.get("currentAppInstallation") or {}
        handles = {scope.get("handle") for scope in installation.get("accessScopes") or []}
        self.read_all_orders = "read_all_orders" in handles
        visible_since = None
        if not self.read_all_orders:
            visible_since = (
                dt.datetime.now(dt.UTC) - dt.timedelta(days=ORDER_HISTORY_DAYS)
            ).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.logger.warning(
                "stream 'orders': the app lacks the read_all_orders access scope, so Shopify "
                "returns only orders created in the last %d days (since %s); older orders "
                "are missing from this extract. Grant read_all_orders to the app (Shopify "
                "admin > Apps > Develop apps > API scopes, or request it for a public app) "
                "and sync again with a start_date before the history you need.",
                ORDER_HISTORY_DAYS,
                visible_since,
            )
        self.stream_state["order_history"] = {
            "read_all_orders": self.read_all_orders,
            "visible_since": visible_since,
        }
        return self.read_all_orders

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        self.check_order_history()
        yield from super().get_records(context)


class AbandonedCheckoutsStream(ShopifyStream):
    """``abandonedCheckouts``: checkouts with contact details that were not completed.

    Needs ``read_orders`` (and the staff permission to manage abandoned checkouts).
    """

    name = "abandoned_checkouts"
    resource = queries.ABANDONED_CHECKOUTS
    schema = shapes.ABANDONED_CHECKOUT_SCHEMA


class ProductsStream(RetiresMissingOnFullSync, ShopifyStream):
    """``products`` with their ``variants`` (sku, price, inventory). Needs ``read_products``."""

    name = "products"
    resource = queries.PRODUCTS
    schema = shapes.PRODUCT_SCHEMA


class LocationsStream(ShopifyStream):
    """``locations``: the shop's warehouses and retail stores, active or not.

    The ``locations`` query filters on ``created_at`` but not ``updated_at``, and a shop
    has a handful: each run reads them all (in pages, never bulk) and emits those
    updated since the bookmark, so the stream is incremental like the others.
    Needs ``read_locations``.
    """

    name = "locations"
    resource = queries.LOCATIONS
    schema = shapes.LOCATION_SCHEMA
    bulk_capable = False


STREAM_TYPES: tuple[type[ShopifyStream], ...] = (
    CustomersStream,
    OrdersStream,
    AbandonedCheckoutsStream,
    ProductsStream,
    LocationsStream,
)
