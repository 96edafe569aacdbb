{#
    One row per return of a Shopify order, unnested from the order's returns.
#}

{{ config(
    materialized='incremental',
    unique_key='shopify_order_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    pre_hook=["{{ staging_delete_reloaded(source('shopify', 'orders'), 'id', 'shopify_order_id') }}"],
    post_hook=["{{ staging_delete_gone(source('shopify', 'orders'), 'id', 'shopify_order_id') }}"],
) }}

with

orders as (

    select * from {{ source('shopify', 'orders') }}
    {{ staging_loaded_since() }}

),

returns as (

    select
        orders.id as shopify_order_id,
        orders._sdc_batched_at as _loaded_at,
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

renamed as (

    select
        cast(substring(order_return ->> 'id' from '/([0-9]+)$') as bigint)
            as shopify_return_id,
        shopify_order_id,
        order_return ->> 'name' as return_name,
        lower(order_return ->> 'status') as return_status,
        cast(order_return ->> 'total_quantity' as integer) as total_quantity,
        cast(order_return ->> 'created_at' as timestamptz) as created_at,
        cast(order_return ->> 'closed_at' as timestamptz) as closed_at,
        _loaded_at

    from returns

)

select * from renamed
