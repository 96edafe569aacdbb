with

source as (

    select * from {{ source('shopify', 'orders') }}

),

renamed as (

    select

        ----------  ids
        id as shopify_order_id,
        cast(customer ->> 'id' as bigint) as shopify_customer_id,
        name as order_name,
        order_number,

        ----------  contact
        email,
        {{ normalize_email("coalesce(nullif(trim(email), ''), customer ->> 'email')") }}
            as email_normalized,
        nullif(trim(phone), '') as phone,

        ----------  status
        financial_status,
        fulfillment_status,
        cancelled_at is not null as is_cancelled,
        source_name,

        ----------  amounts
        currency,
        {{ to_numeric('subtotal_price') }} as subtotal_price,
        {{ to_numeric('total_discounts') }} as total_discounts,
        {{ to_numeric('total_tax') }} as total_tax,
        {{ to_numeric('total_price') }} as total_price,
        {{ json_array_length('line_items') }} as line_item_count,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        cast(processed_at as timestamptz) as processed_at,
        cast(cancelled_at as timestamptz) as cancelled_at

    from source

)

select * from renamed
