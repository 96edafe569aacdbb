"""The customer facts and the journey, incremental on arrival, equal a full refresh when
old records arrive late.

fct_orders and fct_interactions read, on an incremental run, the staging rows loaded
since the newest load stamp they hold per platform; fct_order_returns compares every
return with the row it holds; customer_journey rebuilds the customers whose events
changed. A world of 60 people, every channel extracted by its taps; before the first
build, some old records are taken out of their raw tables (an order of each commerce
platform, one with a refund; a Zendesk ticket whose comments and rating stay, so the
children come before their parent; the Instagram comment the business answered, whose
reply stays; an email event, a CRM call, a WhatsApp message, an Instagram DM). They come
back loaded now, with the dates they always had (weeks or months before the newest
rows): the incremental run must take them all, and every fact and the journey must be
what a ``--full-refresh`` of them gives on the same data. A watermark on the records'
own updated_at with a look-back missed them (the 10k bench at 5% new data found 837
orders only after the full refresh).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from marts_world import COMMERCE, ENGAGEMENT, MartsWarehouse, sandbox_warehouse

SEED = 20251203
AS_OF = datetime(2025, 11, 1, 12, 0, 0, tzinfo=UTC)
FACTS = (
    "marts.fct_orders",
    "marts.fct_order_returns",
    "marts.fct_interactions",
    "marts.customer_journey",
)
VARIABLES = ("--vars", json.dumps({"as_of": AS_OF.isoformat()}))
#: raw table -> (which of its rows arrive late, their id): old records, each with what
#: depends on it
LATE = {
    # the oldest order with a refund (fct_order_returns follows it), and the oldest
    "raw_shopify.orders": (
        "jsonb_array_length(to_jsonb(refunds)) > 0 order by updated_at limit 1",
        "id",
    ),
    "raw_square.orders": ("true order by updated_at limit 1", "id"),
    "raw_vtex.orders": ('true order by "lastChange" limit 1', '"orderId"'),
    # a ticket whose comments and rating stay: children before their parent
    "raw_zendesk.tickets": (
        "id in (select ticket_id from raw_zendesk.satisfaction_ratings"
        " where score in ('good', 'bad')) order by updated_at limit 1",
        "id",
    ),
    # a comment the business answered: its reply stays, and is the business's to the
    # comment's author only once the comment arrives
    "raw_instagram.comments": (
        "id in (select parent_id from raw_instagram.comments"
        ' where "from" ->> \'id\' = ig_user_id) order by "timestamp" limit 1',
        "id",
    ),
    "raw_instagram.messages": ("true order by created_time limit 1", "id"),
    "raw_mailchimp.email_activity": ('true order by "timestamp" limit 2', "email_id"),
    "raw_hubspot.calls": ("true order by updated_at limit 1", "id"),
    "raw_whatsapp.messages": ("true order by seq limit 1", "id"),
}


@pytest.fixture(scope="module")
def facts(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MartsWarehouse]:
    from omnicanal.sandbox import generate_world

    world = generate_world(60, SEED, as_of=AS_OF)
    workdir = tmp_path_factory.mktemp("facts_incremental")
    with sandbox_warehouse(pg_admin_url, workdir, world, COMMERCE + ENGAGEMENT) as built:
        built.dbt("seed")
        yield built


def test_records_arriving_late_reach_every_fact(facts: MartsWarehouse) -> None:
    held: dict[str, list[str]] = {}
    with facts_connection(facts) as conn:
        conn.execute("create schema late")
        for table, (which, key) in LATE.items():
            copy = f"late.{table.replace('.', '__')}"
            rows = f"(select ctid from {table} where {which})"
            conn.execute(f"create table {copy} as select * from {table} where ctid in {rows}")
            ids = [str(i) for (i,) in conn.execute(f"select {key} from {copy}")]
            assert ids, f"no late row in {table}"
            held[table] = ids
            conn.execute(f"delete from {table} where ctid in {rows}")
    facts.dbt("run", "--select", "+customer_journey", *VARIABLES)
    first = facts.contents(FACTS)

    with facts_connection(facts) as conn:
        for table in LATE:
            copy = f"late.{table.replace('.', '__')}"
            conn.execute(
                f"insert into {table} select (jsonb_populate_record(null::{table},"
                f" to_jsonb(held) || jsonb_build_object('_sdc_batched_at', now()))).*"
                f" from {copy} as held"
            )
    facts.dbt("run", "--select", "+customer_journey", *VARIABLES)
    incremental = facts.contents(FACTS)
    orders = {json.loads(row)["order_key"] for row in incremental["marts.fct_orders"]}
    sources = {json.loads(row)["source_id"] for row in incremental["marts.fct_interactions"]}
    assert f"shopify:{held['raw_shopify.orders'][0]}" in orders
    assert f"square:{held['raw_square.orders'][0]}" in orders
    assert f"vtex:{held['raw_vtex.orders'][0]}" in orders
    assert held["raw_zendesk.tickets"][0] in sources
    assert held["raw_instagram.comments"][0] in sources
    assert held["raw_hubspot.calls"][0] in {s.split(":", 1)[-1] for s in sources}
    returns = [json.loads(r) for r in incremental["marts.fct_order_returns"]]
    late_order = f"shopify:{held['raw_shopify.orders'][0]}"
    assert any(r["original_order_key"] == late_order for r in returns)
    # only what arrived (and what it touched) was rewritten
    rewritten = facts.rows(
        "select count(*) filter (where built_at = (select max(built_at) from marts.fct_orders)),"
        " count(*) from marts.fct_orders"
    )[0]
    assert rewritten[0] < rewritten[1] / 2, rewritten
    assert incremental != first

    assert_equal_to_a_full_refresh(facts, incremental)


def assert_equal_to_a_full_refresh(facts: MartsWarehouse, incremental: dict) -> None:
    """Each fact, as the incremental run left it, equals what a --full-refresh builds."""
    facts.dbt(
        "run",
        "--full-refresh",
        "--select",
        " ".join(model.split(".")[1] for model in FACTS),
        *VARIABLES,
    )
    refreshed = facts.contents(FACTS)
    for model in FACTS:
        assert incremental[model] == refreshed[model], model


def facts_connection(facts: MartsWarehouse):
    import psycopg

    return psycopg.connect(facts.url, autocommit=True)


def test_a_crm_activity_deleted_in_hubspot_leaves_the_facts_and_the_journey(
    facts: MartsWarehouse,
) -> None:
    """HubSpot deletes a logged call (the loader soft-deletes its raw row and stamps its
    batch): the incremental run takes it out of fct_interactions and out of its
    customer's journey, as a full refresh does; the customer's other events stay."""
    facts.dbt("run", "--select", "+customer_journey", *VARIABLES)  # whatever came before
    (call, customer) = facts.rows(
        "select source_id, customer_id from marts.fct_interactions"
        " where interaction_type = 'crm_call' and customer_id is not null"
        " order by interaction_key limit 1"
    )[0]
    raw_id = call.split(":", 1)[-1]
    events = facts.rows(
        "select count(*) from marts.customer_journey where customer_id = %s", customer
    )[0][0]
    facts.rows(
        "update raw_hubspot.calls set _sdc_deleted_at = now(), _sdc_batched_at = now()"
        " where id::text = %s returning 1",
        raw_id,
    )
    facts.dbt("run", "--select", "+customer_journey", *VARIABLES)
    incremental = facts.contents(FACTS)
    assert not facts.rows("select 1 from marts.fct_interactions where source_id = %s", call), (
        "the deleted call is still a fact"
    )
    assert not facts.rows(
        "select 1 from marts.customer_journey where source_key = %s", f"hubspot:{call}"
    ), "the deleted call is still in the journey"
    assert (
        facts.rows("select count(*) from marts.customer_journey where customer_id = %s", customer)[
            0
        ][0]
        == events - 1
    )

    assert_equal_to_a_full_refresh(facts, incremental)
