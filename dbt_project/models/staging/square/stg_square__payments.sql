with

source as (

    select * from {{ source('square', 'payments') }}

),

renamed as (

    select

        ----------  ids
        id as square_payment_id,
        order_id as square_order_id,
        location_id as square_location_id,
        customer_id as square_customer_id,
        reference_id,

        ----------  payment
        status as payment_status,
        source_type,
        card_details -> 'card' ->> 'card_brand' as card_brand,
        card_details -> 'card' ->> 'last_4' as card_last_4,
        -- the same card gives the same fingerprint: a clue to who paid anonymously
        card_details -> 'card' ->> 'fingerprint' as card_fingerprint,
        card_details ->> 'entry_method' as card_entry_method,

        ----------  amounts (reais)
        total_money ->> 'currency' as currency,
        round({{ to_numeric("amount_money ->> 'amount'") }} / 100, 2) as amount,
        round({{ to_numeric("total_money ->> 'amount'") }} / 100, 2) as total_amount,
        round(
            coalesce({{ to_numeric("refunded_money ->> 'amount'") }}, 0) / 100, 2
        ) as refunded_amount,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from renamed
