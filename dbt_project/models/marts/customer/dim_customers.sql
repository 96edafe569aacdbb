{#
    One row per person with the golden record of their Shopify accounts and their
    purchase history. Survivorship: name and address come from the most recently
    updated account that has them (as a unit, never mixed across accounts); phone and
    CPF from the most recently updated account that has each. Email marketing consent is
    conservative: an opt-out on any account wins.
#}

with

accounts as (

    select * from {{ ref('int_identity__shopify_accounts') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

accounts_ranked as (

    select
        *,
        row_number() over (
            partition by customer_id
            order by
                first_name is null and last_name is null,
                updated_at desc nulls last,
                shopify_customer_id desc
        ) as name_rank,
        row_number() over (
            partition by customer_id
            order by
                city is null and state is null,
                updated_at desc nulls last,
                shopify_customer_id desc
        ) as address_rank

    from accounts

),

names as (

    select
        customer_id,
        first_name,
        last_name

    from accounts_ranked
    where name_rank = 1

),

addresses as (

    select
        customer_id,
        city,
        state

    from accounts_ranked
    where address_rank = 1

),

account_rollup as (

    select
        customer_id,
        -- one person is one normalised email, so every account agrees on it
        min(email_normalized) as email,
        (
            array_agg(phone order by updated_at desc nulls last, shopify_customer_id desc)
            filter (where phone is not null)
        )[1] as phone,
        (
            array_agg(cpf order by updated_at desc nulls last, shopify_customer_id desc)
            filter (where cpf is not null)
        )[1] as cpf,
        -- bool_and skips accounts with no known consent state; if none has one, false
        coalesce(bool_and(accepts_email_marketing), false) as accepts_email_marketing,
        array_agg(shopify_customer_id order by shopify_customer_id) as shopify_customer_ids,
        min(created_at) as created_at

    from accounts
    group by customer_id

),

purchases as (

    select
        customer_id,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        count(*) as orders_count,
        sum(total_price) as lifetime_value

    from orders
    where
        not is_cancelled
        and customer_id is not null
    group by customer_id

),

final as (

    select
        account_rollup.customer_id,
        account_rollup.email,
        names.first_name,
        names.last_name,
        account_rollup.phone,
        account_rollup.cpf,
        addresses.city,
        addresses.state,
        account_rollup.accepts_email_marketing,
        account_rollup.shopify_customer_ids,
        purchases.first_order_at,
        purchases.last_order_at,
        coalesce(purchases.orders_count, 0) as orders_count,
        coalesce(purchases.lifetime_value, 0) as lifetime_value,
        account_rollup.created_at

    from account_rollup
    inner join names
        on account_rollup.customer_id = names.customer_id
    inner join addresses
        on account_rollup.customer_id = addresses.customer_id
    left join purchases
        on account_rollup.customer_id = purchases.customer_id

)

select * from final
