{#
    Orders attributed to a person: through the ordering Shopify account when there is
    one, otherwise through the order's email. Orders that match neither (anonymous
    point-of-sale sales) keep a null customer_id.
#}

with

orders as (

    select * from {{ ref('stg_shopify__orders') }}

),

accounts as (

    select * from {{ ref('int_identity__shopify_accounts') }}

),

people_by_email as (

    select distinct
        email_normalized,
        customer_id

    from accounts
    where email_normalized is not null

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
    left join accounts as by_account
        on orders.shopify_customer_id = by_account.shopify_customer_id
    left join people_by_email as by_email
        on orders.email_normalized = by_email.email_normalized

)

select * from attributed
