"""Square: the retailer's physical shops (point of sale). A source with a sandbox emulation.

- settings: ``OMNICANAL_SQUARE_*`` below;
- source: ``tap-square`` (taps/tap-square), polled, incremental on ``updated_at``
  (orders searched per location, customers through the search filter);
- destination: :mod:`.destination`, a segment as a customer group the till sees, and
  attributes as customer custom attributes;
- emulation: :mod:`.emulation` (the Square API, Connect v2) over the shops of :mod:`.world`,
  with the customer writes of :mod:`.writes`;
- identity: each customer profile is an identity record (``stg_square__customers``), and
  each return of an online order in a shop ties its Square customer to that order
  (``stg_square__online_order_returns``, checked against the online order in
  ``int_customer__verified_online_returns``).
"""

from __future__ import annotations

import re
from typing import Any

from omnicanal.channels.channel import Channel, Emulation, IdentityFeed, Source, max_retries_setting
from omnicanal.config import Setting, Settings, http_url, iso_datetime
from omnicanal.errors import ConfigError

#: The token the sandbox accepts unless told otherwise.
SANDBOX_ACCESS_TOKEN = "EAAAsandbox-omnicanal-square"
#: The Square API version (``Square-Version``) the tap asks for and the sandbox serves
#: when a request names none (Square then uses the application's default version).
API_VERSION = "2026-09-16"


def square_version(name: str, raw: str) -> str:
    """A ``Square-Version`` is a release date, ``YYYY-MM-DD``."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip()):
        raise ConfigError(name, f"must be a Square API version such as {API_VERSION} (got {raw!r})")
    return raw.strip()


SETTINGS = (
    Setting(
        "OMNICANAL_SQUARE_API_URL",
        "api_url",
        "Base URL of the Square API, `https://connect.squareup.com` (or "
        "`https://connect.squareupsandbox.com`). Default: the sandbox.",
        parse=http_url,
    ),
    Setting(
        "OMNICANAL_SQUARE_ACCESS_TOKEN",
        "access_token",
        "Square access token, sent as `Authorization: Bearer` (secret). Default: the "
        "sandbox's token.",
        SANDBOX_ACCESS_TOKEN,
        secret=True,
    ),
    Setting(
        "OMNICANAL_SQUARE_START_DATE",
        "start_date",
        "First date to extract from Square (ISO-8601). Default: 2000-01-01T00:00:00Z.",
        "2000-01-01T00:00:00Z",
        iso_datetime,
    ),
    max_retries_setting("square", "Square"),
    Setting(
        "OMNICANAL_SQUARE_API_VERSION",
        "api_version",
        f"Square API version sent in the `Square-Version` header. Default: {API_VERSION}.",
        API_VERSION,
        square_version,
    ),
)


def api_url(settings: Settings) -> str:
    """The Square API's base URL: the configured one, or the sandbox."""
    return settings.channel("square").api_url or settings.sandbox_url


def tap_config(settings: Settings) -> dict[str, Any]:
    square = settings.channel("square")
    return {
        "api_url": api_url(settings),
        "access_token": square.access_token,
        "start_date": square.start_date,
        "max_retries": square.max_retries,
        "api_version": square.api_version,
    }


def _destination(settings: Settings, options: dict[str, Any]):
    from omnicanal.channels.square.destination import SquareDestination

    return SquareDestination.from_settings(settings, options)


def _destination_case():
    from omnicanal.channels.square.kit import destination_case

    return destination_case()


def _build_emulator(world, options: dict[str, Any]):
    from omnicanal.channels.square.emulation import SquareEmulator

    return SquareEmulator(world, **options)


def _world_slice(rng, people, as_of, earlier):
    from omnicanal.channels.square.world import build_square_shop

    return build_square_shop(rng, people, as_of, earlier)


def _load_slice(data: dict[str, Any]):
    from omnicanal.channels.square.world import SquareShop

    return SquareShop.from_dict(data)


def _sync_truths(world, emulator):
    from omnicanal.channels.square.truth import demo_truths

    return demo_truths(world, emulator)


CHANNEL = Channel(
    name="square",
    title="Square (point of sale)",
    settings=SETTINGS,
    source=Source(
        tap="tap-square",
        streams=("locations", "customers", "orders", "payments", "refunds", "catalog_items"),
        tap_config=tap_config,
    ),
    destination=_destination,
    destination_case=_destination_case,
    sync_truths=_sync_truths,
    emulation=Emulation(
        build=_build_emulator,
        options_from_settings=lambda s: {
            "access_token": s.channel("square").access_token,
            # the seller's account remembers the groups and attributes syncs wrote
            "state_path": s.sandbox_dir / "square.json",
        },
        probe=("/v2/locations", {"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}"}),
        world_slice=_world_slice,
        load_slice=_load_slice,
    ),
    identity=(
        IdentityFeed(
            model="stg_square__customers",
            record_id="square_customer_id",
            columns={
                "email": "email",
                "phone": "phone",
                "cpf": "cpf",
                "first_name": "first_name",
                "last_name": "last_name",
                "birth_date": "birth_date",
                "city": "city",
                "state": "state",
                "postcode": "postcode",
                "address": "address",
                "accepts_email_marketing": "accepts_email_marketing",
                "created_at": "created_at",
                "updated_at": "updated_at",
            },
            ids={"square_customer": "square_customer_id"},
            # a deleted account is nobody: it must not link anyone (the row stays in
            # staging, with deleted_at, for history)
            where="deleted_at is null",
        ),
        # an online order brought back to a till: the clerk's reference to it links the
        # till's customer to the online buyer only once it was checked against that
        # order (a mistyped number would merge two people)
        IdentityFeed(
            model="int_customer__verified_online_returns",
            record_id="square_order_id",
            columns={"created_at": "created_at", "updated_at": "updated_at"},
            ids={
                "square_customer": "square_customer_id",
                "shopify_order": "shopify_order_name",
            },
            where="square_customer_id is not null",
        ),
    ),
)
