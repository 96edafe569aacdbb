"""tap-vtex: orders (OMS) and customer profiles (Master Data CL) from VTEX, as a Singer tap.

Run ``tap-vtex --about --format=markdown`` for every setting. The same tap reads a real
account (``account`` + an application key and token) or the omnicanal sandbox
(``api_url`` pointing at ``omnicanal sandbox serve``). VTEX has no official Python
client; the requests follow its Orders API and Master Data API v2 references.
"""

from __future__ import annotations

import re
import sys
import typing as t
from urllib.parse import urlsplit

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from tap_vtex.errors import VtexError
from tap_vtex.paging import MAX_LIST_PAGES
from tap_vtex.streams import CustomersStream, OrdersStream

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream

STREAM_TYPES: tuple[type[Stream], ...] = (OrdersStream, CustomersStream)

_ACCOUNT = re.compile(r"[a-z0-9][a-z0-9-]*")


class TapVtex(Tap):
    """Singer tap for VTEX: OMS orders with their detail, Master Data CL profiles."""

    name = "tap-vtex"
    package_name = "tap-vtex-omnicanal"

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
        th.Property(
            "user_agent",
            th.StringType,
            description=(
                "User-Agent header for every request. Defaults to "
                "`tap-vtex-omnicanal (singer-sdk)`."
            ),
        ),
        th.Property(
            "request_timeout",
            th.IntegerType(minimum=1),
            default=60,
            description=(
                "Seconds to wait for each HTTP answer before treating it as failed "
                "(and retrying it)."
            ),
        ),
        th.Property(
            "max_retries",
            th.IntegerType(minimum=0),
            default=5,
            description=(
                "How many times a request is retried after HTTP 429 (waiting "
                "`Retry-After`), HTTP 5xx, a timeout or a network error (exponential "
                "backoff from 1 s) before the sync fails."
            ),
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        """One stream per VTEX resource."""
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """JSON-schema validation, plus the rules a schema cannot say clearly.

        Messages never echo the app key or token.
        """
        try:
            errors = super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as exc:
            errors = list(exc.errors)
        errors += _vtex_config_errors(self._config)
        if errors and raise_errors:
            raise ConfigValidationError(
                "Config validation failed",
                errors=errors,
                schema=self.config_jsonschema,
            )
        return errors

    @classmethod
    def invoke(cls, **kwargs: t.Any) -> None:  # type: ignore[override]
        """Run the CLI; a known VTEX failure ends with its message, not a traceback."""
        try:
            super().invoke(**kwargs)
        except VtexError as exc:
            cls.logger.error("%s", exc)  # noqa: TRY400 - the message is the whole story
            sys.exit(1)


def _vtex_config_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """Checks across settings, each message naming the setting to fix."""
    errors: list[str] = []
    account = config.get("account")
    api_url = config.get("api_url")
    if not account and not api_url:
        errors.append(
            "Set `account` (e.g. `acme` for https://acme.vtexcommercestable.com.br) or "
            "`api_url` (e.g. http://127.0.0.1:8787 for the sandbox); neither is set"
        )
    if api_url and isinstance(api_url, str):
        parts = urlsplit(api_url.strip())
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            errors.append(
                "`api_url` must be an http(s) URL such as "
                f"https://acme.vtexcommercestable.com.br, got {api_url!r}"
            )
        elif "/api/" in parts.path + "/":
            errors.append(f"`api_url` is the account's base URL, without /api/…; got {api_url!r}")
    if account and isinstance(account, str) and not api_url:
        if not _ACCOUNT.fullmatch(account.strip().lower()):
            errors.append(f"`account` must be a VTEX account name such as `acme`, got {account!r}")
    return errors


if __name__ == "__main__":
    TapVtex.cli()
