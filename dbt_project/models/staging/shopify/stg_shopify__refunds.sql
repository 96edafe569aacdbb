{#
    One row per refund of a Shopify order, unnested from the order's refunds.
#}

with

orders as (

    select * from {{ source('shopify', 'orders') }}

),

refunds as (

    select
        orders.id as shopify_order_id,
        refund.value as refund

    from orders
    cross join lateral jsonb_array_elements(
        case
            when jsonb_typeof(to_jsonb(orders.refunds)) = 'array'
                then to_jsonb(orders.refunds)
            else cast('[]' as jsonb)
        end
    ) as refund (value)

),

renamed as (

    select
        cast(substring(refund ->> 'id' from '/([0-9]+)$') as bigint) as shopify_refund_id,
        shopify_order_id,
        refund ->> 'note' as note,
        refund -> 'total_refunded_set' -> 'shop_money' ->> 'currency_code' as currency,
        {{ to_numeric("refund -> 'total_refunded_set' -> 'shop_money' ->> 'amount'") }}
            as amount_refunded,
        cast(refund ->> 'created_at' as timestamptz) as created_at,
        cast(refund ->> 'updated_at' as timestamptz) as updated_at

    from refunds

)

select * from renamed
