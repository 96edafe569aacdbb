-- Identity resolution neither loses nor duplicates accounts: every Shopify customer
-- account appears in the shopify_customer_ids of exactly one dim_customers row.
-- Returns the accounts that break it.

with

assigned as (

    select unnest(shopify_customer_ids) as shopify_customer_id
    from {{ ref('dim_customers') }}

),

counts as (

    select
        shopify_accounts.shopify_customer_id,
        count(assigned.shopify_customer_id) as assignment_count

    from {{ ref('stg_shopify__customers') }} as shopify_accounts
    left join assigned
        on shopify_accounts.shopify_customer_id = assigned.shopify_customer_id
    group by shopify_accounts.shopify_customer_id

)

select * from counts
where assignment_count <> 1
