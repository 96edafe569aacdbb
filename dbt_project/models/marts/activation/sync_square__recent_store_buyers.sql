{#
    Square customer group of recent in-store buyers: the Square customer profiles with a
    completed sale at a Square till (not a return) in the `recent_store_buyers_window_days`
    (default 90) days up to `as_of`, whose owner (the resolved customer) accepts email
    marketing. One row per profile, keyed by its Square id; the owner's customer_id lets
    the sync engine check consent; the profile's latest sale in the window goes to a
    custom attribute, as UTC ISO-8601 text. Read by `omnicanal sync` through the
    square__recent_store_buyers exposure, which puts each profile in the group and takes
    it out when it leaves.
#}

{%- set window_days = var('recent_store_buyers_window_days', 90) | string | trim %}
{%- if not window_days.isdigit() or window_days | int < 1 %}
    {{ exceptions.raise_compiler_error(
        "var recent_store_buyers_window_days must be a whole number of days (1 or more), got '"
        ~ window_days ~ "'"
    ) }}
{%- endif %}

with

square_orders as (

    select * from {{ ref('stg_square__orders') }}

),

record_customers as (

    select * from {{ ref('int_identity__record_customers') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

recent_profiles as (

    select
        square_customer_id,
        max(created_at) as last_sale_at

    from square_orders
    where
        order_state = 'COMPLETED'
        and not has_returns
        and square_customer_id is not null
        and created_at <= {{ as_of_timestamp() }}
        and created_at >= {{ as_of_timestamp() }} - interval '{{ window_days }} days'
    group by square_customer_id

),

final as (

    select
        recent_profiles.square_customer_id,
        record_customers.customer_id,
        to_char(
            recent_profiles.last_sale_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
        ) as last_sale_at_utc

    from recent_profiles
    -- a deleted profile is no identity record: it cannot join a group either
    inner join record_customers
        on 'square:' || recent_profiles.square_customer_id = record_customers.record_key
    inner join customers
        on record_customers.customer_id = customers.customer_id
    where customers.accepts_email_marketing

)

select * from final
