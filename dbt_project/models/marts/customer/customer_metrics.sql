{#
    One row per customer (dim_customers) with their purchase figures across channels:
    lifetime value (non-cancelled orders less refunds), orders and revenue per channel
    (web, marketplace, pos), first and last order, RFM scores and the preferred channel,
    and whether they buy in more than one channel (omnichannel).

    RFM scores are quintiles among the customers with at least one order, 5 the best
    (most recent, most orders, most value): 1 + floor(5 × percent_rank), so equal values
    share a score. Recency counts days from the last order to `as_of` (default: build
    time). The preferred channel has the most orders, then the most revenue, then the
    latest order.

    Touches are the customer's own actions in customer_journey (inbound interactions,
    orders, abandoned checkouts, returns) up to `as_of`: the first and the last, with
    their channel, and how many. The preferred contact channel is where they wrote,
    opened or clicked most (inbound interactions), then the latest. They come from
    int_customer__touches, rebuilt per changed customer; the purchase figures and the
    scores (quantiles over every buyer, recency from as_of) are computed here, whole,
    from fct_orders and fct_order_returns, which costs little.
#}

-- sqlfluff:indentation:template_blocks_indent:False
{%- set channels = ['web', 'marketplace', 'pos'] %}

with

customers as (

    select customer_id from {{ ref('dim_customers') }}

),

-- not materialized: read three times (refunds, by_channel, purchases); Postgres would
-- first copy the whole table, and each read filters it as cheaply itself
orders as not materialized (

    select * from {{ ref('fct_orders') }}
    where
        not is_cancelled
        and customer_id is not null
        and ordered_at <= {{ as_of_timestamp() }}

),

touches as (

    -- first and last touch, how many, and the preferred contact channel
    select * from {{ ref('int_customer__touches') }}
    where customer_id is not null

),

refunds as (

    -- money given back on the orders counted above (a cancelled order's is not revenue)
    select
        orders.customer_id,
        sum(order_returns.refund_amount) as refunded_amount

    from {{ ref('fct_order_returns') }} as order_returns
    inner join orders
        on order_returns.original_order_key = orders.order_key
    where order_returns.returned_at <= {{ as_of_timestamp() }}
    group by orders.customer_id

),

by_channel as (

    select
        customer_id,
        channel,
        count(*) as orders_count,
        sum(total_price) as revenue,
        max(ordered_at) as last_order_at

    from orders
    group by customer_id, channel

),

preferred as (

    select
        customer_id,
        channel as preferred_channel,
        row_number() over (
            partition by customer_id
            order by orders_count desc, revenue desc, last_order_at desc, channel asc
        ) as channel_rank

    from by_channel

),

purchases as (

    select
        customer_id,
        count(*) as orders_count,
        sum(total_price) as gross_revenue,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        count(distinct channel) as channels_count,
        {%- for channel in channels %}
        count(*) filter (where channel = '{{ channel }}') as {{ channel }}_orders,
        coalesce(sum(total_price) filter (where channel = '{{ channel }}'), 0)
            as {{ channel }}_revenue,
        {%- endfor %}
        (array_agg(channel order by ordered_at, order_key))[1] as first_order_channel,
        (array_agg(channel order by ordered_at desc, order_key desc))[1] as last_order_channel

    from orders
    group by customer_id

),

valued as (

    select
        purchases.*,
        coalesce(refunds.refunded_amount, 0) as refunded_amount,
        purchases.gross_revenue - coalesce(refunds.refunded_amount, 0) as lifetime_value,
        extract(day from {{ as_of_timestamp() }} - purchases.last_order_at) as recency_days

    from purchases
    left join refunds
        on purchases.customer_id = refunds.customer_id

),

scored as (

    select
        *,
        cast(least(5, 1 + floor(5 * percent_rank() over (order by last_order_at))) as integer)
            as recency_score,
        cast(least(5, 1 + floor(5 * percent_rank() over (order by orders_count))) as integer)
            as frequency_score,
        cast(least(5, 1 + floor(5 * percent_rank() over (order by lifetime_value))) as integer)
            as monetary_score

    from valued

),

final as (

    select
        customers.customer_id,
        coalesce(scored.orders_count, 0) as orders_count,
        coalesce(scored.gross_revenue, 0) as gross_revenue,
        coalesce(scored.refunded_amount, 0) as refunded_amount,
        coalesce(scored.lifetime_value, 0) as lifetime_value,
        {%- for channel in channels %}
        coalesce(scored.{{ channel }}_orders, 0) as {{ channel }}_orders,
        coalesce(scored.{{ channel }}_revenue, 0) as {{ channel }}_revenue,
        {%- endfor %}
        scored.first_order_at,
        scored.last_order_at,
        scored.first_order_channel,
        scored.last_order_channel,
        cast(scored.recency_days as integer) as recency_days,
        scored.recency_score,
        scored.frequency_score,
        scored.monetary_score,
        cast(scored.recency_score as text)
        || cast(scored.frequency_score as text)
        || cast(scored.monetary_score as text) as rfm_segment,
        preferred.preferred_channel,
        coalesce(scored.channels_count, 0) as channels_count,
        coalesce(scored.channels_count, 0) > 1 as is_omnichannel,
        case
            when scored.channels_count > 1 then 'omnichannel'
            when scored.channels_count = 1 then 'single_channel'
            else 'no_orders'
        end as channel_profile,
        touches.preferred_contact_channel,
        coalesce(touches.touches_count, 0) as touches_count,
        touches.first_touch_at,
        touches.first_touch_channel,
        touches.last_touch_at,
        touches.last_touch_channel

    from customers
    left join scored
        on customers.customer_id = scored.customer_id
    left join preferred
        on
            customers.customer_id = preferred.customer_id
            and preferred.channel_rank = 1
    left join touches
        on customers.customer_id = touches.customer_id

)

select * from final
