-- One row per WhatsApp user the retailer heard from: who wrote to it, or who stopped
-- or resumed its marketing messages (the user_preferences notification names them too,
-- and a stop from someone who never wrote must still reach their customer's consent).
-- The wa_id as WhatsApp reports it (kept as sent: identity resolution reads it as a
-- phone, ninth digit or not) and the profile name they use now.
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

    union all

    select
        wa_id,
        profile_name,
        cast(null as text) as message_id,
        preference_at as seen_at,
        receiver_seq as seq
    from {{ ref('stg_whatsapp__user_preferences') }}
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
