-- Identity resolution neither loses nor duplicates accounts: every Shopify customer
-- account appears in the shopify_customer_ids of exactly one dim_customers row, and an
-- account Shopify deleted (kept in staging with is_deleted) in none.
-- Returns the accounts that break it.

with

assigned as (

    select unnest(shopify_customer_ids) as shopify_customer_id
    from {{ ref('dim_customers') }}

),

counts as (

    select
        shopify_accounts.shopify_customer_id,
        shopify_accounts.is_deleted,
        count(assigned.shopify_customer_id) as assignment_count

    from {{ ref('stg_shopify__customers') }} as shopify_accounts
    left join assigned
        on shopify_accounts.shopify_customer_id = assigned.shopify_customer_id
    group by shopify_accounts.shopify_customer_id, shopify_accounts.is_deleted

)

select * from counts
where assignment_count <> case when is_deleted then 0 else 1 end
