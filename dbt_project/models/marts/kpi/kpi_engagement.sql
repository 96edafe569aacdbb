{#
    Engagement per channel and period (grain day, week or month: macro kpi_period):

    - every channel: the customers' own interactions there (inbound: comments, messages,
      tickets, ratings, email opens and clicks, calls they made), the people behind them
      (customers; a record no customer holds counts as its own) and interactions per
      customer. On instagram these are the social interactions per customer.
    - email (Mailchimp campaigns): of the recipients of the campaigns sent in the period
      (one per campaign and member), the delivered ones (no bounce), and of those the
      share that opened (open_rate) and clicked (click_rate) at any time since, as
      Mailchimp counts unique opens and clicks over delivered emails.
#}

with

interactions as (

    select * from {{ ref('fct_interactions') }}

),

grains as (

    select unnest(array['day', 'week', 'month']) as grain

),

inbound as (

    select
        grains.grain,
        {{ kpi_period('grains.grain', 'interactions.occurred_at') }} as period_start,
        interactions.channel,
        coalesce(interactions.customer_id, interactions.record_key) as person_key

    from interactions
    cross join grains
    where interactions.direction = 'inbound'

),

activity as (

    select
        grain,
        period_start,
        channel,
        count(*) as inbound_interactions,
        count(distinct person_key) as active_customers

    from inbound
    group by grain, period_start, channel

),

recipients as (

    select
        thread_id as campaign_id,
        record_key,
        min(occurred_at) filter (where interaction_type = 'email_sent') as sent_at,
        bool_or(interaction_type = 'email_bounce') as is_bounced,
        bool_or(interaction_type = 'email_open') as is_opened,
        bool_or(interaction_type = 'email_click') as is_clicked

    from interactions
    where channel = 'email'
    group by thread_id, record_key

),

sends as (

    select
        grains.grain,
        {{ kpi_period('grains.grain', 'recipients.sent_at') }} as period_start,
        recipients.is_bounced,
        recipients.is_opened,
        recipients.is_clicked

    from recipients
    cross join grains
    where recipients.sent_at is not null

),

email as (

    select
        grain,
        period_start,
        'email' as channel,
        count(*) as emails_sent,
        count(*) filter (where not is_bounced) as emails_delivered,
        count(*) filter (where not is_bounced and is_opened) as unique_opens,
        count(*) filter (where not is_bounced and is_clicked) as unique_clicks

    from sends
    group by grain, period_start

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
