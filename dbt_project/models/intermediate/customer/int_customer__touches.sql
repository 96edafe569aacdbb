{#
    Each customer's touches, for customer_metrics: their own actions in
    customer_journey (inbound interactions, orders, abandoned checkouts, returns) up to
    `as_of` (default: build time), the first and the last with their channel, and how
    many; and their preferred contact channel, where they wrote, opened or clicked most
    (inbound interactions), then the latest. A customer with no action up to as_of has
    no row.

    Incremental: a customer's touches depend on their journey alone, so a run rebuilds
    the customers whose journey customer_journey rewrote since this model's last build
    (its built_at), those whose journey is gone (macro journeys_gone_since), and those
    with an action between the
    previous run's as_of and this run's (as_of moved). Each run writes one row without a
    customer (customer_id null) that holds its as_of for the next run; the post-hook
    keeps the newest only. A customer left with no action gets a row with no count, so
    that delete+insert removes their old row, and the post-hook deletes it.
#}

-- sqlfluff:indentation:template_blocks_indent:False
-- depends_on: {{ source('dbt_log', 'deleted_keys') }}
{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook=[
        "delete from {{ this }} where customer_id is not null and touches_count is null",
        "delete from {{ this }} where customer_id is null and built_at < (select max(built_at) from {{ this }} where customer_id is null)",
        "create unique index if not exists {{ this.identifier }}_customer_idx on {{ this }} (customer_id)",
    ],
) }}

with

-- not materialized: read more than once, so Postgres would first copy the whole table;
-- inlined, each read takes only the rows it needs, through the table's indexes
journey as not materialized (

    select * from {{ ref('customer_journey') }}

),
{%- if is_incremental() %}

held as (

    select
        coalesce(
            (select max(built.built_at) from {{ this }} as built),
            cast('-infinity' as timestamptz)
        ) as built_at,
        -- a table without the as_of row: every action counts as moved
        coalesce(
            (
                select previous.as_of from {{ this }} as previous
                where previous.customer_id is null
                order by previous.built_at desc
                limit 1
            ),
            cast('-infinity' as timestamptz)
        ) as as_of

),

touched as (

    -- journeys rewritten since the last build
    select journey.customer_id
    from journey
    cross join held
    where journey.built_at > held.built_at
    union
    -- journeys gone
    {{ journeys_gone_since('select held.built_at from held') }}
    union
    -- actions that as_of, moved since the last run, takes in or leaves out
    select journey.customer_id
    from journey
    cross join held
    where
        journey.is_customer_action
        and journey.occurred_at > least(held.as_of, {{ as_of_timestamp() }})
        and journey.occurred_at <= greatest(held.as_of, {{ as_of_timestamp() }})

),

actions as (

    select journey.*

    from journey
    inner join touched
        on journey.customer_id = touched.customer_id
    where
        journey.is_customer_action
        and journey.occurred_at <= {{ as_of_timestamp() }}

),
{%- else %}

actions as (

    select * from journey
    where
        is_customer_action
        and occurred_at <= {{ as_of_timestamp() }}

),
{%- endif %}

touches as (

    select
        customer_id,
        count(*) as touches_count,
        min(occurred_at) as first_touch_at,
        max(occurred_at) as last_touch_at,
        (array_agg(channel order by occurred_at, journey_event_key))[1] as first_touch_channel,
        (array_agg(channel order by occurred_at desc, journey_event_key desc))[1]
            as last_touch_channel

    from actions
    group by customer_id

),

contact_channels as (

    select
        customer_id,
        channel,
        row_number() over (
            partition by customer_id
            order by count(*) desc, max(occurred_at) desc, channel asc
        ) as channel_rank

    from actions
    where event_source = 'interaction'
    group by customer_id, channel

),

final as (

    select
        touches.customer_id,
        touches.touches_count,
        touches.first_touch_at,
        touches.first_touch_channel,
        touches.last_touch_at,
        touches.last_touch_channel,
        contact_channels.channel as preferred_contact_channel,
        -- a row holds for any as_of with none of the customer's actions in between
        cast(null as timestamptz) as as_of,
        cast('{{ run_started_at }}' as timestamptz) as built_at

    from touches
    left join contact_channels
        on
            touches.customer_id = contact_channels.customer_id
            and contact_channels.channel_rank = 1

),

as_of_row as (

    -- the as_of this run counted up to, for the next run
    select
        cast(null as text) as customer_id,
        cast(null as bigint) as touches_count,
        cast(null as timestamptz) as first_touch_at,
        cast(null as text) as first_touch_channel,
        cast(null as timestamptz) as last_touch_at,
        cast(null as text) as last_touch_channel,
        cast(null as text) as preferred_contact_channel,
        {{ as_of_timestamp() }} as as_of,
        cast('{{ run_started_at }}' as timestamptz) as built_at

)

{%- if is_incremental() %}

select
    touched.customer_id,
    final.touches_count,
    final.first_touch_at,
    final.first_touch_channel,
    final.last_touch_at,
    final.last_touch_channel,
    final.preferred_contact_channel,
    final.as_of,
    final.built_at

from touched
left join final
    on touched.customer_id = final.customer_id

union all

select * from as_of_row

{%- else %}

select * from final
union all
select * from as_of_row

{%- endif %}
