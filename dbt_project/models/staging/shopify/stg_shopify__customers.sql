{{ config(
    materialized='incremental',
    unique_key='shopify_customer_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook=["{{ staging_delete_gone(source('shopify', 'customers'), 'id', 'shopify_customer_id') }}"],
) }}

with

source as (

    select * from {{ source('shopify', 'customers') }}
    {{ staging_loaded_since() }}

),

renamed as (

    select

        ----------  ids
        id as shopify_customer_id,
        admin_graphql_api_id,

        ----------  contact
        default_email_address ->> 'email_address' as email,
        {{ normalize_email("default_email_address ->> 'email_address'") }} as email_normalized,
        {{ normalize_proper_name('first_name') }} as first_name,
        {{ normalize_proper_name('last_name') }} as last_name,
        nullif(trim(default_phone_number ->> 'phone_number'), '') as phone,
        {{ extract_cpf("default_address ->> 'company'") }} as cpf,

        ----------  default address
        {{ normalize_proper_name("default_address ->> 'city'") }} as city,
        coalesce(
            nullif(upper(trim(default_address ->> 'province_code')), ''),
            nullif(trim(default_address ->> 'province'), '')
        ) as state,
        nullif(trim(default_address ->> 'zip'), '') as zip,
        nullif(upper(trim(default_address ->> 'country_code_v2')), '') as country_code,

        ----------  consent
        lower(default_email_address ->> 'marketing_state') as email_marketing_consent_state,
        lower(default_email_address ->> 'marketing_state') = 'subscribed'
            as accepts_email_marketing,
        cast(
            default_email_address ->> 'marketing_updated_at' as timestamptz
        ) as email_marketing_consent_updated_at,
        lower(default_phone_number ->> 'marketing_state') as sms_marketing_consent_state,
        lower(default_phone_number ->> 'marketing_state') = 'subscribed'
            as accepts_sms_marketing,
        cast(
            default_phone_number ->> 'marketing_updated_at' as timestamptz
        ) as sms_marketing_consent_updated_at,

        ----------  account
        lower(state) as account_state,
        verified_email as is_email_verified,
        -- tags come as a JSON array (or text[]); kept as Shopify's comma-separated text
        case
            when jsonb_typeof(to_jsonb(tags)) = 'array'
                then array_to_string(
                        array(select jsonb_array_elements_text(to_jsonb(tags)) as tag), ', '
                    )
        end as tags,
        note,
        amount_spent ->> 'currency_code' as currency,
        cast(number_of_orders as bigint) as shopify_orders_count,
        {{ to_numeric("amount_spent ->> 'amount'") }} as shopify_total_spent,

        ----------  timestamps
        -- The loader writes naive timestamps in its session time zone, the server
        -- default that this session shares, so a plain cast gives back the instant.
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
