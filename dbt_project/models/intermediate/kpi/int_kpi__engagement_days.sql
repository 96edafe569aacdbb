{#
    What kpi_engagement counts, per local day (var kpi_time_zone, macro kpi_period):
    each person's inbound interactions per channel that day (person_key: the customer,
    or the record when no customer holds it), and one row per day without a person
    (channel and person_key null) holding day_digest, the digest of the day's inbound
    interactions (their count and the sum of a 64-bit hash of each one's key, channel
    and person: no sort). kpi_engagement rolls a day's, week's or month's persons up
    from these.

    Incremental per day: a run digests every day again (one pass over the interactions,
    a few hundred groups) and rebuilds, whole, the days whose digest is new, changed or
    gone: an interaction new, changed, deleted or moved to another customer. That
    covers what a load stamp cannot (a deleted interaction leaves no row to say which
    day it left). A day left with no inbound interaction gets a day row without a
    digest, so that delete+insert removes its old rows, and the post-hook deletes it
    (kpi_engagement finds such a day among the days it holds). A change of var
    kpi_time_zone needs --full-refresh.
#}

-- sqlfluff:indentation:template_blocks_indent:False
{{ config(
    materialized='incremental',
    unique_key='local_day',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    meta={'new_rows_stamp': 'built_at'},
    post_hook=[
        "delete from {{ this }} where person_key is null and day_digest is null",
        "create index if not exists {{ this.identifier }}_day_idx on {{ this }} (local_day)",
        "create index if not exists {{ this.identifier }}_digest_idx on {{ this }} (local_day, built_at) where person_key is null",
    ],
) }}

with

-- one pass over the inbound interactions: read twice below (the digests, the days)
inbound as materialized (

    select
        {{ kpi_period("'day'", 'occurred_at') }} as local_day,
        channel,
        coalesce(customer_id, record_key) as person_key,
        hashtextextended(
            concat_ws('|', interaction_key, channel, coalesce(customer_id, record_key)), 0
        ) as interaction_hash

    from {{ ref('fct_interactions') }}
    where direction = 'inbound'

),

digests as (

    -- order-free: a count and a sum of 64-bit hashes need no sort within each day
    select
        local_day,
        count(*) || ':' || sum(interaction_hash) as day_digest

    from inbound
    group by local_day

),
{%- if is_incremental() %}

touched as (

    -- the days whose interactions are not those the day's rows were built from
    select
        coalesce(digests.local_day, held.local_day) as local_day,
        digests.day_digest

    from digests
    full outer join (
        select
            local_day,
            day_digest
        from {{ this }}
        where person_key is null
    ) as held
        on digests.local_day = held.local_day
    where digests.day_digest is distinct from held.day_digest

),
{%- else %}

touched as (

    select * from digests

),
{%- endif %}

person_days as (

    select
        inbound.local_day,
        inbound.channel,
        inbound.person_key,
        count(*) as interactions_count

    from inbound
    inner join touched
        on inbound.local_day = touched.local_day
    group by inbound.local_day, inbound.channel, inbound.person_key

),

final as (

    select
        local_day,
        channel,
        person_key,
        interactions_count,
        cast(null as text) as day_digest

    from person_days

    union all

    select
        local_day,
        cast(null as text) as channel,
        cast(null as text) as person_key,
        cast(null as bigint) as interactions_count,
        day_digest

    from touched

)

select
    *,
    cast('{{ run_started_at }}' as timestamptz) as built_at
from final
