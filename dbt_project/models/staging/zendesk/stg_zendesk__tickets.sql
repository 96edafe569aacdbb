-- the deletions log: the rows held whose source row is gone (macros/staging_incremental.sql)
{{ config(pre_hook="{{ staging_log_gone('zendesk_ticket_id', [
        (source('zendesk', 'tickets'), 'id'),
    ]) }}") }}

with

source as (

    select * from {{ source('zendesk', 'tickets') }}

),

renamed as (

    select

        ----------  ids
        id as zendesk_ticket_id,
        requester_id as zendesk_requester_id,
        submitter_id as zendesk_submitter_id,
        assignee_id as zendesk_assignee_id,
        group_id as zendesk_group_id,
        organization_id as zendesk_organization_id,
        brand_id as zendesk_brand_id,
        external_id,

        ----------  ticket
        subject,
        description,
        status as ticket_status,
        priority,
        type as ticket_type,
        tags,
        status in ('solved', 'closed') as is_solved,

        ----------  channel: where the requester wrote in (email, web, whatsapp, ...)
        via ->> 'channel' as channel,
        nullif(trim(via -> 'source' -> 'from' ->> 'address'), '') as source_from_address,
        recipient,
        coalesce(from_messaging_channel, false) as is_messaging,

        ----------  satisfaction (the ticket's summary; ratings have their own model)
        satisfaction_rating ->> 'score' as satisfaction_score,
        cast(satisfaction_rating ->> 'id' as bigint) as zendesk_satisfaction_rating_id,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        cast(due_at as timestamptz) as due_at,

        ----------  load
        _sdc_batched_at as _loaded_at

    from source

)

select * from renamed
