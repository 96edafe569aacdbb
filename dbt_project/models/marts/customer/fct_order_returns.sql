{#
    One row per return, exchange or refund, linked to the order it takes back
    (fct_orders.order_key, across platforms) and to the channel and location where it
    happened:

    - a Shopify refund (return_type 'return' when a Shopify return of the same order
      closed with it, else 'refund'), where its restocked items went back: a shop
      ('pos': a location where customers buy at the till or pick up, as fct_orders
      shows them; an online order returned in a shop included), else the warehouse a
      parcel was sent back to ('web'); a refund that restocked nothing, where the order
      was sold;
    - a Square return at a shop's till: of a till sale (linked by the return's source
      order), or of an online Shopify order (the unlinked return whose reference names
      it, int_customer__verified_online_returns: only a link that fits that order):
      is_online_order_returned_in_store; an
      exchange swaps the goods and refunds nothing.

    customer_id is the original order's buyer, else the person of the Square profile
    that brought the goods back.

    Incremental by comparison: a return depends on many models (its refund, the Shopify
    return that closed with it, the original order and its customer, the shops, the
    verified online returns, the profile that brought it back), any of which may arrive
    or change in any order, and returns are few: a run computes every return and
    rewrites those that differ from the row held (or are new). A return held that is no
    return any more (its refund or its Square order erased at the source, so gone from
    staging) is written without a platform, replacing the row held, and the post-hook
    deletes it and logs its key in the deletions log (source dbt_log.deleted_keys),
    where customer_journey finds it.
#}

-- sqlfluff:indentation:template_blocks_indent:False
{{ config(
    materialized='incremental',
    unique_key='return_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    meta={'new_rows_stamp': 'built_at'},
    post_hook=[
        "{{ delete_logged('return_key', 'built.return_platform is null') }}",
        "create unique index if not exists {{ this.identifier }}_key_idx on {{ this }} (return_key)",
    ],
) }}

