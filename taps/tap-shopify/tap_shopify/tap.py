"""tap-shopify: a shop's customers, orders, abandoned checkouts, products and locations
from the Shopify GraphQL Admin API, as a Singer tap.

Run ``tap-shopify --about --format=markdown`` for every setting. The same tap reads
a real shop (``shop`` + an Admin API ``access_token``) or the omnicanal sandbox
(``api_url`` pointing at ``omnicanal sandbox serve``).
"""

from __future__ import annotations

import re
import typing as t

from singer_sdk import typing as th

from omnicanal_tapkit import PlatformTap, base_url_errors, full_sync_setting, request_settings
from tap_shopify.errors import ShopifyError
from tap_shopify.graphql import DEFAULT_API_VERSION, ShopifyGraphQL
from tap_shopify.queries import MAX_PAGE_SIZE
from tap_shopify.streams import STREAM_TYPES

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream

_SHOP_HANDLE = re.compile(r"[a-z0-9][a-z0-9-]*(\.myshopify\.com)?")
_API_VERSION = re.compile(r"\d{4}-(01|04|07|10)|unstable")


class TapShopify(PlatformTap):
    """Singer tap for the Shopify GraphQL Admin API: a shop's customers and orders, and more."""

    name = "tap-shopify"
    package_name = "tap-shopify-omnicanal"
    #: Failures the command line ends with their message alone (no traceback).
    known_failures = (ShopifyError,)

    config_jsonschema = th.PropertiesList(
        th.Property(
            "shop",
            th.StringType,
            description=(
                "The shop's handle, e.g. `acme` or `acme.myshopify.com`; requests go to "
                "`https://acme.myshopify.com`. Required unless `api_url` is set."
            ),
            examples=["acme", "acme.myshopify.com"],
        ),
        th.Property(
            "api_url",
            th.StringType,
            description=(
                "Base URL of the shop, without `/admin/...`, e.g. "
                "`https://acme.myshopify.com`, or the omnicanal sandbox "
                "(`http://127.0.0.1:8787`). Overrides `shop` when both are set."
            ),
            examples=["https://acme.myshopify.com", "http://127.0.0.1:8787"],
        ),
        th.Property(
            "access_token",
            th.StringType,
            required=True,
            secret=True,
            description=(
                "Admin API access token of a custom app installed on the shop "
                "(`shpat_…`), sent as the `X-Shopify-Access-Token` header. The app needs "
                "the `read_customers`, `read_orders`, `read_products` and `read_locations` "
                "scopes, and `read_all_orders` for orders older than 60 days (without it "
                "the tap warns and records it in the state). Never logged."
            ),
        ),
        th.Property(
            "api_version",
            th.StringType,
            default=DEFAULT_API_VERSION,
            description=(
                "GraphQL Admin API version in the URL (`/admin/api/{api_version}/graphql.json`):"
                " a quarterly release such as `2026-10` (January, April, July or October; "
                "each is supported for 12 months), or `unstable`. The default is the "
                "stable release the tap's queries were written for."
            ),
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "ISO 8601 date-time. The first sync asks only for records updated at "
                "or after it (`query: \"updated_at:>='…'\"`); later syncs start from the "
                "bookmark in "
                "the state. Leave empty to read the shop's whole history."
            ),
            examples=["2024-01-01T00:00:00Z"],
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=MAX_PAGE_SIZE),
            default=MAX_PAGE_SIZE,
            description=(
                "Root nodes per paginated query (`first`), 1 to 250. The tap lowers it "
                "per stream so a query's requested cost stays under Shopify's 1000-point "
                "cap (orders, with their nested line items, come a few per page)."
            ),
        ),
        th.Property(
            "extraction",
            th.StringType(allowed_values=["auto", "bulk", "pages"]),
            default="auto",
            description=(
                "`auto`: a bulk operation (`bulkOperationRunQuery`) for a first sync or "
                "an increment older than `bulk_threshold_days`, paginated queries for "
                "smaller increments. `bulk` or `pages` forces one path for every stream "
                "(locations are always paged: a shop has few)."
            ),
        ),
        th.Property(
            "bulk_threshold_days",
            th.NumberType(minimum=0),
            default=3,
            description=(
                "In `auto` extraction, a stream whose bookmark is older than this many "
                "days is read with a bulk operation instead of pages."
            ),
        ),
        th.Property(
            "bulk_poll_interval",
            th.NumberType(minimum=0),
            default=10,
            description=(
                "Longest wait, in seconds, between two polls of a running bulk "
                "operation (polling starts at 0.5 s and grows by half each time up to it)."
            ),
        ),
        th.Property(
            "bulk_timeout",
            th.NumberType(minimum=1),
            default=21600,
            description=(
                "Seconds to wait for one bulk operation to finish before the sync "
                "fails (Shopify itself allows up to 10 days)."
            ),
        ),
        full_sync_setting(),
        *request_settings(
            user_agent="tap-shopify-omnicanal (singer-sdk)",
            retried_after=(
                "a THROTTLED answer (waiting until the cost budget holds the query's cost), "
                "HTTP 429 (waiting `Retry-After`), HTTP 5xx or a network error (exponential "
                "backoff from 1 s)"
            ),
            user_agent_note=(
                "Shopify asks apps to identify themselves, e.g. "
                "`acme-data-team (data@acme.example)`."
            ),
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        """One stream per Shopify resource, sharing one client (one cost budget per app)."""
        client = ShopifyGraphQL(self.config, self.logger)
        return [stream_type(tap=self, client=client) for stream_type in STREAM_TYPES]

    @classmethod
    def config_errors(cls, config: t.Mapping[str, t.Any]) -> list[str]:
        """Rules the JSON schema cannot say clearly, each message naming the setting.

        Checked at start-up, before any request, so a bad config fails with a message
        that names the setting (``shop``/``api_url``, ``api_version``). Messages never
        echo the ``access_token``.
        """
        shop = config.get("shop")
        api_url = config.get("api_url")
        errors = base_url_errors(api_url, example="https://acme.myshopify.com", api_path="admin")
        if not shop and not api_url:
            errors.append(
                "Set `shop` (e.g. `acme` for https://acme.myshopify.com) or `api_url` "
                "(e.g. http://127.0.0.1:8787 for the sandbox); neither is set"
            )
        if shop and isinstance(shop, str) and not api_url:
            handle = shop.strip().lower().rstrip("/")
            handle = handle.removeprefix("https://").removeprefix("http://")
            if not _SHOP_HANDLE.fullmatch(handle):
                errors.append(
                    "`shop` must be the shop handle (`acme`) or its myshopify.com domain "
                    f"(`acme.myshopify.com`), got {shop!r}"
                )
        version = config.get("api_version")
        if isinstance(version, str) and not _API_VERSION.fullmatch(version):
            errors.append(
                f"`api_version` must look like 2026-10 (a year and 01, 04, 07 or 10) or be "
                f"`unstable`, got {version!r}"
            )
        return errors


if __name__ == "__main__":
    TapShopify.cli()
