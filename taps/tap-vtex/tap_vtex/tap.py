"""tap-vtex: orders (OMS) and customer profiles (Master Data CL) from VTEX, as a Singer tap.

Run ``tap-vtex --about --format=markdown`` for every setting. The same tap reads a real
account (``account`` + an application key and token) or the omnicanal sandbox
(``api_url`` pointing at ``omnicanal sandbox serve``). VTEX has no official Python
client; the requests follow its Orders API and Master Data API v2 references.
"""

from __future__ import annotations

import re
import typing as t

from singer_sdk import typing as th

from omnicanal_tapkit import PlatformTap, base_url_errors, full_sync_setting, request_settings
from tap_vtex.errors import VtexError
from tap_vtex.paging import MAX_LIST_PAGES
from tap_vtex.streams import CustomersStream, OrdersStream

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream

STREAM_TYPES: tuple[type[Stream], ...] = (OrdersStream, CustomersStream)

_ACCOUNT = re.compile(r"[a-z0-9][a-z0-9-]*")


class TapVtex(PlatformTap):
    """Singer tap for VTEX: OMS orders with their detail, Master Data CL profiles."""

    name = "tap-vtex"
    package_name = "tap-vtex-omnicanal"
    #: Failures the command line ends with their message alone (no traceback).
    known_failures = (VtexError,)

    config_jsonschema = th.PropertiesList(
        th.Property(
            "account",
            th.StringType,
            description=(
                "The VTEX account name, e.g. `acme`; requests go to "
                "`https://acme.{environment}.com.br`. Required unless `api_url` is set."
            ),
            examples=["acme"],
        ),
        th.Property(
            "environment",
            th.StringType,
            default="vtexcommercestable",
            description=(
                "The VTEX environment in the host name: `vtexcommercestable` (production) "
                "or `vtexcommercebeta`."
            ),
        ),
        th.Property(
            "api_url",
            th.StringType,
            description=(
                "Base URL of the account, without `/api/...`, e.g. "
                "`https://acme.vtexcommercestable.com.br`, or the omnicanal sandbox "
                "(`http://127.0.0.1:8787`). Overrides `account` when both are set."
            ),
            examples=["https://acme.vtexcommercestable.com.br", "http://127.0.0.1:8787"],
        ),
        th.Property(
            "app_key",
            th.StringType,
            required=True,
            secret=True,
            description=(
                "VTEX application key (`vtexappkey-<account>-…`), sent as "
                "`X-VTEX-API-AppKey`. Its role needs the OMS resources List Orders and "
                "View order, and Master Data's Read only documents. Never logged."
            ),
        ),
        th.Property(
            "app_token",
            th.StringType,
            required=True,
            secret=True,
            description=(
                "The application token paired with `app_key`, sent as "
                "`X-VTEX-API-AppToken`. Never logged."
            ),
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "ISO 8601 date-time. The first sync reads orders created and profiles "
                "updated at or after it; later syncs start from the bookmarks in the "
                "state. Empty: the last two years of orders (all the OMS list shows) and "
                "every profile."
            ),
            examples=["2024-01-01T00:00:00Z"],
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=100),
            default=100,
            description=(
                "Orders per OMS list page (`per_page`), 1 to 100. The list serves 30 "
                "pages per filter, so a smaller page makes the tap split date windows "
                "sooner; keep 100 unless testing."
            ),
        ),
        th.Property(
            "max_list_pages",
            th.IntegerType(minimum=1, maximum=MAX_LIST_PAGES),
            default=MAX_LIST_PAGES,
            description=(
                "Pages the OMS list may serve for one date window before the tap splits "
                "the window: VTEX's limit, 30. Lower only to test window splitting."
            ),
        ),
        th.Property(
            "order_lookback_days",
            th.IntegerType(minimum=0),
            default=30,
            description=(
                "Incremental syncs re-walk orders created this many days before the "
                "`lastChange` bookmark (the OMS list cannot filter on lastChange) and "
                "emit those changed since; raise it if orders change long after they "
                "are placed."
            ),
        ),
        th.Property(
            "scroll_size",
            th.IntegerType(minimum=1, maximum=1000),
            default=1000,
            description="CL profiles per Master Data scroll page (`_size`), 1 to 1000.",
        ),
        full_sync_setting(),
        *request_settings(
            user_agent="tap-vtex-omnicanal (singer-sdk)",
            retried_after=(
                "HTTP 429 (waiting `Retry-After`), HTTP 5xx, a timeout or a network error "
                "(exponential backoff from 1 s)"
            ),
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        """One stream per VTEX resource."""
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    @classmethod
    def config_errors(cls, config: t.Mapping[str, t.Any]) -> list[str]:
        """Rules the JSON schema cannot say clearly, each message naming the setting.

        Checked at start-up, before any request; messages never echo the app key or token.
        """
        account = config.get("account")
        api_url = config.get("api_url")
        errors = base_url_errors(
            api_url, example="https://acme.vtexcommercestable.com.br", api_path="api"
        )
        if not account and not api_url:
            errors.append(
                "Set `account` (e.g. `acme` for https://acme.vtexcommercestable.com.br) or "
                "`api_url` (e.g. http://127.0.0.1:8787 for the sandbox); neither is set"
            )
        if account and isinstance(account, str) and not api_url:
            if not _ACCOUNT.fullmatch(account.strip().lower()):
                errors.append(
                    f"`account` must be a VTEX account name such as `acme`, got {account!r}"
                )
        return errors


if __name__ == "__main__":
    TapVtex.cli()
