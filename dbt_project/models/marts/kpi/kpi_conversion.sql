{#
    Conversion rate per channel and period: of the days a customer was touched on a
    channel (an interaction with them there, either way, staff notes aside; or, on web,
    a checkout they abandoned), the share followed by an order of theirs (any channel,
    not cancelled) within var kpi_conversion_window_days (7) after the first touch of
    that day.

    A touch counts once per customer, channel and local day (macro kpi_period), in the
    period of that day. Touches whose window has not closed by `as_of` are pending, not
    in the rate.
#}

{%- set window_days = var('kpi_conversion_window_days', 7) | int %}

with

touch_events as (

    select
        customer_id,
        channel,
        occurred_at

    from {{ ref('customer_journey') }}
    where
        (
            event_source = 'abandoned_checkout'
            or (event_source = 'interaction' and direction in ('inbound', 'outbound'))
        )
        and occurred_at <= {{ as_of_timestamp() }}

),

orders as (

    select
        customer_id,
        ordered_at

    from {{ ref('fct_orders') }}
    where customer_id is not null and not is_cancelled

),

touches as (

    select
        customer_id,
        channel,
        {{ kpi_period("'day'", 'occurred_at') }} as touch_day,
        min(occurred_at) as touched_at

    from touch_events
    group by customer_id, channel, touch_day

),

converted as (

    select
        touches.customer_id,
        touches.channel,
        touches.touch_day,
        touches.touched_at,
        touches.touched_at + interval '{{ window_days }} days' <= {{ as_of_timestamp() }}
            as is_window_closed,
        count(orders.ordered_at) > 0 as is_converted

    from touches
    left join orders
        on
            touches.customer_id = orders.customer_id
            and touches.touched_at < orders.ordered_at
            and touches.touched_at + interval '{{ window_days }} days' >= orders.ordered_at
    group by touches.customer_id, touches.channel, touches.touch_day, touches.touched_at

),

grains as (

    select unnest(array['day', 'week', 'month']) as grain

),

periods as (

    select
        grains.grain,
        cast(date_trunc(grains.grain, converted.touch_day) as date) as period_start,
        converted.channel,
        converted.is_window_closed,
        converted.is_converted

    from converted
    cross join grains

),

final as (

    select
        grain,
        period_start,
        channel,
        count(*) filter (where is_window_closed) as touches,
        count(*) filter (where is_window_closed and is_converted) as converted_touches,
        round(
            cast(count(*) filter (where is_window_closed and is_converted) as numeric)
            / nullif(count(*) filter (where is_window_closed), 0),
            4
        ) as conversion_rate,
        count(*) filter (where not is_window_closed) as pending_touches

    from periods
    group by grain, period_start, channel

)

select * from final
