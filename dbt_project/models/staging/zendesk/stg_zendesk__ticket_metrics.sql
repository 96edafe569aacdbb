with

-- a ticket has one metric set; should the raw table hold an older one for the same
-- ticket (an account restored or re-created under new metric ids), the latest wins
source as (

    select distinct on (ticket_id) *
    from {{ source('zendesk', 'ticket_metrics') }}
    order by ticket_id asc, updated_at desc nulls last, id desc

),

minutes as (

    select

        *,
        cast(reply_time_in_minutes ->> 'calendar' as integer) as reply_calendar,
        cast(reply_time_in_minutes ->> 'business' as integer) as reply_business,
        cast(first_resolution_time_in_minutes ->> 'calendar' as integer) as first_res_calendar,
        cast(first_resolution_time_in_minutes ->> 'business' as integer) as first_res_business,
        cast(full_resolution_time_in_minutes ->> 'calendar' as integer) as full_res_calendar,
        cast(full_resolution_time_in_minutes ->> 'business' as integer) as full_res_business,
        cast(requester_wait_time_in_minutes ->> 'calendar' as integer) as wait_calendar,
        cast(requester_wait_time_in_minutes ->> 'business' as integer) as wait_business,
        cast(on_hold_time_in_minutes ->> 'calendar' as integer) as hold_calendar

    from source

),

renamed as (

    select

        ----------  ids
        id as zendesk_ticket_metric_id,
        ticket_id as zendesk_ticket_id,

        ----------  first reply: creation to the first public agent reply
        reply_calendar as first_reply_minutes,
        reply_business as first_reply_business_minutes,
        make_interval(mins => reply_calendar) as first_reply_time,

        ----------  resolution: creation to the first and to the last solve
        first_res_calendar as first_resolution_minutes,
        first_res_business as first_resolution_business_minutes,
        full_res_calendar as full_resolution_minutes,
        full_res_business as full_resolution_business_minutes,
        make_interval(mins => full_res_calendar) as full_resolution_time,

        ----------  waiting
        wait_calendar as requester_wait_minutes,
        wait_business as requester_wait_business_minutes,
        hold_calendar as on_hold_minutes,

        ----------  counts
        replies as agent_replies,
        reopens,
        assignee_stations,
        group_stations,

        ----------  timestamps
        cast(assigned_at as timestamptz) as assigned_at,
        cast(initially_assigned_at as timestamptz) as initially_assigned_at,
        cast(solved_at as timestamptz) as solved_at,
        cast(latest_comment_added_at as timestamptz) as latest_comment_added_at,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at

    from minutes

)

select * from renamed