{%- set platforms = commerce_platforms() %}
{#- what a run compares with the row held: every column but built_at -#}
{%- set compared = [
    'return_platform', 'platform_return_id', 'return_type', 'original_order_key',
    'original_platform', 'original_channel', 'original_fulfilment_type', 'customer_id',
    'return_channel', 'return_location_key', 'return_location_name',
    'is_online_order_returned_in_store', 'is_cross_platform', 'return_reference', 'currency',
    'returned_amount', 'refund_amount', 'original_order_total', 'returned_at', 'updated_at',
] %}

with

orders as (

    select * from {{ ref('fct_orders') }}

),

record_customers as (

    select * from {{ ref('int_identity__record_customers') }}

),

{%- if 'shopify' in platforms %}

-- a Shopify return closes with the refund that pays it back
shopify_return_refunds as (

    select distinct
        shopify_order_id,
        closed_at

    from {{ ref('stg_shopify__returns') }}
    where closed_at is not null

),

-- the Shopify locations customers walk into: a till's or a pick-up's location
shopify_shops as (

    select distinct location_key

    from orders
    where platform = 'shopify' and location_key is not null

),

shopify_refunds as (

    select
        'shopify:refund:' || refunds.shopify_refund_id as return_key,
        'shopify' as return_platform,
        cast(refunds.shopify_refund_id as text) as platform_return_id,
        'shopify:' || refunds.shopify_order_id as original_order_key,
        cast(null as text) as returned_by_record_key,
        case when returned.closed_at is not null then 'return' else 'refund' end as return_type,
        -- where the items went back into stock: a shop, or the warehouse (sent back)
        case
            when shops.location_key is not null then 'pos'
            when refunds.shopify_location_id is not null then 'web'
        end as return_channel,
        'shopify:' || refunds.shopify_location_id as return_location_key,
        refunds.location_name as return_location_name,
        cast(null as text) as return_reference,
        refunds.currency,
        refunds.amount_refunded as returned_amount,
        refunds.amount_refunded as refund_amount,
        refunds.created_at as returned_at,
        coalesce(refunds.updated_at, refunds.created_at) as updated_at

    from {{ ref('stg_shopify__refunds') }} as refunds
    left join shopify_shops as shops
        on 'shopify:' || refunds.shopify_location_id = shops.location_key
    left join shopify_return_refunds as returned
        on
            refunds.shopify_order_id = returned.shopify_order_id
            and refunds.created_at = returned.closed_at

),
{%- endif %}

{%- if 'square' in platforms %}

square_refunds as (

    select
        square_order_id,
        sum(amount) filter (where refund_status in ('COMPLETED', 'PENDING')) as refund_amount,
        max(updated_at) as updated_at

    from {{ ref('stg_square__refunds') }}
    group by square_order_id

),

square_return_lines as (

    select
        square_order_id,
        min(source_square_order_id) as source_square_order_id,
        min(currency) as currency,
        sum(returned_amount) as returned_amount

    from {{ ref('stg_square__order_returns') }}
    group by square_order_id

),

square_returns as (

    select
        'square:return:' || return_orders.square_order_id as return_key,
        'square' as return_platform,
        return_orders.square_order_id as platform_return_id,
        case
            when return_lines.source_square_order_id is not null
                then 'square:' || return_lines.source_square_order_id
            when online_returns.shopify_order_name is not null
                then online_orders.order_key
        end as original_order_key,
        'square:' || return_orders.square_customer_id as returned_by_record_key,
        -- goods sold on the return's own order: swapped for others
        case when return_orders.line_item_count > 0 then 'exchange' else 'return' end
            as return_type,
        'pos' as return_channel,
        'square:' || return_orders.square_location_id as return_location_key,
        locations.location_name as return_location_name,
        return_orders.reference_id as return_reference,
        coalesce(return_lines.currency, return_orders.currency) as currency,
        return_lines.returned_amount,
        coalesce(refunds.refund_amount, 0) as refund_amount,
        return_orders.created_at as returned_at,
        greatest(return_orders.updated_at, refunds.updated_at) as updated_at

    from {{ ref('stg_square__orders') }} as return_orders
    inner join square_return_lines as return_lines
        on return_orders.square_order_id = return_lines.square_order_id
    left join {{ ref('int_customer__verified_online_returns') }} as online_returns
        on return_orders.square_order_id = online_returns.square_order_id
    left join orders as online_orders
        on
            online_returns.shopify_order_name = online_orders.order_name
            and online_orders.platform = 'shopify'
    left join square_refunds as refunds
        on return_orders.square_order_id = refunds.square_order_id
    left join {{ ref('stg_square__locations') }} as locations
        on return_orders.square_location_id = locations.square_location_id

),
{%- endif %}

unioned as (

    {%- for platform in platforms if platform in ('shopify', 'square') %}
    {%- if not loop.first %}
    union all
    {%- endif %}
    select * from {{ 'shopify_refunds' if platform == 'shopify' else 'square_returns' }}
    {%- endfor %}

),

linked as (

    select
        unioned.return_key,
        unioned.return_platform,
        unioned.platform_return_id,
        unioned.return_type,
        orders.order_key as original_order_key,
        orders.platform as original_platform,
        orders.channel as original_channel,
        orders.fulfilment_type as original_fulfilment_type,
        coalesce(orders.customer_id, returned_by.customer_id) as customer_id,
        coalesce(unioned.return_channel, orders.channel) as return_channel,
        case
            when unioned.return_channel is null and orders.channel = 'pos'
                then orders.location_key
            else unioned.return_location_key
        end as return_location_key,
        case
            when unioned.return_channel is null and orders.channel = 'pos'
                then orders.location_name
            else unioned.return_location_name
        end as return_location_name,
        unioned.return_reference,
        unioned.currency,
        unioned.returned_amount,
        unioned.refund_amount,
        orders.total_price as original_order_total,
        unioned.returned_at,
        greatest(unioned.updated_at, orders.updated_at) as updated_at

    from unioned
    left join orders
        on unioned.original_order_key = orders.order_key
    left join record_customers as returned_by
        on unioned.returned_by_record_key = returned_by.record_key

),

final as (

    select
        return_key,
        return_platform,
        platform_return_id,
        return_type,
        original_order_key,
        original_platform,
        original_channel,
        original_fulfilment_type,
        customer_id,
        return_channel,
        return_location_key,
        return_location_name,
        coalesce(
            original_channel in ('web', 'marketplace') and return_channel = 'pos', false
        ) as is_online_order_returned_in_store,
        coalesce(original_platform <> return_platform, false) as is_cross_platform,
        return_reference,
        currency,
        returned_amount,
        refund_amount,
        original_order_total,
        returned_at,
        updated_at,
        cast('{{ run_started_at }}' as timestamptz) as built_at

    from linked

)

{%- if is_incremental() %}

select final.*

from final
left join {{ this }} as built
    on final.return_key = built.return_key
where
    built.return_key is null
    or (
        {%- for column in compared %}
        final.{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    ) is distinct from (
        {%- for column in compared %}
        built.{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    )

union all

-- returns held that are no return any more: a row without a platform
select
    held.return_key,
    {%- for column in compared %}
    null as {{ column }},
    {%- endfor %}
    cast('{{ run_started_at }}' as timestamptz) as built_at

from {{ this }} as held
where not exists (
    select from final
    where final.return_key = held.return_key
)

{%- else %}

select * from final

{%- endif %}
