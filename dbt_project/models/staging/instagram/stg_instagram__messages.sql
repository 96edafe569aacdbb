-- the deletions log: the rows held whose source row is gone (macros/staging_incremental.sql)
{{ config(pre_hook="{{ staging_log_gone('message_id', [
        (source('instagram', 'messages'), 'id'),
    ]) }}") }}

with

source as (

    select * from {{ source('instagram', 'messages') }}

),

renamed as (

    select

        ----------  ids
        id as message_id,
        conversation_id,
        ig_user_id as instagram_account_id,
        "from" ->> 'id' as sender_id,
        "to" -> 'data' -> 0 ->> 'id' as recipient_id,
        -- the person in the thread, whichever side wrote
        case
            when "from" ->> 'id' = ig_user_id then "to" -> 'data' -> 0 ->> 'id'
            else "from" ->> 'id'
        end as instagram_user_id,

        ----------  content
        nullif(trim("from" ->> 'username'), '') as sender_username,
        message as message_text,

        ----------  booleans
        coalesce("from" ->> 'id' = ig_user_id, false) as is_from_business,

        ----------  timestamps
        cast(created_time as timestamptz) as created_at,

        ----------  load
        _sdc_batched_at as _loaded_at

    from source

)

select * from renamed
