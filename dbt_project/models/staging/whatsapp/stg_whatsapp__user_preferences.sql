with

source as (

    select * from {{ source('whatsapp', 'user_preferences') }}

),

renamed as (

    select

        ----------  ids
        event_id as whatsapp_user_preference_id,
        phone_number_id as whatsapp_phone_number_id,
        -- as WhatsApp reports it: often without the ninth digit
        wa_id,
        nullif(trim(profile_name), '') as profile_name,

        ----------  preference
        category as preference_category,
        -- stop: no more marketing messages from the business; resume: them again
        value as preference,
        detail as preference_detail,
        to_timestamp(cast(timestamp as bigint)) as preference_at,

        ----------  delivery
        seq as receiver_seq,
        received_at

    from source

)

select * from renamed
