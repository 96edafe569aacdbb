with

source as (

    select * from {{ source('shopify', 'products') }}

),

renamed as (

    select
        id as shopify_product_id,
        admin_graphql_api_id,
        title as product_title,
        handle,
        lower(status) as product_status,
        vendor,
        nullif(trim(product_type), '') as product_type,
        total_inventory,
        {{ json_array_length('variants') }} as variant_count,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        cast(published_at as timestamptz) as published_at,
        -- set by the loader when a full sync no longer found the product: Shopify
        -- deleted it. The row stays, so past order lines keep their product.
        _sdc_deleted_at as deleted_at,
        _sdc_deleted_at is not null as is_deleted

    from source

)

select * from renamed
