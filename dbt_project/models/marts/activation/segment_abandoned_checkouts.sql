{#
    Abandoned checkout without an order since: people whose latest checkout left
    unpaid (a Shopify abandoned checkout never completed) was in the last var
    segment_abandoned_checkout_days (30) before `as_of`, and who have ordered nothing
    (on any channel, not cancelled) since. One row per customer, with that checkout.
#}

-- sqlfluff:indentation:template_blocks_indent:False
{%- set window_days = var('segment_abandoned_checkout_days', 30) | int %}
{%- set platforms = commerce_platforms() %}

with

journey as (

    select * from {{ ref('customer_journey') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

latest_checkouts as (

    select distinct on (customer_id)
        customer_id,
        source_key as checkout_key,
        occurred_at as abandoned_at,
        amount as checkout_value

    from journey
    where
        event_source = 'abandoned_checkout'
        and occurred_at <= {{ as_of_timestamp() }}
    order by customer_id asc, occurred_at desc, source_key desc

),

orders_since as (

    select distinct latest_checkouts.customer_id

    from latest_checkouts
    inner join journey
        on
            latest_checkouts.customer_id = journey.customer_id
            and journey.event_source = 'order'
            and latest_checkouts.abandoned_at < journey.occurred_at
            and journey.occurred_at <= {{ as_of_timestamp() }}

),

{%- if 'shopify' in platforms %}

checkout_links as (

    select
        'shopify:' || shopify_checkout_id as checkout_key,
        abandoned_checkout_url

    from {{ ref('stg_shopify__abandoned_checkouts') }}

),
{%- endif %}

final as (

    select
        latest_checkouts.customer_id,
        customers.email,
        customers.phone,
        customers.first_name,
        customers.last_name,
        latest_checkouts.checkout_key,
        latest_checkouts.abandoned_at,
        latest_checkouts.checkout_value,
        {%- if 'shopify' in platforms %}
        checkout_links.abandoned_checkout_url
        {%- else %}
        cast(null as text) as abandoned_checkout_url
        {%- endif %}

    from latest_checkouts
    inner join customers
        on latest_checkouts.customer_id = customers.customer_id
    left join orders_since
        on latest_checkouts.customer_id = orders_since.customer_id
    {%- if 'shopify' in platforms %}
    left join checkout_links
        on latest_checkouts.checkout_key = checkout_links.checkout_key
    {%- endif %}
    where
        orders_since.customer_id is null
        and latest_checkouts.abandoned_at
        >= {{ as_of_timestamp() }} - interval '{{ window_days }} days'

)

select * from final
