with

source as (

    select * from {{ source('instagram', 'conversations') }}

),

-- the thread's other participant: the person talking to the business account
people as (

    select distinct on (source.id)
        source.id as conversation_id,
        participant ->> 'id' as instagram_user_id,
        nullif(trim(participant ->> 'username'), '') as username

    from source
    cross join lateral jsonb_array_elements(source.participants -> 'data') as participant
    where participant ->> 'id' is distinct from source.ig_user_id
    order by source.id, participant ->> 'id'

),

renamed as (

    select

        ----------  ids
        source.id as conversation_id,
        source.ig_user_id as instagram_account_id,
        people.instagram_user_id,

        ----------  person
        people.username,

        ----------  timestamps
        cast(source.updated_time as timestamptz) as updated_at

    from source
    left join people on source.id = people.conversation_id

)

select * from renamed
