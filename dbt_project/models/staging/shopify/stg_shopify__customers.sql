with

source as (

    select * from {{ source('shopify', 'customers') }}

),

renamed as (

    select

        ----------  ids
        id as shopify_customer_id,

        ----------  contact
        email,
        {{ normalize_email('email') }} as email_normalized,
        {{ normalize_proper_name('first_name') }} as first_name,
        {{ normalize_proper_name('last_name') }} as last_name,
        nullif(trim(phone), '') as phone,
        {{ extract_cpf("default_address ->> 'company'") }} as cpf,

        ----------  default address
        {{ normalize_proper_name("default_address ->> 'city'") }} as city,
        coalesce(
            nullif(upper(trim(default_address ->> 'province_code')), ''),
            nullif(trim(default_address ->> 'province'), '')
        ) as state,
        nullif(trim(default_address ->> 'zip'), '') as zip,
        nullif(upper(trim(default_address ->> 'country_code')), '') as country_code,

        ----------  consent
        lower(email_marketing_consent ->> 'state') as email_marketing_consent_state,
        lower(email_marketing_consent ->> 'state') = 'subscribed' as accepts_email_marketing,
        cast(
            email_marketing_consent ->> 'consent_updated_at' as timestamptz
        ) as email_marketing_consent_updated_at,

        ----------  account
        state as account_state,
        verified_email as is_email_verified,
        tags,
        note,
        currency,
        orders_count as shopify_orders_count,
        {{ to_numeric('total_spent') }} as shopify_total_spent,

        ----------  timestamps
        -- The loader writes naive timestamps in its session time zone, the server
        -- default that this session shares, so a plain cast gives back the instant.
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from renamed
