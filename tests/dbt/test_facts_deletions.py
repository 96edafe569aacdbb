"""A record deleted at its source leaves every mart on the next incremental run, as a
full refresh would give.

The loader, or an erasure, deletes raw rows; an incremental staging model deletes what
it built from them (staging_delete_gone) and logs their keys in the deletions log
(source dbt_log.deleted_keys); fct_orders deletes the orders logged since its last
build, fct_order_returns the returns it no longer computes, fct_interactions what is no
interaction any more, each logging what it deleted; customer_journey rebuilds the
customers of the events whose fact was logged as deleted, and the per-customer models
and marts over it follow. A world of 60 people, every channel extracted by its taps,
the facts, the journey and the customer marts built; then in raw: a Shopify order with
a refund, a Square sale, a Square return, a VTEX order deleted; another Shopify order's
refunds and a line item taken out (the order loaded again); an order that reached
staging but not the facts deleted; a Zendesk ticket with its comments and rating
deleted in Zendesk (status ``deleted``); a raw record of each kind of interaction
deleted (a Zendesk ticket whose comments go with it and whose rating stays, an
Instagram comment the business answered, a DM, a WhatsApp message, a CRM call, a
Mailchimp open: the staging tables rebuilt from raw log what they lose,
staging_log_gone); a Square profile deleted (soft), whose orders stay without it. The
incremental run must leave them nowhere, equal a ``--full-refresh``, and a run after it
must change nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from marts_world import COMMERCE, ENGAGEMENT, MartsWarehouse, sandbox_warehouse

SEED = 20251207
AS_OF = datetime(2025, 11, 1, 12, 0, 0, tzinfo=UTC)
#: the incremental models over the facts, and the customer marts built on them
MODELS = (
    "marts.fct_orders",
    "marts.fct_order_returns",
    "marts.fct_interactions",
    "marts.customer_journey",
    "intermediate.int_customer__touches",
    "intermediate.int_customer__touch_days",
    "marts.customer_metrics",
)
SELECT = ("--select", "+customer_metrics +int_customer__touch_days")
VARIABLES = ("--vars", json.dumps({"as_of": AS_OF.isoformat()}))


@pytest.fixture(scope="module")
def marts(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MartsWarehouse]:
    from omnicanal.sandbox import generate_world

    world = generate_world(60, SEED, as_of=AS_OF)
    workdir = tmp_path_factory.mktemp("facts_deletions")
    with sandbox_warehouse(pg_admin_url, workdir, world, COMMERCE + ENGAGEMENT) as built:
        built.dbt("seed")
        built.dbt("run", *SELECT, *VARIABLES)
        yield built


def execute(marts: MartsWarehouse, statement: str, *params: object) -> list[tuple]:
    with psycopg.connect(marts.url, autocommit=True) as conn:
        cursor = conn.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else []


def one(marts: MartsWarehouse, query: str, *params: object):
    rows = marts.rows(query, *params)
    assert rows, f"nothing for: {query}"
    return rows[0][0]


def full_refresh(marts: MartsWarehouse) -> dict[str, list[str]]:
    marts.dbt(
        "run",
        "--full-refresh",
        "--select",
        " ".join(model.split(".")[1] for model in MODELS),
        *VARIABLES,
    )
    return marts.contents(MODELS)


def stamps(marts: MartsWarehouse) -> dict[str, object]:
    """The newest build stamp of each model (a run that rewrites nothing keeps them)."""
    return {model: one(marts, f"select max(built_at) from {model}") for model in MODELS[:4]}


def journey_has(marts: MartsWarehouse, column: str, key: str) -> bool:
    return bool(marts.rows(f"select 1 from marts.customer_journey where {column} = %s", key))


def test_commerce_records_deleted_at_their_source_leave_every_mart(marts: MartsWarehouse) -> None:
    # the orders of customers (so in the journey and the customer marts)
    shopify = one(
        marts,
        "select shopify_order_id from marts.fct_orders where platform = 'shopify'"
        " and customer_id is not null and not is_cancelled and order_key in"
        " (select original_order_key from marts.fct_order_returns) order by order_key limit 1",
    )
    square = one(
        marts,
        "select platform_order_id from marts.fct_orders where platform = 'square'"
        " and customer_id is not null and not is_cancelled order by order_key limit 1",
    )
    square_return = one(
        marts,
        "select platform_return_id from marts.fct_order_returns where return_platform = 'square'"
        " and customer_id is not null order by return_key limit 1",
    )
    vtex = one(
        marts,
        "select platform_order_id from marts.fct_orders where platform = 'vtex'"
        " and customer_id is not null and not is_cancelled order by order_key limit 1",
    )
    # another Shopify order refunded: its refunds taken out (and a line item), reloaded
    refunded = one(
        marts,
        "select cast(substring(original_order_key from 9) as bigint) from marts.fct_order_returns"
        " where return_platform = 'shopify' and customer_id is not null"
        " and original_order_key <> %s order by return_key limit 1",
        f"shopify:{shopify}",
    )
    refund_keys = {
        key
        for (key,) in marts.rows(
            "select return_key from marts.fct_order_returns where original_order_key = %s",
            f"shopify:{refunded}",
        )
    }
    gone_orders = {f"shopify:{shopify}", f"square:{square}", f"vtex:{vtex}"}
    gone_returns = {
        f"square:return:{square_return}",
        *(
            key
            for (key,) in marts.rows(
                "select return_key from marts.fct_order_returns where original_order_key = %s",
                f"shopify:{shopify}",
            )
        ),
        *refund_keys,
    }
    customers = {
        customer
        for (customer,) in marts.rows(
            "select customer_id from marts.customer_journey where order_key = any(%s)"
            " or source_key = any(%s)",
            list(gone_orders),
            list(gone_returns),
        )
    }
    assert customers
    metrics_before = dict(
        marts.rows(
            "select customer_id, to_jsonb(m) - 'built_at' from marts.customer_metrics m"
            " where customer_id = any(%s)",
            list(customers),
        )
    )

    # an order that reaches staging but not the facts, then is deleted
    execute(
        marts,
        "insert into raw_shopify.orders select (jsonb_populate_record(null::raw_shopify.orders,"
        " to_jsonb(raw) || jsonb_build_object('id', (select max(id) + 1 from raw_shopify.orders),"
        " 'name', name || '-staged', 'admin_graphql_api_id', admin_graphql_api_id || '-staged',"
        " '_sdc_batched_at', now()))).* from raw_shopify.orders as raw order by id limit 1",
    )
    staged = one(marts, "select max(id) from raw_shopify.orders")
    marts.dbt("run", "--select", "stg_shopify__orders", *VARIABLES)
    assert marts.rows(
        "select 1 from staging.stg_shopify__orders where shopify_order_id = %s", staged
    )

    execute(marts, "delete from raw_shopify.orders where id = any(%s)", [shopify, staged])
    execute(marts, "delete from raw_square.orders where id = any(%s)", [square, square_return])
    execute(marts, 'delete from raw_vtex.orders where "orderId" = %s', vtex)
    (lines,) = execute(
        marts,
        "update raw_shopify.orders set refunds = '[]', _sdc_batched_at = now(),"
        " line_items = case when jsonb_array_length(to_jsonb(line_items)) > 1"
        " then to_jsonb(line_items) - 0 else to_jsonb(line_items) end"
        " where id = %s returning jsonb_array_length(to_jsonb(line_items))",
        refunded,
    )
    assert lines

    marts.dbt("run", *SELECT, *VARIABLES)
    incremental = marts.contents(MODELS)

    orders = set(json.loads(row)["order_key"] for row in incremental["marts.fct_orders"])
    assert not gone_orders & orders, "a deleted order is still a fact"
    assert f"shopify:{staged}" not in orders
    assert f"shopify:{refunded}" in orders
    returns = {json.loads(row)["return_key"] for row in incremental["marts.fct_order_returns"]}
    assert not gone_returns & returns, "a deleted return is still a fact"
    for key in gone_orders:
        assert not journey_has(marts, "source_key", key), f"{key} is still in the journey"
    for key in gone_returns:
        assert not journey_has(marts, "source_key", key), f"{key} is still in the journey"
    metrics_after = dict(
        marts.rows(
            "select customer_id, to_jsonb(m) - 'built_at' from marts.customer_metrics m"
            " where customer_id = any(%s)",
            list(customers),
        )
    )
    assert metrics_after != metrics_before, "customer_metrics kept the deleted orders"
    logged = set(marts.rows("select model, deleted_key from staging.deleted_keys"))
    assert ("stg_shopify__orders", str(staged)) in logged
    assert {("fct_orders", key) for key in gone_orders} <= logged
    # the order that never reached the facts was no fact to delete
    assert ("fct_orders", f"shopify:{staged}") not in logged

    assert incremental == full_refresh(marts), "the incremental run differs from a full refresh"

    # nothing new: a run deletes nothing, rewrites nothing
    marts.dbt("run", *SELECT, *VARIABLES)
    before = stamps(marts)
    logged = one(marts, "select count(*) from staging.deleted_keys")
    marts.dbt("run", *SELECT, *VARIABLES)
    assert stamps(marts) == before
    assert one(marts, "select count(*) from staging.deleted_keys") == logged
    assert marts.contents(MODELS) == incremental


def test_a_ticket_deleted_in_zendesk_leaves_the_timeline_with_its_comments_and_rating(
    marts: MartsWarehouse,
) -> None:
    """Zendesk's incremental export lists a deleted ticket with status ``deleted``: the
    ticket, its comments and its rating are no interaction any more."""
    ticket = one(
        marts,
        "select cast(tickets.id as text) from raw_zendesk.tickets as tickets"
        " where tickets.status <> 'deleted' and exists (select from marts.fct_interactions as f"
        " where f.thread_id = cast(tickets.id as text) and f.customer_id is not null"
        " and f.interaction_type = 'ticket_comment') and exists (select from"
        " marts.fct_interactions as f where f.thread_id = cast(tickets.id as text)"
        " and f.interaction_type = 'satisfaction_rating') order by tickets.id limit 1",
    )
    keys = {
        key
        for (key,) in marts.rows(
            "select interaction_key from marts.fct_interactions"
            " where source_platform = 'zendesk' and thread_id = %s",
            ticket,
        )
    }
    assert len(keys) >= 3
    execute(
        marts,
        "update raw_zendesk.tickets set status = 'deleted', updated_at = now(),"
        " _sdc_batched_at = now() where cast(id as text) = %s",
        ticket,
    )
    marts.dbt("run", *SELECT, *VARIABLES)
    incremental = marts.contents(MODELS)
    assert not marts.rows(
        "select 1 from marts.fct_interactions where interaction_key = any(%s)", list(keys)
    ), "the deleted ticket is still in the timeline"
    assert not marts.rows(
        "select 1 from marts.customer_journey where source_key = any(%s)", list(keys)
    ), "the deleted ticket is still in the journey"
    assert incremental == full_refresh(marts)


#: raw table -> (which of its rows is deleted, its key, the fact's key of it): one record
#: of each kind of interaction, each of a customer
ENGAGEMENT_DELETES = {
    # a ticket whose comments and rating stay in raw: its comments go with it (they are
    # its interactions), its rating stays, built again without it
    "raw_zendesk.tickets": (
        "id in (select ticket_id from raw_zendesk.satisfaction_ratings"
        " where score in ('good', 'bad')) and id in (select ticket_id from"
        " raw_zendesk.ticket_comments) and status <> 'deleted' order by id limit 1",
        "id",
        "zendesk:ticket:",
    ),
    # a comment the business answered: its reply goes with it
    "raw_instagram.comments": (
        "id in (select parent_id from raw_instagram.comments"
        " where \"from\" ->> 'id' = ig_user_id) order by id limit 1",
        "id",
        "instagram:comment:",
    ),
    "raw_instagram.messages": ("true order by id limit 1", "id", "instagram:message:"),
    "raw_whatsapp.messages": ("true order by seq limit 1", "id", "whatsapp:message:"),
    "raw_hubspot.calls": ("_sdc_deleted_at is null order by id limit 1", "id", "hubspot:call:"),
}


def test_interactions_deleted_at_their_source_leave_every_mart(marts: MartsWarehouse) -> None:
    gone: dict[str, str] = {}
    for table, (which, key, prefix) in ENGAGEMENT_DELETES.items():
        rows = marts.rows(f"select cast({key} as text) from {table} where {which}")
        assert rows, f"nothing to delete in {table}"
        gone[table] = prefix + rows[0][0]
    ticket = gone["raw_zendesk.tickets"].rsplit(":", 1)[1]
    comment = gone["raw_instagram.comments"].rsplit(":", 1)[1]
    # what goes with them: the ticket's comments, the business's replies to the comment
    followers = {
        key
        for (key,) in marts.rows(
            "select interaction_key from marts.fct_interactions where"
            " (source_platform = 'zendesk' and thread_id = %s"
            "  and interaction_type = 'ticket_comment')"
            " or (interaction_type = 'instagram_comment' and thread_id = %s"
            "  and direction = 'outbound')",
            ticket,
            comment,
        )
    }
    assert any(k.startswith("zendesk:comment:") for k in followers)
    assert any(k.startswith("instagram:comment:") for k in followers)
    # a Mailchimp open (its staging model is incremental and counts its raw rows)
    opened = one(
        marts,
        "select email_event_id from staging.stg_mailchimp__email_events"
        " where event_type = 'open' order by email_event_id limit 1",
    )
    gone["raw_mailchimp.email_activity"] = f"mailchimp:{opened}"
    keys = set(gone.values()) | followers
    held = {
        k
        for (k,) in marts.rows(
            "select interaction_key from marts.fct_interactions where interaction_key = any(%s)",
            list(keys),
        )
    }
    assert held == keys, keys - held
    customers = {
        c
        for (c,) in marts.rows(
            "select customer_id from marts.customer_journey where source_key = any(%s)",
            list(keys),
        )
    }
    assert customers

    for table, (_which, key, _prefix) in ENGAGEMENT_DELETES.items():
        execute(
            marts,
            f"delete from {table} where cast({key} as text) = %s",
            gone[table].rsplit(":", 1)[1],
        )
    execute(
        marts,
        "delete from raw_mailchimp.email_activity as raw using staging.stg_mailchimp__email_events"
        " as events where events.email_event_id = %s and raw.campaign_id ="
        " events.mailchimp_campaign_id and raw.email_id = events.mailchimp_member_id"
        " and raw.action = events.event_type"
        " and cast(raw.timestamp as timestamptz) = events.occurred_at",
        opened,
    )

    marts.dbt("run", *SELECT, *VARIABLES)
    incremental = marts.contents(MODELS)
    left = {
        k
        for (k,) in marts.rows(
            "select interaction_key from marts.fct_interactions where interaction_key = any(%s)",
            list(keys),
        )
    }
    assert not left, f"deleted at the source, still in fct_interactions: {left}"
    assert not marts.rows(
        "select source_key from marts.customer_journey where source_key = any(%s)", list(keys)
    ), "deleted at the source, still in the journey"
    assert incremental == full_refresh(marts), "the incremental run differs from a full refresh"


def test_orders_of_a_deleted_square_profile_are_no_longer_its_customers(
    marts: MartsWarehouse,
) -> None:
    """Square deletes a customer profile and keeps its orders (a full-refresh extract
    soft-deletes the profile in raw): identity drops the record, so the orders it
    attributed belong to no one any more, in the facts and the journey alike."""
    (square_order, customer) = marts.rows(
        "select orders.platform_order_id, orders.customer_id from marts.fct_orders as orders"
        " where orders.platform = 'square' and orders.customer_id is not null"
        " order by orders.order_key limit 1"
    )[0]
    profile = one(
        marts,
        "select square_customer_id from staging.stg_square__orders where square_order_id = %s",
        square_order,
    )
    orders = {
        key
        for (key,) in marts.rows(
            "select order_key from marts.fct_orders o join staging.stg_square__orders s"
            " on o.platform_order_id = s.square_order_id"
            " where o.platform = 'square' and s.square_customer_id = %s",
            profile,
        )
    }
    assert orders
    execute(
        marts,
        "update raw_square.customers set _sdc_deleted_at = now(), _sdc_batched_at = now()"
        " where id = %s",
        profile,
    )
    marts.dbt("run", *SELECT, *VARIABLES)
    incremental = marts.contents(MODELS)
    assert f"square:{profile}" not in {
        k
        for (k,) in marts.rows("select record_key from intermediate.int_identity__record_customers")
    }
    assert not marts.rows(
        "select order_key from marts.fct_orders where order_key = any(%s)"
        " and customer_id is not null",
        list(orders),
    ), "an order of the deleted profile still has its customer"
    assert not marts.rows(
        "select 1 from marts.customer_journey where source_key = any(%s)", list(orders)
    ), "an order of the deleted profile is still in a journey"
    assert customer is not None
    assert incremental == full_refresh(marts), "the incremental run differs from a full refresh"
