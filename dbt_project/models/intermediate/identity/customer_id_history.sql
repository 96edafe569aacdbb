{#
    Every change of customer_id, appended run after run (never rebuilt):
    - new:   a customer_id was given to a new cluster;
    - merge: customer_id was absorbed into related_customer_id (the older id, which
             survives) because new evidence joined their clusters;
    - split: customer_id was created for part of the records of related_customer_id,
             which stayed with its largest part.
#}

{{ config(
    materialized='incremental',
    full_refresh=false,
    post_hook=[after_commit("{{ identity_vacuum_analyze() }}")],
) }}

with

cluster_ids as (

    select * from {{ ref('int_identity__cluster_customer_ids') }}

),

events as (

    select
        customer_id,
        'new' as event,
        cast(null as text) as related_customer_id,
        founding_record_key

    from cluster_ids
    where is_new

    union all

    select
        merged.customer_id,
        'merge' as event,
        cluster_ids.customer_id as related_customer_id,
        cluster_ids.founding_record_key

    from cluster_ids
    cross join lateral unnest(cluster_ids.merged_customer_ids) as merged (customer_id)

    union all

    select
        cluster_ids.customer_id,
        'split' as event,
        split.customer_id as related_customer_id,
        cluster_ids.founding_record_key

    from cluster_ids
    cross join lateral unnest(cluster_ids.split_from_customer_ids) as split (customer_id)

),

final as (

    select
        customer_id,
        event,
        related_customer_id,
        founding_record_key,
        cast('{{ run_started_at }}' as timestamptz) as changed_at,
        '{{ invocation_id }}' as invocation_id

    from events

)

select * from final
