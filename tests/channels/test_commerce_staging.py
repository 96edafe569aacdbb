"""The three commerce platforms' staging, built on one extract: typed, renamed, UTC and
one money type, over sources that declare their freshness and tests (issue 10's dbt
points, which the per-platform tests each check only in part).

A small world is served by the sandbox; tap-shopify, tap-square and tap-vtex extract it
into a fresh database whose sessions run in São Paulo time (so a timestamp read or cast
without its zone would shift by three hours), and dbt builds staging/shopify,
staging/square and staging/vtex with the sources' own tests, then checks the sources'
freshness. Then, from the database's catalogue and the world's records:

- every staging column is snake_case, every ``*_at`` column a ``timestamptz`` and no
  column a timestamp without its zone;
- every money column, whatever the platform sent (Shopify's decimal strings, Square's
  integer centavos in a money object, VTEX's integer cents), is ``numeric`` in currency
  units, and each order's total and creation instant are the world's;
- each source declares ``loaded_at_field`` and a freshness, each of its tables a unique
  and not-null key, and ``dbt source freshness`` passes on every table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql
from sync_pipeline import run_dbt

from omnicanal.extract import run_extract
from omnicanal.sandbox import SandboxServer, generate_world
from omnicanal.settings import get_settings

PLATFORMS = ("shopify", "square", "vtex")
STAGING = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "staging"
SEED = 20250601
AS_OF = datetime(2025, 6, 1, 15, 0, tzinfo=UTC)
#: A money column's name, whatever the platform calls it (``total_price``,
#: ``amount_refunded``, ``unit_price``, ``line_total``, ``shopify_total_spent``, ...);
#: counts, quantities and stock (``total_inventory``) are not money.
MONEY = re.compile(r"(^|_)(amount|price|total|spent|refunded|discounts|tax|shipping)(_|$)")
NOT_MONEY = re.compile(r"(_count|quantity|inventory)$|^(is|has)_")


@pytest.fixture(scope="module")
def staged(
    pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, object, Path]]:
    from omnicanal.config import WarehouseURL

    admin = WarehouseURL.parse(pg_admin_url)
    name = f"omnicanal_stg_{datetime.now(UTC):%H%M%S%f}"
    url = WarehouseURL(admin.host, admin.port, admin.user, admin.password, name).url()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("alter database {} set timezone to 'America/Sao_Paulo'").format(
                sql.Identifier(name)
            )
        )
    workdir = tmp_path_factory.mktemp("commerce_staging")
    world = generate_world(60, SEED, as_of=AS_OF)
    try:
        with SandboxServer(world) as sandbox, pytest.MonkeyPatch.context() as patch:
            patch.setenv("OMNICANAL_WAREHOUSE_URL", url)
            patch.setenv("OMNICANAL_SANDBOX_PORT", str(sandbox.port))
            for platform in PLATFORMS:
                run_extract(get_settings(), platform, full_refresh=True)
        selected = [f"source:{p}" for p in PLATFORMS] + [f"staging.{p}" for p in PLATFORMS]
        # (cautious: a singular test that also reads a mart is not this module's)
        run_dbt(
            url,
            workdir,
            PLATFORMS,
            "build",
            "--select",
            *selected,
            "--indirect-selection",
            "cautious",
        )
        yield url, world, workdir
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def _rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def _columns(url: str) -> dict[tuple[str, str], str]:
    """(model, column) -> data type of every staging model of the three platforms."""
    rows = _rows(
        url,
        "select table_name, column_name, data_type from information_schema.columns"
        " where table_schema = 'staging' and table_name ~ '^stg_(shopify|square|vtex)__'",
    )
    return {(table, column): kind for table, column, kind in rows}


def _instant(text: str) -> datetime:
    """A platform's timestamp (``Z`` or an offset, up to 7 decimals as VTEX writes them)."""
    head, dot, rest = text.partition(".")
    if dot:
        digits = re.match(r"\d*", rest).group()
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_every_model_is_built_renamed_and_typed(staged) -> None:
    url, _, _ = staged
    columns = _columns(url)
    models = {path.stem for p in PLATFORMS for path in (STAGING / p).glob("stg_*.sql")}
    assert {model for model, _ in columns} == models
    camel = [(m, c) for (m, c) in columns if not re.fullmatch(r"[a-z_][a-z0-9_]*", c)]
    assert not camel, f"columns not renamed to snake_case: {camel}"
    naive = [key for key, kind in columns.items() if kind == "timestamp without time zone"]
    assert not naive, f"timestamps without their zone: {naive}"
    moments = {key: kind for key, kind in columns.items() if key[1].endswith("_at")}
    assert set(moments.values()) == {"timestamp with time zone"}, moments
    money = {
        key: kind
        for key, kind in columns.items()
        if MONEY.search(key[1]) and not NOT_MONEY.search(key[1])
    }
    # every platform has money, and one type holds all of it
    assert {model.split("__")[0][4:] for model, _ in money} == set(PLATFORMS)
    assert set(money.values()) == {"numeric"}, {k: v for k, v in money.items() if v != "numeric"}


