"""End-to-end check of the dbt project against a throwaway Postgres database.

The test creates a fresh database on the test server (conftest: the embedded
warehouse or OMNICANAL_WAREHOUSE_URL), lays down the ``raw_shopify`` tables in the shape
tap-shopify gives them (GraphQL Admin API fields in snake_case) with the column types
meltanolabs-target-postgres gives them (naive timestamps, jsonb objects, jsonb[] for
arrays of objects, text[] for arrays of strings; our own loader writes jsonb arrays,
which the models read too), loads a handful of rows built to hit each rule, runs
``dbt build`` as a subprocess and compares the marts row for row. The database is
dropped at the end.

The rows, and what each one is for:

- Ana has two accounts whose emails differ only by case and spaces: one person, the name
  from the newer account, the CPF and address from the older one (the only one with them).
- Bruno has two accounts and opted out on the older one: the opt-out wins, so his recent
  order does not put him in the Mailchimp audience.
- Carla's only order is 200 days old: outside the 90-day window (inside it for an
  ``as_of`` 150 days back).
- Davi's recent order was cancelled: not a recent buyer, and not in his lifetime value.
- Eva's account has no email (so no email consent): a customer of her own, never in an
  email audience.
- Fábio never gave consent, and his order has no customer object: it is attributed
  through its email.
- One anonymous point-of-sale order belongs to nobody.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql
from psycopg.types.json import Jsonb

from omnicanal.channels import IDENTITY_SOURCES_ENV, get_channel, sources

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
EXPOSURES_FILE = DBT_PROJECT_DIR / "models/marts/activation/_activation__exposures.yml"

# One fixed "now" for the fixture rows; the build runs a few seconds later, which moves
# no row across a window boundary.
NOW = datetime.now(UTC).replace(microsecond=0)


def days_ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


def customer_id_for_founder(shopify_customer_id: int) -> str:
    """A new customer's id: md5 of its founding (earliest created) record's key."""
    return hashlib.md5(f"customer:shopify:{shopify_customer_id}".encode()).hexdigest()


# ---------------------------------------------------------------------------- server


@dataclass(frozen=True)
class Server:
    host: str
    port: str
    user: str
    password: str

    def conninfo(self, dbname: str) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=dbname
        )

    def dbt_env(self, dbname: str) -> dict[str, str]:
        return {
            **os.environ,
            "OMNICANAL_PG_HOST": self.host,
            "OMNICANAL_PG_PORT": self.port,
            "OMNICANAL_PG_USER": self.user,
            "OMNICANAL_PG_PASSWORD": self.password,
            "OMNICANAL_PG_DBNAME": dbname,
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            # This module's data is Shopify's: only its feeds reach identity resolution.
            IDENTITY_SOURCES_ENV: json.dumps(
                [feed.as_var("shopify") for feed in get_channel("shopify").identity]
            ),
        }


def dbt_executable() -> str:
    beside_python = Path(sys.executable).with_name("dbt")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("dbt")
    if found is None:
        pytest.fail("dbt is not installed in this environment: run `uv sync` first.")
    return found


# ------------------------------------------------------------------------- raw data

# Column types as meltanolabs-target-postgres creates them from tap-shopify's schema.
RAW_DDL = """
create schema raw_shopify;

create table raw_shopify.customers (
    id bigint primary key,
    admin_graphql_api_id text,
    first_name text,
    last_name text,
    display_name text,
    note text,
    tags text[],
    state text,
    verified_email boolean,
    tax_exempt boolean,
    locale text,
    created_at timestamp,
    updated_at timestamp,
    number_of_orders bigint,
    amount_spent jsonb,
    default_email_address jsonb,
    default_phone_number jsonb,
    default_address jsonb,
    addresses jsonb[],
    _sdc_extracted_at timestamp,
    _sdc_received_at timestamp,
    _sdc_batched_at timestamp,
    _sdc_deleted_at timestamp,
    _sdc_sequence bigint,
    _sdc_table_version bigint
);

