{#
    Calls, emails, notes and meetings staff logged in the CRM, one row each: HubSpot
    keeps them as four object types sharing a timestamp (hs_timestamp) and an owner,
    each with its own title, body, direction and outcome properties.
#}

-- the deletions log: the rows held whose source row is gone (macros/staging_incremental.sql)
{{ config(pre_hook="{{ staging_log_gone('engagement_key', [
        (source('hubspot', 'calls'), 'id', 'call:'),
        (source('hubspot', 'emails'), 'id', 'email:'),
        (source('hubspot', 'notes'), 'id', 'note:'),
        (source('hubspot', 'meetings'), 'id', 'meeting:'),
    ]) }}") }}

with

calls as (

    select
        'call:' || id as engagement_key,
        id as hubspot_engagement_id,
        'call' as engagement_type,
        associations -> 'contacts' ->> 0 as hubspot_contact_id,
        associations -> 'deals' ->> 0 as hubspot_deal_id,
        associations -> 'tickets' ->> 0 as hubspot_ticket_id,
        nullif(properties ->> 'hubspot_owner_id', '') as hubspot_owner_id,
        cast(nullif(properties ->> 'hs_timestamp', '') as timestamptz) as occurred_at,
        nullif(trim(properties ->> 'hs_call_title'), '') as title,
        nullif(trim(properties ->> 'hs_call_body'), '') as body,
        nullif(properties ->> 'hs_call_direction', '') as direction,
        nullif(properties ->> 'hs_call_status', '') as status,
        {{ to_numeric("properties ->> 'hs_call_duration'") }} / 1000 as duration_seconds,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        _sdc_deleted_at as deleted_at,
        _sdc_batched_at as _loaded_at

    from {{ source('hubspot', 'calls') }}

),

emails as (

    select
        'email:' || id as engagement_key,
        id as hubspot_engagement_id,
        'email' as engagement_type,
        associations -> 'contacts' ->> 0 as hubspot_contact_id,
        associations -> 'deals' ->> 0 as hubspot_deal_id,
        associations -> 'tickets' ->> 0 as hubspot_ticket_id,
        nullif(properties ->> 'hubspot_owner_id', '') as hubspot_owner_id,
        cast(nullif(properties ->> 'hs_timestamp', '') as timestamptz) as occurred_at,
        nullif(trim(properties ->> 'hs_email_subject'), '') as title,
        nullif(trim(properties ->> 'hs_email_text'), '') as body,
        nullif(properties ->> 'hs_email_direction', '') as direction,
        nullif(properties ->> 'hs_email_status', '') as status,
        cast(null as numeric) as duration_seconds,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        _sdc_deleted_at as deleted_at,
        _sdc_batched_at as _loaded_at

    from {{ source('hubspot', 'emails') }}

),

notes as (

    select
        'note:' || id as engagement_key,
        id as hubspot_engagement_id,
        'note' as engagement_type,
        associations -> 'contacts' ->> 0 as hubspot_contact_id,
        associations -> 'deals' ->> 0 as hubspot_deal_id,
        associations -> 'tickets' ->> 0 as hubspot_ticket_id,
        nullif(properties ->> 'hubspot_owner_id', '') as hubspot_owner_id,
        cast(nullif(properties ->> 'hs_timestamp', '') as timestamptz) as occurred_at,
        cast(null as text) as title,
        nullif(trim(properties ->> 'hs_note_body'), '') as body,
        cast(null as text) as direction,
        cast(null as text) as status,
        cast(null as numeric) as duration_seconds,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        _sdc_deleted_at as deleted_at,
        _sdc_batched_at as _loaded_at

    from {{ source('hubspot', 'notes') }}

),

meetings as (

    select
        'meeting:' || id as engagement_key,
        id as hubspot_engagement_id,
        'meeting' as engagement_type,
        associations -> 'contacts' ->> 0 as hubspot_contact_id,
        associations -> 'deals' ->> 0 as hubspot_deal_id,
        associations -> 'tickets' ->> 0 as hubspot_ticket_id,
        nullif(properties ->> 'hubspot_owner_id', '') as hubspot_owner_id,
        cast(nullif(properties ->> 'hs_timestamp', '') as timestamptz) as occurred_at,
        nullif(trim(properties ->> 'hs_meeting_title'), '') as title,
        nullif(trim(properties ->> 'hs_meeting_body'), '') as body,
        cast(null as text) as direction,
        nullif(properties ->> 'hs_meeting_outcome', '') as status,
        cast(null as numeric) as duration_seconds,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        _sdc_deleted_at as deleted_at,
        _sdc_batched_at as _loaded_at

    from {{ source('hubspot', 'meetings') }}

),

unioned as (

    select * from calls
    union all
    select * from emails
    union all
    select * from notes
    union all
    select * from meetings

)

select * from unioned
