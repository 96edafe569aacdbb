with

source as (

    select * from {{ source('zendesk', 'users') }}

),

renamed as (

    select

        ----------  ids
        id as zendesk_user_id,
        external_id,
        organization_id as zendesk_organization_id,

        ----------  role: requesters are end-users; agents and admins are staff
        role as user_role,
        role = 'end-user' as is_end_user,

        ----------  contact
        name,
        -- Zendesk names a user who gave no name after the email's local part: no name
        case
            when lower(trim(name)) = split_part(lower(trim(email)), '@', 1) then null
            else {{ normalize_proper_name('name') }}
        end as full_name,
        nullif(trim(email), '') as email,
        {{ normalize_email('email') }} as email_normalized,
        -- as the channel gave it: WhatsApp numbers often without the ninth digit
        nullif(trim(phone), '') as phone,
        coalesce(verified, false) as is_verified,

        ----------  profile
        locale,
        iana_time_zone as time_zone,
        coalesce(active, true) as is_active,
        coalesce(suspended, false) as is_suspended,
        tags,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        cast(last_login_at as timestamptz) as last_login_at

    from source

)

select * from renamed
