-- One row per inbound message: Meta may deliver a notification more than once, and a
-- redelivery that reached the warehouse under another event would repeat the message.
-- The first delivery (lowest seq) is kept.
with

source as (

    select * from {{ source('whatsapp', 'messages') }}

),

ranked as (

    select
        *,
        row_number() over (partition by id order by seq, event_id) as delivery_number
    from source

)

select * from ranked
where delivery_number = 1
