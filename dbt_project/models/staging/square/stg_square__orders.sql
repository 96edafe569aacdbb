{{ config(
    materialized='incremental',
    unique_key='square_order_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook=["{{ staging_delete_gone(source('square', 'orders'), 'id', 'square_order_id') }}"],
) }}

with

source as (

    select * from {{ source('square', 'orders') }}
    {{ staging_loaded_since() }}

),

renamed as (

    select

        ----------  ids
        id as square_order_id,
        location_id as square_location_id,
        customer_id as square_customer_id,
        reference_id,

        ----------  status
        state as order_state,
        source ->> 'name' as source_name,
        coalesce({{ json_array_length('returns') }}, 0) > 0 as has_returns,
        coalesce({{ json_array_length('line_items') }}, 0) as line_item_count,
        to_jsonb(fulfillments) -> 0 ->> 'type' as fulfillment_type,
        to_jsonb(fulfillments) -> 0 ->> 'state' as fulfillment_state,

        ----------  amounts: Square sends integer centavos; reais here
        total_money ->> 'currency' as currency,
        round({{ to_numeric("total_money ->> 'amount'") }} / 100, 2) as total_amount,
        round({{ to_numeric("total_tax_money ->> 'amount'") }} / 100, 2) as total_tax_amount,
        round(
            {{ to_numeric("total_discount_money ->> 'amount'") }} / 100, 2
        ) as total_discount_amount,
        round({{ to_numeric("total_tip_money ->> 'amount'") }} / 100, 2) as total_tip_amount,
        round(
            coalesce({{ to_numeric("return_amounts -> 'total_money' ->> 'amount'") }}, 0) / 100, 2
        ) as returned_amount,
        round(
            {{ to_numeric("net_amounts -> 'total_money' ->> 'amount'") }} / 100, 2
        ) as net_total_amount,

        ----------  timestamps
        version as order_version,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        cast(closed_at as timestamptz) as closed_at,
        _sdc_batched_at as _loaded_at

    from source

)

select * from renamed
