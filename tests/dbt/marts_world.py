"""What the mart tests share: a sandbox world extracted by the real taps into a fresh
warehouse database, dbt run on it as the pipeline runs it, and the world's own answers
about orders (which order is whose, on which channel).

``sandbox_warehouse`` serves a world (with a webhook receiver of its own when a
webhook-fed channel such as WhatsApp is among the platforms, posted to before the
extract, as the demo does), extracts the platforms with ``run_extract``, and yields a
:class:`MartsWarehouse` to run dbt and read the marts with. The database is dropped
at the end.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sync_pipeline import run_dbt

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
COMMERCE = ("shopify", "square", "vtex")
ENGAGEMENT = ("instagram", "whatsapp", "zendesk", "mailchimp", "hubspot")


@dataclass(frozen=True)
class MartsWarehouse:
    """A warehouse database holding a world's extract, and dbt over it."""

    url: str
    world: object
    sandbox: object
    workdir: Path
    platforms: tuple[str, ...]
    #: seconds a dbt command may take (a bench's 100k-people world needs more)
    dbt_timeout: float = 900

    def rows(self, query: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(query, params or None).fetchall()

    def contents(self, models: Sequence[str]) -> dict[str, list[str]]:
        """Each model's rows as sorted JSON, without the stamp of the run that wrote them
        (an incremental run against a full refresh compares these)."""
        return {
            model: [
                row[0]
                for row in self.rows(
                    f"select cast(to_jsonb(t) - 'built_at' as text) from {model} t order by 1"
                )
            ]
            for model in models
        }

    def dbt(self, *args: str) -> str:
        """Run dbt on this database (identity fed by ``platforms`` only); its output."""
        return run_dbt(self.url, self.workdir, self.platforms, *args, timeout=self.dbt_timeout)

    def extract(self, *platforms: str, full_refresh: bool = False) -> None:
        from omnicanal.extract import run_extract
        from omnicanal.settings import get_settings

        for name in platforms:
            run_extract(get_settings(), name, full_refresh=full_refresh)


@contextmanager
def sandbox_warehouse(
    pg_admin_url: str,
    workdir: Path,
    world,
    platforms: Sequence[str],
    emulator_options: dict[str, dict] | None = None,
) -> Iterator[MartsWarehouse]:
    """``world`` served by the sandbox, ``platforms`` extracted into a new database;
    ``emulator_options`` (by channel) are passed on to the emulators, e.g. their limits."""
    from omnicanal.channels import sources
    from omnicanal.config import WarehouseURL
    from omnicanal.sandbox import SandboxServer
    from omnicanal.settings import get_settings

    admin = WarehouseURL.parse(pg_admin_url)
    dbname = f"omnicanal_marts_{uuid.uuid4().hex[:10]}"
    url = WarehouseURL(admin.host, admin.port, admin.user, admin.password, dbname).url()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    fed = [
        c
        for c in sources()
        if c.name in platforms and c.source.delivery == "webhook" and c.emulation
    ]
    try:
        with ExitStack() as stack, pytest.MonkeyPatch.context() as patch:
            patch.setenv("OMNICANAL_WAREHOUSE_URL", url)
            options = {}
            if fed:
                # a receiver of our own on a free port, which the emulations post to
                with socket.socket() as free:
                    free.bind(("127.0.0.1", 0))
                    patch.setenv("OMNICANAL_WEBHOOKS_PORT", str(free.getsockname()[1]))
                settings = get_settings()
                options = {c.name: c.emulation.options_from_settings(settings) for c in fed}
            for name, extra in (emulator_options or {}).items():
                options[name] = {**options.get(name, {}), **extra}
            sandbox = stack.enter_context(SandboxServer(world, **options))
            patch.setenv("OMNICANAL_SANDBOX_PORT", str(sandbox.port))
            if fed:
                from omnicanal.demo import start_webhooks

                start_webhooks(get_settings(), sandbox, stack)
            built = MartsWarehouse(url, world, sandbox, workdir, tuple(platforms))
            built.extract(*platforms, full_refresh=True)
            yield built
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname))
            )


# ------------------------------------------------------------ the world's answers


def expected_orders(world) -> dict[str, tuple[str, str, str]]:
    """order_key -> (platform, channel, fulfilment_type), from the world's records."""
    shopify, square, vtex = (world.slices[name] for name in COMMERCE)
    expected: dict[str, tuple[str, str, str]] = {}
    for order in shopify.orders:
        if order.get("source_name") == "pos":
            kind = ("pos", "in_store_sale")
        elif shopify.order_details[order["id"]]["delivery_method"] == "PICK_UP":
            kind = ("web", "pickup_in_store")
        else:
            kind = ("web", "delivery")
        expected[f"shopify:{order['id']}"] = ("shopify", *kind)
    for order in square.orders:
        if order.get("returns"):
            continue  # takes goods back: a return, not an order
        pickup = any(f.get("type") == "PICKUP" for f in order.get("fulfillments") or [])
        kind = ("web", "pickup_in_store") if pickup else ("pos", "in_store_sale")
        expected[f"square:{order['id']}"] = ("square", *kind)
    for order in vtex.orders:
        logistics = order["shippingData"]["logisticsInfo"]
        pickup = any(info.get("deliveryChannel") == "pickup-in-point" for info in logistics)
        channel = "marketplace" if order["origin"] == "Marketplace" else "web"
        kind = (channel, "pickup_in_store" if pickup else "delivery")
        expected[f"vtex:{order['orderId']}"] = ("vtex", *kind)
    return expected


def order_owner(world) -> dict[str, str]:
    """order_key -> person_id for every order whose buyer the world knows."""
    shopify, square, vtex = (world.slices[name] for name in COMMERCE)
    owner = {}
    for order in shopify.orders:
        person = shopify.customer_person.get((order.get("customer") or {}).get("id"))
        if person:
            owner[f"shopify:{order['id']}"] = person
    owner.update({f"square:{order_id}": p for order_id, p in square.order_person.items()})
    owner.update({f"vtex:{order_id}": p for order_id, p in vtex.order_person.items()})
    return owner


def cancelled_orders(world) -> set[str]:
    """order_keys of the orders the world cancelled."""
    shopify, square, vtex = (world.slices[name] for name in COMMERCE)
    return {
        *(f"shopify:{o['id']}" for o in shopify.orders if o.get("cancelled_at")),
        *(f"square:{o['id']}" for o in square.orders if o["state"] == "CANCELED"),
        *(f"vtex:{o['orderId']}" for o in vtex.orders if o["status"] == "canceled"),
    }
