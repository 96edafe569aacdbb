{{ config(
    materialized='incremental',
    unique_key='shopify_order_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook=["{{ staging_delete_gone(source('shopify', 'orders'), 'id', 'shopify_order_id') }}"],
) }}

with

source as (

    select * from {{ source('shopify', 'orders') }}
    {{ staging_loaded_since() }}

),

delivery as (

    -- How each order reaches its buyer, from its fulfillment orders: picked up in a
    -- shop (PICK_UP, with the shop as assigned location) or shipped, etc.
    select
        source.id as shopify_order_id,
        lower(min(fulfillment_order.value -> 'delivery_method' ->> 'method_type'))
            as delivery_method,
        min(
            case
                when fulfillment_order.value -> 'delivery_method' ->> 'method_type' = 'PICK_UP'
                    then fulfillment_order.value -> 'assigned_location' -> 'location' ->> 'id'
            end
        ) as pickup_location_gid

    from source
    cross join
        lateral jsonb_array_elements(
            case
                when jsonb_typeof(to_jsonb(source.fulfillment_orders)) = 'array'
                    then to_jsonb(source.fulfillment_orders)
                else cast('[]' as jsonb)
            end
        ) as fulfillment_order (value)
    group by source.id

),

renamed as (

    select

        ----------  ids
        source.id as shopify_order_id,
        source.admin_graphql_api_id,
        cast(substring(source.customer ->> 'id' from '/([0-9]+)$') as bigint)
            as shopify_customer_id,
        source.name as order_name,
        -- GraphQL's number counts from 1; the order number customers see (and the REST
        -- API's order_number) counts from 1001.
        source.number + 1000 as order_number,

        ----------  contact
        source.email,
        {{ normalize_email(
            "coalesce(nullif(trim(source.email), ''), "
            ~ "source.customer -> 'default_email_address' ->> 'email_address')"
        ) }} as email_normalized,
        nullif(trim(source.phone), '') as phone,

        ----------  status
        lower(source.display_financial_status) as financial_status,
        lower(source.display_fulfillment_status) as fulfillment_status,
        source.cancelled_at is not null as is_cancelled,
        lower(source.cancel_reason) as cancel_reason,
        source.closed_at is not null as is_closed,

        ----------  channel
        source.source_name,
        source.channel_information -> 'channel_definition' ->> 'handle' as channel_handle,
        source.channel_information -> 'channel_definition' ->> 'channel_name' as channel_name,
        cast(
            substring(source.retail_location ->> 'id' from '/([0-9]+)$') as bigint
        ) as retail_location_id,
        source.retail_location ->> 'name' as retail_location_name,
        delivery.delivery_method,
        cast(
            substring(delivery.pickup_location_gid from '/([0-9]+)$') as bigint
        ) as pickup_location_id,

        ----------  amounts (shop currency)
        source.currency_code as currency,
        {{ to_numeric("source.subtotal_price_set -> 'shop_money' ->> 'amount'") }}
            as subtotal_price,
        {{ to_numeric("source.total_discounts_set -> 'shop_money' ->> 'amount'") }}
            as total_discounts,
        {{ to_numeric("source.total_tax_set -> 'shop_money' ->> 'amount'") }} as total_tax,
        {{ to_numeric("source.total_shipping_price_set -> 'shop_money' ->> 'amount'") }}
            as total_shipping,
        {{ to_numeric("source.total_price_set -> 'shop_money' ->> 'amount'") }} as total_price,
        {{ to_numeric("source.total_refunded_set -> 'shop_money' ->> 'amount'") }}
            as total_refunded,
        {{ to_numeric("source.current_total_price_set -> 'shop_money' ->> 'amount'") }}
            as current_total_price,
        {{ json_array_length('source.line_items') }} as line_item_count,
        {{ json_array_length('source.refunds') }} as refund_count,
        {{ json_array_length('source.returns') }} as return_count,

        ----------  timestamps
        cast(source.created_at as timestamptz) as created_at,
        cast(source.updated_at as timestamptz) as updated_at,
        cast(source.processed_at as timestamptz) as processed_at,
        cast(source.cancelled_at as timestamptz) as cancelled_at,
        cast(source.closed_at as timestamptz) as closed_at,
        source._sdc_batched_at as _loaded_at

    from source
    left join delivery
        on source.id = delivery.shopify_order_id

)

select * from renamed
