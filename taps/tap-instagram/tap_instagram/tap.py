"""tap-instagram: an Instagram professional account through the Meta Graph API, as a Singer tap.

Run ``tap-instagram --about --format=markdown`` for every setting. The same tap reads a
real account (an ``access_token``, the account's ``ig_user_id`` and its Page's
``page_id``; ``api_url`` defaults to ``https://graph.facebook.com``) or the omnicanal
sandbox (``api_url`` pointing at ``omnicanal sandbox serve``).
"""

from __future__ import annotations

import re
import typing as t

from singer_sdk import typing as th

from omnicanal_tapkit import PlatformTap, base_url_errors, request_settings
from tap_instagram.client import (
    DEFAULT_API_URL,
    DEFAULT_API_VERSION,
    DEFAULT_PAGE_SIZE,
    DEFAULT_USAGE_PAUSE_SECONDS,
    DEFAULT_USAGE_THRESHOLD,
    MAX_PAGE_SIZE,
)
from tap_instagram.errors import InstagramError
from tap_instagram.streams import (
    CommentsStream,
    ConversationsStream,
    MediaStream,
    MessagesStream,
)

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream

STREAM_TYPES: tuple[type[Stream], ...] = (
    MediaStream,
    CommentsStream,
    ConversationsStream,
    MessagesStream,
)

_VERSION = re.compile(r"v\d+\.\d+")


class TapInstagram(PlatformTap):
    """Singer tap for Instagram: media, comments and replies, Direct conversations, messages."""

    name = "tap-instagram"
    package_name = "tap-instagram-omnicanal"
    known_failures = (InstagramError,)

    config_jsonschema = th.PropertiesList(
        th.Property(
            "access_token",
            th.StringType,
            required=True,
            secret=True,
            description=(
                "Meta access token (a Page or system-user token with instagram_basic, "
                "instagram_manage_comments, instagram_manage_messages and "
                "pages_manage_metadata), sent as `Authorization: Bearer`. Never logged. "
                "When Meta answers code 190 the sync stops and asks for a new one."
            ),
        ),
        th.Property(
            "ig_user_id",
            th.StringType,
            required=True,
            description="Id of the Instagram professional account (IG User) whose media to read.",
        ),
        th.Property(
            "page_id",
            th.StringType,
            description=(
                "Id of the Facebook Page linked to the account: conversations are read from "
                "`/{page_id}/conversations?platform=instagram`. Empty: from "
                "`/{ig_user_id}/conversations` (Instagram API with Instagram Login)."
            ),
        ),
        th.Property(
            "api_url",
            th.StringType,
            default=DEFAULT_API_URL,
            description=(
                "Base URL of the Graph API, without the version: `https://graph.facebook.com` "
                "or the omnicanal sandbox (`http://127.0.0.1:8787`)."
            ),
        ),
        th.Property(
            "api_version",
            th.StringType,
            default=DEFAULT_API_VERSION,
            description="Graph API version in every path (`vNN.N`).",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "ISO 8601 date-time. The first sync emits comments, conversations and messages "
                "at or after it; later syncs start from the bookmarks in the state."
            ),
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=MAX_PAGE_SIZE),
            default=DEFAULT_PAGE_SIZE,
            description="Records per request (`limit`), 1 to 100.",
        ),
        th.Property(
            "usage_threshold",
            th.NumberType(minimum=1, maximum=100),
            default=DEFAULT_USAGE_THRESHOLD,
            description=(
                "Percent of an hourly budget (`X-App-Usage`, `X-Business-Use-Case-Usage`) at "
                "which the tap pauses before its next request, to stay clear of Meta's limit."
            ),
        ),
        th.Property(
            "usage_pause_seconds",
            th.NumberType(minimum=0),
            default=DEFAULT_USAGE_PAUSE_SECONDS,
            description=(
                "Seconds to pause when usage reaches `usage_threshold` (longer when Meta "
                "names an `estimated_time_to_regain_access`)."
            ),
        ),
        *request_settings(
            user_agent="tap-instagram-omnicanal (singer-sdk)",
            retried_after=(
                "a rate-limit error (codes 4, 17, 32, 613, 80001-80014: waiting "
                "`estimated_time_to_regain_access` when given), a transient error, HTTP 429 "
                "or 5xx, a timeout or a network error (exponential backoff from 1 s)"
            ),
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    @classmethod
    def config_errors(cls, config: t.Mapping[str, t.Any]) -> list[str]:
        errors = base_url_errors(
            config.get("api_url"), example=DEFAULT_API_URL, api_path=DEFAULT_API_VERSION
        )
        version = config.get("api_version")
        if isinstance(version, str) and not _VERSION.fullmatch(version):
            errors.append(f"`api_version` must look like {DEFAULT_API_VERSION}, got {version!r}")
        for setting in ("ig_user_id", "page_id"):
            value = config.get(setting)
            if isinstance(value, str) and value and not value.isdigit():
                errors.append(f"`{setting}` must be a numeric Graph node id, got {value!r}")
        return errors


if __name__ == "__main__":
    TapInstagram.cli()
