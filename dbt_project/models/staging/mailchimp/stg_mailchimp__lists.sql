with

source as (

    select * from {{ source('mailchimp', 'lists') }}

),

renamed as (

    select

        ----------  ids
        id as mailchimp_list_id,
        web_id as mailchimp_list_web_id,

        ----------  audience
        name as list_name,
        visibility,
        cast(double_optin as boolean) as is_double_optin,
        cast(marketing_permissions as boolean) as has_marketing_permissions,
        campaign_defaults ->> 'from_email' as from_email,
        campaign_defaults ->> 'language' as default_language,

        ----------  stats
        cast(stats ->> 'member_count' as integer) as subscribed_count,
        cast(stats ->> 'unsubscribe_count' as integer) as unsubscribed_count,
        cast(stats ->> 'cleaned_count' as integer) as cleaned_count,
        cast(stats ->> 'total_contacts' as integer) as total_contacts,
        cast(stats ->> 'campaign_count' as integer) as campaign_count,

        ----------  timestamps
        cast(date_created as timestamptz) as created_at

    from source

)

select * from renamed
