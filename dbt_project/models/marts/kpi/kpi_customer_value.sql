{#
    What omnichannel customers are worth next to single-channel ones, per period (grain
    day, week or month: macro kpi_period): the customers who ordered in the period
    (orders not cancelled), by their channel profile over their whole history
    (customer_metrics: omnichannel when they bought on more than one of web,
    marketplace and pos), with their orders, revenue and revenue and orders per
    customer.
#}

with

orders as (

    select
        customer_id,
        order_key,
        total_price,
        ordered_at

    from {{ ref('fct_orders') }}
    where
        customer_id is not null
        and not is_cancelled
        and ordered_at <= {{ as_of_timestamp() }}

),

profiles as (

    select
        customer_id,
        channel_profile

    from {{ ref('customer_metrics') }}

),

grains as (

    select unnest(array['day', 'week', 'month']) as grain

),

periods as (

    select
        grains.grain,
        {{ kpi_period('grains.grain', 'orders.ordered_at') }} as period_start,
        profiles.channel_profile,
        orders.customer_id,
        orders.total_price

    from orders
    inner join profiles
        on orders.customer_id = profiles.customer_id
    cross join grains

),

final as (

    select
        grain,
        period_start,
        channel_profile,
        count(distinct customer_id) as customers,
        count(*) as orders,
        sum(total_price) as revenue,
        round(sum(total_price) / count(distinct customer_id), 2) as revenue_per_customer,
        round(cast(count(*) as numeric) / count(distinct customer_id), 4) as orders_per_customer

    from periods
    group by grain, period_start, channel_profile

)

select * from final
