"""tap-mailchimp: audiences, members, campaigns and email activity from Mailchimp.

Run ``tap-mailchimp --about --format=markdown`` for every setting. The same tap reads
a real Mailchimp account (an ``api_key``; ``api_url`` defaults to the key's data
centre) or the omnicanal sandbox (``api_url`` pointing at ``omnicanal sandbox serve``,
``…/3.0``).
"""

from __future__ import annotations

import typing as t
from urllib.parse import urlsplit

from singer_sdk import typing as th

from omnicanal_tapkit import PlatformTap, request_settings
from tap_mailchimp.client import MAX_PAGE_SIZE, data_centre
from tap_mailchimp.errors import MailchimpError
from tap_mailchimp.streams import (
    CampaignsStream,
    EmailActivityStream,
    ListMembersStream,
    ListsStream,
    UnsubscribesStream,
)

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream

STREAM_TYPES: tuple[type[Stream], ...] = (
    ListsStream,
    ListMembersStream,
    CampaignsStream,
    EmailActivityStream,
    UnsubscribesStream,
)


class TapMailchimp(PlatformTap):
    """Singer tap for the Mailchimp Marketing API v3."""

    name = "tap-mailchimp"
    package_name = "tap-mailchimp-omnicanal"
    known_failures = (MailchimpError,)

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            description=(
                "Mailchimp API key, `<key>-<data centre>` (Account → Extras → API keys), "
                "sent as the HTTP Basic password. Read access is enough. Never logged."
            ),
        ),
        th.Property(
            "api_url",
            th.StringType,
            description=(
                "Root of the Marketing API, ending in `/3.0`. Default: "
                "`https://<dc>.api.mailchimp.com/3.0` with the data centre from the API key; "
                "set it for the omnicanal sandbox (`http://127.0.0.1:8787/3.0`) or a proxy."
            ),
            examples=["https://us21.api.mailchimp.com/3.0", "http://127.0.0.1:8787/3.0"],
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "ISO 8601 date-time. The first sync reads members changed after it "
                "(`since_last_changed`) and campaigns sent after it (`since_send_time`), "
                "with their whole activity; later syncs start from the bookmarks in the "
                "state. Empty: the account's whole history."
            ),
            examples=["2024-01-01T00:00:00Z"],
        ),
        th.Property(
            "exclude_list_ids",
            th.ArrayType(th.StringType),
            default=[],
            description=(
                "Audience (list) ids not to read, nor their members and campaigns: e.g. an "
                "audience that a reverse-ETL sync fills, whose members would only echo the "
                "warehouse back."
            ),
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=MAX_PAGE_SIZE),
            default=MAX_PAGE_SIZE,
            description=(
                "Records per request (`count`), 1 to 1000 (Mailchimp's maximum). Keep the "
                "maximum unless testing pagination."
            ),
        ),
        *request_settings(
            user_agent="tap-mailchimp-omnicanal (singer-sdk)",
            retried_after=(
                "HTTP 429 (too many requests or simultaneous connections), HTTP 5xx, a "
                "timeout or a network error (exponential backoff from 1 s with jitter, or "
                "`Retry-After` when sent)"
            ),
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    @classmethod
    def config_errors(cls, config: t.Mapping[str, t.Any]) -> list[str]:
        """Rules the JSON schema cannot say, each naming the setting; never echoes the key."""
        errors: list[str] = []
        api_url = config.get("api_url")
        if isinstance(api_url, str) and api_url.strip():
            parts = urlsplit(api_url.strip())
            if parts.scheme not in {"http", "https"} or not parts.netloc:
                errors.append(
                    "`api_url` must be an http(s) URL such as "
                    f"https://us21.api.mailchimp.com/3.0, got {api_url!r}"
                )
            elif not parts.path.rstrip("/").endswith("/3.0"):
                errors.append(
                    f"`api_url` is the Marketing API root ending in /3.0, got {api_url!r}"
                )
        elif isinstance(config.get("api_key"), str) and data_centre(config["api_key"]) is None:
            errors.append(
                "`api_key` has no data centre suffix (`<key>-us21`): set it as Mailchimp "
                "shows it, or set `api_url`"
            )
        return errors


if __name__ == "__main__":
    TapMailchimp.cli()
