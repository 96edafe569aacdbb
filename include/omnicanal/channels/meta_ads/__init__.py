"""Meta Ads: Custom Audiences from customer lists (Marketing API). A destination, with a
sandbox emulation.

- settings: ``OMNICANAL_META_ADS_*`` below;
- destination: :mod:`.destination`, the people of a segment added to and removed from a
  customer-file custom audience (``POST`` / ``DELETE /{audience-id}/users``), normalised
  and SHA-256 hashed by Meta's rules before they leave the process, multi-key, at most
  10,000 rows a request, paced by the ad account's ``custom_audience`` budget;
- emulation: :mod:`.emulation`, the ad account's custom audiences on the Graph API
  (``act_{id}/customaudiences``, ``/{audience-id}/users``, ``/usersreplace`` sessions),
  validating as Meta does; it starts with one empty audience the syncs write to and keeps
  what the audiences hold in a state file between sandbox restarts;
- ground truth: :mod:`.truth` (``expected_lapsed_customers``), the audience a correct
  pipeline builds from the sandbox world.

No source: an advertiser's audiences hold hashes omnicanal wrote itself, nothing to read
back into identity.
"""

from __future__ import annotations

import re
from typing import Any

from omnicanal.channels.channel import Channel, Emulation
from omnicanal.channels.meta import GRAPH_API_VERSION
from omnicanal.config import Setting, Settings, http_url
from omnicanal.errors import ConfigError

#: The token, ad account and custom audience the sandbox serves unless told otherwise.
SANDBOX_ACCESS_TOKEN = "EAAGsandbox-omnicanal-meta-ads"
SANDBOX_AD_ACCOUNT_ID = "100200300400042"
SANDBOX_AUDIENCE_ID = "23850000000000042"
SANDBOX_AUDIENCE_NAME = "omnicanal-demo"
API_VERSION = GRAPH_API_VERSION
#: Requests a second the destination sends by default: Meta's ``custom_audience``
#: budget (190,000 calls an hour for a Standard-tier app, ~52/s) with room to spare.
DEFAULT_RATE_LIMIT = 10.0


def ad_account_id(name: str, raw: str) -> str:
    """An ad account id, with or without Meta's ``act_`` prefix: the digits."""
    value = raw.strip()
    value = value[4:] if value.startswith("act_") else value
    if not value.isdigit():
        raise ConfigError(name, f"must be an ad account id such as act_1234567890 (got {raw!r})")
    return value


def audience_id(name: str, raw: str) -> str:
    value = raw.strip()
    if not value.isdigit():
        raise ConfigError(name, f"must be a numeric custom audience id (got {raw!r})")
    return value


def requests_per_second(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"must be a number of requests a second (got {raw!r})") from None
    if not 0 < value <= 100:
        raise ConfigError(name, f"must be more than 0 and at most 100 (got {raw!r})")
    return value


SETTINGS = (
    Setting(
        "OMNICANAL_META_ADS_API_URL",
        "api_url",
        "Base URL of the Meta Graph API (Marketing API), `https://graph.facebook.com`. "
        "Default: the sandbox.",
        parse=http_url,
    ),
    Setting(
        "OMNICANAL_META_ADS_ACCESS_TOKEN",
        "access_token",
        "Meta access token with ads_management on the ad account, e.g. a system user's "
        "(secret). Default: the sandbox's token.",
        SANDBOX_ACCESS_TOKEN,
        secret=True,
    ),
    Setting(
        "OMNICANAL_META_ADS_AD_ACCOUNT_ID",
        "ad_account_id",
        "Ad account that owns the custom audiences (`act_<id>` or the digits). Default: the "
        "sandbox's account.",
        SANDBOX_AD_ACCOUNT_ID,
        ad_account_id,
    ),
    Setting(
        "OMNICANAL_META_ADS_AUDIENCE_ID",
        "audience_id",
        "Custom audience the syncs write to unless their exposure names one (audience_id, "
        f"or audience_name to find or create it). Default: {SANDBOX_AUDIENCE_ID} (the "
        "sandbox's audience).",
        SANDBOX_AUDIENCE_ID,
        audience_id,
    ),
    Setting(
        "OMNICANAL_META_ADS_RATE_LIMIT",
        "rate_limit",
        "Requests a second sent to the Marketing API (each up to 10,000 people); Meta's "
        "throttling answers and usage headers slow it down further. Default: 10.",
        DEFAULT_RATE_LIMIT,
        requests_per_second,
    ),
)


def api_url(settings: Settings) -> str:
    """The Graph API base with its version: explicit, or the sandbox."""
    base = settings.channel("meta_ads").api_url or settings.sandbox_url
    base = base.rstrip("/")
    if re.search(r"/v\d+\.\d+$", base):
        return base
    return f"{base}/{API_VERSION}"


def _destination(settings: Settings, options: dict[str, Any]):
    from omnicanal.channels.meta_ads.destination import MetaAdsDestination

    return MetaAdsDestination.from_settings(settings, options)


def _destination_case():
    from omnicanal.channels.meta_ads.kit import destination_case

    return destination_case()


def _build_emulator(world, options: dict[str, Any]):
    from omnicanal.channels.meta_ads.emulation import MetaAdsEmulator

    return MetaAdsEmulator(**options)


def emulation_options(settings: Settings) -> dict[str, Any]:
    meta_ads = settings.channel("meta_ads")
    return {
        "access_token": meta_ads.access_token,
        "ad_account_id": meta_ads.ad_account_id,
        "audience_ids": (meta_ads.audience_id,),
        # Meta remembers its audiences across our runs; so does the sandbox's.
        "state_path": settings.sandbox_dir / "meta_ads.json",
    }


def _sync_truths(world, emulator):
    from omnicanal.channels.meta_ads.truth import demo_truths

    return demo_truths(world, emulator)


CHANNEL = Channel(
    name="meta_ads",
    title="Meta Ads (Custom Audiences)",
    settings=SETTINGS,
    destination=_destination,
    destination_case=_destination_case,
    sync_truths=_sync_truths,
    emulation=Emulation(
        build=_build_emulator,
        options_from_settings=emulation_options,
        probe=(
            f"/{API_VERSION}/act_{SANDBOX_AD_ACCOUNT_ID}/customaudiences",
            {"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}"},
        ),
    ),
)
