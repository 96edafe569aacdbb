"""tap-square: a seller's shops from the Square API (point of sale), as a Singer tap.

Run ``tap-square --about --format=markdown`` for every setting. The same tap reads a
real Square account (an ``access_token``; ``api_url`` defaults to production) or the
omnicanal sandbox (``api_url`` pointing at ``omnicanal sandbox serve``).
"""

from __future__ import annotations

import re
import typing as t

from singer_sdk import typing as th

from omnicanal_tapkit import PlatformTap, base_url_errors, full_sync_setting, request_settings
from tap_square.client import (
    DEFAULT_API_URL,
    DEFAULT_API_VERSION,
    DEFAULT_SEARCH_LOOKBACK,
    MAX_PAGE_SIZE,
)
from tap_square.errors import SquareError
from tap_square.streams import (
    CatalogItemsStream,
    CustomersStream,
    LocationsStream,
    OrdersStream,
    PaymentsStream,
    RefundsStream,
)

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream

STREAM_TYPES: tuple[type[Stream], ...] = (
    LocationsStream,
    CustomersStream,
    OrdersStream,
    PaymentsStream,
    RefundsStream,
    CatalogItemsStream,
)

_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")


class TapSquare(PlatformTap):
    """Singer tap for the Square API: locations, customers, orders, payments, refunds, items."""

    name = "tap-square"
    package_name = "tap-square-omnicanal"
    #: Failures the command line ends with their message alone (no traceback).
    known_failures = (SquareError,)

    config_jsonschema = th.PropertiesList(
        th.Property(
            "access_token",
            th.StringType,
            required=True,
            secret=True,
            description=(
                "Square access token (a personal access token of the seller's application, "
                "or an OAuth token with MERCHANT_PROFILE_READ, CUSTOMERS_READ, ORDERS_READ, "
                "PAYMENTS_READ and ITEMS_READ), sent as `Authorization: Bearer`. Never logged."
            ),
        ),
        th.Property(
            "api_url",
            th.StringType,
            default=DEFAULT_API_URL,
            description=(
                "Base URL of the Square API, without `/v2`: `https://connect.squareup.com` "
                "(production), `https://connect.squareupsandbox.com` (Square's sandbox) or "
                "the omnicanal sandbox (`http://127.0.0.1:8787`)."
            ),
            examples=["https://connect.squareup.com", "http://127.0.0.1:8787"],
        ),
        th.Property(
            "api_version",
            th.StringType,
            default=DEFAULT_API_VERSION,
            description=(
                "Square API version sent in the `Square-Version` header (`YYYY-MM-DD`). "
                "Pinning it keeps the records' shape stable whatever the application's "
                "default version in the Developer Dashboard."
            ),
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "ISO 8601 date-time. The first sync reads records updated at or after it "
                "(orders, customers, payments, refunds); payments and refunds created "
                "before it are never read (`begin_time`). Later syncs start from the "
                "bookmarks in the state. Empty: the account's whole history."
            ),
            examples=["2024-01-01T00:00:00Z"],
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=MAX_PAGE_SIZE),
            default=MAX_PAGE_SIZE,
            description=(
                "Records per request (`limit`) for customers, payments and refunds, 1 to "
                "100 (Square's maximum). Keep the maximum unless testing pagination."
            ),
        ),
        th.Property(
            "orders_page_size",
            th.IntegerType(minimum=1, maximum=1000),
            default=500,
            description=(
                "Orders per SearchOrders request (`limit`), 1 to 1000; Square's default is 500."
            ),
        ),
        th.Property(
            "search_lookback_seconds",
            th.IntegerType(minimum=0),
            default=DEFAULT_SEARCH_LOOKBACK,
            description=(
                "Seconds before its bookmark that each incremental customers and orders "
                "search starts again. Square's search is eventually consistent: a record "
                "updated just before a sync can become searchable after it, below the "
                "saved bookmark. Records read twice are upserted, not duplicated. 0 turns "
                f"the look-back off. Default: {DEFAULT_SEARCH_LOOKBACK}."
            ),
        ),
        full_sync_setting(),
        *request_settings(
            user_agent="tap-square-omnicanal (singer-sdk)",
            retried_after=(
                "HTTP 429 (RATE_LIMITED; first until the one-second window has room "
                "again, then exponential backoff from 0.25 s), HTTP 5xx, a timeout or a "
                "network error (exponential backoff from 1 s), with jitter"
            ),
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        """One stream per Square resource."""
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    @classmethod
    def config_errors(cls, config: t.Mapping[str, t.Any]) -> list[str]:
        """Rules the JSON schema cannot say clearly, each message naming the setting.

        Checked at start-up, before any request; messages never echo the ``access_token``.
        """
        errors = base_url_errors(config.get("api_url"), example=DEFAULT_API_URL, api_path="v2")
        version = config.get("api_version")
        if isinstance(version, str) and not _API_VERSION.fullmatch(version):
            errors.append(f"`api_version` must be a date such as 2026-09-16, got {version!r}")
        return errors


if __name__ == "__main__":
    TapSquare.cli()
