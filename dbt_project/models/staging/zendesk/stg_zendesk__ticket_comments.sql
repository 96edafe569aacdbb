-- the deletions log: the rows held whose source row is gone (macros/staging_incremental.sql)
{{ config(pre_hook="{{ staging_log_gone('zendesk_comment_id', [
        (source('zendesk', 'ticket_comments'), 'id'),
    ]) }}") }}

with

source as (

    select * from {{ source('zendesk', 'ticket_comments') }}

),

renamed as (

    select

        ----------  ids
        id as zendesk_comment_id,
        ticket_id as zendesk_ticket_id,
        author_id as zendesk_author_id,
        audit_id as zendesk_audit_id,

        ----------  comment
        type as comment_type,
        plain_body as body,
        coalesce(public, true) as is_public,

        ----------  channel the comment came through, as Zendesk names it, and grouped
        via ->> 'channel' as channel,
        case via ->> 'channel'
            when 'whatsapp' then 'whatsapp'
            when 'instagram_dm' then 'instagram'
            when 'native_messaging' then 'web_messaging'
            when 'email' then 'email'
            when 'web' then 'web'
            when 'api' then 'api'
            else 'other'
        end as channel_group,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,

        ----------  load
        _sdc_batched_at as _loaded_at

    from source

)

select * from renamed
