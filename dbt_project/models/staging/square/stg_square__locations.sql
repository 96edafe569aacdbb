with

source as (

    select * from {{ source('square', 'locations') }}

),

renamed as (

    select

        ----------  ids
        id as square_location_id,
        merchant_id as square_merchant_id,

        ----------  shop
        name as location_name,
        business_name,
        type as location_type,
        status as location_status,
        {{ normalize_proper_name("address ->> 'locality'") }} as city,
        nullif(upper(trim(address ->> 'administrative_district_level_1')), '') as state,
        nullif(trim(address ->> 'postal_code'), '') as postcode,
        nullif(upper(trim(coalesce(address ->> 'country', country))), '') as country_code,
        timezone,
        currency,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at

    from source

)

select * from renamed
