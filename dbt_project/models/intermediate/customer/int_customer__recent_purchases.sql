{#
    Recent purchases per customer: each resolved customer with a non-cancelled
    online-store order (Shopify, web or POS) in the `recent_buyers_window_days` days up
    to `as_of`, and the latest such order. No consent or email filter: each reader
    applies its own (segment_recent_buyers, for email marketing; sync_zendesk__recent_buyers
    tags help-desk users, which is not marketing).
#}

-- ephemeral: inlined into each reader at compile time, so a reader rebuilt with its own
-- `as_of` (--vars) reads that moment's window, never a view's older one
{{ config(materialized='ephemeral') }}

{%- set window_days = recent_buyers_window_days() %}

with

orders as (

    select * from {{ ref('fct_orders') }}

),

final as (

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

)

select * from final
