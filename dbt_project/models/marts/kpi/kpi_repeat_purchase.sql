{#
    Repeat-purchase rate per channel (web, marketplace, pos, and all of them) and period
    (grain day, week or month: macro kpi_period): of the customers who ordered in the
    period on that channel (orders not cancelled), the share who had ordered before
    (on any channel) their first order of the period there.
#}

with

orders as (

    select
        customer_id,
        channel,
        ordered_at,
        min(ordered_at) over (partition by customer_id) as first_ordered_at

    from {{ ref('fct_orders') }}
    where
        customer_id is not null
        and not is_cancelled
        and ordered_at <= {{ as_of_timestamp() }}

),

channels as (

    select
        customer_id,
        channel,
        ordered_at,
        first_ordered_at

    from orders

    union all

    select
        customer_id,
        'all' as channel,
        ordered_at,
        first_ordered_at

    from orders

),

grains as (

    select unnest(array['day', 'week', 'month']) as grain

),

buyers as (

    select
        grains.grain,
        {{ kpi_period('grains.grain', 'channels.ordered_at') }} as period_start,
        channels.channel,
        channels.customer_id,
        min(channels.ordered_at) > min(channels.first_ordered_at) as is_repeat

    from channels
    cross join grains
    group by grains.grain, period_start, channels.channel, channels.customer_id

),

final as (

    select
        grain,
        period_start,
        channel,
        count(*) as buyers,
        count(*) filter (where is_repeat) as repeat_buyers,
        round(cast(count(*) filter (where is_repeat) as numeric) / count(*), 4)
            as repeat_purchase_rate

    from buyers
    group by grain, period_start, channel

)

select * from final