create table raw_shopify.orders (
    id bigint primary key,
    admin_graphql_api_id text,
    name text,
    number bigint,
    email text,
    phone text,
    created_at timestamp,
    updated_at timestamp,
    processed_at timestamp,
    cancelled_at timestamp,
    cancel_reason text,
    closed_at timestamp,
    closed boolean,
    tags text[],
    display_financial_status text,
    display_fulfillment_status text,
    source_name text,
    channel_information jsonb,
    retail_location jsonb,
    currency_code text,
    discount_codes text[],
    subtotal_price_set jsonb,
    total_discounts_set jsonb,
    total_tax_set jsonb,
    total_shipping_price_set jsonb,
    total_price_set jsonb,
    total_refunded_set jsonb,
    current_total_price_set jsonb,
    customer jsonb,
    billing_address jsonb,
    shipping_address jsonb,
    shipping_line jsonb,
    fulfillments jsonb[],
    refunds jsonb[],
    line_items jsonb[],
    discount_applications jsonb[],
    fulfillment_orders jsonb[],
    returns jsonb[],
    _sdc_extracted_at timestamp,
    _sdc_batched_at timestamp
);

create table raw_shopify.abandoned_checkouts (
    id bigint primary key,
    admin_graphql_api_id text,
    name text,
    abandoned_checkout_url text,
    created_at timestamp,
    updated_at timestamp,
    completed_at timestamp,
    customer jsonb,
    subtotal_price_set jsonb,
    total_discount_set jsonb,
    total_tax_set jsonb,
    total_price_set jsonb,
    line_items jsonb[],
    _sdc_batched_at timestamp
);

create table raw_shopify.products (
    id bigint primary key,
    admin_graphql_api_id text,
    title text,
    handle text,
    status text,
    vendor text,
    product_type text,
    total_inventory bigint,
    created_at timestamp,
    updated_at timestamp,
    published_at timestamp,
    variants jsonb[],
    _sdc_batched_at timestamp,
    _sdc_deleted_at timestamp
);

