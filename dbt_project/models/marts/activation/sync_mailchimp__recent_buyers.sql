{#
    Audience for Mailchimp: the recent buyers (segment_recent_buyers), one row per
    email, the sync key. Read by `omnicanal sync` through the mailchimp__recent_buyers
    exposure.
#}

with

segment as (

    select * from {{ ref('segment_recent_buyers') }}

)

select * from segment
