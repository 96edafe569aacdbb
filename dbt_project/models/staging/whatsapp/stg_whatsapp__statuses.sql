with

statuses as (

    select * from {{ ref('base_whatsapp__statuses') }}

),

renamed as (

    select

        ----------  ids
        event_id as whatsapp_status_id,
        id as whatsapp_message_id,
        phone_number_id as whatsapp_phone_number_id,
        -- as WhatsApp reports it: often without the ninth digit
        recipient_id as wa_id,

        ----------  status
        status,
        to_timestamp(cast(timestamp as bigint)) as status_at,

        ----------  conversation and pricing (per-message pricing since July 2025)
        conversation ->> 'id' as conversation_id,
        conversation -> 'origin' ->> 'type' as conversation_origin,
        to_timestamp(
            cast(conversation ->> 'expiration_timestamp' as bigint)
        ) as conversation_expires_at,
        cast(pricing ->> 'billable' as boolean) as is_billable,
        pricing ->> 'pricing_model' as pricing_model,
        pricing ->> 'category' as pricing_category,
        pricing ->> 'type' as pricing_type,

        ----------  failure
        cast(errors -> 0 ->> 'code' as integer) as error_code,
        errors -> 0 ->> 'title' as error_title,

        ----------  delivery
        seq as receiver_seq,
        received_at,
        _sdc_batched_at as _loaded_at

    from statuses

)

select * from renamed
