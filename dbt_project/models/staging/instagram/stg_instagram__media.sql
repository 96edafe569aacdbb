with

source as (

    select * from {{ source('instagram', 'media') }}

),

renamed as (

    select

        ----------  ids
        id as media_id,
        ig_user_id as instagram_account_id,

        ----------  post
        caption,
        media_type,
        media_product_type,
        permalink,
        shortcode,

        ----------  engagement
        cast(like_count as integer) as like_count,
        cast(comments_count as integer) as comments_count,

        ----------  timestamps
        cast(timestamp as timestamptz) as published_at

    from source

)

select * from renamed
