with

source as (

    select * from {{ source('hubspot', 'contacts') }}

),

renamed as (

    select

        ----------  ids
        id as hubspot_contact_id,
        nullif(properties ->> 'hubspot_owner_id', '') as hubspot_owner_id,

        ----------  contact
        nullif(trim(properties ->> 'email'), '') as email,
        {{ normalize_email("properties ->> 'email'") }} as email_normalized,
        -- HubSpot keeps a contact's secondary emails in one semicolon-separated property
        nullif(trim(properties ->> 'hs_additional_emails'), '') as additional_emails,
        {{ normalize_proper_name("properties ->> 'firstname'") }} as first_name,
        {{ normalize_proper_name("properties ->> 'lastname'") }} as last_name,
        -- staff type the mobile in either field; the mobile first
        coalesce(
            nullif(trim(properties ->> 'mobilephone'), ''),
            nullif(trim(properties ->> 'phone'), '')
        ) as phone,
        nullif(trim(properties ->> 'mobilephone'), '') as mobile_phone,
        nullif(trim(properties ->> 'phone'), '') as landline_phone,
        nullif(trim(properties ->> 'hs_whatsapp_phone_number'), '') as whatsapp_phone,

        ----------  work
        nullif(trim(properties ->> 'company'), '') as company_name,
        nullif(trim(properties ->> 'jobtitle'), '') as job_title,
        associations -> 'companies' ->> 0 as hubspot_company_id,

        ----------  address
        nullif(trim(properties ->> 'address'), '') as address,
        {{ normalize_proper_name("properties ->> 'city'") }} as city,
        nullif(upper(trim(properties ->> 'state')), '') as state,
        nullif(trim(properties ->> 'zip'), '') as postcode,

        ----------  sales
        nullif(properties ->> 'lifecyclestage', '') as lifecycle_stage,
        nullif(properties ->> 'hs_lead_status', '') as lead_status,

        ----------  consent
        -- "Unsubscribed from all email": "true" once the contact opted out of all email;
        -- "false" or empty is not opted out, which is not a consent
        coalesce(properties ->> 'hs_email_optout', '') = 'true' as is_email_opted_out,
        -- HubSpot keeps no time of its own for it: the contact's last modification
        case
            when coalesce(properties ->> 'hs_email_optout', '') = 'true'
                then cast(updated_at as timestamptz)
        end as email_opted_out_at,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,

        ----------  deletion
        -- set by the loader when a full sync no longer found the contact (archived in
        -- HubSpot); the row stays for history, identity leaves it out
        _sdc_deleted_at as deleted_at,
        _sdc_deleted_at is not null or coalesce(archived, false) as is_deleted

    from source

)

select * from renamed
