{#
    High-value omnichannel customers: people who bought on more than one of web,
    marketplace and pos (customer_metrics.is_omnichannel) and whose lifetime value
    scores at least var segment_high_value_min_monetary_score (4 of 5: the top two
    quintiles of buyers by lifetime value net of refunds).
#}

{%- set min_score = var('segment_high_value_min_monetary_score', 4) | int %}

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
        metrics.lifetime_value,
        metrics.monetary_score,
        metrics.orders_count,
        metrics.channels_count,
        metrics.web_orders,
        metrics.marketplace_orders,
        metrics.pos_orders,
        metrics.preferred_channel,
        metrics.last_order_at

    from metrics
    inner join customers
        on metrics.customer_id = customers.customer_id
    where
        metrics.is_omnichannel
        and metrics.monetary_score >= {{ min_score }}

)

select * from final
