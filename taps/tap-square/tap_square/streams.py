"""The Square resources this tap reads, and how each one is synced.

- ``locations``: every shop (full table); the parent of the per-location streams;
- ``customers``: ``POST /v2/customers/search`` filtered on ``updated_at`` (Square's
  customer search cannot sort by it, so the stream is unsorted: its bookmark is the
  latest ``updated_at`` seen, saved once the stream has finished);
- ``orders``: ``POST /v2/orders/search`` per location, filtered and sorted on
  ``updated_at`` (Square requires the sort field to be the filtered one), so every page
  checkpoints a resumable bookmark per location;
- ``payments``: ``GET /v2/payments`` per location (without ``location_id`` Square lists
  the main location only), sorted and filtered on ``updated_at``, with ``begin_time`` at
  ``start_date`` (without it Square looks back one year only);
- ``refunds``: ``GET /v2/refunds`` (all locations), like payments;
- ``catalog_items``: ``GET /v2/catalog/list?types=ITEM`` (full table: ListCatalog has no
  time filter).
"""

from __future__ import annotations

import datetime as dt
import typing as t

from singer_sdk import StreamSchema

from omnicanal_tapkit import RetiresMissingOnFullSync
from tap_square.client import SCHEMAS_DIR, SquareSearchStream, SquareStream, square_time

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record

#: Square's earliest timestamps; ``begin_time`` when no start date is configured.
EPOCH = dt.datetime(2009, 1, 1, tzinfo=dt.UTC)


class LocationsStream(SquareStream):
    """``GET /v2/locations``: the seller's shops, with address, time zone and status."""

    name = "locations"
    path = "/v2/locations"
    records_key = "locations"
    required_permission = "MERCHANT_PROFILE_READ"
    schema = StreamSchema(SCHEMAS_DIR)

    def get_new_paginator(self) -> None:  # type: ignore[override]
        """ListLocations returns every location at once."""
        return None

    def get_child_context(self, record: Record, context: Context | None) -> dict:
        return {"location_id": record["id"]}


class CustomersStream(RetiresMissingOnFullSync, SquareSearchStream):
    """``POST /v2/customers/search``: customer profiles changed since the bookmark.

    Carries what the till recorded about a person (email, phone, CPF in
    ``reference_id`` or ``note``, birthday, address) and the email-marketing preference.
    """

    name = "customers"
    path = "/v2/customers/search"
    records_key = "customers"
    replication_key = "updated_at"
    is_sorted = False
    required_permission = "CUSTOMERS_READ"
    schema = StreamSchema(SCHEMAS_DIR)

    def search_body(self, context: Context | None) -> dict[str, t.Any]:
        query: dict[str, t.Any] = {"sort": {"field": "CREATED_AT", "order": "ASC"}}
        if (start := self.start_time(context)) is not None:
            query["filter"] = {"updated_at": {"start_at": square_time(start)}}
        return {"limit": self.page_size, "query": query}


class OrdersStream(SquareSearchStream):
    """``POST /v2/orders/search`` for one location: sales, returns and exchanges.

    All states (open, completed, canceled) are read. Returns of online orders are
    orders whose ``returns`` have no ``source_order_id``; their ``reference_id`` is what
    the clerk typed about the online order.
    """

    name = "orders"
    path = "/v2/orders/search"
    records_key = "orders"
    replication_key = "updated_at"
    is_sorted = True
    #: The look-back (``start_time``) rereads orders below the saved bookmark, so the
    #: bookmark steps back before it moves on: Square's sort is trusted, not checked.
    check_sorted = False
    parent_stream_type = LocationsStream
    state_partitioning_keys: t.ClassVar[list[str]] = ["location_id"]
    required_permission = "ORDERS_READ"
    schema = StreamSchema(SCHEMAS_DIR)

    def search_body(self, context: Context | None) -> dict[str, t.Any]:
        assert context is not None  # a child of locations
        query: dict[str, t.Any] = {
            "filter": {"state_filter": {"states": ["OPEN", "COMPLETED", "CANCELED"]}},
            "sort": {"sort_field": "UPDATED_AT", "sort_order": "ASC"},
        }
        if (start := self.start_time(context)) is not None:
            query["filter"]["date_time_filter"] = {"updated_at": {"start_at": square_time(start)}}
        return {
            "location_ids": [context["location_id"]],
            "limit": int(self.config.get("orders_page_size", 500)),
            "query": query,
        }


class _MoneyStream(SquareStream):
    """ListPayments and ListPaymentRefunds: the same windows, sort and paging."""

    replication_key = "updated_at"
    is_sorted = True

    def get_url_params(self, context: Context | None, next_page_token: str | None) -> dict:
        start = self.config.get("start_date")
        begin = dt.datetime.fromisoformat(start.replace("Z", "+00:00")) if start else EPOCH
        params: dict[str, t.Any] = {
            "begin_time": square_time(begin),
            "sort_field": "UPDATED_AT",
            "sort_order": "ASC",
            "limit": self.page_size,
        }
        if (updated := self.get_starting_timestamp(context)) is not None:
            params["updated_at_begin_time"] = square_time(updated)
        if context and context.get("location_id"):
            params["location_id"] = context["location_id"]
        if next_page_token:
            params["cursor"] = next_page_token
        return params


class PaymentsStream(_MoneyStream):
    """``GET /v2/payments`` for one location: card and cash payments of the orders."""

    name = "payments"
    path = "/v2/payments"
    records_key = "payments"
    parent_stream_type = LocationsStream
    state_partitioning_keys: t.ClassVar[list[str]] = ["location_id"]
    required_permission = "PAYMENTS_READ"
    schema = StreamSchema(SCHEMAS_DIR)


class RefundsStream(_MoneyStream):
    """``GET /v2/refunds``: refunds at every location, linked to a payment or not.

    An unlinked refund (``unlinked``, no ``payment_id``) gives money back for something
    Square never took payment for, such as an online order returned in a shop.
    """

    name = "refunds"
    path = "/v2/refunds"
    records_key = "refunds"
    required_permission = "PAYMENTS_READ"
    schema = StreamSchema(SCHEMAS_DIR)


class CatalogItemsStream(SquareStream):
    """``GET /v2/catalog/list?types=ITEM``: the products sold, with their variations."""

    name = "catalog_items"
    path = "/v2/catalog/list"
    records_key = "objects"
    required_permission = "ITEMS_READ"
    schema = StreamSchema(SCHEMAS_DIR)

    def get_url_params(self, context: Context | None, next_page_token: str | None) -> dict:
        params: dict[str, t.Any] = {"types": "ITEM"}
        if next_page_token:
            params["cursor"] = next_page_token
        return params
