"""Shopify: the online store and its tills. A source with a sandbox emulation.

- settings: ``OMNICANAL_SHOPIFY_*`` below;
- source: ``tap-shopify`` (taps/tap-shopify), polled, incremental on ``updated_at``;
- destination: :mod:`.destination`, a segment as a customer tag (``tagsAdd`` /
  ``tagsRemove``) and attributes as customer metafields (``metafieldsSet``);
- emulation: :mod:`.emulation`, the GraphQL Admin API (:mod:`.graphql`, :mod:`.graph`,
  :mod:`.bulk`, the customer writes of :mod:`.writes`) and the legacy REST Admin API,
  over the store of :mod:`.world` and :mod:`.commerce`;
- identity: each customer account is an identity record (``stg_shopify__customers``), and
  each order ties its name to its account (``stg_shopify__orders``).
"""

from __future__ import annotations

from typing import Any

from omnicanal.channels.channel import Channel, Emulation, IdentityFeed, Source, max_retries_setting
from omnicanal.config import Setting, Settings, http_url, iso_datetime

#: The token the sandbox accepts unless told otherwise.
SANDBOX_ACCESS_TOKEN = "shpat_sandbox"
#: A second sandbox token, for an app without ``read_all_orders``: it sees 60 days of orders.
SANDBOX_RECENT_ORDERS_TOKEN = "shpat_sandbox_recent_orders"
#: A third, for an app with read scopes only (no ``write_customers``): its writes are denied.
SANDBOX_READ_ONLY_TOKEN = "shpat_sandbox_read_only"
#: The Admin API version the tests and the probe ask for: the newest stable one at the time
#: of writing. The sandbox serves every supported version (see :mod:`.versions`).
API_VERSION = "2026-10"

SETTINGS = (
    Setting(
        "OMNICANAL_SHOPIFY_API_URL",
        "api_url",
        "Base URL of the Shopify store, `https://<shop>.myshopify.com`. Default: the sandbox.",
        parse=http_url,
    ),
    Setting(
        "OMNICANAL_SHOPIFY_ACCESS_TOKEN",
        "access_token",
        "Shopify Admin API access token (secret). Default: the sandbox's token.",
        SANDBOX_ACCESS_TOKEN,
        secret=True,
    ),
    Setting(
        "OMNICANAL_SHOPIFY_START_DATE",
        "start_date",
        "First date to extract from Shopify (ISO-8601). Default: 2000-01-01T00:00:00Z.",
        "2000-01-01T00:00:00Z",
        iso_datetime,
    ),
    max_retries_setting("shopify", "Shopify"),
)


def api_url(settings: Settings) -> str:
    """The store's base URL: the configured one, or the sandbox."""
    return settings.channel("shopify").api_url or settings.sandbox_url


def tap_config(settings: Settings) -> dict[str, Any]:
    shopify = settings.channel("shopify")
    return {
        "api_url": api_url(settings),
        "access_token": shopify.access_token,
        "start_date": shopify.start_date,
        "max_retries": shopify.max_retries,
    }


def _destination(settings: Settings, options: dict[str, Any]):
    from omnicanal.channels.shopify.destination import ShopifyDestination

    return ShopifyDestination.from_settings(settings, options)


def _destination_case():
    from omnicanal.channels.shopify.kit import destination_case

    return destination_case()


def _build_emulator(world, options: dict[str, Any]):
    from omnicanal.channels.shopify.emulation import ShopifyEmulator

    return ShopifyEmulator(world, **options)


def _world_slice(rng, people, as_of, earlier):
    from omnicanal.channels.shopify.world import build_shopify_store

    return build_shopify_store(rng, people, as_of)


def _load_slice(data: dict[str, Any]):
    from omnicanal.channels.shopify.world import ShopifyStore

    return ShopifyStore.from_dict(data)


def _sync_truths(world, emulator):
    from omnicanal.channels.shopify.truth import demo_truths

    return demo_truths(world, emulator)


CHANNEL = Channel(
    name="shopify",
    title="Shopify (online store)",
    settings=SETTINGS,
    source=Source(
        tap="tap-shopify",
        streams=("customers", "orders", "abandoned_checkouts", "products", "locations"),
        tap_config=tap_config,
    ),
    destination=_destination,
    destination_case=_destination_case,
    sync_truths=_sync_truths,
    emulation=Emulation(
        build=_build_emulator,
        options_from_settings=lambda s: {
            "access_token": s.channel("shopify").access_token,
            # a real shop remembers the tags and metafields syncs wrote; so does the sandbox
            "state_path": s.sandbox_dir / "shopify.json",
        },
        probe=(
            f"/admin/api/{API_VERSION}/customers/count.json",
            {"X-Shopify-Access-Token": SANDBOX_ACCESS_TOKEN},
        ),
        world_slice=_world_slice,
        load_slice=_load_slice,
    ),
    identity=(
        IdentityFeed(
            model="stg_shopify__customers",
            record_id="shopify_customer_id",
            columns={
                "email": "email",
                "phone": "phone",
                "cpf": "cpf",
                "first_name": "first_name",
                "last_name": "last_name",
                "city": "city",
                "state": "state",
                "postcode": "zip",
                "accepts_email_marketing": "accepts_email_marketing",
                "created_at": "created_at",
                "updated_at": "updated_at",
            },
            ids={"shopify_customer": "shopify_customer_id"},
            # a deleted account is nobody: it must not link anyone (the row stays in
            # staging, with deleted_at, for history)
            where="deleted_at is null",
        ),
        # Each order ties its name ("#1234") to the account that placed it, so a shop
        # that takes the order back (Square's returns name it) reaches its buyer.
        IdentityFeed(
            model="stg_shopify__orders",
            source="shopify_orders",
            record_id="shopify_order_id",
            columns={"created_at": "created_at", "updated_at": "updated_at"},
            ids={"shopify_customer": "shopify_customer_id", "shopify_order": "order_name"},
            where="shopify_customer_id is not null",
        ),
    ),
)