def test_orders_keep_the_worlds_instants_and_amounts_in_currency_units(staged) -> None:
    url, world, _ = staged
    shopify, square, vtex = (world.slices[p] for p in PLATFORMS)
    expected = {
        **{
            ("shopify", str(o["id"])): (_instant(o["created_at"]), Decimal(o["total_price"]))
            for o in shopify.orders
        },
        **{
            ("square", o["id"]): (
                _instant(o["created_at"]),
                Decimal(o["total_money"]["amount"]) / 100,
            )
            for o in square.orders
        },
        **{
            ("vtex", o["orderId"]): (_instant(o["creationDate"]), Decimal(o["value"]) / 100)
            for o in vtex.orders
        },
    }
    found = {}
    for platform, (key, total) in {
        "shopify": ("shopify_order_id", "total_price"),
        "square": ("square_order_id", "total_amount"),
        "vtex": ("vtex_order_id", "order_total"),
    }.items():
        for order_id, created_at, amount in _rows(
            url, f"select {key}, created_at, {total} from staging.stg_{platform}__orders"
        ):
            found[(platform, str(order_id))] = (created_at, amount)
    assert set(found) == set(expected)
    for key, (created_at, amount) in found.items():
        moment, total = expected[key]
        # Postgres keeps microseconds (VTEX's seventh decimal is rounded)
        assert abs(created_at - moment) <= timedelta(microseconds=1), key
        assert amount == total, key


def test_sources_declare_freshness_and_key_tests_and_are_fresh(staged) -> None:
    url, _, workdir = staged
    tables = set()
    for platform in PLATFORMS:
        (doc,) = [
            yaml.safe_load(path.read_text())
            for path in (STAGING / platform).glob("_*__sources.yml")
        ]
        (source,) = doc["sources"]
        config = {**source, **source.get("config", {})}
        assert config["loaded_at_field"] and config["freshness"]["error_after"]["count"] > 0
        assert config["freshness"]["warn_after"]["count"] > 0
        for table in source["tables"]:
            tables.add(f"source.omnicanal.{source['name']}.{table['name']}")
            tests = {
                column["name"]: {
                    next(iter(t)) if isinstance(t, dict) else t
                    for t in column.get("data_tests", column.get("tests", []))
                }
                for column in table.get("columns", [])
            }
            keys = [name for name, kinds in tests.items() if {"unique", "not_null"} <= kinds]
            assert keys, f"{platform}.{table['name']} has no unique, not-null key"
    run_dbt(
        url,
        workdir,
        PLATFORMS,
        "source",
        "freshness",
        "--select",
        *map("source:{}".format, PLATFORMS),
    )
    results = json.loads((workdir / "target" / "sources.json").read_text())["results"]
    assert {r["unique_id"] for r in results} == tables
    assert {r["status"] for r in results} == {"pass"}, [
        (r["unique_id"], r["status"]) for r in results if r["status"] != "pass"
    ]
