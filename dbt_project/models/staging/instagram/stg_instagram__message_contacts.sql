{#
    The emails and phones people typed in Direct messages ("meu email é ...", "me chama
    no whats (11) 98765-4321"), one row per message that carries one, tied to the
    sender's IGSID. Extracted as typed; identity resolution normalises them. The
    business's own messages are left out.
#}

with

messages as (

    select * from {{ ref('stg_instagram__messages') }}
    where not is_from_business and message_text is not null

),

extracted as (

    select
        message_id,
        instagram_user_id,
        created_at,
        substring(
            message_text from '[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}'
        ) as email,
        substring(
            message_text from '(?:\+?55[ ]?)?\(?[1-9][0-9]\)?[ ]?9?[0-9]{4}[- ]?[0-9]{4}'
        ) as phone
    from messages

)

select
    message_id,
    instagram_user_id,
    trim(email) as email,
    trim(phone) as phone,
    created_at
from extracted
where email is not null or phone is not null
