{#
    What changed in the sources since the last run, one row per record that is new,
    changed (any raw field differs: fingerprint; or it was normalised under other code,
    macro identity_normalization_fingerprint) or deleted, with its node number:
    a changed or deleted record keeps the record_num it had, a new one gets the next
    free numbers. On the first run, and with --full-refresh, every record is new. The models after it recompute
    only what these records touch (their components and clusters).
#}

-- a million keys on each side of the comparison: hash them in memory, not in batches on disk
{{ config(pre_hook="set local work_mem = '256MB'") }}

{#- a full refresh rebuilds every identity model: every record is then new #}
{%- set previous = adapter.get_relation(
    database=this.database, schema=this.schema, identifier='int_identity__records'
) if execute and not flags.FULL_REFRESH else none %}
{#- records normalised under other code (a macro, a seed or the records model changed
    since) are changed too: normalised again by this run (macro
    identity_normalization_fingerprint); a table from before the fingerprint has none #}
{%- set normalization = identity_normalization_fingerprint() %}
{%- set stored_normalization = previous is not none and 'normalization_fingerprint' in (
    adapter.get_columns_in_relation(previous) | map(attribute='name') | list
) %}

with

source_records as (

    {{ identity_source_records() }}

),

fingerprinted as (

    select
        source || ':' || source_record_id as record_key,
        record_fingerprint

    from source_records

),

previous as (

    {%- if previous %}
    select
        record_key,
        record_num,
        record_fingerprint,
        {{ 'normalization_fingerprint' if stored_normalization else 'cast(null as text)' }}
            as normalization_fingerprint
    from {{ previous }}
    {%- else %}
        select
            cast(null as text) as record_key,
            cast(null as bigint) as record_num,
            cast(null as text) as record_fingerprint,
            cast(null as text) as normalization_fingerprint
        where false
    {%- endif %}

),

compared as (

    select
        coalesce(fingerprinted.record_key, previous.record_key) as record_key,
        previous.record_num,
        fingerprinted.record_fingerprint,
        case
            when previous.record_key is null then 'new'
            when fingerprinted.record_key is null then 'deleted'
            when fingerprinted.record_fingerprint <> previous.record_fingerprint then 'changed'
            when
                coalesce(previous.normalization_fingerprint, '') <> '{{ normalization }}'
                then 'changed'
        end as change  -- noqa: RF04

    from fingerprinted
    full outer join previous
        on fingerprinted.record_key = previous.record_key

),

final as (

    select
        record_key,
        coalesce(
            record_num,
            -- the last number given (an index lookup, not a second pass over previous)
            (
                {%- if previous %}
                    select coalesce(max(numbered.record_num), 0) as max_num
                    from {{ previous }} as numbered
                {%- else %}
                    select 0 as max_num
                {%- endif %}
            )
            + row_number() over (partition by record_num is null order by record_key)
        ) as record_num,
        record_fingerprint,
        change,
        '{{ invocation_id }}' as run_id

    from compared
    where change is not null

)

select * from final
