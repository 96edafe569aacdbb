-- the deletions log: the rows held whose source row is gone (macros/staging_incremental.sql)
{{ config(pre_hook="{{ staging_log_gone('zendesk_satisfaction_rating_id', [
        (source('zendesk', 'satisfaction_ratings'), 'id'),
    ]) }}") }}

with

source as (

    select * from {{ source('zendesk', 'satisfaction_ratings') }}

),

renamed as (

    select

        ----------  ids
        id as zendesk_satisfaction_rating_id,
        ticket_id as zendesk_ticket_id,
        requester_id as zendesk_requester_id,
        assignee_id as zendesk_assignee_id,
        group_id as zendesk_group_id,

        ----------  rating
        score,
        -- answered: the requester chose good or bad; offered: the survey went unanswered
        score in ('good', 'bad') as is_rated,
        case score when 'good' then 1 when 'bad' then 0 end as csat_score,
        nullif(trim(comment), '') as rating_comment,
        reason,
        reason_code,

        ----------  timestamps
        cast(created_at as timestamptz) as offered_at,
        case
            when score in ('good', 'bad') then cast(updated_at as timestamptz)
        end as rated_at,
        cast(updated_at as timestamptz) as updated_at,

        ----------  load
        _sdc_batched_at as _loaded_at

    from source

)

select * from renamed
