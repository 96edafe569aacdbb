{#
    The fuzzy stage's decisions: each candidate pair's Fellegi-Sunter match weight (log2
    posterior odds; m and u estimated on this data, see macro identity_fuzzy_parameters)
    and whether it links (weight >= identity_fuzzy.threshold_weight). Two records with
    different valid CPFs never link. With one_to_one_across_sources, a record links to at
    most its mutual best match in each other source.
#}

-- depends_on: {{ ref('int_identity__records') }}
-- depends_on: {{ ref('int_identity__fuzzy_candidates') }}
{{ config(
    pre_hook="{{ identity_fuzzy_parameters(
        ref('int_identity__records'), ref('int_identity__fuzzy_candidates')
    ) }}"
) }}

{%- set cfg = var('identity_fuzzy', {}) %}
{%- set cpf_index = 9 %}

with

candidates as (

    select * from {{ ref('int_identity__fuzzy_candidates') }}

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
        ) as is_match

    from scored
    left join ranked
        on
            scored.record_num_a = ranked.record_num_a
            and scored.record_num_b = ranked.record_num_b

)

select * from final
