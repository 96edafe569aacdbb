{{ config(
    materialized='incremental',
    unique_key='vtex_order_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    pre_hook=["{{ staging_delete_reloaded(source('vtex', 'orders'), '\"orderId\"', 'vtex_order_id') }}"],
    post_hook=["{{ staging_delete_gone(source('vtex', 'orders'), '\"orderId\"', 'vtex_order_id') }}"],
) }}

with

orders as (

    select * from {{ source('vtex', 'orders') }}
    {{ staging_loaded_since() }}

),

items as (

    select
        orders."orderId" as vtex_order_id,
        orders._sdc_batched_at as _loaded_at,
        item.line_number,
        item.line
    from orders
    cross join lateral jsonb_array_elements(
        case when jsonb_typeof(to_jsonb(orders.items)) = 'array' then to_jsonb(orders.items) end
    ) with ordinality as item (line, line_number)

),

renamed as (

    select

        ----------  ids
        vtex_order_id || '#' || line_number as vtex_order_item_id,
        vtex_order_id,
        cast(line_number as integer) as line_number,
        line ->> 'uniqueId' as vtex_item_unique_id,
        line ->> 'id' as sku_id,
        line ->> 'productId' as product_id,
        line ->> 'refId' as ref_id,
        line ->> 'ean' as ean,
        line ->> 'seller' as seller_id,

        ----------  what
        line ->> 'name' as product_name,
        cast(line ->> 'quantity' as integer) as quantity,
        coalesce(cast(line ->> 'isGift' as boolean), false) as is_gift,

        ----------  amounts: cents to currency units
        round(cast(line ->> 'sellingPrice' as numeric) / 100, 2) as unit_price,
        round(cast(line ->> 'listPrice' as numeric) / 100, 2) as list_price,
        round(
            cast(line ->> 'sellingPrice' as numeric) * cast(line ->> 'quantity' as numeric) / 100,
            2
        ) as line_total,
        _loaded_at

    from items

)

select * from renamed
