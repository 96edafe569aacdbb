{#
    Candidate pairs of the fuzzy stage and their comparison levels: records that agree
    on every column of at least one blocking rule (var identity_fuzzy.blocking_rules),
    skipping blocks larger than max_block_size (a common name blocks nothing), and, with
    within_source false, pairs from the same source. Pairs already in one component
    of the identifier graph (int_identity__deterministic_components) are not compared.
    Incremental: a run compares only pairs with a record it touched (their blocks).
#}

-- depends_on: {{ ref('int_identity__record_changes') }}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{% if is_incremental() %}delete from {{ this }}
        where record_num_a in ({{ identity_touched_records() }})
        or record_num_b in ({{ identity_touched_records() }}){% endif %}",
    post_hook="analyze {{ this }}",
) }}

{%- set cfg = var('identity_fuzzy', {}) %}
{%- set enabled = cfg.get('enabled', true) and identity_fuzzy_available() %}
{%- set max_block = cfg.get('max_block_size', 200) %}

with

records as (

    select
        records.*,
        components.component_num

    from {{ ref('int_identity__records') }} as records
    inner join {{ ref('int_identity__deterministic_components') }} as components
        on records.record_num = components.record_num

),

{%- if enabled %}
    {%- for rule in cfg.get('blocking_rules', []) %}

        block_{{ loop.index }} as (

            select
                record_num,
                source,
                component_num,
                concat_ws('|', {{ rule | join(', ') }}) as block_key,
                count(*) over (partition by {{ rule | join(', ') }}) as block_size

            from records
            where
                {{ rule | join(' is not null and ') }} is not null{% if is_incremental() %}
                -- only the blocks of the records this run touched
                and ({{ rule | join(', ') }}) in (
                    select {{ rule | join(', ') }} from records
                    where record_num in ({{ identity_touched_records() }})
                )
                {%- endif %}

        ),

        pairs_{{ loop.index }} as (

            select
                left_side.record_num as record_num_a,
                right_side.record_num as record_num_b

            from block_{{ loop.index }} as left_side
            inner join block_{{ loop.index }} as right_side
                on
                    left_side.block_key = right_side.block_key
                    and left_side.record_num < right_side.record_num
                    and left_side.component_num <> right_side.component_num
            {%- if not cfg.get('within_source', true) %}
            and left_side.source <> right_side.source
            {%- endif %}
            where
                left_side.block_size <= {{ max_block }}{% if is_incremental() %}
                and (
                    left_side.record_num in ({{ identity_touched_records() }})
                    or right_side.record_num in ({{ identity_touched_records() }})
                )
                {%- endif %}

        ),
    {%- endfor %}

    candidates as (

        {%- for rule in cfg.get('blocking_rules', []) %}
            select * from pairs_{{ loop.index }}
            {{ 'union' if not loop.last }}
        {%- endfor %}

    ),

    final as (

        select
            candidates.record_num_a,
            candidates.record_num_b,
            a.source as source_a,
            b.source as source_b,
            {{ identity_fuzzy_levels('a', 'b') }} as levels

        from candidates
        inner join records as a
            on candidates.record_num_a = a.record_num
        inner join records as b
            on candidates.record_num_b = b.record_num

    )

{%- else %}

final as (

    select
        cast(null as bigint) as record_num_a,
        cast(null as bigint) as record_num_b,
        cast(null as text) as source_a,
        cast(null as text) as source_b,
        cast(null as int []) as levels
    from records
    where false

)

{%- endif %}

select * from final