create table raw_shopify.locations (
    id bigint primary key,
    admin_graphql_api_id text,
    name text,
    is_active boolean,
    fulfills_online_orders boolean,
    ships_inventory boolean,
    address jsonb,
    created_at timestamp,
    updated_at timestamp,
    _sdc_batched_at timestamp
);
"""


def gid(kind: str, legacy_id: int) -> str:
    return f"gid://shopify/{kind}/{legacy_id}"


def money_bag(amount: str) -> Jsonb:
    money = {"amount": amount, "currency_code": "BRL"}
    return Jsonb({"shop_money": money, "presentment_money": money})


def email_address(email: str, marketing_state: str | None) -> Jsonb | None:
    """The default email address and its consent; Shopify has none without an email."""
    if not email:
        return None
    return Jsonb(
        {
            "email_address": email,
            "marketing_state": marketing_state or "NOT_SUBSCRIBED",
            "marketing_opt_in_level": "SINGLE_OPT_IN" if marketing_state else None,
            "marketing_updated_at": None,
        }
    )


def customer(shopify_id: int, email: str, first: str, last: str, **columns: object) -> dict:
    """A raw_shopify.customers row; unspecified columns take plain defaults.

    ``consent`` is the email marketing state (SUBSCRIBED unless given; None: never
    asked), ``phone`` the default phone number.
    """
    address = columns.pop("default_address", None)
    marketing_state = columns.pop("consent", "SUBSCRIBED")
    phone = columns.pop("phone", None)
    return {
        "id": shopify_id,
        "admin_graphql_api_id": gid("Customer", shopify_id),
        "first_name": first,
        "last_name": last,
        "state": "ENABLED",
        "verified_email": True,
        "tags": [],
        "number_of_orders": 0,
        "amount_spent": Jsonb({"amount": "0.0", "currency_code": "BRL"}),
        "default_email_address": email_address(email, marketing_state),
        "default_phone_number": (
            Jsonb({"phone_number": phone, "marketing_state": "NOT_SUBSCRIBED"}) if phone else None
        ),
        "default_address": Jsonb(address) if address is not None else None,
        "addresses": [Jsonb(address)] if address is not None else [],
        **columns,
    }


def order(
    shopify_id: int, email: str | None, created_at: datetime, total: str, **columns: object
) -> dict:
    """A raw_shopify.orders row; `customer_id` fills the customer object."""
    customer_id = columns.pop("customer_id", None)
    line_item_count = columns.pop("line_item_count", 1)
    return {
        "id": shopify_id,
        "admin_graphql_api_id": gid("Order", shopify_id),
        "name": f"#{shopify_id}",
        "number": shopify_id - 1000,
        "email": email,
        "created_at": created_at,
        "updated_at": created_at,
        "processed_at": created_at,
        "cancelled_at": None,
        "display_financial_status": "PAID",
        "display_fulfillment_status": "FULFILLED",
        "currency_code": "BRL",
        "total_price_set": money_bag(total),
        "subtotal_price_set": money_bag(total),
        "total_tax_set": money_bag("0.0"),
        "total_discounts_set": money_bag("0.0"),
        "source_name": "web" if customer_id is not None else "pos",
        "customer": Jsonb({"id": gid("Customer", customer_id)})
        if customer_id is not None
        else None,
        "line_items": [
            Jsonb({"id": gid("LineItem", shopify_id * 10 + i), "quantity": 1})
            for i in range(line_item_count)
        ],
        **columns,
    }


SAO_PAULO_ADDRESS = {
    "company": "529.982.247-25",
    "city": "SÃO PAULO",
    "province": "São Paulo",
    "province_code": "SP",
    "zip": "01001-000",
    "country_code_v2": "BR",
}

CUSTOMERS = [
    customer(101, "Ana.Souza@Example.com ", "ANA", "SOUZA", phone="11 98787-4321",
             created_at=days_ago(900), updated_at=days_ago(400),
             default_address=SAO_PAULO_ADDRESS),
    customer(102, "ana.souza@example.com", "Ana", "Souza Lima", phone="+5511987874321",
             created_at=days_ago(50), updated_at=days_ago(5)),
    customer(201, "bruno@example.com", "Bruno", "Lima",
             created_at=days_ago(300), updated_at=days_ago(30),
             default_address={"company": "Lima Comércio Ltda"}),
    customer(202, " BRUNO@EXAMPLE.COM", "bruno", "lima",
             created_at=days_ago(600), updated_at=days_ago(100),
             consent="UNSUBSCRIBED"),
    customer(301, "carla@example.com", "Carla", "Mendes",
             created_at=days_ago(250), updated_at=days_ago(200),
             default_address={"city": "Belo Horizonte", "province_code": "MG"}),
    # an account a clerk opened at the till for Carla, her email and the till's
    # placeholder name, newer than hers: never her golden name
    customer(302, "carla@example.com", "Consumidor", "Final",
             created_at=days_ago(5), updated_at=days_ago(1)),
    customer(401, "davi@example.com", "Davi", "Rocha",
             created_at=days_ago(500), updated_at=days_ago(3)),
    customer(501, "", "Eva", "Ramos", phone="+55 11 91234-5678",
             created_at=days_ago(20), updated_at=days_ago(10)),
    customer(601, "fabio@example.com", "Fábio", "Nunes",
             created_at=days_ago(40), updated_at=days_ago(40),
             consent=None),
]  # fmt: skip

ORDERS = [
    order(1001, "ana.souza@example.com", days_ago(10), "199.90", customer_id=102,
          line_item_count=2),
    order(1002, "ANA.SOUZA@example.com", days_ago(300), "89.90", customer_id=101),
    order(1003, "bruno@example.com", days_ago(10), "250.00", customer_id=201),
    order(1004, "carla@example.com", days_ago(200), "120.00", customer_id=301),
    order(1005, "davi@example.com", days_ago(3), "500.00", customer_id=401,
          cancelled_at=days_ago(2), display_financial_status="REFUNDED", line_item_count=3),
    order(1006, "davi@example.com", days_ago(400), "60.00", customer_id=401),
    order(1007, None, days_ago(10), "45.00", customer_id=501),
    order(1008, " FABIO@example.com", days_ago(10), "30.00", display_financial_status="PENDING"),
    order(1009, None, days_ago(1), "15.00"),
]  # fmt: skip


def insert_rows(conn: psycopg.Connection, table: str, rows: list[dict]) -> None:
    for row in rows:
        statement = sql.SQL("insert into raw_shopify.{} ({}) values ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, row)),
            sql.SQL(", ").join(sql.Placeholder() * len(row)),
        )
        conn.execute(statement, list(row.values()))


def load_raw_tables(conn: psycopg.Connection) -> None:
    conn.execute(RAW_DDL)
    insert_rows(conn, "customers", CUSTOMERS)
    insert_rows(conn, "orders", ORDERS)


# --------------------------------------------------------------------------- fixture


@dataclass(frozen=True)
class Warehouse:
    server: Server
    dbname: str
    workdir: Path

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.server.conninfo(self.dbname), autocommit=True)

    def dbt(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [
            dbt_executable(),
            *args,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(self.workdir / "target"),
            "--log-path",
            str(self.workdir / "logs"),
        ]
        return subprocess.run(
            command,
            env=self.server.dbt_env(self.dbname),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )


def assert_succeeded(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"`{' '.join(result.args[:2])}` failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    )


@pytest.fixture(scope="module")
def warehouse(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    from omnicanal.config import WarehouseURL

    url = WarehouseURL.parse(pg_admin_url)
    server = Server(url.host, str(url.port), url.user, url.password)
    admin = psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=5)
    dbname = f"omnicanal_dbt_test_{uuid.uuid4().hex[:12]}"
    admin.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    warehouse = Warehouse(server, dbname, tmp_path_factory.mktemp("dbt"))
    try:
        with warehouse.connect() as conn:
            load_raw_tables(conn)
        # The other sources' staging models have tests of their own (tests/channels),
        # and so do the models and unit tests that read them (their descendants, "+").
        others = [f"path:{c.staging_dir}+" for c in sources() if c.name != "shopify"]
        assert_succeeded(warehouse.dbt("build", *(["--exclude", *others] if others else [])))
        yield warehouse
    finally:
        admin.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname))
        )
        admin.close()


def fetch(warehouse: Warehouse, query: str) -> list[dict]:
    with warehouse.connect() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query).fetchall()


# ----------------------------------------------------------------------------- tests

# Founders: the earliest created record of each person.
ANA = customer_id_for_founder(101)
BRUNO = customer_id_for_founder(202)
CARLA = customer_id_for_founder(301)
DAVI = customer_id_for_founder(401)
FABIO = customer_id_for_founder(601)
EVA = customer_id_for_founder(501)


def test_dim_customers_is_one_golden_row_per_person(warehouse: Warehouse) -> None:
    columns = [
        "customer_id",
        "email",
        "first_name",
        "last_name",
        "phone",
        "cpf",
        "city",
        "state",
        "accepts_email_marketing",
        "shopify_customer_ids",
        "first_order_at",
        "last_order_at",
        "orders_count",
        "lifetime_value",
        "created_at",
    ]
    rows = fetch(
        warehouse,
        f"select {', '.join(columns)} from marts.dim_customers order by email nulls last",
    )
    expected = [
        (ANA, "ana.souza@example.com", "Ana", "Souza Lima", "+5511987874321", "52998224725",
         "São Paulo", "SP", True, [101, 102], days_ago(300), days_ago(10), 2,
         Decimal("289.80"), days_ago(900)),
        (BRUNO, "bruno@example.com", "Bruno", "Lima", None, None, None, None, False,
         [201, 202], days_ago(10), days_ago(10), 1, Decimal("250.00"), days_ago(600)),
        (CARLA, "carla@example.com", "Carla", "Mendes", None, None, "Belo Horizonte", "MG",
         True, [301, 302], days_ago(200), days_ago(200), 1, Decimal("120.00"), days_ago(250)),
        (DAVI, "davi@example.com", "Davi", "Rocha", None, None, None, None, True, [401],
         days_ago(400), days_ago(400), 1, Decimal("60.00"), days_ago(500)),
        (FABIO, "fabio@example.com", "Fábio", "Nunes", None, None, None, None, False, [601],
         days_ago(10), days_ago(10), 1, Decimal("30.00"), days_ago(40)),
        # Eva's account has no email, so Shopify keeps no email consent for it.
        (EVA, None, "Eva", "Ramos", "+5511912345678", None, None, None, False, [501],
         days_ago(10), days_ago(10), 1, Decimal("45.00"), days_ago(20)),
    ]  # fmt: skip
    assert rows == [dict(zip(columns, values, strict=True)) for values in expected]


def test_customer_ids_are_stable_across_runs(warehouse: Warehouse) -> None:
    before = fetch(warehouse, "select customer_id, email from marts.dim_customers order by 1")
    assert_succeeded(warehouse.dbt("run", "--select", "+dim_customers"))
    after = fetch(warehouse, "select customer_id, email from marts.dim_customers order by 1")
    assert after == before


def test_fct_orders_attributes_orders_to_people(warehouse: Warehouse) -> None:
    rows = fetch(
        warehouse,
        "select shopify_order_id, customer_id, is_cancelled, line_item_count"
        " from marts.fct_orders order by shopify_order_id",
    )
    assert [tuple(row.values()) for row in rows] == [
        (1001, ANA, False, 2),
        (1002, ANA, False, 1),
        (1003, BRUNO, False, 1),
        (1004, CARLA, False, 1),
        (1005, DAVI, True, 3),
        (1006, DAVI, False, 1),
        (1007, EVA, False, 1),
        (1008, FABIO, False, 1),  # no customer object: attributed through its email
        (1009, None, False, 1),  # anonymous point-of-sale sale
    ]


def test_recent_buyers_are_recent_consenting_buyers_with_email(warehouse: Warehouse) -> None:
    rows = fetch(warehouse, "select * from activation.sync_mailchimp__recent_buyers")
    # Bruno opted out on one account, Carla's order is 200 days old, Davi's recent order
    # was cancelled, Eva has no email, Fábio never consented.
    assert rows == [
        {
            "email": "ana.souza@example.com",
            "first_name": "Ana",
            "last_name": "Souza Lima",
            "customer_id": ANA,
            "last_order_at": days_ago(10),
        }
    ]


def test_recent_buyers_as_of_a_past_moment(warehouse: Warehouse) -> None:
    as_of = days_ago(150).isoformat()
    result = warehouse.dbt(
        "run",
        "--select",
        "segment_recent_buyers sync_mailchimp__recent_buyers",
        "--vars",
        json.dumps({"as_of": as_of}),
    )
    assert_succeeded(result)
    rows = fetch(
        warehouse, "select email, last_order_at from activation.sync_mailchimp__recent_buyers"
    )
    # 90 days before as_of reaches Carla's order 200 days ago; Ana's 300-day-old order is
    # outside, her 10-day-old one is after as_of.
    assert rows == [{"email": "carla@example.com", "last_order_at": days_ago(200)}]


def test_exposure_meta_is_plain_yaml_matching_the_model(warehouse: Warehouse) -> None:
    exposures = yaml.safe_load(EXPOSURES_FILE.read_text())["exposures"]
    exposure = next(e for e in exposures if e["name"] == "mailchimp__recent_buyers")
    sync = exposure["meta"]["omnicanal_sync"]
    assert sync == {
        "destination": "mailchimp",
        "model": "sync_mailchimp__recent_buyers",
        "key": "email",
        "fields": {"email_address": "email", "FNAME": "first_name", "LNAME": "last_name"},
    }
    assert exposure["depends_on"] == [f"ref('{sync['model']}')"]
    columns = fetch(
        warehouse,
        "select column_name from information_schema.columns"
        " where table_schema = 'activation' and table_name = 'sync_mailchimp__recent_buyers'"
        " order by ordinal_position",
    )
    model_columns = [row["column_name"] for row in columns]
    assert model_columns == ["email", "first_name", "last_name", "customer_id", "last_order_at"]
    assert sync["key"] in model_columns
    assert set(sync["fields"].values()) <= set(model_columns)


# ------------------------------------------------------------------------------ docs


def ancestors(parent_map: dict[str, list[str]], node: str) -> set[str]:
    """Every node ``node`` depends on, directly or through others."""
    seen: set[str] = set()
    todo = [node]
    while todo:
        for parent in parent_map.get(todo.pop(), []):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def test_docs_lineage_runs_from_sources_through_identity_to_every_exposure(
    warehouse: Warehouse,
) -> None:
    """`dbt docs generate` (what `make docs` serves) writes the site, a catalog of the
    built marts with their columns, and a lineage in which every sync exposure reaches
    back through its mart, identity resolution and staging to a raw source."""
    # the fixture's build compiled the project into this target: the catalog is what's new
    assert_succeeded(warehouse.dbt("docs", "generate", "--no-compile"))
    target = warehouse.workdir / "target"
    assert (target / "index.html").stat().st_size > 0
    catalog = json.loads((target / "catalog.json").read_text())
    dim_customers = catalog["nodes"]["model.omnicanal.dim_customers"]
    assert {"customer_id", "email"} <= set(dim_customers["columns"])

    manifest = json.loads((target / "manifest.json").read_text())
    exposures = [name for name in manifest["exposures"] if name.startswith("exposure.")]
    declared = yaml.safe_load(EXPOSURES_FILE.read_text())["exposures"]
    assert len(exposures) >= len(declared) > 0
    parent_map = manifest["parent_map"]
    for exposure in exposures:
        upstream = ancestors(parent_map, exposure)
        names = {node.split(".")[-1] for node in upstream if node.startswith("model.")}
        assert any(n.startswith(("dim_", "fct_", "segment_", "customer_")) for n in names), (
            exposure,
            sorted(names),
        )
        assert "int_identity__record_customers" in names, (exposure, sorted(names))
        assert any(n.startswith("stg_") for n in names), (exposure, sorted(names))
        assert any(node.startswith("source.omnicanal.") for node in upstream), exposure
