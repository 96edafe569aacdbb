"""The customer marts rebuilt per changed customer equal a full refresh.

dim_customers, customer_metrics and kpi_conversion are tables over models incremental
per customer: int_customer__golden_records (survivorship over each customer's records),
int_customer__touches (each customer's own actions in the journey, up to ``as_of``) and
int_customer__touch_days (the touches kpi_conversion counts). A world of 60 people, its
commerce channels extracted by their taps, and the models up to those marts built; then,
in the raw tables, a Shopify account renamed, one given another's name, email and phone
(two accounts of one person: a merge), a Square profile given a Shopify account's name
and email (another), a Shopify account erased (LGPD). An incremental run, with ``as_of``
moved back a month, must give those models exactly what a ``--full-refresh`` of them
gives on the same data, while leaving untouched customers' rows as they were; and so
must a second run that only moves ``as_of`` forward again.

stg_vtex__orders, incremental on its orders' load stamp, must follow their profiles too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from marts_world import COMMERCE, MartsWarehouse, sandbox_warehouse

SEED = 20251201
AS_OF = datetime(2025, 11, 1, 12, 0, 0, tzinfo=UTC)
#: the models rebuilt per changed customer, and the marts built over them
MODELS = (
    "intermediate.int_customer__golden_records",
    "intermediate.int_customer__touches",
    "intermediate.int_customer__touch_days",
    "marts.dim_customers",
    "marts.customer_metrics",
    "marts.kpi_conversion",
)
SELECT = ("--select", "+customer_metrics +kpi_conversion")


def variables(as_of: datetime) -> tuple[str, str]:
    return ("--vars", json.dumps({"as_of": as_of.isoformat()}))


@pytest.fixture(scope="module")
def marts(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MartsWarehouse]:
    from omnicanal.sandbox import generate_world

    world = generate_world(60, SEED, as_of=AS_OF)
    workdir = tmp_path_factory.mktemp("customer_incremental")
    with sandbox_warehouse(pg_admin_url, workdir, world, COMMERCE) as built:
        built.dbt("seed")
        built.dbt("run", *SELECT, *variables(AS_OF))
        yield built


def built_at(marts: MartsWarehouse, model: str) -> dict[str, datetime]:
    return dict(
        marts.rows(f"select customer_id, built_at from {model} where customer_id is not null")
    )


def record_customers(marts: MartsWarehouse) -> dict[str, str]:
    return dict(
        marts.rows(
            "select record_key, customer_id from intermediate.int_identity__record_customers"
        )
    )


def full_refresh(marts: MartsWarehouse, as_of: datetime) -> dict[str, list[str]]:
    marts.dbt(
        "run",
        "--full-refresh",
        "--select",
        " ".join(model.split(".")[1] for model in MODELS),
        *variables(as_of),
    )
    return marts.contents(MODELS)


def test_incremental_customer_marts_equal_a_full_refresh(marts: MartsWarehouse) -> None:
    owners = record_customers(marts)
    sizes: dict[str, int] = {}
    for owner in owners.values():
        sizes[owner] = sizes.get(owner, 0) + 1
    taken: set[str] = set()

    def pick(source: str, lone: bool) -> str:
        """A record of ``source`` (alone in its customer, or not) in a customer not yet
        picked: its id in the source."""
        for key, customer in sorted(owners.items()):
            if key.startswith(f"{source}:") and (sizes[customer] == 1) == lone:
                if customer not in taken:
                    taken.add(customer)
                    return key.split(":", 1)[1]
        raise AssertionError(f"no {'lone' if lone else 'shared'} {source} record left")

    erased = pick("shopify", lone=True)
    renamed, merged_into = pick("shopify", lone=False), pick("shopify", lone=False)
    twin, twin_of = pick("shopify", lone=False), pick("shopify", lone=False)
    merged = pick("square", lone=False)
    golden_before = built_at(marts, "intermediate.int_customer__golden_records")
    touches_before = built_at(marts, "intermediate.int_customer__touches")

    marts.rows(
        "update raw_shopify.customers set first_name = 'Renomeada', _sdc_batched_at = now()"
        " where id = %s returning 1",
        int(renamed),
    )
    marts.rows(
        "update raw_shopify.customers as twin set first_name = other.first_name,"
        " last_name = other.last_name, default_email_address = other.default_email_address,"
        " default_phone_number = other.default_phone_number, _sdc_batched_at = now()"
        " from raw_shopify.customers as other"
        " where twin.id = %s and other.id = %s returning 1",
        int(twin),
        int(twin_of),
    )
    marts.rows(
        "update raw_square.customers as square set given_name = shopify.first_name,"
        " family_name = shopify.last_name,"
        " email_address = shopify.default_email_address ->> 'email_address',"
        " _sdc_batched_at = now()"
        " from raw_shopify.customers as shopify"
        " where square.id = %s and shopify.id = %s returning 1",
        merged,
        int(merged_into),
    )
    marts.rows("delete from raw_shopify.customers where id = %s returning 1", int(erased))

    moved_back = AS_OF - timedelta(days=30)
    marts.dbt("run", *SELECT, *variables(moved_back))
    incremental = marts.contents(MODELS)
    after = record_customers(marts)
    assert f"shopify:{erased}" not in after
    # the merges moved records between customers
    moved = {k for k, c in after.items() if k in owners and owners[k] != c}
    assert moved, "no record changed customer"
    golden_after = built_at(marts, "intermediate.int_customer__golden_records")
    rebuilt = {c for c, stamp in golden_after.items() if golden_before.get(c) != stamp}
    assert after[f"shopify:{renamed}"] in rebuilt
    involved = ({after[k] for k in moved} | {owners[k] for k in moved}) & set(golden_after)
    assert involved <= rebuilt
    assert owners[f"shopify:{erased}"] not in golden_after  # a customer gone
    assert len(rebuilt) < len(golden_after) / 2  # the others are kept
    touches_after = built_at(marts, "intermediate.int_customer__touches")
    assert any(touches_before.get(c) == stamp for c, stamp in touches_after.items())

    assert incremental == full_refresh(marts, moved_back)

    # as_of forward again, nothing else new: the actions of the month come back
    marts.dbt("run", *SELECT, *variables(AS_OF))
    incremental = marts.contents(MODELS)
    assert incremental == full_refresh(marts, AS_OF)


def test_vtex_orders_follow_their_profile(marts: MartsWarehouse) -> None:
    """stg_vtex__orders is incremental on the orders' load stamp, but an order's email and
    profile id come from its CL profile: a profile loaded again with a new email rewrites
    its orders, one erased from raw leaves its orders without it; and the model equals
    its full refresh."""
    owned = marts.rows(
        "select vtex_user_id, vtex_order_id from staging.stg_vtex__orders"
        " where vtex_profile_id is not null and is_masked_email order by vtex_order_id"
    )
    users = sorted({user for user, _ in owned})
    assert len(users) >= 2
    changed, erased = users[:2]

    def orders() -> dict[str, dict]:
        return {
            row[0]["vtex_order_id"]: row[0]
            for row in marts.rows("select to_jsonb(t) from staging.stg_vtex__orders t")
        }

    before = orders()
    marts.rows(
        "update raw_vtex.customers set email = 'perfil.novo@example.org', _sdc_batched_at = now()"
        ' where "userId" = %s returning 1',
        changed,
    )
    marts.rows('delete from raw_vtex.customers where "userId" = %s returning 1', erased)
    marts.dbt("run", "--select", "stg_vtex__customers", "stg_vtex__orders")
    incremental = orders()
    for user, order in owned:
        if user == changed:
            assert incremental[order]["email_normalized"] == "perfil.novo@example.org"
        if user == erased:
            assert incremental[order]["vtex_profile_id"] is None
    # nothing was loaded again: the orders keep their load stamps
    assert {key: row["_loaded_at"] for key, row in incremental.items()} == {
        key: row["_loaded_at"] for key, row in before.items()
    }
    marts.dbt("run", "--full-refresh", "--select", "stg_vtex__orders")
    assert orders() == incremental
