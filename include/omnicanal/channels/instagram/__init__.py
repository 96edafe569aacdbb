"""Instagram: the retailer's professional account (Meta Graph API). A source with a sandbox
emulation.

- settings: ``OMNICANAL_INSTAGRAM_*`` below;
- source: ``tap-instagram`` (taps/tap-instagram), polled: media (full: their counts
  change), comments and replies (incremental on ``timestamp``), Direct conversations
  (incremental on ``updated_time``) and their messages;
- emulation: :mod:`.emulation` (Graph API nodes and edges of an Instagram professional
  account and its linked Page's Instagram conversations) over :mod:`.world`;
- identity: the people who comment and message (``stg_instagram__users``: a handle,
  which links only to records carrying the same handle) and what they typed in Direct
  messages (``stg_instagram__message_contacts``: an email or a phone, tied to their
  IGSID).
"""

from __future__ import annotations

import re
from typing import Any

from omnicanal.channels.channel import Channel, Emulation, IdentityFeed, Source, max_retries_setting
from omnicanal.channels.meta import GRAPH_API_VERSION
from omnicanal.config import Setting, Settings, http_url, iso_datetime
from omnicanal.errors import ConfigError

#: The token, account and Page the sandbox serves unless told otherwise.
SANDBOX_ACCESS_TOKEN = "EAAGsandbox-omnicanal-instagram"
SANDBOX_IG_USER_ID = "17841400000000042"
SANDBOX_PAGE_ID = "102000000000042"
API_VERSION = GRAPH_API_VERSION


def graph_version(name: str, raw: str) -> str:
    """A Graph API version is ``vNN.N``."""
    value = raw.strip()
    if not re.fullmatch(r"v\d+\.\d+", value):
        raise ConfigError(name, f"must be a Graph API version such as {API_VERSION} (got {raw!r})")
    return value


def graph_id(name: str, raw: str) -> str:
    value = raw.strip()
    if not value.isdigit():
        raise ConfigError(name, f"must be a numeric Graph node id (got {raw!r})")
    return value


SETTINGS = (
    Setting(
        "OMNICANAL_INSTAGRAM_API_URL",
        "api_url",
        "Base URL of the Meta Graph API, `https://graph.facebook.com`. Default: the sandbox.",
        parse=http_url,
    ),
    Setting(
        "OMNICANAL_INSTAGRAM_ACCESS_TOKEN",
        "access_token",
        "Meta access token with instagram_basic, instagram_manage_comments and "
        "instagram_manage_messages (secret). Default: the sandbox's token.",
        SANDBOX_ACCESS_TOKEN,
        secret=True,
    ),
    Setting(
        "OMNICANAL_INSTAGRAM_IG_USER_ID",
        "ig_user_id",
        "Id of the Instagram professional account (IG User) to read. Default: the sandbox's "
        "account.",
        SANDBOX_IG_USER_ID,
        graph_id,
    ),
    Setting(
        "OMNICANAL_INSTAGRAM_PAGE_ID",
        "page_id",
        "Id of the Facebook Page linked to the account, whose conversations hold the "
        "Instagram Direct threads. Default: the sandbox's Page.",
        SANDBOX_PAGE_ID,
        graph_id,
    ),
    Setting(
        "OMNICANAL_INSTAGRAM_API_VERSION",
        "api_version",
        f"Graph API version in every path. Default: {API_VERSION}.",
        API_VERSION,
        graph_version,
    ),
    Setting(
        "OMNICANAL_INSTAGRAM_START_DATE",
        "start_date",
        "First date to extract from Instagram (ISO-8601). Default: 2000-01-01T00:00:00Z.",
        "2000-01-01T00:00:00Z",
        iso_datetime,
    ),
    max_retries_setting("instagram", "Instagram"),
)


def tap_config(settings: Settings) -> dict[str, Any]:
    instagram = settings.channel("instagram")
    return {
        "api_url": instagram.api_url or settings.sandbox_url,
        "access_token": instagram.access_token,
        "ig_user_id": instagram.ig_user_id,
        "page_id": instagram.page_id,
        "api_version": instagram.api_version,
        "start_date": instagram.start_date,
        "max_retries": instagram.max_retries,
    }


def _build_emulator(world, options: dict[str, Any]):
    from omnicanal.channels.instagram.emulation import InstagramEmulator

    return InstagramEmulator(world, **options)


def _world_slice(rng, people, as_of, earlier):
    from omnicanal.channels.instagram.world import build_instagram_account

    return build_instagram_account(rng, people, as_of, earlier)


def _load_slice(data: dict[str, Any]):
    from omnicanal.channels.instagram.world import InstagramAccount

    return InstagramAccount.from_dict(data)


CHANNEL = Channel(
    name="instagram",
    title="Instagram (Meta Graph API)",
    settings=SETTINGS,
    source=Source(
        tap="tap-instagram",
        streams=("media", "comments", "conversations", "messages"),
        tap_config=tap_config,
    ),
    emulation=Emulation(
        build=_build_emulator,
        options_from_settings=lambda s: {"access_token": s.channel("instagram").access_token},
        probe=(f"/{API_VERSION}/me", {"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}"}),
        world_slice=_world_slice,
        load_slice=_load_slice,
    ),
    identity=(
        IdentityFeed(
            model="stg_instagram__users",
            record_id="instagram_user_id",
            columns={"updated_at": "last_seen_at"},
            ids={"instagram_user": "instagram_user_id"},
            handles={"instagram": "username"},
        ),
        IdentityFeed(
            model="stg_instagram__message_contacts",
            record_id="message_id",
            columns={"email": "email", "phone": "phone", "created_at": "created_at"},
            ids={"instagram_user": "instagram_user_id"},
        ),
    ),
)
