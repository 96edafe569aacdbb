{#
    First-response and resolution times of service conversations (kpi_conversations)
    per channel (support, whatsapp, instagram) and period (grain day, week or month, on
    the retailer's calendar: macro kpi_period), counted in the period the conversation
    started. Averages and medians in minutes over the conversations answered (first
    response) and resolved (resolution).
#}

with

conversations as (

    select * from {{ ref('kpi_conversations') }}

),

grains as (

    select unnest(array['day', 'week', 'month']) as grain

),

periods as (

    select
        grains.grain,
        {{ kpi_period('grains.grain', 'conversations.started_at') }} as period_start,
        conversations.*

    from conversations
    cross join grains

),

final as (

    select
        grain,
        period_start,
        channel,
        count(*) as conversations,
        count(*) filter (where is_responded) as responded_conversations,
        count(*) filter (where is_resolved) as resolved_conversations,
        round(avg(first_response_minutes), 2) as avg_first_response_minutes,
        round(
            cast(percentile_cont(0.5) within group (order by first_response_minutes) as numeric),
            2
        ) as median_first_response_minutes,
        round(avg(resolution_minutes), 2) as avg_resolution_minutes,
        round(
            cast(percentile_cont(0.5) within group (order by resolution_minutes) as numeric), 2
        ) as median_resolution_minutes

    from periods
    group by grain, period_start, channel

)

select * from final
