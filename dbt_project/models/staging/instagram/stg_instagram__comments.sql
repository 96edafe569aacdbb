-- the deletions log: the rows held whose source row is gone (macros/staging_incremental.sql)
{{ config(pre_hook="{{ staging_log_gone('comment_id', [
        (source('instagram', 'comments'), 'id'),
    ]) }}") }}

with

source as (

    select * from {{ source('instagram', 'comments') }}

),

renamed as (

    select

        ----------  ids
        id as comment_id,
        media_id,
        parent_id as parent_comment_id,
        ig_user_id as instagram_account_id,
        "from" ->> 'id' as author_id,

        ----------  content
        nullif(trim(coalesce("from" ->> 'username', username)), '') as author_username,
        text as comment_text,
        cast(like_count as integer) as like_count,
        coalesce(cast(hidden as boolean), false) as is_hidden,

        ----------  booleans
        parent_id is not null as is_reply,
        -- the account's own replies to its customers
        coalesce("from" ->> 'id' = ig_user_id, false) as is_from_business,

        ----------  timestamps
        cast(timestamp as timestamptz) as commented_at,

        ----------  load
        _sdc_batched_at as _loaded_at

    from source

)

select * from renamed
