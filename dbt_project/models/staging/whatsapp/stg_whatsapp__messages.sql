-- Every message of the retailer's WhatsApp number, both ways. Inbound messages come
-- whole by webhook; the business's own messages are known only by their statuses, so
-- an outbound row is the message id, its recipient and when it was sent, delivered,
-- read or failed.
-- the deletions log: the rows held whose source row is gone (macros/staging_incremental.sql)
{{ config(pre_hook="{{ staging_log_gone('whatsapp_message_id', [
        (ref('base_whatsapp__messages'), 'id'),
        (ref('stg_whatsapp__statuses'), 'whatsapp_message_id'),
    ]) }}") }}

with

inbound as (

    select * from {{ ref('base_whatsapp__messages') }}

),

statuses as (

    select * from {{ ref('stg_whatsapp__statuses') }}

),

inbound_messages as (

    select
        id as whatsapp_message_id,
        'inbound' as direction,
        phone_number_id as whatsapp_phone_number_id,
        "from" as wa_id,
        profile_name,
        type as message_type,
        coalesce(
            text ->> 'body',
            image ->> 'caption',
            video ->> 'caption',
            document ->> 'caption',
            interactive -> 'button_reply' ->> 'title',
            interactive -> 'list_reply' ->> 'title',
            button ->> 'text'
        ) as body,
        context ->> 'id' as reply_to_message_id,
        to_timestamp(cast(timestamp as bigint)) as sent_at,
        cast(null as timestamptz) as delivered_at,
        cast(null as timestamptz) as read_at,
        cast(null as timestamptz) as failed_at,
        cast(null as integer) as error_code,
        received_at,
        _sdc_batched_at as _loaded_at
    from inbound

),

outbound_messages as (

    select
        whatsapp_message_id,
        'outbound' as direction,
        min(whatsapp_phone_number_id) as whatsapp_phone_number_id,
        min(wa_id) as wa_id,
        cast(null as text) as profile_name,
        cast(null as text) as message_type,
        cast(null as text) as body,
        cast(null as text) as reply_to_message_id,
        -- "sent" may be missing (a message read in the chat screen skips "delivered",
        -- and a lost webhook skips anything): the earliest status stands in for it
        coalesce(
            min(status_at) filter (where status = 'sent'), min(status_at)
        ) as sent_at,
        min(status_at) filter (where status = 'delivered') as delivered_at,
        min(status_at) filter (where status = 'read') as read_at,
        min(status_at) filter (where status = 'failed') as failed_at,
        min(error_code) as error_code,
        min(received_at) as received_at,
        -- the newest status's load: a status arriving changes the row
        max(_loaded_at) as _loaded_at
    from statuses
    group by whatsapp_message_id

)

select * from inbound_messages
union all
select * from outbound_messages
