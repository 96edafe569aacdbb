{#
    One row per product variant (the thing with a SKU and a price), unnested from its
    product's variants.
#}

with

products as (

    select * from {{ source('shopify', 'products') }}

),

variants as (

    select
        products.id as shopify_product_id,
        variant.value as variant

    from products
    cross join lateral jsonb_array_elements(
        case
            when jsonb_typeof(to_jsonb(products.variants)) = 'array'
                then to_jsonb(products.variants)
            else cast('[]' as jsonb)
        end
    ) as variant (value)

),

renamed as (

    select
        cast(substring(variant ->> 'id' from '/([0-9]+)$') as bigint) as shopify_variant_id,
        shopify_product_id,
        variant ->> 'title' as variant_title,
        nullif(trim(variant ->> 'sku'), '') as sku,
        nullif(trim(variant ->> 'barcode'), '') as barcode,
        {{ to_numeric("variant ->> 'price'") }} as price,
        {{ to_numeric("variant ->> 'compare_at_price'") }} as compare_at_price,
        cast(variant ->> 'position' as integer) as variant_position,
        cast(variant ->> 'inventory_quantity' as integer) as inventory_quantity,
        cast(variant ->> 'created_at' as timestamptz) as created_at,
        cast(variant ->> 'updated_at' as timestamptz) as updated_at

    from variants

)

select * from renamed
