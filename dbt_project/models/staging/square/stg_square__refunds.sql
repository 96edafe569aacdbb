with

source as (

    select * from {{ source('square', 'refunds') }}

),

renamed as (

    select

        ----------  ids
        id as square_refund_id,
        payment_id as square_payment_id,
        order_id as square_order_id,
        location_id as square_location_id,

        ----------  refund
        status as refund_status,
        -- money given back without a Square payment (e.g. an online order returned)
        coalesce(unlinked, payment_id is null) as is_unlinked,
        destination_type,
        reason,

        ----------  amounts (reais)
        amount_money ->> 'currency' as currency,
        round({{ to_numeric("amount_money ->> 'amount'") }} / 100, 2) as amount,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at

    from source

)

select * from renamed
