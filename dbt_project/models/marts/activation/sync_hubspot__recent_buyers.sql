{#
    HubSpot list of recent buyers (segment_recent_buyers). One row per email, the sync
    key; the destination upserts each as a contact (email, first and last name) and
    keeps them the members of a MANUAL list (the hubspot__recent_buyers exposure). Ground truth: channels/hubspot/truth.py.
#}

with

segment as (

    select * from {{ ref('segment_recent_buyers') }}

)

select * from segment
