{#
    Recent buyers: people who bought (a non-cancelled online-store order, web or POS) in
    the `recent_buyers_window_days` days up to `as_of` (int_customer__recent_purchases),
    accept email marketing and have an email. One row per customer (and per email). The
    Mailchimp audience and the HubSpot list of recent buyers both read it (their sync_*
    models).
#}

with

customers as (

    select * from {{ ref('dim_customers') }}

),

recent_purchases as (

    select * from {{ ref('int_customer__recent_purchases') }}

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
