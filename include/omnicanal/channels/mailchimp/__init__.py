"""Mailchimp: email marketing. A source and a destination, with a sandbox emulation.

- settings: ``OMNICANAL_MAILCHIMP_*`` below;
- source: ``tap-mailchimp`` (taps/tap-mailchimp), polled: audiences, their members
  (incremental on ``last_changed``), campaigns, and per-recipient email activity and
  unsubscribes of each sent campaign. The sync audience (``OMNICANAL_MAILCHIMP_LIST_ID``)
  is not read back: it holds what omnicanal itself wrote;
- destination: :mod:`.destination`, audience members through the Marketing API (PUT
  with ``status_if_new``, so nobody's subscription status is changed by a sync; large
  changes through ``/batches``), merge fields created as needed, an optional segment
  tag; consent channel ``email``;
- emulation: :mod:`.emulation`, the retailer's newsletter audiences, campaigns and
  reports from :mod:`.world`, and a sync audience that starts empty and keeps its
  members in a state file between sandbox restarts, as the real one would;
- identity: each audience member is an identity record (``stg_mailchimp__members``:
  email, names from the merge fields, phone, consent from the status).
"""

from __future__ import annotations

import base64
from typing import Any

from omnicanal.channels.channel import Channel, Emulation, IdentityFeed, Source, max_retries_setting
from omnicanal.config import Setting, Settings, http_url, iso_datetime

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
    Setting(
        "OMNICANAL_MAILCHIMP_START_DATE",
        "start_date",
        "First date to extract from Mailchimp (ISO-8601): members changed and campaigns "
        "sent since. Default: 2000-01-01T00:00:00Z.",
        "2000-01-01T00:00:00Z",
        iso_datetime,
    ),
    max_retries_setting("mailchimp", "Mailchimp"),
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


def tap_config(settings: Settings) -> dict[str, Any]:
    mailchimp = settings.channel("mailchimp")
    return {
        "api_url": api_url(settings),
        "api_key": mailchimp.api_key,
        "start_date": mailchimp.start_date,
        "max_retries": mailchimp.max_retries,
        # omnicanal's own sync audience: reading it back would feed the warehouse's
        # output into identity as if it were evidence
        "exclude_list_ids": [mailchimp.list_id],
    }


def _destination(settings: Settings, options: dict[str, Any]):
    from omnicanal.channels.mailchimp.destination import MailchimpDestination

    return MailchimpDestination.from_settings(settings, options)


def _destination_case():
    from omnicanal.channels.mailchimp.kit import destination_case

    return destination_case()


def _build_emulator(world, options: dict[str, Any]):
    from omnicanal.channels.mailchimp.emulation import MailchimpEmulator

    return MailchimpEmulator(account=world.slices.get("mailchimp"), **options)


def _world_slice(rng, people, as_of, earlier):
    from omnicanal.channels.mailchimp.world import build_mailchimp_account

    return build_mailchimp_account(rng, people, as_of, earlier)


def _load_slice(data: dict[str, Any]):
    from omnicanal.channels.mailchimp.world import MailchimpAccount

    return MailchimpAccount.from_dict(data)


def emulation_options(settings: Settings) -> dict[str, Any]:
    mailchimp = settings.channel("mailchimp")
    return {
        "api_key": mailchimp.api_key,
        "list_ids": (mailchimp.list_id,),
        # Real Mailchimp remembers its members across our runs; so does the sandbox's.
        "state_path": settings.sandbox_dir / "mailchimp.json",
    }


_BASIC = base64.b64encode(f"omnicanal:{SANDBOX_API_KEY}".encode()).decode()


def _sync_truths(world, emulator):
    from omnicanal.channels.mailchimp.truth import demo_truths

    return demo_truths(world, emulator)


CHANNEL = Channel(
    name="mailchimp",
    title="Mailchimp (email marketing)",
    settings=SETTINGS,
    source=Source(
        tap="tap-mailchimp",
        streams=("lists", "list_members", "campaigns", "email_activity", "unsubscribes"),
        tap_config=tap_config,
    ),
    destination=_destination,
    destination_case=_destination_case,
    sync_truths=_sync_truths,
    emulation=Emulation(
        build=_build_emulator,
        options_from_settings=emulation_options,
        probe=(f"/3.0/lists/{DEFAULT_LIST_ID}", {"Authorization": f"Basic {_BASIC}"}),
        world_slice=_world_slice,
        load_slice=_load_slice,
    ),
    identity=(
        IdentityFeed(
            model="stg_mailchimp__members",
            record_id="mailchimp_member_key",
            columns={
                "email": "email",
                "phone": "phone",
                "first_name": "first_name",
                "last_name": "last_name",
                "accepts_email_marketing": "accepts_email_marketing",
                "created_at": "created_at",
                "updated_at": "updated_at",
            },
        ),
    ),
)
