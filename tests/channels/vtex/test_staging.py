"""VTEX from the emulation to staging: extract with tap-vtex, build staging/vtex with dbt.

Checks what identity resolution relies on: the orders' masked email aliases never reach
``email_normalized``, which is the real email of the CL profile the order belongs to
(the world's ground truth says whose), money arrives in currency units, a pickup order
keeps the shop's address out of the shopper's, and a second extract after a change
brings just the change.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from omnicanal.extract import run_extract
from omnicanal.sandbox import SandboxServer, generate_world
from omnicanal.settings import get_settings

OMNICANAL = str(Path(sys.executable).with_name("omnicanal"))
SEED = 20250601
AS_OF = datetime(2025, 6, 1, 15, 0, tzinfo=UTC)


@pytest.fixture
def vtex_sandbox(warehouse_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    with SandboxServer(generate_world(80, SEED, as_of=AS_OF)) as server:
        monkeypatch.setenv("OMNICANAL_VTEX_API_URL", server.url)
        yield server


def rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_staging_sees_through_the_masked_email(vtex_sandbox: SandboxServer, warehouse_env: str):
    world = vtex_sandbox.app.state.world
    store = world.slices["vtex"]
    report = run_extract(get_settings(), "vtex")
    assert report.rows == {"orders": len(store.orders), "customers": len(store.profiles)}

    built = subprocess.run(
        [OMNICANAL, "dbt", "build", "--select", "staging.vtex"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-2000:]

    orders = {
        row[0]: row[1:]
        for row in rows(
            warehouse_env,
            "select vtex_order_id, order_email, is_masked_email, email_normalized,"
            " is_pickup, address, order_total, vtex_profile_id from staging.stg_vtex__orders",
        )
    }
    assert set(orders) == {o["orderId"] for o in store.orders}
    profiles = {p["id"]: p for p in store.profiles}
    for order in store.orders:
        order_email, masked, email, is_pickup, address, total, profile_id = orders[order["orderId"]]
        assert order_email == order["clientProfileData"]["email"]
        assert masked is True
        assert "ct.vtex.com.br" not in email
        # the real email: the one on the profile of the order's owner
        assert store.profile_person[profile_id] == store.order_person[order["orderId"]]
        assert email == profiles[profile_id]["email"].strip().lower()
        assert total == Decimal(order["value"]) / 100
        pickup = order["shippingData"]["logisticsInfo"][0]["deliveryChannel"] == "pickup-in-point"
        assert is_pickup is pickup
        assert (address is None) if pickup else address

    items = rows(
        warehouse_env, "select count(*), sum(line_total) from staging.stg_vtex__order_items"
    )
    assert items[0][0] == sum(len(o["items"]) for o in store.orders)
    customers = rows(
        warehouse_env,
        "select count(*), count(cpf), count(*) filter (where email_normalized like '%ct.vtex%')"
        " from staging.stg_vtex__customers",
    )
    assert customers[0][0] == len(store.profiles)
    assert customers[0][1] >= 0.85 * len(store.profiles) and customers[0][2] == 0

    # an order is canceled later: the next extract brings it, and only the change
    before = rows(warehouse_env, "select max(_sdc_batched_at) from raw_vtex.orders")[0][0]
    order = max(store.orders, key=lambda o: o["creationDate"])
    vtex_sandbox.app.state.vtex.touch_order(order["orderId"], status="canceled")
    again = run_extract(get_settings(), "vtex")
    assert again.rows == report.rows  # upserted, nothing duplicated
    reloaded = rows(
        warehouse_env,
        f"select \"orderId\", status from raw_vtex.orders where _sdc_batched_at > '{before}'",
    )
    assert (order["orderId"], "canceled") in reloaded
    assert len(reloaded) <= 2  # the change, and at most the order on the old bookmark
