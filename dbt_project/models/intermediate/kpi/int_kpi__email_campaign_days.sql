{#
    The email KPIs' counts per campaign and local day of the send (var kpi_time_zone,
    macro kpi_period): of the campaign's recipients (one per campaign and member) sent
    that day, how many were delivered (no bounce), and of those how many opened and
    clicked at any time since, as Mailchimp counts unique opens and clicks.
    kpi_engagement sums these per day, week and month: each recipient is in one day.

    Incremental per campaign: a run rebuilds, whole, the campaigns with an email event
    that fct_interactions wrote since this model's last build (a send, an open or a
    click that came in late). A campaign left with no send keeps one row without a
    sent_day, so that delete+insert removes its old rows, and the post-hook deletes it.
#}

-- sqlfluff:indentation:template_blocks_indent:False
{{ config(
    materialized='incremental',
    unique_key='campaign_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook=["delete from {{ this }} where sent_day is null"],
) }}

with

email_events as (

    select
        thread_id as campaign_id,
        record_key,
        interaction_type,
        occurred_at,
        built_at

    from {{ ref('fct_interactions') }}
    where channel = 'email'

),
{%- if is_incremental() %}

touched as (

    select distinct email_events.campaign_id
    from email_events
    where
        email_events.built_at > (
            select coalesce(max(held.built_at), cast('-infinity' as timestamptz))
            from {{ this }} as held
        )

),

in_scope as (

    select email_events.*
    from email_events
    inner join touched
        on email_events.campaign_id = touched.campaign_id

),
{%- else %}

in_scope as (

    select * from email_events

),
{%- endif %}

recipients as (

    select
        campaign_id,
        record_key,
        min(occurred_at) filter (where interaction_type = 'email_sent') as sent_at,
        bool_or(interaction_type = 'email_bounce') as is_bounced,
        bool_or(interaction_type = 'email_open') as is_opened,
        bool_or(interaction_type = 'email_click') as is_clicked

    from in_scope
    group by campaign_id, record_key

),

final as (

    select
        campaign_id,
        {{ kpi_period("'day'", 'sent_at') }} as sent_day,
        count(*) as emails_sent,
        count(*) filter (where not is_bounced) as emails_delivered,
        count(*) filter (where not is_bounced and is_opened) as unique_opens,
        count(*) filter (where not is_bounced and is_clicked) as unique_clicks,
        cast('{{ run_started_at }}' as timestamptz) as built_at

    from recipients
    where sent_at is not null
    group by campaign_id, sent_day

)
{%- if is_incremental() %}

select
    touched.campaign_id,
    final.sent_day,
    final.emails_sent,
    final.emails_delivered,
    final.unique_opens,
    final.unique_clicks,
    cast('{{ run_started_at }}' as timestamptz) as built_at

from touched
left join final
    on touched.campaign_id = final.campaign_id

{%- else %}

select * from final

{%- endif %}
