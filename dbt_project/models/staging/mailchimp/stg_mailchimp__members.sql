with

source as (

    select * from {{ source('mailchimp', 'list_members') }}

),

merge_fields as (

    select
        *,
        nullif(regexp_replace(trim(merge_fields ->> 'FNAME'), '\s+', ' ', 'g'), '') as fname,
        nullif(regexp_replace(trim(merge_fields ->> 'LNAME'), '\s+', ' ', 'g'), '') as lname

    from source

),

renamed as (

    select

        ----------  ids
        -- the subscriber hash (MD5 of the lower-cased email) is only unique per audience
        list_id || '/' || id as mailchimp_member_key,
        id as mailchimp_member_id,
        list_id as mailchimp_list_id,
        contact_id as mailchimp_contact_id,
        unique_email_id,
        web_id as mailchimp_member_web_id,

        ----------  contact
        email_address as email,
        {{ normalize_email('email_address') }} as email_normalized,
        fname as merge_first_name,
        lname as merge_last_name,
        -- a whole name typed into FNAME with LNAME left empty is split at the first space
        {{ normalize_proper_name(
            "case when lname is null and fname like '% %' then split_part(fname, ' ', 1)"
            ~ " else fname end"
        ) }} as first_name,
        {{ normalize_proper_name(
            "case when lname is null and fname like '% %'"
            ~ " then substr(fname, strpos(fname, ' ') + 1) else lname end"
        ) }} as last_name,
        nullif(trim(merge_fields ->> 'PHONE'), '') as phone,
        -- Mailchimp's birthday merge field is MM/DD, without a year
        case
            when merge_fields ->> 'BIRTHDAY' ~ '^[0-9]{2}/[0-9]{2}$'
                then merge_fields ->> 'BIRTHDAY'
        end as birthday_mm_dd,
        nullif(language, '') as member_language,

        ----------  status and consent
        status as member_status,
        case status
            when 'subscribed' then true
            when 'unsubscribed' then false
            -- a contact who bought but never opted in to marketing
            when 'transactional' then false
        -- pending (never confirmed), cleaned (bounced), archived: consent unknown
        end as accepts_email_marketing,
        coalesce(
            cast(marketing_permissions as jsonb) @> '[{"enabled": true}]', false
        ) as has_marketing_permission,
        nullif(unsubscribe_reason, '') as unsubscribe_reason,
        source as signup_source,
        nullif(ip_signup, '') as signup_ip,
        nullif(ip_opt, '') as opt_in_ip,
        cast(vip as boolean) as is_vip,
        member_rating,

        ----------  timestamps
        cast(timestamp_signup as timestamptz) as signed_up_at,
        cast(timestamp_opt as timestamptz) as opted_in_at,
        case
            when status = 'unsubscribed' then cast(last_changed as timestamptz)
        end as unsubscribed_at,
        coalesce(
            cast(timestamp_signup as timestamptz),
            cast(timestamp_opt as timestamptz),
            cast(last_changed as timestamptz)
        ) as created_at,
        cast(last_changed as timestamptz) as updated_at

    from merge_fields

)

select * from renamed
