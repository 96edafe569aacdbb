{#
    The touches kpi_conversion counts, one row per customer, channel and local day
    (macro kpi_period) on which the customer was touched there: an interaction with
    them, either way (staff notes aside), or, on web, a checkout they abandoned. Each
    with its first touch of the day (touched_at) and whether an order of theirs (any
    channel, not cancelled: the journey's orders) came within var
    kpi_conversion_window_days (7) after it (is_converted). Every touch, whatever
    `as_of`: kpi_conversion leaves out those after as_of and counts as pending those
    whose window has not closed by then.

    Incremental: a customer's touch days depend on their journey alone, so a run
    rebuilds the customers whose journey customer_journey rewrote since this model's
    last build (its built_at) or whose journey is gone (macro journeys_gone_since). A
    customer left with no touch
    gets one row without a day, so that delete+insert removes their old rows, and the
    post-hook deletes it. A change of var kpi_conversion_window_days or kpi_time_zone
    needs --full-refresh.
#}

-- sqlfluff:indentation:template_blocks_indent:False
-- depends_on: {{ source('dbt_log', 'deleted_keys') }}
{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook=[
        "delete from {{ this }} where touch_day is null",
        "create index if not exists {{ this.identifier }}_customer_idx on {{ this }} (customer_id)",
        "create index if not exists {{ this.identifier }}_built_idx on {{ this }} (built_at)",
    ],
) }}

{%- set window_days = var('kpi_conversion_window_days', 7) | int %}

with

-- not materialized: read more than once, so Postgres would first copy the whole table;
-- inlined, each read takes only the rows it needs, through the table's indexes
journey as not materialized (

    select * from {{ ref('customer_journey') }}

),
{%- if is_incremental() %}

touched as (

    -- journeys rewritten since the last build
    select journey.customer_id
    from journey
    where
        journey.built_at > (
            select coalesce(max(built.built_at), cast('-infinity' as timestamptz))
            from {{ this }} as built
        )
    union
    -- journeys gone
    {{ journeys_gone_since('select max(held.built_at) from ' ~ this ~ ' as held') }}

),

events as (

    select journey.*

    from journey
    inner join touched
        on journey.customer_id = touched.customer_id

),
{%- else %}

events as (

    select * from journey

),
{%- endif %}

touches as (

    select
        customer_id,
        channel,
        {{ kpi_period("'day'", 'occurred_at') }} as touch_day,
        min(occurred_at) as touched_at

    from events
    where
        event_source = 'abandoned_checkout'
        or (event_source = 'interaction' and direction in ('inbound', 'outbound'))
    group by customer_id, channel, touch_day

),

orders as (

    select
        customer_id,
        occurred_at as ordered_at

    from events
    where event_source = 'order'

),

final as (

    select
        touches.customer_id,
        touches.channel,
        touches.touch_day,
        touches.touched_at,
        count(orders.ordered_at) > 0 as is_converted,
        cast('{{ run_started_at }}' as timestamptz) as built_at

    from touches
    left join orders
        on
            touches.customer_id = orders.customer_id
            and touches.touched_at < orders.ordered_at
            and touches.touched_at + interval '{{ window_days }} days' >= orders.ordered_at
    group by touches.customer_id, touches.channel, touches.touch_day, touches.touched_at

)

{%- if is_incremental() %}

select
    touched.customer_id,
    final.channel,
    final.touch_day,
    final.touched_at,
    final.is_converted,
    final.built_at

from touched
left join final
    on touched.customer_id = final.customer_id

{%- else %}

select * from final

{%- endif %}
