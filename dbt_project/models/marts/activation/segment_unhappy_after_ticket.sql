{#
    Unhappy after a ticket: people whose latest Zendesk satisfaction rating is bad and
    was given in the last var segment_unhappy_window_days (90) before `as_of`. One row
    per customer, with that ticket.
#}

{%- set window_days = var('segment_unhappy_window_days', 90) | int %}

with

latest_ratings as (

    select distinct on (customer_id)
        customer_id,
        thread_id as zendesk_ticket_id,
        via as ticket_channel,
        detail as score,
        occurred_at as rated_at

    from {{ ref('fct_interactions') }}
    where
        interaction_type = 'satisfaction_rating'
        and customer_id is not null
        and occurred_at <= {{ as_of_timestamp() }}
    order by customer_id asc, occurred_at desc, interaction_key desc

),

customers as (

    select * from {{ ref('dim_customers') }}

),

final as (

    select
        latest_ratings.customer_id,
        customers.email,
        customers.phone,
        customers.first_name,
        customers.last_name,
        latest_ratings.zendesk_ticket_id,
        latest_ratings.ticket_channel,
        latest_ratings.score,
        latest_ratings.rated_at

    from latest_ratings
    inner join customers
        on latest_ratings.customer_id = customers.customer_id
    where
        latest_ratings.score = 'bad'
        and latest_ratings.rated_at >= {{ as_of_timestamp() }} - interval '{{ window_days }} days'

)

select * from final
