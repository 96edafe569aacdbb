{#
    WhatsApp campaign "carrinho abandonado": one template message per abandoned online
    checkout (Shopify) of a known customer who has not ordered on the online store since
    (its POS included), and whom WhatsApp can reach (a phone in the golden record). The
    key is the customer and the checkout, so each checkout gets its message once (the
    sync's message mode) and a later checkout gets one of its own. The template's
    parameters are the first name, the cart's value written as Brazilians write money
    (1.189,90) and the link that restores the cart. Consent is the sync engine's: only
    people with a WhatsApp opt-in (customer_consent) are sent. Read by `omnicanal sync`
    through the whatsapp__abandoned_checkout exposure.

    var abandoned_checkout_window_days: only checkouts of the last N days before as_of
    (default: every checkout still abandoned).
#}

{%- set window_days = var('abandoned_checkout_window_days', none) %}
{%- if window_days is not none and not (window_days | string | trim).isdigit() %}
    {{ exceptions.raise_compiler_error(
        "var abandoned_checkout_window_days must be a whole number of days, got '"
        ~ window_days ~ "'"
    ) }}
{%- endif %}
{%- if window_days is none %}
    {%- set window_start = "cast('-infinity' as timestamptz)" %}
{%- else %}
    {%- set window_start = as_of_timestamp() ~ " - interval '"
        ~ (window_days | string | trim) ~ " days'" %}
{%- endif %}

with

checkouts as (

    select * from {{ ref('stg_shopify__abandoned_checkouts') }}

),

record_customers as (

    select * from {{ ref('int_identity__record_customers') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

abandoned as (

    select
        record_customers.customer_id,
        checkouts.shopify_checkout_id,
        checkouts.abandoned_checkout_url,
        checkouts.total_price,
        checkouts.currency,
        checkouts.created_at

    from checkouts
    inner join record_customers
        on 'shopify:' || checkouts.shopify_customer_id = record_customers.record_key
    where
        not checkouts.is_recovered
        and checkouts.abandoned_checkout_url is not null
        and checkouts.created_at between {{ window_start }} and {{ as_of_timestamp() }}

),

ordered_since as (

    select distinct abandoned.shopify_checkout_id

    from abandoned
    inner join orders
        on abandoned.customer_id = orders.customer_id
    where
        orders.shopify_order_id is not null
        and not orders.is_cancelled
        and orders.ordered_at >= abandoned.created_at
        and orders.ordered_at <= {{ as_of_timestamp() }}

),

final as (

    select
        abandoned.customer_id || ':' || abandoned.shopify_checkout_id as message_key,
        abandoned.customer_id,
        abandoned.shopify_checkout_id,
        customers.phone as whatsapp_number,
        -- a template parameter cannot be empty: a customer without a name is 'cliente'
        coalesce(customers.first_name, 'cliente') as first_name,
        -- 1189.9 -> '1.189,90'
        translate(to_char(abandoned.total_price, 'FM999,999,990.00'), ',.', '.,') as cart_total,
        abandoned.currency,
        abandoned.abandoned_checkout_url as checkout_url,
        abandoned.created_at as abandoned_at

    from abandoned
    inner join customers
        on abandoned.customer_id = customers.customer_id
    left join ordered_since
        on abandoned.shopify_checkout_id = ordered_since.shopify_checkout_id
    where
        ordered_since.shopify_checkout_id is null
        and customers.phone is not null

)

select * from final
