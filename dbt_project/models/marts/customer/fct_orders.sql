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

    Incremental on arrival: a run rewrites the orders whose staging row was loaded since
    the newest load stamp (_loaded_at) this model holds for their platform, whatever
    their updated_at (an extract that brings an order days late, or a parent after its
    children, still reaches it), and the orders attributed through a record that
    identity resolution assigned since the last build (their account's, their VTEX
    order's, or one holding their email). Only those orders are read and joined. An
    order whose raw record is gone (erased, or a table the loader replaced: staging
    deletes it and logs its key in the deletions log, source dbt_log.deleted_keys) is
    deleted before the run builds, and logged in turn for customer_journey: the
    pre-hook reads only the keys the staging orders logged since this model's last build.
    Platforms whose channel the project is not built with (var commerce_platforms, by
    default those with identity feeds) are left out.
#}

-- sqlfluff:indentation:template_blocks_indent:False
-- depends_on: {{ ref('int_identity__record_changes') }}
-- depends_on: {{ ref('int_identity__identifiers') }}
{#- a larger work_mem: macro attributed_facts_pre_hook #}
{{ config(
    materialized='incremental',
    unique_key='order_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    meta={'new_rows_stamp': 'built_at'},
    pre_hook=[
        attributed_facts_pre_hook(),
        "{{ delete_logged_since_built('order_key', [
            ('stg_shopify__orders', 'shopify:'),
            ('stg_square__orders', 'square:'),
            ('stg_vtex__orders', 'vtex:'),
        ]) }}",
    ],
    post_hook=[
        "create unique index if not exists {{ this.identifier }}_key_idx on {{ this }} (order_key)",
        "create index if not exists {{ this.identifier }}_customer_idx on {{ this }} (customer_id)",
        "create index if not exists {{ this.identifier }}_loaded_idx on {{ this }} (platform, _loaded_at)",
        "create index if not exists {{ this.identifier }}_built_idx on {{ this }} (built_at)",
    ],
) }}

{%- set platforms = commerce_platforms() %}
{%- set incremental = is_incremental() and relation_has_column(this, '_loaded_at') %}

with

-- not materialized: read more than once, so Postgres would first copy the whole table;
-- inlined, each read takes only the rows it needs, through the table's indexes
record_customers as not materialized (

    select * from {{ ref('int_identity__record_customers') }}

),

{%- if incremental %}

-- records identity resolution assigned (new, or to another customer) since the last build
reassigned as (

    {{ records_assigned_since_built() }}

),

-- their emails, linkable or not: a new record's email may make it unlinkable
reassigned_emails as (

    select identifiers.identifier_label as email

    from {{ ref('int_identity__identifiers') }} as identifiers
    inner join reassigned
        on identifiers.record_key = reassigned.record_key
    where identifiers.identifier_type = 'email'

),
{%- endif %}

{%- if 'shopify' in platforms %}

shopify_read as (

    select orders.*

    from {{ ref('stg_shopify__orders') }} as orders
    {%- if incremental %}
    where
        {{ loaded_since_held('orders._loaded_at', 'platform', 'shopify') }}
        or 'shopify:' || orders.shopify_customer_id in (select record_key from reassigned)
        or orders.email_normalized in (select email from reassigned_emails)
    {%- endif %}

),
{%- endif %}

linkable_emails as (

    select linkable_emails.*

    from {{ ref('int_customer__linkable_emails') }} as linkable_emails
    {%- if 'shopify' in platforms %}
    where linkable_emails.email in (select shopify_read.email_normalized from shopify_read)
    {%- else %}
    where false
    {%- endif %}

),

people_by_email as (

    select
        linkable_emails.email as email_normalized,
        min(linkable_emails.customer_id) as customer_id

    from linkable_emails
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
        orders.cancelled_at,
        orders._loaded_at

    from shopify_read as orders
    left join record_customers as by_account
        on 'shopify:' || orders.shopify_customer_id = by_account.record_key
    left join people_by_email as by_email
        on orders.email_normalized = by_email.email_normalized

),
{%- endif %}

{%- if 'square' in platforms %}

square_read as (

    select orders.*

    from {{ ref('stg_square__orders') }} as orders
    {%- if incremental %}
    where
        {{ loaded_since_held('orders._loaded_at', 'platform', 'square') }}
        or 'square:' || orders.square_customer_id in (select record_key from reassigned)
    {%- endif %}

),

square_orders as (

    select
        'square:' || orders.square_order_id as order_key,
        'square' as platform,
        orders.square_order_id as platform_order_id,
        cast(null as bigint) as shopify_order_id,
        orders.reference_id as order_name,
        by_profile.customer_id,
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
        case when orders.order_state = 'CANCELED' then orders.closed_at end as cancelled_at,
        orders._loaded_at

    from square_read as orders
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
        case when orders.is_canceled then orders.updated_at end as cancelled_at,
        orders._loaded_at

    from {{ ref('stg_vtex__orders') }} as orders
    left join record_customers as by_order
        on 'vtex_orders:' || orders.vtex_order_id = by_order.record_key
    {%- if incremental %}
    where
        {{ loaded_since_held('orders._loaded_at', 'platform', 'vtex') }}
        or 'vtex_orders:' || orders.vtex_order_id in (select record_key from reassigned)
    {%- endif %}

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

final as (

    select
        unioned.order_key,
        unioned.platform,
        unioned.platform_order_id,
        unioned.shopify_order_id,
        unioned.order_name,
        unioned.customer_id,
        unioned.shopify_customer_id,
        unioned.email_normalized,
        unioned.channel,
        unioned.source_name,
        unioned.fulfilment_type,
        case
            when unioned.shopify_location_id is not null
                then 'shopify:' || unioned.shopify_location_id
            when unioned.square_location_id is not null
                then 'square:' || unioned.square_location_id
            when unioned.vtex_pickup_point_id is not null
                then 'vtex:' || unioned.vtex_pickup_point_id
        end as location_key,
        coalesce(
            shopify_locations.location_name,
            {%- if 'square' in platforms %}
            square_locations.location_name,
            {%- endif %}
            unioned.vtex_pickup_point_name
        ) as location_name,
        unioned.order_status,
        unioned.platform_status,
        unioned.financial_status,
        unioned.fulfillment_status,
        unioned.is_cancelled,
        unioned.currency,
        unioned.subtotal_price,
        unioned.total_discounts,
        unioned.total_tax,
        unioned.total_shipping,
        unioned.total_price,
        unioned.line_item_count,
        unioned.ordered_at,
        unioned.updated_at,
        unioned.cancelled_at,
        unioned._loaded_at,
        cast('{{ run_started_at }}' as timestamptz) as built_at

    from unioned
    left join shopify_locations
        on unioned.shopify_location_id = shopify_locations.shopify_location_id
    {%- if 'square' in platforms %}
    left join {{ ref('stg_square__locations') }} as square_locations
        on unioned.square_location_id = square_locations.square_location_id
    {%- endif %}

)

select * from final
