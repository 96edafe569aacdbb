"""HubSpot: the sales team's CRM. A source and a destination, with a sandbox emulation.

- settings: ``OMNICANAL_HUBSPOT_*`` below;
- source: ``tap-hubspot`` (taps/tap-hubspot), polled: contacts, companies, deals, tickets
  and the engagements (calls, emails, notes, meetings), each with its associations; a
  first sync lists every object, later ones search on the last-modified date
  (``lastmodifieddate`` for contacts, ``hs_lastmodifieddate`` for the rest) in time
  windows that never reach the search's 10,000-result cap;
- destination: :mod:`.destination`, contact properties (batch upsert by email, missing
  properties created) and, in mode ``audience``, the members of a MANUAL list (Lists v3);
- emulation: :mod:`.emulation` (CRM v3 objects and search, v4 associations) over the
  portal of :mod:`.world`, and the write side a destination calls (:mod:`.crm_writes`:
  contact batches, properties, lists);
- identity: each contact is an identity record (``stg_hubspot__contacts``: email, phone,
  names, city), and each secondary email a rep kept in ``hs_additional_emails`` ties that
  address to its contact (``stg_hubspot__contact_emails``).
"""

from __future__ import annotations

from typing import Any

from omnicanal.channels.channel import Channel, Emulation, IdentityFeed, Source, max_retries_setting
from omnicanal.config import Setting, Settings, http_url, iso_datetime

#: The private-app token the sandbox accepts unless told otherwise.
SANDBOX_ACCESS_TOKEN = "pat-na1-sandbox-omnicanal-hubspot"

STREAMS = (
    "contacts",
    "companies",
    "deals",
    "tickets",
    "calls",
    "emails",
    "notes",
    "meetings",
)

SETTINGS = (
    Setting(
        "OMNICANAL_HUBSPOT_API_URL",
        "api_url",
        "Base URL of the HubSpot API, `https://api.hubapi.com`. Default: the sandbox.",
        parse=http_url,
    ),
    Setting(
        "OMNICANAL_HUBSPOT_ACCESS_TOKEN",
        "access_token",
        "HubSpot private-app access token, sent as `Authorization: Bearer` (secret). "
        "Default: the sandbox's token.",
        SANDBOX_ACCESS_TOKEN,
        secret=True,
    ),
    Setting(
        "OMNICANAL_HUBSPOT_START_DATE",
        "start_date",
        "First date to extract from HubSpot (ISO-8601): records last modified before it "
        "are skipped. Default: 2000-01-01T00:00:00Z.",
        "2000-01-01T00:00:00Z",
        iso_datetime,
    ),
    max_retries_setting("hubspot", "HubSpot"),
)


def api_url(settings: Settings) -> str:
    """The HubSpot API's base URL: the configured one, or the sandbox."""
    return settings.channel("hubspot").api_url or settings.sandbox_url


def tap_config(settings: Settings) -> dict[str, Any]:
    hubspot = settings.channel("hubspot")
    return {
        "api_url": api_url(settings),
        "access_token": hubspot.access_token,
        "start_date": hubspot.start_date,
        "max_retries": hubspot.max_retries,
    }


def _destination(settings: Settings, options: dict[str, Any]):
    from omnicanal.channels.hubspot.destination import HubSpotDestination

    return HubSpotDestination.from_settings(settings, options)


def _destination_case():
    from omnicanal.channels.hubspot.kit import destination_case

    return destination_case()


def _emulation_options(settings: Settings) -> dict[str, Any]:
    return {
        "access_token": settings.channel("hubspot").access_token,
        # Real HubSpot remembers what a sync wrote across our runs; so does the sandbox.
        "state_path": str(settings.sandbox_dir / "hubspot.json"),
    }


def _build_emulator(world, options: dict[str, Any]):
    from omnicanal.channels.hubspot.emulation import HubSpotEmulator

    return HubSpotEmulator(world, **options)


def _world_slice(rng, people, as_of, earlier):
    from omnicanal.channels.hubspot.world import build_hubspot_portal

    return build_hubspot_portal(rng, people, as_of, earlier)


def _load_slice(data: dict[str, Any]):
    from omnicanal.channels.hubspot.world import HubSpotPortal

    return HubSpotPortal.from_dict(data)


def _sync_truths(world, emulator):
    from omnicanal.channels.hubspot.truth import demo_truths

    return demo_truths(world, emulator)


CHANNEL = Channel(
    name="hubspot",
    title="HubSpot (CRM)",
    settings=SETTINGS,
    source=Source(tap="tap-hubspot", streams=STREAMS, tap_config=tap_config),
    destination=_destination,
    destination_case=_destination_case,
    sync_truths=_sync_truths,
    emulation=Emulation(
        build=_build_emulator,
        options_from_settings=_emulation_options,
        probe=(
            "/crm/v3/objects/contacts?limit=1",
            {"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}"},
        ),
        world_slice=_world_slice,
        load_slice=_load_slice,
    ),
    identity=(
        IdentityFeed(
            model="stg_hubspot__contacts",
            record_id="hubspot_contact_id",
            columns={
                "email": "email",
                "phone": "phone",
                "first_name": "first_name",
                "last_name": "last_name",
                "city": "city",
                "state": "state",
                "postcode": "postcode",
                "created_at": "created_at",
                "updated_at": "updated_at",
            },
            ids={"hubspot_contact": "hubspot_contact_id"},
            # an archived contact is nobody: it must not link anyone
            where="not is_deleted",
        ),
        IdentityFeed(
            model="stg_hubspot__contact_emails",
            record_id="contact_email_id",
            columns={"email": "email", "updated_at": "updated_at"},
            ids={"hubspot_contact": "hubspot_contact_id"},
            where="deleted_at is null",
        ),
    ),
)
