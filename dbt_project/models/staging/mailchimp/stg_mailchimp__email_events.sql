{#
    One row per thing that happened to a campaign email: sent, open, click, bounce
    (email_activity, one row per recipient action) and unsubscribe (unsubscribes).
    The loader upserts on the tap's keys, so a re-read activity is one row already.
#}

with

activity as (

    select * from {{ source('mailchimp', 'email_activity') }}

),

unsubscribes as (

    select * from {{ source('mailchimp', 'unsubscribes') }}

),

events as (

    select
        campaign_id,
        list_id,
        email_id,
        email_address,
        action as event_type,
        cast(timestamp as timestamptz) as occurred_at,
        nullif(type, '') as bounce_type,
        nullif(url, '') as url,
        nullif(ip, '') as ip,
        null as unsubscribe_reason

    from activity

    union all

    select
        campaign_id,
        list_id,
        email_id,
        email_address,
        'unsubscribe' as event_type,
        cast(timestamp as timestamptz) as occurred_at,
        null as bounce_type,
        null as url,
        null as ip,
        nullif(reason, '') as unsubscribe_reason

    from unsubscribes

),

renamed as (

    select

        ----------  ids
        md5(
            concat_ws(
                '|', campaign_id, email_id, event_type, cast(occurred_at as text), url
            )
        ) as email_event_id,
        campaign_id as mailchimp_campaign_id,
        list_id as mailchimp_list_id,
        email_id as mailchimp_member_id,
        list_id || '/' || email_id as mailchimp_member_key,

        ----------  who
        email_address as email,
        {{ normalize_email('email_address') }} as email_normalized,

        ----------  event
        event_type,
        bounce_type,
        url,
        ip,
        unsubscribe_reason,

        ----------  timestamps
        occurred_at

    from events

)

select * from renamed
