{#
    One row per order across the commerce platforms: Shopify (its online store and its
    POS), Square (the shops' tills and Square Online pick-ups) and VTEX (its web store
    and the marketplaces it sells on). Each order gets:

    - customer_id: through the record identity resolution made of the order or of the
      account that placed it (Shopify account, else the order's linkable email; Square
      customer profile; VTEX order), null for anonymous sales;
    - channel, where it was placed: web, marketplace or pos; fulfilment_type, how it
      reached the buyer: delivery, pickup_in_store or in_store_sale; and the location
      (store) that handed it over;
    - amounts in the shop currency and a status common to the platforms.

    A Square order that only takes goods back (its returns, an exchange's new items) is
    no sale: it is in fct_order_returns.

    Incremental on updated_at with a look-back (var orders_lookback_hours); an order is
    also rewritten when identity resolution changed the customer of a record it is
    attributed through. Platforms whose channel the project is not built with (var
    commerce_platforms, by default those with identity feeds) are left out.
#}

-- sqlfluff:indentation:template_blocks_indent:False
{{ config(
    materialized='incremental',
    unique_key='order_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    meta={'new_rows_stamp': 'built_at'},
    post_hook=[
        "create unique index if not exists {{ this.identifier }}_key_idx on {{ this }} (order_key)",
        "create index if not exists {{ this.identifier }}_customer_idx on {{ this }} (customer_id)",
    ],
) }}

{%- set platforms = commerce_platforms() %}
{%- set lookback = var('orders_lookback_hours', 72) | int %}

with

record_customers as (

    select * from {{ ref('int_identity__record_customers') }}

),

linkable_emails as (

    select * from {{ ref('int_customer__linkable_emails') }}

),

people_by_email as (

    select
        linkable_emails.email as email_normalized,
        min(linkable_emails.customer_id) as customer_id,
        max(record_customers.assigned_at) as assigned_at

    from linkable_emails
    inner join record_customers
        on linkable_emails.record_key = record_customers.record_key
    group by linkable_emails.email
    having count(distinct linkable_emails.customer_id) = 1

),

shopify_locations as (

    select * from {{ ref('stg_shopify__locations') }}

),

{%- if 'shopify' in platforms %}

shopify_orders as (

    select
        'shopify:' || orders.shopify_order_id as order_key,
        'shopify' as platform,
        cast(orders.shopify_order_id as text) as platform_order_id,
        orders.shopify_order_id,
        orders.order_name,
        coalesce(by_account.customer_id, by_email.customer_id) as customer_id,
        greatest(by_account.assigned_at, by_email.assigned_at) as customer_assigned_at,
        orders.shopify_customer_id,
        orders.email_normalized,
        case when orders.source_name = 'pos' then 'pos' else 'web' end as channel,
        orders.source_name,
        case
            when orders.source_name = 'pos' then 'in_store_sale'
            when orders.delivery_method = 'pick_up' then 'pickup_in_store'
            else 'delivery'
        end as fulfilment_type,
        coalesce(orders.retail_location_id, orders.pickup_location_id) as shopify_location_id,
        cast(null as text) as square_location_id,
        cast(null as text) as vtex_pickup_point_id,
        cast(null as text) as vtex_pickup_point_name,
        orders.financial_status,
        orders.fulfillment_status,
        case
            when orders.is_cancelled then 'cancelled'
            when orders.fulfillment_status = 'fulfilled' then 'completed'
            else 'open'
        end as order_status,
        orders.financial_status || '/' || orders.fulfillment_status as platform_status,
        orders.is_cancelled,
        orders.currency,
        orders.subtotal_price,
        orders.total_discounts,
        orders.total_tax,
        orders.total_shipping,
        orders.total_price,
        orders.line_item_count,
        orders.created_at as ordered_at,
        orders.updated_at,
        orders.cancelled_at

    from {{ ref('stg_shopify__orders') }} as orders
    left join record_customers as by_account
        on 'shopify:' || orders.shopify_customer_id = by_account.record_key
    left join people_by_email as by_email
        on orders.email_normalized = by_email.email_normalized

),
{%- endif %}

{%- if 'square' in platforms %}

square_orders as (

    select
        'square:' || orders.square_order_id as order_key,
        'square' as platform,
        orders.square_order_id as platform_order_id,
        cast(null as bigint) as shopify_order_id,
        orders.reference_id as order_name,
        by_profile.customer_id,
        by_profile.assigned_at as customer_assigned_at,
        cast(null as bigint) as shopify_customer_id,
        cast(null as text) as email_normalized,
        -- Square Online: placed on the web, picked up at the shop's counter
        case when orders.fulfillment_type = 'PICKUP' then 'web' else 'pos' end as channel,
        orders.source_name,
        case
            when orders.fulfillment_type = 'PICKUP' then 'pickup_in_store'
            when orders.fulfillment_type in ('SHIPMENT', 'DELIVERY') then 'delivery'
            else 'in_store_sale'
        end as fulfilment_type,
        cast(null as bigint) as shopify_location_id,
        orders.square_location_id,
        cast(null as text) as vtex_pickup_point_id,
        cast(null as text) as vtex_pickup_point_name,
        cast(null as text) as financial_status,
        lower(orders.fulfillment_state) as fulfillment_status,
        case
            when orders.order_state = 'CANCELED' then 'cancelled'
            when orders.order_state = 'COMPLETED' then 'completed'
            else 'open'
        end as order_status,
        lower(orders.order_state) as platform_status,
        orders.order_state = 'CANCELED' as is_cancelled,
        orders.currency,
        -- tax-inclusive prices (ICMS): the subtotal is what was charged before discounts
        orders.total_amount + orders.total_discount_amount as subtotal_price,
        orders.total_discount_amount as total_discounts,
        orders.total_tax_amount as total_tax,
        cast(0 as numeric) as total_shipping,
        orders.total_amount as total_price,
        orders.line_item_count,
        orders.created_at as ordered_at,
        orders.updated_at,
        case when orders.order_state = 'CANCELED' then orders.closed_at end as cancelled_at

    from {{ ref('stg_square__orders') }} as orders
    left join record_customers as by_profile
        on 'square:' || orders.square_customer_id = by_profile.record_key
    where not orders.has_returns

),
{%- endif %}

{%- if 'vtex' in platforms %}

vtex_orders as (

    select
        'vtex:' || orders.vtex_order_id as order_key,
        'vtex' as platform,
        orders.vtex_order_id as platform_order_id,
        cast(null as bigint) as shopify_order_id,
        orders.vtex_order_id as order_name,
        by_order.customer_id,
        by_order.assigned_at as customer_assigned_at,
        cast(null as bigint) as shopify_customer_id,
        orders.email_normalized,
        -- the store's own sales (origin Fulfillment) vs. sold on a marketplace (affiliate)
        case
            when orders.origin = 'Marketplace' or orders.affiliate_id is not null
                then 'marketplace'
            else 'web'
        end as channel,
        coalesce(orders.affiliate_id, orders.origin) as source_name,
        case when orders.is_pickup then 'pickup_in_store' else 'delivery' end as fulfilment_type,
        cast(null as bigint) as shopify_location_id,
        cast(null as text) as square_location_id,
        orders.pickup_point_id as vtex_pickup_point_id,
        orders.pickup_point_name as vtex_pickup_point_name,
        cast(null as text) as financial_status,
        cast(null as text) as fulfillment_status,
        case
            when orders.is_canceled then 'cancelled'
            when orders.is_invoiced then 'completed'
            else 'open'
        end as order_status,
        orders.status as platform_status,
        orders.is_canceled as is_cancelled,
        orders.currency,
        orders.items_total as subtotal_price,
        abs(coalesce(orders.discounts_total, 0)) as total_discounts,
        orders.tax_total as total_tax,
        orders.shipping_total as total_shipping,
        orders.order_total as total_price,
        orders.item_count as line_item_count,
        orders.created_at as ordered_at,
        orders.updated_at,
        case when orders.is_canceled then orders.updated_at end as cancelled_at

    from {{ ref('stg_vtex__orders') }} as orders
    left join record_customers as by_order
        on 'vtex_orders:' || orders.vtex_order_id = by_order.record_key

),
{%- endif %}

unioned as (

    {%- for platform in platforms %}
    {%- if not loop.first %}
    union all
    {%- endif %}
    select * from {{ platform }}_orders
    {%- endfor %}

),

{%- if is_incremental() %}

watermark as (

    select
        max(updated_at) - interval '{{ lookback }} hours' as updated_since,
        max(built_at) as last_built_at

    from {{ this }}

),

changed as (

    select unioned.*

    from unioned
    cross join watermark
    where
        watermark.updated_since is null
        or unioned.updated_at >= watermark.updated_since
        or unioned.customer_assigned_at > watermark.last_built_at

),

{%- else %}

changed as (

    select * from unioned

),

{%- endif %}

final as (

    select
        changed.order_key,
        changed.platform,
        changed.platform_order_id,
        changed.shopify_order_id,
        changed.order_name,
        changed.customer_id,
        changed.shopify_customer_id,
        changed.email_normalized,
        changed.channel,
        changed.source_name,
        changed.fulfilment_type,
        case
            when changed.shopify_location_id is not null
                then 'shopify:' || changed.shopify_location_id
            when changed.square_location_id is not null
                then 'square:' || changed.square_location_id
            when changed.vtex_pickup_point_id is not null
                then 'vtex:' || changed.vtex_pickup_point_id
        end as location_key,
        coalesce(
            shopify_locations.location_name,
            {%- if 'square' in platforms %}
            square_locations.location_name,
            {%- endif %}
            changed.vtex_pickup_point_name
        ) as location_name,
        changed.order_status,
        changed.platform_status,
        changed.financial_status,
        changed.fulfillment_status,
        changed.is_cancelled,
        changed.currency,
        changed.subtotal_price,
        changed.total_discounts,
        changed.total_tax,
        changed.total_shipping,
        changed.total_price,
        changed.line_item_count,
        changed.ordered_at,
        changed.updated_at,
        changed.cancelled_at,
        cast('{{ run_started_at }}' as timestamptz) as built_at

    from changed
    left join shopify_locations
        on changed.shopify_location_id = shopify_locations.shopify_location_id
    {%- if 'square' in platforms %}
    left join {{ ref('stg_square__locations') }} as square_locations
        on changed.square_location_id = square_locations.square_location_id
    {%- endif %}

)

select * from final
