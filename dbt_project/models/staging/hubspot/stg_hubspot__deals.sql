with

source as (

    select * from {{ source('hubspot', 'deals') }}

),

renamed as (

    select

        ----------  ids
        id as hubspot_deal_id,
        associations -> 'contacts' ->> 0 as hubspot_contact_id,
        associations -> 'companies' ->> 0 as hubspot_company_id,
        nullif(properties ->> 'hubspot_owner_id', '') as hubspot_owner_id,

        ----------  deal
        nullif(trim(properties ->> 'dealname'), '') as deal_name,
        nullif(properties ->> 'pipeline', '') as pipeline,
        nullif(properties ->> 'dealstage', '') as deal_stage,
        {{ to_numeric("properties ->> 'amount'") }} as amount,
        nullif(properties ->> 'deal_currency_code', '') as currency,
        cast(properties ->> 'hs_is_closed' as boolean) as is_closed,
        cast(properties ->> 'hs_is_closed_won' as boolean) as is_closed_won,
        cast(nullif(properties ->> 'closedate', '') as timestamptz) as close_date,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        _sdc_deleted_at as deleted_at

    from source

)

select * from renamed
