with

source as (

    select * from {{ source('shopify', 'locations') }}

),

renamed as (

    select
        id as shopify_location_id,
        admin_graphql_api_id,
        name as location_name,
        is_active,
        fulfills_online_orders,
        ships_inventory,
        {{ normalize_proper_name("address ->> 'city'") }} as city,
        nullif(upper(trim(address ->> 'province_code')), '') as state,
        nullif(trim(address ->> 'zip'), '') as zip,
        nullif(upper(trim(address ->> 'country_code')), '') as country_code,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from renamed
