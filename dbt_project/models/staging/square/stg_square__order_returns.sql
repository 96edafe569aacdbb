with

orders as (

    select * from {{ source('square', 'orders') }}

),

order_returns as (

    select
        orders.id as square_order_id,
        orders.location_id as square_location_id,
        orders.customer_id as square_customer_id,
        orders.reference_id,
        orders.created_at,
        order_return.value as order_return

    from orders
    cross join lateral jsonb_array_elements(
        case
            when jsonb_typeof(to_jsonb(orders.returns)) = 'array'
                then to_jsonb(orders.returns)
            else cast('[]' as jsonb)
        end
    ) as order_return (value)

),

return_lines as (

    select
        order_returns.*,
        return_line.value as return_line

    from order_returns
    cross join lateral jsonb_array_elements(
        coalesce(order_returns.order_return -> 'return_line_items', cast('[]' as jsonb))
    ) as return_line (value)

),

renamed as (

    select

        ----------  ids
        square_order_id || ':' || (return_line ->> 'uid') as order_return_line_id,
        square_order_id,
        order_return ->> 'uid' as return_uid,
        return_line ->> 'uid' as return_line_uid,
        square_location_id,
        square_customer_id,
        reference_id,

        ----------  what was returned
        -- an unlinked return takes back something this seller's Square never sold
        -- (e.g. an online order): it has no source order
        order_return ->> 'source_order_id' as source_square_order_id,
        order_return ->> 'source_order_id' is null as is_unlinked,
        return_line ->> 'source_line_item_uid' as source_line_item_uid,
        return_line ->> 'catalog_object_id' as square_catalog_object_id,
        return_line ->> 'name' as item_name,
        {{ to_numeric("return_line ->> 'quantity'") }} as quantity,

        ----------  amounts (reais)
        return_line -> 'total_money' ->> 'currency' as currency,
        round(
            {{ to_numeric("return_line -> 'total_money' ->> 'amount'") }} / 100, 2
        ) as returned_amount,
        round(
            {{ to_numeric("return_line -> 'total_tax_money' ->> 'amount'") }} / 100, 2
        ) as returned_tax_amount,

        ----------  timestamps
        cast(created_at as timestamptz) as returned_at

    from return_lines

)

select * from renamed
