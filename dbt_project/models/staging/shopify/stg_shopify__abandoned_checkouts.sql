{{ config(
    materialized='incremental',
    unique_key='shopify_checkout_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook=["{{ staging_delete_gone(source('shopify', 'abandoned_checkouts'), 'id', 'shopify_checkout_id') }}"],
) }}

with

source as (

    select * from {{ source('shopify', 'abandoned_checkouts') }}
    {{ staging_loaded_since() }}

),

renamed as (

    select

        ----------  ids
        id as shopify_checkout_id,
        admin_graphql_api_id,
        cast(substring(customer ->> 'id' from '/([0-9]+)$') as bigint) as shopify_customer_id,
        {{ normalize_email("customer -> 'default_email_address' ->> 'email_address'") }}
            as email_normalized,
        name as checkout_name,
        abandoned_checkout_url,

        ----------  state
        completed_at is not null as is_recovered,
        {{ json_array_length('line_items') }} as line_item_count,

        ----------  amounts (shop currency)
        total_price_set -> 'shop_money' ->> 'currency_code' as currency,
        {{ to_numeric("subtotal_price_set -> 'shop_money' ->> 'amount'") }} as subtotal_price,
        {{ to_numeric("total_discount_set -> 'shop_money' ->> 'amount'") }} as total_discounts,
        {{ to_numeric("total_tax_set -> 'shop_money' ->> 'amount'") }} as total_tax,
        {{ to_numeric("total_price_set -> 'shop_money' ->> 'amount'") }} as total_price,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        cast(completed_at as timestamptz) as completed_at,
        _sdc_batched_at as _loaded_at

    from source

)

select * from renamed
