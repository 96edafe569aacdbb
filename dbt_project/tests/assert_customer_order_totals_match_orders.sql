-- dim_customers' purchase figures add up to the non-cancelled attributed orders.
-- Returns a row if the totals differ.

with

from_customers as (

    select
        sum(orders_count) as orders_count,
        sum(lifetime_value) as lifetime_value
    from {{ ref('dim_customers') }}

),

from_orders as (

    select
        count(*) as orders_count,
        coalesce(sum(total_price), 0) as lifetime_value
    from {{ ref('fct_orders') }}
    where
        not is_cancelled
        and customer_id is not null

)

select
    from_customers.orders_count as customers_orders_count,
    from_orders.orders_count as orders_orders_count,
    from_customers.lifetime_value as customers_lifetime_value,
    from_orders.lifetime_value as orders_lifetime_value
from from_customers
cross join from_orders
where
    from_customers.orders_count <> from_orders.orders_count
    or from_customers.lifetime_value <> from_orders.lifetime_value
