{#
    One row per thing that happened to a campaign email: sent, open, click, bounce
    (email_activity, one row per recipient action) and unsubscribe (unsubscribes).
    The loader upserts on the tap's keys, so a re-read activity is one row already.

    Incremental on the loader's `_sdc_batched_at` (macros/staging_incremental.sql): a
    run reads the activity and unsubscribes loaded since the newest it holds (every
    campaign's sends make this the biggest staging table); an event whose raw row is
    gone goes too (the post-hook), its key logged in the deletions log.
#}

{{ config(
    materialized='incremental',
    unique_key='email_event_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook=[
        "{%- if is_incremental() %}
        with gone as (
        delete from {{ this }} as built
        where
        -- one event per raw row: while the counts agree, none is gone (no anti-join)
        (select count(*) from {{ this }}) <> (
            select count(*) from {{ source('mailchimp', 'email_activity') }}
        ) + (select count(*) from {{ source('mailchimp', 'unsubscribes') }})
        and not exists (
            select from {{ source('mailchimp', 'email_activity') }} as raw
            where
                raw.campaign_id = built.mailchimp_campaign_id
                and raw.email_id = built.mailchimp_member_id
                and raw.action = built.event_type
                and cast(raw.timestamp as timestamptz) = built.occurred_at
        )
        and not exists (
            select from {{ source('mailchimp', 'unsubscribes') }} as raw
            where
                built.event_type = 'unsubscribe'
                and raw.campaign_id = built.mailchimp_campaign_id
                and raw.email_id = built.mailchimp_member_id
                and cast(raw.timestamp as timestamptz) = built.occurred_at
        )
        returning built.email_event_id as deleted_key
        )
        {{ deleted_keys_log_insert('gone') }}
        {%- else %}select 1{% endif %}",
    ],
) }}

with

activity as (

    select * from {{ source('mailchimp', 'email_activity') }}
    {{ staging_loaded_since() }}

),

unsubscribes as (

    select * from {{ source('mailchimp', 'unsubscribes') }}
    {{ staging_loaded_since() }}

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
        null as unsubscribe_reason,
        _sdc_batched_at as _loaded_at

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
        nullif(reason, '') as unsubscribe_reason,
        _sdc_batched_at as _loaded_at

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
        occurred_at,
        _loaded_at

    from events

)

select * from renamed
