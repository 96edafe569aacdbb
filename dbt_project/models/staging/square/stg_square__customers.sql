{{ config(
    materialized='incremental',
    unique_key='square_customer_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook=["{{ staging_delete_gone(source('square', 'customers'), 'id', 'square_customer_id') }}"],
) }}

with

source as (

    select * from {{ source('square', 'customers') }}
    {{ staging_loaded_since() }}

),

renamed as (

    select

        ----------  ids
        id as square_customer_id,
        reference_id,

        ----------  contact
        email_address as email,
        {{ normalize_email('email_address') }} as email_normalized,
        {{ normalize_proper_name('given_name') }} as first_name,
        {{ normalize_proper_name('family_name') }} as last_name,
        nullif(trim(phone_number), '') as phone,
        -- tills keep the CPF in the reference id, or in the note ("CPF na nota: ...")
        coalesce(
            {{ extract_cpf('reference_id') }},
            {{ extract_cpf('note') }}
        ) as cpf,
        -- Square writes a birthday without a known year as 0000-MM-DD
        case
            when birthday ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' and left(birthday, 4) <> '0000'
                then cast(birthday as date)
        end as birth_date,

        ----------  address
        nullif(
            concat_ws(
                ' - ',
                nullif(trim(address ->> 'address_line_1'), ''),
                nullif(trim(address ->> 'address_line_2'), '')
            ),
            ''
        ) as address,
        {{ normalize_proper_name("address ->> 'locality'") }} as city,
        nullif(upper(trim(address ->> 'administrative_district_level_1')), '') as state,
        nullif(trim(address ->> 'postal_code'), '') as postcode,
        nullif(upper(trim(address ->> 'country')), '') as country_code,

        ----------  consent
        cast(preferences ->> 'email_unsubscribed' as boolean) as is_email_unsubscribed,
        -- only an address the customer gave and did not unsubscribe counts as consent
        case
            when {{ normalize_email('email_address') }} is null then null
            else not coalesce(cast(preferences ->> 'email_unsubscribed' as boolean), false)
        end as accepts_email_marketing,

        ----------  profile
        creation_source,
        note,
        version as profile_version,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,

        ----------  deletion
        -- set by the loader when a full sync no longer found the record: the platform
        -- deleted it. The row stays (history); identity leaves deleted rows out.
        _sdc_deleted_at as deleted_at,
        _sdc_deleted_at is not null as is_deleted,
        _sdc_batched_at as _loaded_at

    from source

)

select * from renamed
