with

source as (

    select * from {{ source('square', 'catalog_items') }}

),

renamed as (

    select

        ----------  ids
        id as square_catalog_item_id,
        item_data -> 'variations' -> 0 ->> 'id' as square_variation_id,

        ----------  item
        item_data ->> 'name' as item_name,
        item_data -> 'variations' -> 0 -> 'item_variation_data' ->> 'sku' as sku,
        round(
            {{ to_numeric(
                "item_data -> 'variations' -> 0 -> 'item_variation_data' "
                ~ "-> 'price_money' ->> 'amount'"
            ) }} / 100,
            2
        ) as price,
        {{ json_array_length("item_data -> 'variations'") }} as variation_count,
        coalesce(is_deleted, false) as is_deleted,

        ----------  timestamps
        version as catalog_version,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from renamed
