{#
    Lapsed customers: people who bought (an order not cancelled) but not in the last
    var segment_lapsed_after_days (180) before `as_of`. One row per customer, with the
    golden record's contact fields and what they bought.
#}

{%- set lapsed_days = var('segment_lapsed_after_days', 180) | int %}

with

metrics as (

    select * from {{ ref('customer_metrics') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

final as (

    select
        metrics.customer_id,
        customers.email,
        customers.phone,
        customers.first_name,
        customers.last_name,
        metrics.last_order_at,
        metrics.last_order_channel,
        metrics.recency_days as days_since_last_order,
        metrics.orders_count,
        metrics.lifetime_value,
        metrics.preferred_channel

    from metrics
    inner join customers
        on metrics.customer_id = customers.customer_id
    where
        metrics.orders_count > 0
        and metrics.last_order_at < {{ as_of_timestamp() }} - interval '{{ lapsed_days }} days'

)

select * from final
