{#
    Recent buyers: people who bought (a non-cancelled online-store order, web or POS) in
    the `recent_buyers_window_days` days up to `as_of`, accept email marketing and have
    an email. One row per customer (and per email). The Mailchimp audience and the
    HubSpot list of recent buyers both read it (their sync_* models).
#}

{%- set window_days = recent_buyers_window_days() %}

with

customers as (

    select * from {{ ref('dim_customers') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

recent_purchases as (

    select
        customer_id,
        max(ordered_at) as last_order_at

    from orders
    where
        -- the online store's buyers (its web and POS orders), as the audience has always
        -- been (World.expected_recent_buyers); fct_orders now holds every platform
        shopify_order_id is not null
        and not is_cancelled
        and customer_id is not null
        and ordered_at <= {{ as_of_timestamp() }}
        and ordered_at >= {{ as_of_timestamp() }} - interval '{{ window_days }} days'
    group by customer_id

),

final as (

    select
        customers.email,
        customers.first_name,
        customers.last_name,
        customers.customer_id,
        recent_purchases.last_order_at

    from customers
    inner join recent_purchases
        on customers.customer_id = recent_purchases.customer_id
    where
        customers.accepts_email_marketing
        and customers.email is not null

)

select * from final
