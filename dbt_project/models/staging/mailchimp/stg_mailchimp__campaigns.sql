with

source as (

    select * from {{ source('mailchimp', 'campaigns') }}

),

renamed as (

    select

        ----------  ids
        id as mailchimp_campaign_id,
        web_id as mailchimp_campaign_web_id,
        recipients ->> 'list_id' as mailchimp_list_id,

        ----------  campaign
        type as campaign_type,
        status as campaign_status,
        settings ->> 'title' as campaign_title,
        settings ->> 'subject_line' as subject_line,
        settings ->> 'from_name' as from_name,
        recipients ->> 'list_name' as list_name,
        archive_url,

        ----------  reach
        emails_sent,
        cast(recipients ->> 'recipient_count' as integer) as recipient_count,
        cast(report_summary ->> 'opens' as integer) as opens,
        cast(report_summary ->> 'unique_opens' as integer) as unique_opens,
        cast(report_summary ->> 'open_rate' as numeric) as open_rate,
        cast(report_summary ->> 'clicks' as integer) as clicks,
        cast(report_summary ->> 'subscriber_clicks' as integer) as unique_clickers,
        cast(report_summary ->> 'click_rate' as numeric) as click_rate,

        ----------  timestamps
        cast(create_time as timestamptz) as created_at,
        cast(send_time as timestamptz) as sent_at

    from source

)

select * from renamed
