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
#}

with

interactions as (

    select
        occurred_at,
        channel,
        direction,
        record_key,
        customer_id

    from {{ ref('fct_interactions') }}

),

grains as (

    select unnest(array['day', 'week', 'month']) as grain

),

-- each person's inbound interactions per channel and local day: one pass over the
-- interactions, then each grain rolls these up (a week or month of local days is that
-- week or month)
person_days as (

    select
        {{ kpi_period("'day'", 'occurred_at') }} as local_day,
        channel,
        coalesce(customer_id, record_key) as person_key,
        count(*) as interactions_count

    from interactions
    where direction = 'inbound'
    group by local_day, channel, person_key

),

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
            as click_rate

    from activity
    full outer join email
        on
            activity.grain = email.grain
            and activity.period_start = email.period_start
            and activity.channel = email.channel

)

select * from final
