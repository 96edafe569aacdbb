"""The customer marts on a sandbox world, checked against the world's ground truth.

A world of 200 people is served by the sandbox; tap-shopify, tap-square and tap-vtex
extract it into a fresh warehouse database and dbt builds the customer marts with their
ancestors (staging, identity) and tests. Then, from the world alone, in plain Python:

- every order lands in fct_orders once, and the counts per platform, channel and
  fulfilment type are the world's;
- every online (Shopify) order a shop took back at its Square till is in
  fct_order_returns, linked to that Shopify order, flagged, at that shop, and
  attributed to the customer who is the order's buyer;
- every Shopify refund is where the world took its goods back: at a shop (an online
  order returned in store) or at the warehouse a parcel went back to;
- customer_metrics counts a person's orders per channel as the world does, for people
  identity resolution keeps whole;
- an incremental run takes a change (a VTEX order cancelled) and rewrites only the
  orders inside the look-back.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from marts_world import (
    COMMERCE,
    MartsWarehouse,
    cancelled_orders,
    expected_orders,
    order_owner,
    sandbox_warehouse,
)

from omnicanal.channels.shopify.commerce import WAREHOUSE_ID

SEED = 20250601
AS_OF = datetime(2025, 6, 1, 15, 0, 0, tzinfo=UTC)
Marts = MartsWarehouse


@pytest.fixture(scope="module")
def marts(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Marts]:
    from omnicanal.sandbox import generate_world

    world = generate_world(200, SEED, as_of=AS_OF)  # its own: a test mutates it
    workdir = tmp_path_factory.mktemp("marts")
    with sandbox_warehouse(pg_admin_url, workdir, world, COMMERCE) as built:
        # the models up to the customer marts, and the marts' own tests (staging and
        # identity have tests of their own; customer_consent, of the activation engine,
        # reads the engagement sources this world is extracted without)
        built.dbt(
            "build",
            "--select",
            "+customer_metrics",
            "+fct_order_returns",
            "path:models/marts/customer/_customer__models.yml",
            "path:models/marts/customer/_customer__journey.yml",
            "test_name:assert_order_refunds_within_order_total",
            "--indirect-selection",
            "empty",
        )
        yield built


# -------------------------------------------------------------------------- tests


def test_every_order_once_with_the_worlds_channel_and_fulfilment(marts: Marts) -> None:
    expected = expected_orders(marts.world)
    rows = marts.rows("select order_key, platform, channel, fulfilment_type from marts.fct_orders")
    found = {key: (platform, channel, kind) for key, platform, channel, kind in rows}
    assert len(found) == len(rows)
    assert found == expected
    counts = Counter(found.values())
    # the world has every kind of order
    assert all(counts[kind] for kind in set(expected.values()))
    assert {channel for _, channel, _ in counts} == {"web", "marketplace", "pos"}


def test_online_orders_returned_in_a_shop_link_to_the_order_and_its_buyer(marts: Marts) -> None:
    world = marts.world
    square, shopify = world.slices["square"], world.slices["shopify"]
    truth = square.online_returns  # Square order id -> the Shopify order it took back
    assert len(truth) >= 5
    rows = marts.rows(
        """
        select
            returns.platform_return_id,
            orders.shopify_order_id,
            returns.customer_id,
            orders.customer_id,
            returns.is_online_order_returned_in_store,
            returns.return_location_key,
            returns.return_type,
            returns.refund_amount
        from marts.fct_order_returns as returns
        left join marts.fct_orders as orders
            on returns.original_order_key = orders.order_key
        where returns.return_platform = 'square' and orders.platform = 'shopify'
        """
    )
    assert {row[0]: row[1] for row in rows} == truth
    square_orders = {o["id"]: o for o in square.orders}
    refunds = defaultdict(Decimal)
    for refund in square.refunds:
        refunds[refund["order_id"]] += Decimal(refund["amount_money"]["amount"]) / 100
    # whose each customer is: the people of its Shopify accounts
    people = defaultdict(set)
    for record_key, customer_id in marts.rows(
        "select record_key, customer_id from intermediate.int_identity__record_customers"
        " where record_key like 'shopify:%'"
    ):
        people[customer_id].add(shopify.customer_person[int(record_key.split(":")[1])])
    online = {o["id"]: o for o in shopify.orders}
    for square_id, _, customer, buyer, flagged, location, kind, refund in rows:
        order = square_orders[square_id]
        assert flagged is True
        assert location == f"square:{order['location_id']}"
        assert kind == ("exchange" if order.get("line_items") else "return")
        assert refund == refunds[square_id]
        assert customer is not None and customer == buyer
        buyer_person = shopify.customer_person[online[truth[square_id]]["customer"]["id"]]
        assert people[customer] == {buyer_person} == {square.order_person[square_id]}
    # and no other till return is an online order returned in a shop (Shopify's own
    # refunds in a shop: test_each_shopify_refund_happens_where_the_goods_went_back)
    flagged = marts.rows(
        "select count(*) from marts.fct_order_returns where is_online_order_returned_in_store"
        " and original_platform = 'shopify' and return_platform = 'square'"
    )[0][0]
    assert flagged == len(truth)


def test_each_shopify_refund_happens_where_the_goods_went_back(marts: Marts) -> None:
    """A Shopify refund's channel and location are where its items went back into
    stock, as the world took them back: at a shop ('pos'; an online order refunded
    there is returned in store, the first-class case) or at the warehouse a parcel was
    sent back to ('web')."""
    shopify = marts.world.slices["shopify"]
    expected = {}
    for order in shopify.orders:
        back_at = shopify.order_details[order["id"]]["refund_locations"]
        for refund in order["refunds"]:
            location = back_at[str(refund["id"])]
            channel = "web" if location == WAREHOUSE_ID else "pos"
            online = order["source_name"] != "pos"
            expected[str(refund["id"])] = (
                channel,
                f"shopify:{location}",
                online and channel == "pos",
            )
    names = {f"shopify:{location['id']}": location["name"] for location in shopify.locations}
    rows = marts.rows(
        """
        select
            platform_return_id,
            return_channel,
            return_location_key,
            is_online_order_returned_in_store,
            return_location_name
        from marts.fct_order_returns
        where return_platform = 'shopify'
        """
    )
    assert {row[0]: row[1:4] for row in rows} == expected
    assert all(row[4] == names[row[2]] for row in rows)
    # the world has online orders returned in a shop, till sales returned at their
    # till, and parcels sent back
    kinds = Counter((channel, in_store) for channel, _, in_store in expected.values())
    assert kinds[("pos", True)] >= 1
    assert kinds[("pos", False)] >= 1
    assert kinds[("web", False)] >= 1


def test_orders_are_attributed_to_their_buyer(marts: Marts) -> None:
    owner = order_owner(marts.world)
    rows = marts.rows(
        "select order_key, customer_id from marts.fct_orders where customer_id is not null"
    )
    persons_of = defaultdict(Counter)
    for key, customer in rows:
        if key in owner:
            persons_of[customer][owner[key]] += 1
    # each customer's orders are one person's
    mixed = {c: p for c, p in persons_of.items() if len(p) > 1}
    assert len(mixed) <= 0.01 * len(persons_of), mixed
    # every VTEX order and every Square sale rung up with a (not deleted) profile has a
    # customer
    unattributed = marts.rows(
        """
        select orders.order_key from marts.fct_orders as orders
        left join staging.stg_square__orders as square
            on orders.order_key = 'square:' || square.square_order_id
        left join staging.stg_square__customers as profiles
            on square.square_customer_id = profiles.square_customer_id
        where orders.customer_id is null
            and (orders.platform = 'vtex' or profiles.deleted_at is null)
            and (orders.platform = 'vtex' or profiles.square_customer_id is not null)
        """
    )
    assert unattributed == []


def test_customer_metrics_count_each_persons_orders_per_channel(marts: Marts) -> None:
    world = marts.world
    owner = order_owner(world)
    expected = expected_orders(world)
    cancelled = cancelled_orders(world)
    per_person: dict[str, Counter] = defaultdict(Counter)
    for key, (_, channel, _) in expected.items():
        if key in owner and key not in cancelled:
            per_person[owner[key]][channel] += 1
    customer_of = defaultdict(set)
    for key, customer in marts.rows("select order_key, customer_id from marts.fct_orders"):
        if key in owner:
            customer_of[owner[key]].add(customer)
    metrics = {
        row[0]: row[1:]
        for row in marts.rows(
            "select customer_id, web_orders, marketplace_orders, pos_orders, is_omnichannel,"
            " channel_profile from marts.customer_metrics"
        )
    }
    # people whose every order is one customer's, and that customer's orders all theirs
    customers_people = defaultdict(set)
    for person, customers in customer_of.items():
        for customer in customers:
            customers_people[customer].add(person)
    whole = [
        person
        for person, customers in customer_of.items()
        if len(customers) == 1
        and None not in customers
        and customers_people[next(iter(customers))] == {person}
        and per_person[person]
    ]
    # (identity resolution splits or merges some people: 146 of 170 buyers are whole)
    assert len(whole) >= 0.8 * len([p for p in customer_of if per_person[p]])
    omnichannel = 0
    for person in whole:
        counts = per_person[person]
        web, marketplace, pos, is_omni, profile = metrics[next(iter(customer_of[person]))]
        assert (web, marketplace, pos) == (counts["web"], counts["marketplace"], counts["pos"])
        assert is_omni is (len(counts) > 1)
        assert profile == ("omnichannel" if len(counts) > 1 else "single_channel")
        omnichannel += is_omni
    assert 0 < omnichannel < len(whole)


def test_an_incremental_run_takes_a_change_and_rewrites_only_recent_orders(
    marts: Marts,
) -> None:
    vtex = marts.world.slices["vtex"]
    # tap-vtex re-reads the orders created in the month before its bookmark
    order = max(
        (o for o in vtex.orders if o["status"] == "invoiced"), key=lambda o: o["creationDate"]
    )
    key = f"vtex:{order['orderId']}"
    before = dict(marts.rows("select order_key, built_at from marts.fct_orders"))
    marts.sandbox.app.state.vtex.touch_order(order["orderId"], status="canceled")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMNICANAL_WAREHOUSE_URL", marts.url)
        patch.setenv("OMNICANAL_SANDBOX_PORT", str(marts.sandbox.port))
        marts.extract("vtex")
    marts.dbt("run", "--select", "stg_vtex__orders", "fct_orders")
    after = {
        key: (built, status)
        for key, built, status in marts.rows(
            "select order_key, built_at, order_status from marts.fct_orders"
        )
    }
    assert set(after) == set(before)  # nothing duplicated, nothing lost
    assert after[key][1] == "cancelled"
    rewritten = [k for k, (built, _) in after.items() if built != before[k]]
    assert key in rewritten
    assert len(rewritten) < 0.2 * len(after)
