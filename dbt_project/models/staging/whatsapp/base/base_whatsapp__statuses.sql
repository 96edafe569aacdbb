-- One row per status of a message (sent, delivered, read, failed): a status delivered
-- twice, or reported twice by Meta with another timestamp, counts once, at its first
-- moment.
with

source as (

    select * from {{ source('whatsapp', 'statuses') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by id, status
            order by cast(timestamp as bigint), seq, event_id
        ) as delivery_number
    from source

)

select * from ranked
where delivery_number = 1
