{#
    The secondary emails a rep kept on a contact (HubSpot's hs_additional_emails, a
    semicolon-separated list): one row each, so identity resolution can tie every
    address a person gave the sales team to the same contact.
#}

with

contacts as (

    select * from {{ source('hubspot', 'contacts') }}

),

additional as (

    select
        contacts.id as hubspot_contact_id,
        emails.email,
        emails.position as email_position,
        contacts.updated_at,
        contacts._sdc_deleted_at

    from contacts
    cross join
        lateral
        unnest(string_to_array(contacts.properties ->> 'hs_additional_emails', ';'))
        with ordinality as emails (email, position)

),

renamed as (

    select
        hubspot_contact_id || ':' || email_position as contact_email_id,
        hubspot_contact_id,
        nullif(trim(email), '') as email,
        {{ normalize_email('email') }} as email_normalized,
        cast(email_position as integer) as email_position,
        cast(updated_at as timestamptz) as updated_at,
        _sdc_deleted_at as deleted_at

    from additional
    where nullif(trim(email), '') is not null

)

select * from renamed
