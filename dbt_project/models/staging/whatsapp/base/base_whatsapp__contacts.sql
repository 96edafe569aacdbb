-- One sighting of a contact per message: a redelivered notification repeats its
-- contacts entry.
with

source as (

    select * from {{ source('whatsapp', 'contacts') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by message_id, wa_id order by seq, event_id
        ) as delivery_number
    from source

)

select * from ranked
where delivery_number = 1
