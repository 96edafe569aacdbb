{#
    Meta Ads custom audience of lapsed customers, for retargeting: people who bought (an
    order not cancelled, on any platform, up to `as_of`) but nothing in the last var
    segment_lapsed_after_days (180) days before `as_of` (segment_lapsed_customers' rule,
    read from fct_orders so the sync does not wait on the interaction marts), with the
    contact fields Meta matches on: email, phone, first and last name, city, state,
    postcode and country.
    One row per customer, keyed by customer_id (the engine also checks the person's
    `ads` consent with it); someone with neither email nor phone cannot be matched and
    is left out. The postcode is the one of the record the golden address (city, state)
    came from; the country is var meta_ads_country (BR). Values go as the golden record
    has them: the destination normalises and hashes them by Meta's rules. Read by
    `omnicanal sync` through the meta_ads__lapsed_customers exposure.
#}

{%- set lapsed_days = var('segment_lapsed_after_days', 180) | string | trim %}
{%- if not lapsed_days.isdigit() or lapsed_days | int < 1 %}
    {{ exceptions.raise_compiler_error(
        "var segment_lapsed_after_days must be a whole number of days (1 or more), got '"
        ~ lapsed_days ~ "'"
    ) }}
{%- endif %}
{%- set country = var('meta_ads_country', 'BR') | string | trim | upper %}
{%- if country | length != 2 or not country.isalpha() %}
    {{ exceptions.raise_compiler_error(
        "var meta_ads_country must be a two-letter ISO country code, got '" ~ country ~ "'"
    ) }}
{%- endif %}

with

orders as (

    select * from {{ ref('fct_orders') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

records as (

    select * from {{ ref('int_identity__records') }}

),

record_customers as (

    select * from {{ ref('int_identity__record_customers') }}

),

customer_records as (

    select
        record_customers.customer_id,
        records.postcode,
        records.city,
        records.state,
        records.updated_at,
        records.record_key

    from records
    inner join record_customers
        on records.record_key = record_customers.record_key
    where records.postcode is not null

),

postcodes as (

    -- The newest postcode among the records in the golden city and state. Joined on
    -- customer_id alone, the address picked by the aggregate's filter: as a join on
    -- city and state too, the planner (taking them for independent) expects a few rows
    -- and loops over every lapsed customer for each, minutes at 100k people.
    select
        customer_records.customer_id,
        (array_agg(
            customer_records.postcode
            order by customer_records.updated_at desc nulls last, customer_records.record_key asc
        ) filter (
            where
            customer_records.city = customers.city
            and customer_records.state = customers.state
        ))[1] as postcode

    from customer_records
    inner join customers
        on customer_records.customer_id = customers.customer_id
    group by customer_records.customer_id

),

purchases as (

    select
        customer_id,
        max(ordered_at) as last_order_at

    from orders
    where
        not is_cancelled
        and customer_id is not null
        and ordered_at <= {{ as_of_timestamp() }}
    group by customer_id

),

lapsed as (

    select
        customers.customer_id,
        customers.email,
        customers.phone,
        customers.first_name,
        customers.last_name,
        customers.city,
        customers.state,
        purchases.last_order_at

    from customers
    inner join purchases
        on customers.customer_id = purchases.customer_id
    where purchases.last_order_at < {{ as_of_timestamp() }} - interval '{{ lapsed_days }} days'

),

final as (

    select
        lapsed.customer_id,
        lapsed.email,
        lapsed.phone,
        lapsed.first_name,
        lapsed.last_name,
        lapsed.city,
        lapsed.state,
        postcodes.postcode,
        '{{ country }}' as country,
        lapsed.last_order_at

    from lapsed
    left join postcodes
        on lapsed.customer_id = postcodes.customer_id
    where
        lapsed.email is not null
        or lapsed.phone is not null

)

select * from final
