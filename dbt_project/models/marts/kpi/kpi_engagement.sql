{#
    Engagement per channel and period (grain day, week or month: macro kpi_period):

    - every channel: the customers' own interactions there (inbound: comments, messages,
      tickets, ratings, email opens and clicks, calls they made), the people behind them
      (customers; a record no customer holds counts as its own) and interactions per
      customer. On instagram these are the social interactions per customer.
    - email (Mailchimp campaigns): of the recipients of the campaigns sent in the period
      (one per campaign and member), the delivered ones (no bounce), and of those the
      share that opened (open_rate) and clicked (click_rate) at any time since, as
      Mailchimp counts unique opens and clicks over delivered emails. Counted per
      campaign and day of the send in int_kpi__email_campaign_days (incremental per
      campaign), summed here per period.

    The persons per day come from int_kpi__engagement_days (incremental per local day:
    the days whose interactions changed). Incremental per period: a run rebuilds, whole,
    the day, week and month of each day int_kpi__engagement_days rebuilt since this
    model's last build, of each day it holds interactions on that has none now, and the
    periods whose email figures (a small sum over the campaigns' days, computed whole)
    are not those held. A period left with no row keeps
    one row without a channel, so that delete+insert removes its old rows, and the
    post-hook deletes it. A change of var kpi_time_zone needs --full-refresh of both.
#}

-- sqlfluff:indentation:template_blocks_indent:False
{{ config(
    materialized='incremental',
    unique_key=['grain', 'period_start'],
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    meta={'new_rows_stamp': 'built_at'},
    post_hook=[
        "delete from {{ this }} where channel is null",
        "create index if not exists {{ this.identifier }}_period_idx on {{ this }} (grain, period_start)",
    ],
) }}
{#- a table from before this model was incremental (no built_at) is read whole once #}
{%- set incremental = is_incremental() and relation_has_column(this, 'built_at') %}

with

-- each person's inbound interactions per channel and local day (and a digest row per
-- day, without a person, left out here)
person_days as (

    select
        local_day,
        channel,
        person_key,
        interactions_count,
        built_at

    from {{ ref('int_kpi__engagement_days') }}
    where person_key is not null

),

grains as (

    select unnest(array['day', 'week', 'month']) as grain

),

email as (

    select
        grains.grain,
        cast(date_trunc(grains.grain, campaign_days.sent_day) as date) as period_start,
        'email' as channel,
        cast(sum(campaign_days.emails_sent) as bigint) as emails_sent,
        cast(sum(campaign_days.emails_delivered) as bigint) as emails_delivered,
        cast(sum(campaign_days.unique_opens) as bigint) as unique_opens,
        cast(sum(campaign_days.unique_clicks) as bigint) as unique_clicks

    from {{ ref('int_kpi__email_campaign_days') }} as campaign_days
    cross join grains
    group by grains.grain, period_start

),
{%- if incremental %}

touched as (

    -- the periods of the days rebuilt since this model's last build
    select distinct
        grains.grain,
        cast(date_trunc(grains.grain, days.local_day) as date) as period_start

    from {{ ref('int_kpi__engagement_days') }} as days
    cross join grains
    where
        days.person_key is null
        and days.built_at > (
            select coalesce(max(held.built_at), cast('-infinity' as timestamptz))
            from {{ this }} as held
        )

    union

    -- the periods of the days held with an interaction that have none now (no digest)
    select distinct
        grains.grain,
        cast(date_trunc(grains.grain, held.period_start) as date) as period_start

    from {{ this }} as held
    cross join grains
    where
        held.grain = 'day'
        and held.inbound_interactions > 0
        and not exists (
            select 1 as is_held
            from {{ ref('int_kpi__engagement_days') }} as days
            where
                days.person_key is null
                and days.local_day = held.period_start
        )

    union

    -- the periods whose email figures are not those held
    select
        coalesce(email.grain, held.grain) as grain,
        coalesce(email.period_start, held.period_start) as period_start

    from email
    full outer join (
        select * from {{ this }}
        where channel = 'email' and emails_sent is not null
    ) as held
        on
            email.grain = held.grain
            and email.period_start = held.period_start
    where
        (email.emails_sent, email.emails_delivered, email.unique_opens, email.unique_clicks)
        is distinct from
        (held.emails_sent, held.emails_delivered, held.unique_opens, held.unique_clicks)

),

-- then per touched period: each person once (hashed, not sorted for a count distinct);
-- each period reads its own days, through the index on local_day
person_periods as (

    select
        touched.grain,
        touched.period_start,
        person_days.channel,
        person_days.person_key,
        sum(person_days.interactions_count) as interactions_count

    from touched
    inner join person_days
        on
            person_days.local_day >= touched.period_start
            and person_days.local_day
            < touched.period_start + cast('1 ' || touched.grain as interval)
    group by touched.grain, touched.period_start, person_days.channel, person_days.person_key

),
{%- else %}

-- then per period: each person once (hashed, not sorted for a count distinct)
person_periods as (

    select
        grains.grain,
        cast(date_trunc(grains.grain, person_days.local_day) as date) as period_start,
        person_days.channel,
        person_days.person_key,
        sum(person_days.interactions_count) as interactions_count

    from person_days
    cross join grains
    group by grains.grain, period_start, person_days.channel, person_days.person_key

),
{%- endif %}

activity as (

    select
        grain,
        period_start,
        channel,
        cast(sum(interactions_count) as bigint) as inbound_interactions,
        count(*) as active_customers

    from person_periods
    group by grain, period_start, channel

),

final as (

    select
        coalesce(activity.grain, email.grain) as grain,
        coalesce(activity.period_start, email.period_start) as period_start,
        coalesce(activity.channel, email.channel) as channel,
        coalesce(activity.inbound_interactions, 0) as inbound_interactions,
        coalesce(activity.active_customers, 0) as active_customers,
        round(
            cast(activity.inbound_interactions as numeric)
            / nullif(activity.active_customers, 0),
            4
        ) as interactions_per_customer,
        email.emails_sent,
        email.emails_delivered,
        email.unique_opens,
        email.unique_clicks,
        round(cast(email.unique_opens as numeric) / nullif(email.emails_delivered, 0), 4)
            as open_rate,
        round(cast(email.unique_clicks as numeric) / nullif(email.emails_delivered, 0), 4)
            as click_rate,
        cast('{{ run_started_at }}' as timestamptz) as built_at

    from activity
    full outer join email
        on
            activity.grain = email.grain
            and activity.period_start = email.period_start
            and activity.channel = email.channel

)
{%- if incremental %}

-- the touched periods only: their rows, and one without a channel for each
select final.*
from final
inner join touched
    on
        final.grain = touched.grain
        and final.period_start = touched.period_start

union all

select
    touched.grain,
    touched.period_start,
    cast(null as text) as channel,
    0 as inbound_interactions,
    0 as active_customers,
    cast(null as numeric) as interactions_per_customer,
    cast(null as bigint) as emails_sent,
    cast(null as bigint) as emails_delivered,
    cast(null as bigint) as unique_opens,
    cast(null as bigint) as unique_clicks,
    cast(null as numeric) as open_rate,
    cast(null as numeric) as click_rate,
    cast('{{ run_started_at }}' as timestamptz) as built_at
from touched

{%- else %}

select * from final

{%- endif %}
