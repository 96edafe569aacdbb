{#
    Online orders taken back in a shop (stg_square__online_order_returns), each checked
    against the online order its reference names before anything trusts the link.

    The reference is what a clerk typed; one wrong digit names another person's order,
    and the link would then merge two people in identity resolution and move a return to
    the wrong buyer in fct_order_returns. So the typed order name is kept as
    shopify_order_name only when the order it names fits the return (link_status
    'verified'):
    - the order exists in the online store ('no_such_order');
    - it was placed before the goods came back ('returned_before_ordered');
    - in the return's currency ('other_currency'), for at least what was returned: its
      total, or its lines at list price ('amount_exceeds_order');
    - and the goods returned are goods of that order: every returned item name matches
      a line of the order (product title or line name, compared as name keys), when
      the till recorded item names ('items_not_in_order').
    A rejected link keeps the typed name in typed_order_name with its reason, for the
    analyst who follows it up; it links nothing.

    A view, read by identity, fct_order_returns and four tests in every run: it looks at
    the orders the returns name and their lines only (the lines' name keys and sums are
    the costly part), not at every online order.
#}

{%- set platforms = commerce_platforms() %}

-- sqlfluff:indentation:template_blocks_indent:False
with

online_returns as (

    {%- if 'square' in platforms %}
    select * from {{ ref('stg_square__online_order_returns') }}
    {%- else %}
    -- no till in this project: no return taken back in a shop
    select
        cast(null as text) as square_order_id,
        cast(null as text) as square_customer_id,
        cast(null as text) as square_location_id,
        cast(null as text) as reference_id,
        cast(null as text) as shopify_order_name,
        cast(null as boolean) as is_exchange,
        cast(null as numeric) as returned_amount,
        cast(null as timestamptz) as created_at,
        cast(null as timestamptz) as updated_at
    where false
    {%- endif %}

),

returned_items as (

    {%- if 'square' in platforms %}
    select
        square_order_id,
        array_remove(
            array_agg(distinct {{ normalize_name_key('item_name') }}), null
        ) as item_keys,
        min(currency) as currency

    from {{ ref('stg_square__order_returns') }}
    where
        is_unlinked
        and square_order_id in (select online_returns.square_order_id from online_returns)
    group by square_order_id
    {%- else %}
    select
        cast(null as text) as square_order_id,
        cast(null as text []) as item_keys,
        cast(null as text) as currency
    where false
    {%- endif %}

),

-- an order name is unique in a shop; the latest order wins if a store renumbered
online_orders as (

    {%- if 'shopify' in platforms %}
    select distinct on (order_name)
        shopify_order_id,
        order_name,
        currency,
        total_price,
        created_at

    from {{ ref('stg_shopify__orders') }}
    where order_name in (select online_returns.shopify_order_name from online_returns)
    order by order_name asc, created_at desc
    {%- else %}
    -- no online store in this project: no order to check a reference against
    select
        cast(null as bigint) as shopify_order_id,
        cast(null as text) as order_name,
        cast(null as text) as currency,
        cast(null as numeric) as total_price,
        cast(null as timestamptz) as created_at
    where false
    {%- endif %}

),

order_items as (

    {%- if 'shopify' in platforms %}
    select
        shopify_order_id,
        array_agg(distinct {{ normalize_name_key('product_title') }})
        || array_agg(distinct {{ normalize_name_key('line_name') }}) as item_keys,
        -- the goods at their list price: a return may refund more than a discounted
        -- order's total, never more than what its lines were priced at
        sum(unit_price * quantity) as list_amount

    from {{ ref('stg_shopify__order_lines') }}
    where shopify_order_id in (select online_orders.shopify_order_id from online_orders)
    group by shopify_order_id
    {%- else %}
    select
        cast(null as bigint) as shopify_order_id,
        cast(null as text []) as item_keys,
        cast(null as numeric) as list_amount
    where false
    {%- endif %}

),

checked as (

    select
        online_returns.*,
        case
            when online_orders.shopify_order_id is null then 'no_such_order'
            when online_orders.created_at > online_returns.created_at
                then 'returned_before_ordered'
            when not coalesce(returned_items.currency = online_orders.currency, false)
                then 'other_currency'
            when
                online_returns.returned_amount
                > greatest(online_orders.total_price, order_items.list_amount) + 0.01
                then 'amount_exceeds_order'
            when
                cardinality(returned_items.item_keys) > 0
                and not returned_items.item_keys <@ coalesce(order_items.item_keys, '{}')
                then 'items_not_in_order'
            else 'verified'
        end as link_status

    from online_returns
    left join returned_items
        on online_returns.square_order_id = returned_items.square_order_id
    left join online_orders
        on online_returns.shopify_order_name = online_orders.order_name
    left join order_items
        on online_orders.shopify_order_id = order_items.shopify_order_id

),

final as (

    select
        square_order_id,
        square_customer_id,
        square_location_id,
        reference_id,
        shopify_order_name as typed_order_name,
        case when link_status = 'verified' then shopify_order_name end as shopify_order_name,
        link_status,
        is_exchange,
        returned_amount,
        created_at,
        updated_at

    from checked

)

select * from final
