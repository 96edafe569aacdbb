"""Mailchimp: email marketing. A destination (audience members) with a sandbox emulation.

- settings: ``OMNICANAL_MAILCHIMP_*`` below;
- destination: :mod:`.destination`, batch subscribe and archive through the Marketing API;
- emulation: :mod:`.emulation`, an account whose audience starts empty and keeps its
  members in a state file between sandbox restarts, as the real one would.
"""

from __future__ import annotations

import base64
from typing import Any

from omnicanal.channels.channel import Channel, Emulation
from omnicanal.config import Setting, Settings, http_url

#: The API key the sandbox accepts unless told otherwise (``<key>-<data centre>``).
SANDBOX_API_KEY = "sandbox-us1"
#: The audience the sandbox holds and the syncs write to by default.
DEFAULT_LIST_ID = "omnicanal-demo"

SETTINGS = (
    Setting(
        "OMNICANAL_MAILCHIMP_API_URL",
        "api_url",
        "Mailchimp Marketing API base URL, `https://<dc>.api.mailchimp.com/3.0`. Default: the "
        "data centre in the API key, or the sandbox.",
        parse=http_url,
    ),
    Setting(
        "OMNICANAL_MAILCHIMP_API_KEY",
        "api_key",
        "Mailchimp API key (secret). Default: the sandbox's key.",
        SANDBOX_API_KEY,
        secret=True,
    ),
    Setting(
        "OMNICANAL_MAILCHIMP_LIST_ID",
        "list_id",
        "Mailchimp audience (list) id the syncs write to. Default: omnicanal-demo (the "
        "sandbox's list).",
        DEFAULT_LIST_ID,
    ),
)


def api_url(settings: Settings) -> str:
    """The Marketing API base: explicit, from the key's data centre, or the sandbox."""
    mailchimp = settings.channel("mailchimp")
    if mailchimp.api_url:
        return mailchimp.api_url
    if mailchimp.api_key != SANDBOX_API_KEY and "-" in mailchimp.api_key:
        dc = mailchimp.api_key.rsplit("-", 1)[1]
        return f"https://{dc}.api.mailchimp.com/3.0"
    return f"{settings.sandbox_url}/3.0"


def _destination(settings: Settings, options: dict[str, Any]):
    from omnicanal.channels.mailchimp.destination import MailchimpDestination

    return MailchimpDestination.from_settings(settings, options)


def _destination_case():
    from omnicanal.channels.mailchimp.kit import destination_case

    return destination_case()


def _build_emulator(world, options: dict[str, Any]):
    from omnicanal.channels.mailchimp.emulation import MailchimpEmulator

    return MailchimpEmulator(**options)


def emulation_options(settings: Settings) -> dict[str, Any]:
    mailchimp = settings.channel("mailchimp")
    return {
        "api_key": mailchimp.api_key,
        "list_ids": (mailchimp.list_id,),
        # Real Mailchimp remembers its members across our runs; so does the sandbox's.
        "state_path": settings.sandbox_dir / "mailchimp.json",
    }


_BASIC = base64.b64encode(f"omnicanal:{SANDBOX_API_KEY}".encode()).decode()

CHANNEL = Channel(
    name="mailchimp",
    title="Mailchimp (email marketing)",
    settings=SETTINGS,
    destination=_destination,
    destination_case=_destination_case,
    emulation=Emulation(
        build=_build_emulator,
        options_from_settings=emulation_options,
        probe=(f"/3.0/lists/{DEFAULT_LIST_ID}", {"Authorization": f"Basic {_BASIC}"}),
    ),
)
