"""Errors the tap raises when Shopify (or the way to it) fails for good.

Each one carries a message written for the person running the pipeline: what went
wrong, in which stream, and which setting to look at. The tap's command line prints
these messages without a traceback (see ``TapShopify.known_failures``); anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError


class ShopifyError(FatalAPIError):
    """A failure talking to Shopify that retrying will not fix."""


class ShopifyAuthError(ShopifyError):
    """Shopify refused the access token (401) or its scopes (403, ACCESS_DENIED)."""


class ShopifyConnectionError(ShopifyError):
    """Shopify could not be reached at all (DNS, refused connection, timeout)."""


class ShopifyRetriesExhaustedError(ShopifyError):
    """Shopify kept answering THROTTLED, 429 or 5xx after every retry."""


class ShopifyGraphQLError(ShopifyError):
    """Shopify answered a query with GraphQL ``errors`` (a bad field, a bad filter…)."""


class ShopifyBulkOperationError(ShopifyError):
    """A bulk operation could not start, failed, was cancelled or expired."""
