"""The channel registry: every platform omnicanal speaks, one explicit import each.

Adding a platform adds its package here (see the README, "Adding a channel"); the
contract test (tests/channels/test_contract.py) then checks it is complete.
"""

from __future__ import annotations

import json

from omnicanal.channels import (
    hubspot,
    instagram,
    mailchimp,
    meta_ads,
    shopify,
    square,
    vtex,
    whatsapp,
    zendesk,
)
from omnicanal.channels.channel import Channel
from omnicanal.errors import OmnicanalError

CHANNELS: dict[str, Channel] = {
    channel.name: channel
    for channel in (
        shopify.CHANNEL,
        square.CHANNEL,
        vtex.CHANNEL,
        mailchimp.CHANNEL,
        instagram.CHANNEL,
        hubspot.CHANNEL,
        zendesk.CHANNEL,
        whatsapp.CHANNEL,
        meta_ads.CHANNEL,
    )
}


def get_channel(name: str) -> Channel:
    try:
        return CHANNELS[name]
    except KeyError:
        raise OmnicanalError(
            f"unknown channel {name!r}; omnicanal knows: {', '.join(sorted(CHANNELS))}"
        ) from None


def sources() -> list[Channel]:
    """Channels with a source (a tap), in registry order."""
    return [channel for channel in CHANNELS.values() if channel.source]


def destinations() -> list[Channel]:
    """Channels with a reverse-ETL destination, in registry order."""
    return [channel for channel in CHANNELS.values() if channel.destination]


def identity_sources() -> list[dict]:
    """The dbt var ``identity_sources``: every channel's staging models that feed identity."""
    return [feed.as_var(channel.name) for channel in CHANNELS.values() for feed in channel.identity]


#: The environment variable that hands :func:`identity_sources` to dbt (see dbt_env).
IDENTITY_SOURCES_ENV = "OMNICANAL_IDENTITY_SOURCES"


def identity_sources_env() -> dict[str, str]:
    return {IDENTITY_SOURCES_ENV: json.dumps(identity_sources(), sort_keys=True)}
