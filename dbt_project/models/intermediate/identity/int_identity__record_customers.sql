{#
    The persisted answer of identity resolution: each record's customer_id. Incremental
    and never rebuilt (full_refresh: false), because it is the memory that keeps ids
    stable: each run only writes the records whose customer_id changed or that are new.
#}

-- depends_on: {{ ref('int_identity__record_changes') }}
{{ config(
    materialized='incremental',
    unique_key='record_key',
    incremental_strategy='merge',
    full_refresh=false,
    post_hook=[
        "create index if not exists {{ this.identifier }}_customer_idx on {{ this }} (customer_id)",
        "create unique index if not exists {{ this.identifier }}_key_idx on {{ this }} (record_key)",
        "{{ identity_delete_changed('record_key', 'record_key', ['deleted']) }}",
        after_commit("{{ identity_vacuum_analyze() }}"),
    ],
) }}

with

clusters as (

    select * from {{ ref('int_identity__clusters') }}
    where run_id = {{ identity_run_id() }}

),

cluster_ids as (

    select * from {{ ref('int_identity__cluster_customer_ids') }}

),

assigned as (

    select
        clusters.record_key,
        cluster_ids.customer_id,
        cluster_ids.customer_id_created_at,
        cast('{{ run_started_at }}' as timestamptz) as assigned_at

    from clusters
    inner join cluster_ids
        on clusters.cluster_num = cluster_ids.cluster_num

)

select assigned.* from assigned
{%- if is_incremental() %}
left join {{ this }} as existing
    on assigned.record_key = existing.record_key
where existing.customer_id is distinct from assigned.customer_id
{%- endif %}
