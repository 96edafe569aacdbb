"""VTEX: the second web store and marketplace seller. A source with a sandbox emulation.

- settings: ``OMNICANAL_VTEX_*`` below;
- source: ``tap-vtex`` (taps/tap-vtex), polled: ``orders`` walks the OMS order list by
  creation-date windows (the list refuses pages beyond 30) and reads each order's detail,
  incremental on ``lastChange``; ``customers`` scrolls the Master Data ``CL`` profiles
  in full and searches them by ``updatedIn`` incrementally;
- emulation: :mod:`.emulation` over the store of :mod:`.world`;
- identity: each CL profile is an identity record with the real email
  (``stg_vtex__customers``); each order is one too (``stg_vtex__orders``), with its
  masked email alias left out of the email column and the profile's real email joined
  in through ``userProfileId``, so identity resolution sees through VTEX's masking.
"""

from __future__ import annotations

from typing import Any

from omnicanal.channels.channel import Channel, Emulation, IdentityFeed, Source, max_retries_setting
from omnicanal.config import Setting, Settings, http_url, iso_datetime

#: The app key and token the sandbox accepts unless told otherwise (VTEX's key format:
#: ``vtexappkey-<account>-<6 letters>``; tokens are 128 capital letters).
SANDBOX_APP_KEY = "vtexappkey-omnicanal-SANDBX"
SANDBOX_APP_TOKEN = "SANDBOX" + "X" * 121

SETTINGS = (
    Setting(
        "OMNICANAL_VTEX_API_URL",
        "api_url",
        "Base URL of the VTEX account, `https://<account>.vtexcommercestable.com.br`. "
        "Default: the sandbox.",
        parse=http_url,
    ),
    Setting(
        "OMNICANAL_VTEX_APP_KEY",
        "app_key",
        "VTEX application key, sent as X-VTEX-API-AppKey (secret). Default: the sandbox's key.",
        SANDBOX_APP_KEY,
        secret=True,
    ),
    Setting(
        "OMNICANAL_VTEX_APP_TOKEN",
        "app_token",
        "VTEX application token, sent as X-VTEX-API-AppToken (secret). Default: the "
        "sandbox's token.",
        SANDBOX_APP_TOKEN,
        secret=True,
    ),
    Setting(
        "OMNICANAL_VTEX_START_DATE",
        "start_date",
        "First date to extract from VTEX (ISO-8601); the OMS shows two years of orders. "
        "Default: 2000-01-01T00:00:00Z.",
        "2000-01-01T00:00:00Z",
        iso_datetime,
    ),
    max_retries_setting("vtex", "VTEX"),
)


def api_url(settings: Settings) -> str:
    """The account's base URL: the configured one, or the sandbox."""
    return settings.channel("vtex").api_url or settings.sandbox_url


def tap_config(settings: Settings) -> dict[str, Any]:
    vtex = settings.channel("vtex")
    return {
        "api_url": api_url(settings),
        "app_key": vtex.app_key,
        "app_token": vtex.app_token,
        "start_date": vtex.start_date,
        "max_retries": vtex.max_retries,
    }


def _build_emulator(world, options: dict[str, Any]):
    from omnicanal.channels.vtex.emulation import VtexEmulator

    return VtexEmulator(world, **options)


def _world_slice(rng, people, as_of, earlier):
    from omnicanal.channels.vtex.world import build_vtex_store

    return build_vtex_store(rng, people, as_of, earlier)


def _load_slice(data: dict[str, Any]):
    from omnicanal.channels.vtex.world import VtexStore

    return VtexStore.from_dict(data)


CHANNEL = Channel(
    name="vtex",
    title="VTEX (web store and marketplace)",
    settings=SETTINGS,
    source=Source(tap="tap-vtex", streams=("orders", "customers"), tap_config=tap_config),
    emulation=Emulation(
        build=_build_emulator,
        options_from_settings=lambda s: {
            "app_key": s.channel("vtex").app_key,
            "app_token": s.channel("vtex").app_token,
        },
        probe=(
            "/api/oms/pvt/orders?per_page=1",
            {"X-VTEX-API-AppKey": SANDBOX_APP_KEY, "X-VTEX-API-AppToken": SANDBOX_APP_TOKEN},
        ),
        world_slice=_world_slice,
        load_slice=_load_slice,
    ),
    identity=(
        IdentityFeed(
            model="stg_vtex__customers",
            record_id="vtex_profile_id",
            columns={
                "email": "email_normalized",
                "phone": "phone",
                "cpf": "cpf",
                "first_name": "first_name",
                "last_name": "last_name",
                "birth_date": "birth_date",
                "accepts_email_marketing": "accepts_email_marketing",
                "created_at": "created_at",
                "updated_at": "updated_at",
            },
            ids={"vtex_user": "vtex_user_id"},
            # a deleted account is nobody: it must not link anyone (the row stays in
            # staging, with deleted_at, for history)
            where="deleted_at is null",
        ),
        IdentityFeed(
            model="stg_vtex__orders",
            record_id="vtex_order_id",
            # its own source name: record keys are "<source>:<record_id>"
            source="vtex_orders",
            columns={
                "email": "email_normalized",
                "phone": "phone",
                "cpf": "cpf",
                "first_name": "first_name",
                "last_name": "last_name",
                "city": "city",
                "state": "state",
                "postcode": "postcode",
                "address": "address",
                "created_at": "created_at",
                "updated_at": "updated_at",
            },
            ids={"vtex_user": "vtex_user_id"},
        ),
    ),
)
