{#
    Online (Shopify) orders taken back in a shop: one row per Square order with an
    unlinked return whose reference id names an online order. Clerks type the order
    name their own way ("#1234", "1234", "PEDIDO #1234", "Shopify #1234"); its number
    is read back as Shopify's order name, "#1234". The Square customer who brought it
    back is the online buyer: identity resolution links the two through it.
#}

with

orders as (

    select * from {{ ref('stg_square__orders') }}

),

unlinked_returns as (

    select
        square_order_id,
        bool_or(is_unlinked) as has_unlinked_return,
        sum(returned_amount) as returned_amount

    from {{ ref('stg_square__order_returns') }}
    group by square_order_id

),

online_returns as (

    select

        ----------  ids
        orders.square_order_id,
        orders.square_customer_id,
        orders.square_location_id,
        orders.reference_id,
        '#' || substring(orders.reference_id from '([0-9]{4,})') as shopify_order_name,

        ----------  what happened
        orders.line_item_count > 0 as is_exchange,
        unlinked_returns.returned_amount,

        ----------  timestamps
        orders.created_at,
        orders.updated_at

    from orders
    inner join unlinked_returns
        on orders.square_order_id = unlinked_returns.square_order_id
    where
        unlinked_returns.has_unlinked_return
        and orders.reference_id ~ '[0-9]{4,}'

)

select * from online_returns
