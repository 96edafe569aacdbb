"""tap-hubspot: a portal's CRM from the HubSpot API (contacts, companies, deals, tickets and
engagements, with their associations), as a Singer tap.

Run ``tap-hubspot --about --format=markdown`` for every setting. The same tap reads a real
portal (a private app's ``access_token``; ``api_url`` defaults to ``https://api.hubapi.com``)
or the omnicanal sandbox (``api_url`` pointing at ``omnicanal sandbox serve``).
"""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from omnicanal_tapkit import PlatformTap, base_url_errors, full_sync_setting, request_settings
from tap_hubspot.client import (
    DEFAULT_API_URL,
    DEFAULT_SEARCHES_PER_SECOND,
    LIST_PAGE_SIZE,
    SEARCH_PAGE_SIZE,
    SEARCH_RESULT_CAP,
)
from tap_hubspot.errors import HubSpotError
from tap_hubspot.streams import STREAM_TYPES

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream


class TapHubSpot(PlatformTap):
    """Singer tap for the HubSpot CRM API: objects, engagements and their associations."""

    name = "tap-hubspot"
    package_name = "tap-hubspot-omnicanal"
    known_failures = (HubSpotError,)

    config_jsonschema = th.PropertiesList(
        th.Property(
            "access_token",
            th.StringType,
            required=True,
            secret=True,
            description=(
                "A HubSpot private app's access token (`pat-…`), sent as `Authorization: "
                "Bearer`. The app needs the scopes crm.objects.contacts.read, "
                "crm.objects.companies.read, crm.objects.deals.read, tickets and "
                "sales-email-read. Never logged."
            ),
        ),
        th.Property(
            "api_url",
            th.StringType,
            default=DEFAULT_API_URL,
            description=(
                "Base URL of the HubSpot API, without `/crm`: `https://api.hubapi.com`, or "
                "the omnicanal sandbox (`http://127.0.0.1:8787`)."
            ),
            examples=["https://api.hubapi.com", "http://127.0.0.1:8787"],
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "ISO 8601 date-time. Records last modified before it are skipped on the "
                "first (full) sync; later syncs search from the bookmarks in the state. "
                "Empty: the portal's whole history."
            ),
            examples=["2024-01-01T00:00:00Z"],
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=LIST_PAGE_SIZE),
            default=LIST_PAGE_SIZE,
            description=(
                "Objects per list request (`limit`) on a full sync, 1 to 100 (HubSpot's "
                "maximum). Keep the maximum unless testing pagination."
            ),
        ),
        th.Property(
            "search_page_size",
            th.IntegerType(minimum=1, maximum=SEARCH_PAGE_SIZE),
            default=SEARCH_PAGE_SIZE,
            description=(
                "Objects per search request (`limit`) on an incremental sync, 1 to 200 "
                "(HubSpot's maximum)."
            ),
        ),
        th.Property(
            "search_requests_per_second",
            th.NumberType(minimum=0),
            default=DEFAULT_SEARCHES_PER_SECOND,
            description=(
                "Most search requests a second the tap sends (HubSpot allows 5 per account "
                "and sends no rate-limit headers with search answers); 0: no pacing."
            ),
        ),
        th.Property(
            "search_result_cap",
            th.IntegerType(minimum=1),
            default=SEARCH_RESULT_CAP,
            description=(
                "Results HubSpot lets one search query page through (10,000): the tap starts "
                "a new time window before a query reaches it. Change it only to test."
            ),
        ),
        full_sync_setting(),
        *request_settings(
            user_agent="tap-hubspot-omnicanal (singer-sdk)",
            retried_after=(
                "HTTP 429 (RATE_LIMIT, not the DAILY one; exponential backoff from 0.5 s), "
                "HTTP 5xx, a timeout or a network error (exponential backoff from 1 s), "
                "with jitter"
            ),
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        """One stream per CRM object type."""
        return [cls(tap=self, schema=cls.build_schema()) for cls in STREAM_TYPES]

    @classmethod
    def config_errors(cls, config: t.Mapping[str, t.Any]) -> list[str]:
        """Rules the JSON schema cannot say clearly; messages never echo the token."""
        errors = base_url_errors(config.get("api_url"), example=DEFAULT_API_URL, api_path="crm")
        token = config.get("access_token")
        if isinstance(token, str) and token.strip().lower().startswith("bearer "):
            errors.append("`access_token` is the token alone, without the `Bearer ` prefix")
        return errors


if __name__ == "__main__":
    TapHubSpot.cli()
