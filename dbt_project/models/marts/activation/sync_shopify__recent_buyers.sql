{#
    Shopify customer tag of recent buyers: the Shopify customer accounts that placed a
    non-cancelled order in the `recent_buyers_window_days` (default 90) days up to
    `as_of`, whose owner (the resolved customer) accepts email marketing. One row per
    account, keyed by its GraphQL global id; the owner's customer_id lets the sync
    engine check consent; the latest order in the window goes to a metafield, as UTC
    ISO-8601 text. Read by `omnicanal sync` through the shopify__recent_buyers exposure,
    which tags each account and takes the tag off an account that leaves.
#}

{%- set window_days = recent_buyers_window_days() %}

with

customers as (

    select * from {{ ref('dim_customers') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

recent_accounts as (

    select
        shopify_customer_id,
        customer_id,
        max(ordered_at) as last_order_at

    from orders
    where
        platform = 'shopify'
        and not is_cancelled
        and shopify_customer_id is not null
        and customer_id is not null
        and ordered_at <= {{ as_of_timestamp() }}
        and ordered_at >= {{ as_of_timestamp() }} - interval '{{ window_days }} days'
    group by shopify_customer_id, customer_id

),

final as (

    select
        'gid://shopify/Customer/' || recent_accounts.shopify_customer_id
            as shopify_customer_gid,
        recent_accounts.shopify_customer_id,
        recent_accounts.customer_id,
        to_char(
            recent_accounts.last_order_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
        ) as last_order_at_utc

    from recent_accounts
    inner join customers
        on recent_accounts.customer_id = customers.customer_id
    where customers.accepts_email_marketing

)

select * from final
