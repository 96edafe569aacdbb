"""The Shopify resources this tap reads: customers and orders.

Both are list endpoints of the Admin REST API with the same paging, filtering and
rate-limit rules, which live in ``client.ShopifyStream``; a stream here only names
its path, the key its records come under, and the scope it needs.
"""

from __future__ import annotations

import typing as t

from singer_sdk import StreamSchema

from tap_shopify.client import SCHEMAS_DIR, ShopifyStream


class CustomersStream(ShopifyStream):
    """``GET /admin/api/{version}/customers.json``: people with an account or a past order.

    Carries the identifiers identity resolution needs (email, phone, addresses) and
    the consent state (``email_marketing_consent``, ``sms_marketing_consent``).
    """

    name = "customers"
    path = "/customers.json"
    records_key = "customers"
    required_scope = "read_customers"
    schema = StreamSchema(SCHEMAS_DIR)


class OrdersStream(ShopifyStream):
    """``GET /admin/api/{version}/orders.json?status=any``: every order, open or not.

    ``status=any`` matters: Shopify's default is ``open`` only, which would miss
    closed and cancelled orders and, incrementally, every order that gets closed.
    Shopify shows orders older than 60 days only to apps with ``read_all_orders``.
    """

    name = "orders"
    path = "/orders.json"
    records_key = "orders"
    first_page_params: t.ClassVar[dict[str, str]] = {"status": "any"}
    required_scope = "read_orders"
    schema = StreamSchema(SCHEMAS_DIR)
