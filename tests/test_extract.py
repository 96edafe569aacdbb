"""tap-shopify | loader into the warehouse, run the way the pipeline runs it.

Real processes, real HTTP against the sandbox, a fresh warehouse database per test.
"""

from __future__ import annotations

import psycopg
import pytest

from omnicanal.cli import main
from omnicanal.errors import ExtractError
from omnicanal.extract import read_state, run_extract
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import generate_world
from omnicanal.settings import get_settings
from target_warehouse.target import CRASH_AFTER_COMMIT_ENV


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(generate_world(40, seed=5), shopify={"bucket_size": 10_000}) as server:
        yield server


@pytest.fixture
def shop(sandbox, warehouse_env, monkeypatch):
    monkeypatch.setenv("OMNICANAL_SHOPIFY_API_URL", sandbox.url)
    sandbox.app.state.shopify.faults.clear()
    return sandbox.app.state.shopify


def counts(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select (select count(*) from raw_shopify.customers),"
            " (select count(distinct id) from raw_shopify.customers),"
            " (select count(*) from raw_shopify.orders)"
        ).fetchone()


def test_full_then_incremental_without_duplicates(shop, warehouse_env, sandbox):
    world = sandbox.app.state.world
    report = run_extract(get_settings(), "shopify")
    store = world.slices["shopify"]
    assert report.rows == {
        "customers": len(store.customers),
        "orders": len(store.orders),
        "abandoned_checkouts": len(store.abandoned_checkouts),
        "products": len(store.products),
        "locations": len(store.locations),
    }
    state = read_state(get_settings(), "shopify")
    assert set(state["bookmarks"]) == set(report.rows)

    # Nothing changed: the rerun loads no new row and duplicates none.
    before = counts(warehouse_env)
    run_extract(get_settings(), "shopify")
    assert counts(warehouse_env) == before
    assert before[0] == before[1]

    # One customer changes: the incremental run brings the change, still no duplicate.
    customer_id = world.slices["shopify"].customers[0]["id"]
    shop.touch_customer(customer_id, first_name="Renomeada")
    run_extract(get_settings(), "shopify")
    assert counts(warehouse_env) == before
    with psycopg.connect(warehouse_env) as conn:
        name = conn.execute(
            "select first_name from raw_shopify.customers where id = %s", (customer_id,)
        ).fetchone()[0]
    assert name == "Renomeada"


def test_loader_killed_after_commit_before_printing_keeps_the_committed_state(
    shop, warehouse_env, sandbox, monkeypatch
):
    """The loader commits the state with the records (``state_table``): when it dies right
    after the COMMIT, before any STATE line reaches us, the state is still saved and the
    rerun resumes from it without duplicates."""
    world = sandbox.app.state.world
    monkeypatch.setenv(CRASH_AFTER_COMMIT_ENV, "1")
    with pytest.raises(ExtractError, match="target-warehouse failed"):
        run_extract(get_settings(), "shopify")
    state = read_state(get_settings(), "shopify")
    assert state is not None and state.get("bookmarks")
    with psycopg.connect(warehouse_env) as conn:
        # the streams that reached the first commit (customers come first)
        tables = conn.execute(
            "select table_name from information_schema.tables"
            " where table_schema = 'raw_shopify' and table_name in ('customers', 'orders')"
        ).fetchall()
        loaded = sum(
            conn.execute(f"select count(*) from raw_shopify.{name}").fetchone()[0]
            for (name,) in tables
        )
    assert loaded > 0  # the first commit did land

    monkeypatch.delenv(CRASH_AFTER_COMMIT_ENV)
    report = run_extract(get_settings(), "shopify")
    assert report.state == read_state(get_settings(), "shopify")
    total, distinct, orders = counts(warehouse_env)
    assert total == distinct == len(world.slices["shopify"].customers)
    assert orders == len(world.slices["shopify"].orders)


def test_wrong_token_is_a_clear_error_and_loses_nothing(shop, warehouse_env, monkeypatch, capsys):
    run_extract(get_settings(), "shopify")
    before, state = counts(warehouse_env), read_state(get_settings(), "shopify")
    monkeypatch.setenv("OMNICANAL_SHOPIFY_ACCESS_TOKEN", "shpat_wrong_secret_value")
    with pytest.raises(ExtractError, match="access_token"):
        run_extract(get_settings(), "shopify")
    assert main(["extract", "shopify"]) == 2
    err = capsys.readouterr().err
    assert "401" in err and "shpat_wrong_secret_value" not in err
    assert counts(warehouse_env) == before
    assert read_state(get_settings(), "shopify") == state


def test_store_down_names_the_url(warehouse_env, monkeypatch):
    monkeypatch.setenv("OMNICANAL_SHOPIFY_API_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("OMNICANAL_SHOPIFY_MAX_RETRIES", "1")
    with pytest.raises(ExtractError, match="127.0.0.1:1"):
        run_extract(get_settings(), "shopify")


def test_malformed_record_is_quarantined_and_the_rest_loads(shop, warehouse_env, sandbox):
    world = sandbox.app.state.world
    # A count the warehouse's bigint cannot hold (GraphQL's UnsignedInt64 can carry it).
    bad = shop.add_customer({"email": "bad@x.com.br", "orders_count": 2**63})
    report = run_extract(get_settings(), "shopify")
    assert report.quarantined == 1
    good = len(world.slices["shopify"].customers) - 1
    assert report.rows["customers"] == good
    with psycopg.connect(warehouse_env) as conn:
        stream, record_id, reason = conn.execute(
            "select stream, record->>'id', reason from raw_shopify._quarantine"
        ).fetchone()
    assert (stream, int(record_id)) == ("customers", bad["id"])
    assert "number_of_orders" in reason
    # The store fixes the record: the next incremental run loads it, once.
    shop.touch_customer(bad["id"], orders_count=3)
    again = run_extract(get_settings(), "shopify")
    assert again.quarantined == 0
    total, distinct, _ = counts(warehouse_env)
    assert total == distinct == len(world.slices["shopify"].customers)
