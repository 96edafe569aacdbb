-- One row per WhatsApp user who wrote to the retailer: the wa_id as WhatsApp reports it
-- (kept as sent: identity resolution reads it as a phone, ninth digit or not) and the
-- profile name they use now.
with

sightings as (

    select
        wa_id,
        profile_name,
        message_id,
        to_timestamp(cast(timestamp as bigint)) as seen_at,
        seq
    from {{ ref('base_whatsapp__contacts') }}
    where wa_id is not null

),

latest as (

    select distinct on (wa_id)
        wa_id,
        profile_name
    from sightings
    order by wa_id asc, seen_at desc, seq desc

),

summary as (

    select
        wa_id,
        min(seen_at) as first_seen_at,
        max(seen_at) as last_seen_at,
        count(distinct message_id) as message_count,
        count(distinct profile_name) as profile_name_count
    from sightings
    group by wa_id

)

select
    summary.wa_id,
    latest.profile_name,
    summary.profile_name_count,
    summary.message_count,
    summary.first_seen_at,
    summary.last_seen_at
from summary
inner join latest on summary.wa_id = latest.wa_id
