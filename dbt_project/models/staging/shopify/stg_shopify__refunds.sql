{#
    One row per refund of a Shopify order, unnested from the order's refunds, with the
    location its restocked items went back to (the refund's line items say where:
    a shop when they were brought back there, the warehouse a parcel returned to).
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

refunds as (

    select
        orders.id as shopify_order_id,
        orders._sdc_batched_at as _loaded_at,
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

refund_lines as (

    select
        refunds.refund ->> 'id' as refund_gid,
        refund_line.position,
        refund_line.value as refund_line

    from refunds
    cross join lateral jsonb_array_elements(
        case
            when jsonb_typeof(refunds.refund -> 'refund_line_items') = 'array'
                then refunds.refund -> 'refund_line_items'
            else cast('[]' as jsonb)
        end
    ) with ordinality as refund_line (value, position)

),

restocked_lines as (

    select
        refund_gid,
        position,
        cast(substring(refund_line -> 'location' ->> 'id' from '/([0-9]+)$') as bigint)
            as shopify_location_id,
        refund_line -> 'location' ->> 'name' as location_name,
        coalesce(cast(refund_line ->> 'quantity' as integer), 0) as quantity

    from refund_lines
    where
        refund_line ->> 'restocked' = 'true'
        and refund_line -> 'location' ->> 'id' is not null

),

restock_locations as (

    select
        refund_gid,
        shopify_location_id,
        min(location_name) as location_name,
        sum(quantity) as restocked_quantity,
        min(position) as first_position

    from restocked_lines
    group by refund_gid, shopify_location_id

),

-- lines restocked at several locations: the one that took back the most units, then
-- the one named first
refund_locations as (

    select distinct on (refund_gid)
        refund_gid,
        shopify_location_id,
        location_name,
        count(*) over (partition by refund_gid) as restock_location_count

    from restock_locations
    order by refund_gid asc, restocked_quantity desc, first_position asc

),

renamed as (

    select
        cast(substring(refunds.refund ->> 'id' from '/([0-9]+)$') as bigint)
            as shopify_refund_id,
        refunds.shopify_order_id,
        refunds.refund ->> 'note' as note,
        refunds.refund -> 'total_refunded_set' -> 'shop_money' ->> 'currency_code' as currency,
        {{ to_numeric("refunds.refund -> 'total_refunded_set' -> 'shop_money' ->> 'amount'") }}
            as amount_refunded,
        refund_locations.shopify_location_id,
        refund_locations.location_name,
        coalesce(refund_locations.restock_location_count, 0) as restock_location_count,
        cast(refunds.refund ->> 'created_at' as timestamptz) as created_at,
        cast(refunds.refund ->> 'updated_at' as timestamptz) as updated_at,
        refunds._loaded_at

    from refunds
    left join refund_locations
        on refunds.refund ->> 'id' = refund_locations.refund_gid

)

select * from renamed
