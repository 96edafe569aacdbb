{#
    One row per line item of a Shopify order, unnested from the order's line_items.
#}

{{ config(
    materialized='incremental',
    unique_key='shopify_order_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    pre_hook=["{{ staging_delete_reloaded(source('shopify', 'orders'), 'id', 'shopify_order_id') }}"],
    post_hook=["{{ staging_delete_gone(source('shopify', 'orders'), 'id', 'shopify_order_id') }}"],
) }}

with

orders as (

    select * from {{ source('shopify', 'orders') }}
    {{ staging_loaded_since() }}

),

line_items as (

    select
        orders.id as shopify_order_id,
        orders._sdc_batched_at as _loaded_at,
        item.position as line_position,
        item.value as line_item

    from orders
    cross join lateral jsonb_array_elements(
        case
            when jsonb_typeof(to_jsonb(orders.line_items)) = 'array'
                then to_jsonb(orders.line_items)
            else cast('[]' as jsonb)
        end
    ) with ordinality as item (value, position)

),

renamed as (

    select

        ----------  ids
        cast(substring(line_item ->> 'id' from '/([0-9]+)$') as bigint)
            as shopify_line_item_id,
        shopify_order_id,
        line_position,
        cast(substring(line_item -> 'product' ->> 'id' from '/([0-9]+)$') as bigint)
            as shopify_product_id,
        cast(substring(line_item -> 'variant' ->> 'id' from '/([0-9]+)$') as bigint)
            as shopify_variant_id,

        ----------  what was bought
        line_item ->> 'name' as line_name,
        line_item ->> 'title' as product_title,
        line_item ->> 'variant_title' as variant_title,
        nullif(trim(line_item ->> 'sku'), '') as sku,
        line_item ->> 'vendor' as vendor,
        cast(line_item ->> 'quantity' as integer) as quantity,
        cast(line_item ->> 'current_quantity' as integer) as current_quantity,

        ----------  amounts (shop currency)
        line_item -> 'original_unit_price_set' -> 'shop_money' ->> 'currency_code' as currency,
        {{ to_numeric("line_item -> 'original_unit_price_set' -> 'shop_money' ->> 'amount'") }}
            as unit_price,
        {{ to_numeric("line_item -> 'discounted_total_set' -> 'shop_money' ->> 'amount'") }}
            as discounted_total,
        _loaded_at

    from line_items

)

select * from renamed
