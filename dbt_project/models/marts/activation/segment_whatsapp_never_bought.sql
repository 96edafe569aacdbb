{#
    Asked on WhatsApp but never bought: people who wrote to the retailer's WhatsApp
    number (an inbound message) in the last var segment_whatsapp_window_days (180)
    before `as_of` and have no order (on any channel, not cancelled) up to `as_of`.
    One row per customer, with the WhatsApp number they wrote from (wa_id, the most
    recent if several) and when.
#}

{%- set window_days = var('segment_whatsapp_window_days', 180) | int %}

with

asked as (

    select
        customer_id,
        substr(
            (array_agg(record_key order by occurred_at desc, interaction_key desc))[1],
            length('whatsapp:') + 1
        ) as wa_id,
        count(*) as inbound_messages,
        min(occurred_at) as first_asked_at,
        max(occurred_at) as last_asked_at

    from {{ ref('fct_interactions') }}
    where
        channel = 'whatsapp'
        and direction = 'inbound'
        and customer_id is not null
        and occurred_at <= {{ as_of_timestamp() }}
    group by customer_id

),

metrics as (

    select * from {{ ref('customer_metrics') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

final as (

    select
        asked.customer_id,
        asked.wa_id,
        customers.phone,
        customers.email,
        customers.first_name,
        customers.last_name,
        asked.inbound_messages,
        asked.first_asked_at,
        asked.last_asked_at

    from asked
    inner join metrics
        on asked.customer_id = metrics.customer_id
    inner join customers
        on asked.customer_id = customers.customer_id
    where
        metrics.orders_count = 0
        and asked.last_asked_at >= {{ as_of_timestamp() }} - interval '{{ window_days }} days'

)

select * from final
