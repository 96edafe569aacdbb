with

source as (

    select * from {{ source('hubspot', 'companies') }}

),

renamed as (

    select

        ----------  ids
        id as hubspot_company_id,
        nullif(properties ->> 'hubspot_owner_id', '') as hubspot_owner_id,

        ----------  company
        nullif(regexp_replace(trim(properties ->> 'name'), '\s+', ' ', 'g'), '') as company_name,
        nullif(lower(trim(properties ->> 'domain')), '') as company_domain,
        nullif(properties ->> 'industry', '') as industry,
        nullif(trim(properties ->> 'phone'), '') as phone,
        {{ normalize_proper_name("properties ->> 'city'") }} as city,
        nullif(upper(trim(properties ->> 'state')), '') as state,
        nullif(trim(properties ->> 'country'), '') as country,
        nullif(properties ->> 'lifecyclestage', '') as lifecycle_stage,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        _sdc_deleted_at as deleted_at

    from source

)

select * from renamed
