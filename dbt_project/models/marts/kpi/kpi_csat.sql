{#
    Customer satisfaction: the share of Zendesk satisfaction ratings that are good
    (good / (good + bad); offered surveys nobody answered do not count), per channel the
    ticket came in through (Zendesk's via channel: email, web, whatsapp, instagram_dm,
    ...) and period (grain day, week or month: macro kpi_period) of the rating.
#}

with

ratings as (

    select
        coalesce(via, 'unknown') as channel,
        occurred_at as rated_at,
        detail = 'good' as is_good

    from {{ ref('fct_interactions') }}
    where interaction_type = 'satisfaction_rating'

),

grains as (

    select unnest(array['day', 'week', 'month']) as grain

),

periods as (

    select
        grains.grain,
        {{ kpi_period('grains.grain', 'ratings.rated_at') }} as period_start,
        ratings.channel,
        ratings.is_good

    from ratings
    cross join grains

),

final as (

    select
        grain,
        period_start,
        channel,
        count(*) as ratings,
        count(*) filter (where is_good) as good_ratings,
        count(*) filter (where not is_good) as bad_ratings,
        round(cast(count(*) filter (where is_good) as numeric) / count(*), 4) as csat

    from periods
    group by grain, period_start, channel

)

select * from final
