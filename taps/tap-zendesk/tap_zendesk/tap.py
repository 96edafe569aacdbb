"""tap-zendesk: a help desk from the Zendesk Support API, as a Singer tap.

Run ``tap-zendesk --about --format=markdown`` for every setting. The same tap reads a
real Zendesk account (``api_url`` ``https://<subdomain>.zendesk.com`` and an agent's API
token, or an OAuth token) or the omnicanal sandbox (``api_url`` pointing at
``omnicanal sandbox serve``).
"""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from omnicanal_tapkit import PlatformTap, base_url_errors, request_settings
from tap_zendesk.client import (
    DEFAULT_API_URL_EXAMPLE,
    EXPORT_REQUESTS_PER_MINUTE,
    MAX_EXPORT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    ExportPacer,
)
from tap_zendesk.errors import ZendeskError
from tap_zendesk.streams import (
    SatisfactionRatingsStream,
    TicketCommentsStream,
    TicketMetricsStream,
    TicketsStream,
    UsersStream,
)

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream

STREAM_TYPES: tuple[type[Stream], ...] = (
    TicketsStream,
    TicketCommentsStream,
    UsersStream,
    TicketMetricsStream,
    SatisfactionRatingsStream,
)


class TapZendesk(PlatformTap):
    """Singer tap for Zendesk Support: tickets, comments, users, ticket metrics, CSAT."""

    name = "tap-zendesk"
    package_name = "tap-zendesk-omnicanal"
    known_failures = (ZendeskError,)

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_url",
            th.StringType,
            required=True,
            description=(
                "Base URL of the Zendesk account, without `/api/v2`: "
                "`https://<subdomain>.zendesk.com`, or the omnicanal sandbox "
                "(`http://127.0.0.1:8787`)."
            ),
            examples=["https://omnicanal.zendesk.com", "http://127.0.0.1:8787"],
        ),
        th.Property(
            "email",
            th.StringType,
            description=(
                "Email of the agent (an admin, to read satisfaction ratings) whose API token "
                "is used; sent as Basic `<email>/token:<api_token>`."
            ),
        ),
        th.Property(
            "api_token",
            th.StringType,
            secret=True,
            description="That agent's Zendesk API token (Admin Center > Apps and integrations "
            "> Zendesk API). Never logged.",
        ),
        th.Property(
            "oauth_token",
            th.StringType,
            secret=True,
            description=(
                "An OAuth access token with the `read` scope, sent as `Authorization: Bearer`, "
                "instead of `email` and `api_token`. Never logged."
            ),
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "ISO 8601 date-time. The first sync exports tickets and users changed at or "
                "after it, and satisfaction ratings created at or after it; later syncs "
                "continue from the exports' cursors in the state. Empty: everything."
            ),
            examples=["2024-01-01T00:00:00Z"],
        ),
        th.Property(
            "export_page_size",
            th.IntegerType(minimum=1, maximum=MAX_EXPORT_PAGE_SIZE),
            default=MAX_EXPORT_PAGE_SIZE,
            description=(
                "Records per incremental export request (`per_page`), 1 to 1000 (the "
                "default and Zendesk's maximum: exports are limited in requests, not records)."
            ),
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=MAX_PAGE_SIZE),
            default=MAX_PAGE_SIZE,
            description=(
                "Records per request (`page[size]`) for ticket metrics, satisfaction ratings "
                "and comments, 1 to 100 (Zendesk's maximum)."
            ),
        ),
        th.Property(
            "export_requests_per_minute",
            th.IntegerType(minimum=0),
            default=EXPORT_REQUESTS_PER_MINUTE,
            description=(
                "Most incremental export requests the tap sends in any minute: Zendesk "
                "allows 10 (30 with the High Volume API add-on). 0 sends without pacing and "
                "relies on 429 `Retry-After`."
            ),
        ),
        *request_settings(
            user_agent="tap-zendesk-omnicanal (singer-sdk)",
            retried_after=(
                "HTTP 429 (after its `Retry-After`), HTTP 5xx, a timeout or a network error "
                "(exponential backoff from 1 s, with jitter)"
            ),
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        """One stream per Zendesk resource; the exports share one pacer."""
        pacer = ExportPacer(int(self.config.get("export_requests_per_minute", 10)))
        streams = [stream_type(tap=self) for stream_type in STREAM_TYPES]
        for stream in streams:
            if isinstance(stream, TicketsStream | UsersStream):
                stream.pacer = pacer
        return streams

    @classmethod
    def config_errors(cls, config: t.Mapping[str, t.Any]) -> list[str]:
        """Rules the JSON schema cannot say clearly; messages never echo a secret."""
        errors = base_url_errors(
            config.get("api_url"), example=DEFAULT_API_URL_EXAMPLE, api_path="api/v2"
        )
        if not config.get("oauth_token") and not (config.get("email") and config.get("api_token")):
            errors.append("set `email` and `api_token` (an agent's API token), or `oauth_token`")
        return errors


if __name__ == "__main__":
    TapZendesk.cli()
