{#
    Commerce attributes of every buyer with an email, for the sales team's CRM: lifetime
    value, orders, whether they buy in more than one channel, the date of the last order
    and the channel they prefer. One row per email, the sync key; the destination writes
    them as contact properties (created in HubSpot on first use) with a batch upsert
    (the hubspot__customer_attributes exposure, mode upsert).
#}

with

customers as (

    select * from {{ ref('dim_customers') }}

),

metrics as (

    select * from {{ ref('customer_metrics') }}

),

final as (

    select
        customers.email,
        customers.customer_id,
        metrics.lifetime_value,
        metrics.orders_count,
        metrics.is_omnichannel,
        metrics.preferred_channel,
        cast(metrics.last_order_at as date) as last_order_date

    from customers
    inner join metrics
        on customers.customer_id = metrics.customer_id
    where
        customers.email is not null
        and metrics.orders_count > 0

)

select * from final
