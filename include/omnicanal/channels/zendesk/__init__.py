"""Zendesk Support: the retailer's help desk. A source and a destination, with a sandbox
emulation.

- settings: ``OMNICANAL_ZENDESK_*`` below (an agent's email and API token, sent as
  Basic ``email/token:api_token``, or an OAuth access token sent as ``Bearer``);
- source: ``tap-zendesk`` (taps/tap-zendesk), polled: tickets and users through the
  cursor-based incremental exports (the bookmark is the export's ``after_cursor``),
  ticket metrics and satisfaction ratings through cursor pagination, each changed
  ticket's comments;
- destination: :mod:`.destination`, a user tag (and custom user fields) on the people of
  a segment, so agents see it: bulk updates polled through their job statuses;
- emulation: :mod:`.emulation` (the Zendesk Support API, ``/api/v2``) over the desk of
  :mod:`.world`: the same people of the sandbox world open tickets by email, the web
  form, WhatsApp and Instagram DM, and rate them; and the users' write side a
  destination calls (:mod:`.user_writes`);
- identity: each requester (end-user) is an identity record (``stg_zendesk__users``:
  email, phone, name); agents are staff, not customers, and feed nothing.
"""

from __future__ import annotations

from typing import Any

from omnicanal.channels.channel import Channel, Emulation, IdentityFeed, Source, max_retries_setting
from omnicanal.config import Setting, Settings, http_url, iso_datetime

#: The agent and API token the sandbox accepts unless told otherwise.
SANDBOX_EMAIL = "integracao@omnicanal.example"
SANDBOX_API_TOKEN = "zd-sandbox-omnicanal-6wJ3uQ8kT2"
#: The OAuth access token the sandbox accepts (``Authorization: Bearer``).
SANDBOX_OAUTH_TOKEN = "zd-oauth-sandbox-omnicanal-Hc41pX"

SETTINGS = (
    Setting(
        "OMNICANAL_ZENDESK_API_URL",
        "api_url",
        "Base URL of the Zendesk account, `https://<subdomain>.zendesk.com`. Default: the sandbox.",
        parse=http_url,
    ),
    Setting(
        "OMNICANAL_ZENDESK_EMAIL",
        "email",
        "Email of the Zendesk agent whose API token is used (Basic `email/token`). Default: "
        "the sandbox's agent.",
        SANDBOX_EMAIL,
    ),
    Setting(
        "OMNICANAL_ZENDESK_API_TOKEN",
        "api_token",
        "Zendesk API token of that agent (secret). Default: the sandbox's token.",
        SANDBOX_API_TOKEN,
        secret=True,
    ),
    Setting(
        "OMNICANAL_ZENDESK_OAUTH_TOKEN",
        "oauth_token",
        "Zendesk OAuth access token, sent as `Authorization: Bearer` instead of the API "
        "token when set (secret). Default: none.",
        secret=True,
    ),
    Setting(
        "OMNICANAL_ZENDESK_START_DATE",
        "start_date",
        "First date to extract from Zendesk (ISO-8601). Default: 2000-01-01T00:00:00Z.",
        "2000-01-01T00:00:00Z",
        iso_datetime,
    ),
    max_retries_setting("zendesk", "Zendesk"),
)


def api_url(settings: Settings) -> str:
    """The Zendesk account's base URL: the configured one, or the sandbox."""
    return settings.channel("zendesk").api_url or settings.sandbox_url


def tap_config(settings: Settings) -> dict[str, Any]:
    zendesk = settings.channel("zendesk")
    config: dict[str, Any] = {
        "api_url": api_url(settings),
        "start_date": zendesk.start_date,
        "max_retries": zendesk.max_retries,
    }
    if zendesk.oauth_token:
        config["oauth_token"] = zendesk.oauth_token
    else:
        config["email"] = zendesk.email
        config["api_token"] = zendesk.api_token
    return config


def _emulation_options(settings: Settings) -> dict[str, Any]:
    zendesk = settings.channel("zendesk")
    options: dict[str, Any] = {
        "email": zendesk.email,
        "api_token": zendesk.api_token,
        # Real Zendesk remembers the users a sync tagged; so does the sandbox.
        "state_path": str(settings.sandbox_dir / "zendesk.json"),
    }
    if zendesk.oauth_token:
        options["oauth_token"] = zendesk.oauth_token
    return options


def _destination(settings: Settings, options: dict[str, Any]):
    from omnicanal.channels.zendesk.destination import ZendeskDestination

    return ZendeskDestination.from_settings(settings, options)


def _destination_case():
    from omnicanal.channels.zendesk.kit import destination_case

    return destination_case()


def _build_emulator(world, options: dict[str, Any]):
    from omnicanal.channels.zendesk.emulation import ZendeskEmulator

    return ZendeskEmulator(world, **options)


def _world_slice(rng, people, as_of, earlier):
    from omnicanal.channels.zendesk.world import build_zendesk_desk

    return build_zendesk_desk(rng, people, as_of)


def _load_slice(data: dict[str, Any]):
    from omnicanal.channels.zendesk.world import ZendeskDesk

    return ZendeskDesk.from_dict(data)


def _basic(email: str, token: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{email}/token:{token}".encode()).decode()


def _sync_truths(world, emulator):
    from omnicanal.channels.zendesk.truth import demo_truths

    return demo_truths(world, emulator)


CHANNEL = Channel(
    name="zendesk",
    title="Zendesk Support (help desk)",
    settings=SETTINGS,
    source=Source(
        tap="tap-zendesk",
        streams=("tickets", "users", "ticket_metrics", "satisfaction_ratings", "ticket_comments"),
        tap_config=tap_config,
    ),
    destination=_destination,
    destination_case=_destination_case,
    sync_truths=_sync_truths,
    emulation=Emulation(
        build=_build_emulator,
        options_from_settings=_emulation_options,
        probe=(
            "/api/v2/ticket_metrics",
            {"Authorization": _basic(SANDBOX_EMAIL, SANDBOX_API_TOKEN)},
        ),
        world_slice=_world_slice,
        load_slice=_load_slice,
    ),
    identity=(
        IdentityFeed(
            model="stg_zendesk__users",
            record_id="zendesk_user_id",
            columns={
                "email": "email",
                "phone": "phone",
                "full_name": "full_name",
                "created_at": "created_at",
                "updated_at": "updated_at",
            },
            ids={"zendesk_user": "zendesk_user_id"},
            # agents and admins are staff; a requester with neither email nor phone
            # (an Instagram DM) can link no one
            where="is_end_user and (email is not null or phone is not null)",
        ),
    ),
)
