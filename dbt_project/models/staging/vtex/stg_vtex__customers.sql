with

source as (

    select * from {{ source('vtex', 'customers') }}

),

renamed as (

    select

        ----------  ids
        id as vtex_profile_id,
        "userId" as vtex_user_id,

        ----------  contact
        email,
        {{ normalize_email('email') }} as email_normalized,
        {{ normalize_proper_name('"firstName"') }} as first_name,
        {{ normalize_proper_name('"lastName"') }} as last_name,
        nullif(trim(phone), '') as phone,
        nullif(trim("homePhone"), '') as home_phone,
        case
            when coalesce(lower("documentType"), 'cpf') = 'cpf'
                then {{ extract_cpf('document') }}
        end as cpf,
        case
            when "birthDate" ~ '^\d{4}-\d{2}-\d{2}'
                then cast(left("birthDate", 10) as date)
        end as birth_date,

        ----------  consent and account
        "isNewsletterOptIn" as accepts_email_marketing,
        coalesce("isCorporate", false) as is_corporate,

        ----------  timestamps
        cast("createdIn" as timestamptz) as created_at,
        cast("updatedIn" as timestamptz) as updated_at,

        ----------  deletion
        -- set by the loader when a full sync no longer found the record: the platform
        -- deleted it. The row stays (history); identity leaves deleted rows out.
        _sdc_deleted_at as deleted_at,
        _sdc_deleted_at is not null as is_deleted

    from source

)

select * from renamed
