{{ config(
    materialized='incremental',
    unique_key='square_order_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    pre_hook=["{{ staging_delete_reloaded(source('square', 'orders'), 'id', 'square_order_id') }}"],
    post_hook=["{{ staging_delete_gone(source('square', 'orders'), 'id', 'square_order_id') }}"],
) }}

with

orders as (

    select * from {{ source('square', 'orders') }}
    {{ staging_loaded_since() }}

),

line_items as (

    -- the loader keeps an array of objects as jsonb or jsonb[]: to_jsonb reads both
    select
        orders.id as square_order_id,
        orders._sdc_batched_at as _loaded_at,
        line_item.value as line_item,
        line_item.position as line_number

    from orders
    cross join lateral jsonb_array_elements(
        case
            when jsonb_typeof(to_jsonb(orders.line_items)) = 'array'
                then to_jsonb(orders.line_items)
            else cast('[]' as jsonb)
        end
    ) with ordinality as line_item (value, position)

),

renamed as (

    select

        ----------  ids
        square_order_id || ':' || (line_item ->> 'uid') as order_line_item_id,
        square_order_id,
        line_item ->> 'uid' as line_item_uid,
        line_item ->> 'catalog_object_id' as square_catalog_object_id,
        line_number,

        ----------  item
        line_item ->> 'name' as item_name,
        line_item ->> 'variation_name' as variation_name,
        line_item ->> 'note' as note,
        {{ to_numeric("line_item ->> 'quantity'") }} as quantity,

        ----------  amounts (reais)
        line_item -> 'total_money' ->> 'currency' as currency,
        round(
            {{ to_numeric("line_item -> 'base_price_money' ->> 'amount'") }} / 100, 2
        ) as unit_price,
        round(
            {{ to_numeric("line_item -> 'gross_sales_money' ->> 'amount'") }} / 100, 2
        ) as gross_sales_amount,
        round(
            {{ to_numeric("line_item -> 'total_discount_money' ->> 'amount'") }} / 100, 2
        ) as discount_amount,
        round(
            {{ to_numeric("line_item -> 'total_tax_money' ->> 'amount'") }} / 100, 2
        ) as tax_amount,
        round(
            {{ to_numeric("line_item -> 'total_money' ->> 'amount'") }} / 100, 2
        ) as total_amount,
        _loaded_at

    from line_items

)

select * from renamed
