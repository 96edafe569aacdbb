{#
    Orders attributed to a person: through the ordering Shopify account when there is
    one, otherwise through the order's email when exactly one customer holds it as a
    linkable email. Orders that match neither (anonymous point-of-sale sales) keep a
    null customer_id.
#}

with

orders as (

    select * from {{ ref('stg_shopify__orders') }}

),

record_customers as (

    select * from {{ ref('int_identity__record_customers') }}

),

linkable_emails as (

    select * from {{ ref('int_customer__linkable_emails') }}

),

people_by_email as (

    select
        email as email_normalized,
        min(customer_id) as customer_id

    from linkable_emails
    group by email
    having count(distinct customer_id) = 1

),

attributed as (

    select
        orders.shopify_order_id,
        coalesce(by_account.customer_id, by_email.customer_id) as customer_id,
        orders.shopify_customer_id,
        orders.order_name,
        orders.email_normalized,
        orders.source_name,
        orders.financial_status,
        orders.fulfillment_status,
        orders.is_cancelled,
        orders.currency,
        orders.subtotal_price,
        orders.total_discounts,
        orders.total_tax,
        orders.total_price,
        orders.line_item_count,
        orders.created_at as ordered_at,
        orders.cancelled_at

    from orders
    left join record_customers as by_account
        on 'shopify:' || orders.shopify_customer_id = by_account.record_key
    left join people_by_email as by_email
        on orders.email_normalized = by_email.email_normalized

)

select * from attributed
