{#
    The fuzzy stage's decisions: each candidate pair's Fellegi-Sunter match weight (log2
    posterior odds; m and u estimated on this data, see macro identity_fuzzy_parameters)
    and whether it links (weight >= identity_fuzzy.threshold_weight). Two records with
    different valid CPFs never link. With one_to_one_across_sources, a record links to at
    most its mutual best match in each other source.
    Incremental: a run weighs only the candidate pairs of the records it touched, with the
    stored parameters (one_to_one_across_sources then ranks among those pairs only).
#}

-- depends_on: {{ ref('int_identity__records') }}
-- depends_on: {{ ref('int_identity__fuzzy_candidates') }}
-- depends_on: {{ ref('int_identity__record_changes') }}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook=[
        "{% if is_incremental() %}delete from {{ this }}
            where record_num_a in ({{ identity_touched_records() }})
            or record_num_b in ({{ identity_touched_records() }}){% endif %}",
        "{{ identity_fuzzy_parameters(
            ref('int_identity__records'),
            ref('int_identity__fuzzy_candidates'),
            adapter.get_relation(database=this.database, schema=this.schema,
                identifier='int_identity__fuzzy_parameters') if is_incremental() else none,
        ) }}",
    ],
    post_hook=[
        "drop table if exists {{ this.schema }}.int_identity__fuzzy_parameters",
        "create table {{ this.schema }}.int_identity__fuzzy_parameters as
            select * from pg_temp._fz_parameters",
    ]
) }}

{%- set cfg = var('identity_fuzzy', {}) %}
{%- set cpf_index = 9 %}

with

candidates as (

    select * from {{ ref('int_identity__fuzzy_candidates') }}
    {%- if is_incremental() %}
    where
        record_num_a in ({{ identity_touched_records() }})
        or record_num_b in ({{ identity_touched_records() }})
    {%- endif %}

),

scored as (

    select
        candidates.record_num_a,
        candidates.record_num_b,
        candidates.source_a,
        candidates.source_b,
        candidates.levels,
        weights.weight as match_weight

    from candidates
    inner join pg_temp._fz_pattern_weights as weights
        on candidates.levels = weights.levels

),

ranked as (

    select
        *,
        row_number() over (
            partition by record_num_a, source_b order by match_weight desc, record_num_b asc
        ) as rank_for_a,
        row_number() over (
            partition by record_num_b, source_a order by match_weight desc, record_num_a asc
        ) as rank_for_b

    from scored
    where
        match_weight >= {{ cfg.get('threshold_weight', 4.0) }}
        and levels[{{ cpf_index }}] <> 1

),

final as (

    select
        scored.record_num_a,
        scored.record_num_b,
        scored.levels,
        scored.match_weight,
        coalesce(
            {%- if cfg.get('one_to_one_across_sources', false) %}
            scored.source_a <> scored.source_b
            and ranked.rank_for_a = 1
            and ranked.rank_for_b = 1,
            {%- else %}
                ranked.record_num_a is not null,
            {%- endif %}
            false
        ) as is_match,
        {{ identity_run_id() }} as run_id

    from scored
    left join ranked
        on
            scored.record_num_a = ranked.record_num_a
            and scored.record_num_b = ranked.record_num_b

)

select * from final
