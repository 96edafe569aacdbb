{#
    One row per Instagram user (IGSID) who commented on the account's posts or wrote to it
    in Direct, with the handle they used most recently. The business account itself is
    left out: its comments and messages describe nobody.
#}

with

comments as (

    select
        author_id as instagram_user_id,
        author_username as username,
        commented_at as seen_at
    from {{ ref('stg_instagram__comments') }}
    where not is_from_business and author_id is not null

),

messages as (

    select
        sender_id as instagram_user_id,
        sender_username as username,
        created_at as seen_at
    from {{ ref('stg_instagram__messages') }}
    where not is_from_business and sender_id is not null

),

conversations as (

    select
        instagram_user_id,
        username,
        updated_at as seen_at
    from {{ ref('stg_instagram__conversations') }}
    where instagram_user_id is not null

),

sightings as (

    select * from comments
    union all
    select * from messages
    union all
    select * from conversations

),

latest as (

    select distinct on (instagram_user_id)
        instagram_user_id,
        username
    from sightings
    where username is not null
    order by instagram_user_id asc, seen_at desc

),

summary as (

    select
        instagram_user_id,
        min(seen_at) as first_seen_at,
        max(seen_at) as last_seen_at,
        count(*) as interactions
    from sightings
    group by instagram_user_id

)

select
    summary.instagram_user_id,
    latest.username,
    summary.first_seen_at,
    summary.last_seen_at,
    summary.interactions
from summary
left join latest on summary.instagram_user_id = latest.instagram_user_id
