{#
    Conversion rate per channel and period: of the days a customer was touched on a
    channel (an interaction with them there, either way, staff notes aside; or, on web,
    a checkout they abandoned), the share followed by an order of theirs (any channel,
    not cancelled) within var kpi_conversion_window_days (7) after the first touch of
    that day.

    A touch counts once per customer, channel and local day (macro kpi_period), in the
    period of that day. Touches whose window has not closed by `as_of` are pending, not
    in the rate. The touches and whether each converted come from
    int_customer__touch_days (per customer, rebuilt when their journey changes); this
    model only counts them per period, against as_of.
#}

{%- set window_days = var('kpi_conversion_window_days', 7) | int %}

with

converted as (

    -- every touch up to as_of (int_customer__touch_days, rebuilt per changed customer)
    select
        channel,
        touch_day,
        touched_at + interval '{{ window_days }} days' <= {{ as_of_timestamp() }}
            as is_window_closed,
        is_converted

    from {{ ref('int_customer__touch_days') }}
    where touched_at <= {{ as_of_timestamp() }}

),

-- the counts per channel and local day: one pass over the touches; a week or month of
-- local days is that week or month, so each grain sums these (counts add up)
days as (

    select
        touch_day,
        channel,
        count(*) filter (where is_window_closed) as touches,
        count(*) filter (where is_window_closed and is_converted) as converted_touches,
        count(*) filter (where not is_window_closed) as pending_touches

    from converted
    group by touch_day, channel

),

grains as (

    select unnest(array['day', 'week', 'month']) as grain

),

periods as (

    select
        grains.grain,
        cast(date_trunc(grains.grain, days.touch_day) as date) as period_start,
        days.channel,
        cast(sum(days.touches) as bigint) as touches,
        cast(sum(days.converted_touches) as bigint) as converted_touches,
        cast(sum(days.pending_touches) as bigint) as pending_touches

    from days
    cross join grains
    group by grains.grain, period_start, days.channel

),

final as (

    select
        grain,
        period_start,
        channel,
        touches,
        converted_touches,
        round(cast(converted_touches as numeric) / nullif(touches, 0), 4) as conversion_rate,
        pending_touches

    from periods

)

select * from final
