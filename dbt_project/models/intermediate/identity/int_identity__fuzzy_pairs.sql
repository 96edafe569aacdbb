{#
    The fuzzy stage's decisions: the candidate pairs whose Fellegi-Sunter match weight
    (log2 posterior odds; m and u estimated on this data, int_identity__fuzzy_parameters,
    each levels pattern weighed by identity.fuzzy_pattern_weights; an exact agreement on
    a value weighs by the value's frequency, macro identity_fuzzy_tf_adjustment) reaches
    identity_fuzzy.threshold_weight, and whether each links (is_match). Two records with
    different valid CPFs never link. With one_to_one_across_sources, a record links to at most its mutual best match in each
    other source (macro identity_fuzzy_mutual_best). Pairs under the threshold are in
    int_identity__fuzzy_candidates with their levels.
    The parameters are learnt by the first run and kept (int_identity__fuzzy_parameters):
    a full refresh weighs with them too, unless the fuzzy settings changed or var
    identity_fuzzy_relearn is true (macro identity_fuzzy_learns).
    Incremental: a run weighs only the candidates it wrote (its scope, and the stored pairs
    its term frequencies may carry across the threshold: macro
    identity_fuzzy_rewritten_pairs_delete), with the stored parameters; a pair whose
    candidate row the run kept keeps its decision (macro identity_delete_scope_pairs);
    with one_to_one_across_sources a post-hook then re-ranks every stored pair whose
    records gained or lost a pair (macro identity_fuzzy_rerank). run_id marks the rows
    this run wrote or whose decision it changed.
#}

-- depends_on: {{ ref('int_identity__deterministic_components') }}
-- depends_on: {{ ref('int_identity__record_changes') }}
{%- set cfg = var('identity_fuzzy', {}) %}
{%- set one_to_one = cfg.get('one_to_one_across_sources', false) %}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook=[
        "{{ identity_fuzzy_scope_table() }}",
        "{{ identity_fuzzy_rerank_start() }}",
        "{{ identity_delete_scope_pairs(spare=ref('int_identity__fuzzy_candidates')) }}",
        "{{ identity_fuzzy_rewritten_pairs_delete() }}",
    ],
    post_hook=[
        "{{ identity_fuzzy_rerank() }}",
        "create index if not exists {{ this.identifier }}_a_idx on {{ this }} (record_num_a)",
        "create index if not exists {{ this.identifier }}_b_idx on {{ this }} (record_num_b)",
        "create index if not exists {{ this.identifier }}_run_idx on {{ this }} (run_id)",
        after_commit("{{ identity_vacuum_analyze() }}"),
    ]
) }}

with

candidates as (

    select * from {{ ref('int_identity__fuzzy_candidates') }}
    {%- if is_incremental() %}
    where run_id = {{ identity_run_id() }}
    {%- endif %}

),

pattern_weights as (

    {{ identity_fuzzy_pattern_weights() }}

),

tf_base as (

    {{ identity_fuzzy_tf_base() }}

),

weighed as (

    select
        candidates.record_num_a,
        candidates.record_num_b,
        candidates.source_a,
        candidates.source_b,
        candidates.levels,
        candidates.term_frequencies,
        weights.weight
        + {{ identity_fuzzy_tf_adjustment('candidates.term_frequencies', 'tf_base') }}
            as match_weight

    from candidates
    inner join pattern_weights as weights
        on candidates.levels = weights.levels
    cross join tf_base

),

scored as (

    select * from weighed
    where match_weight >= {{ cfg.get('threshold_weight', 4.0) }}

),

eligible as (

    select scored.* from scored
    where {{ identity_fuzzy_eligible('scored') }}

),
{%- if one_to_one %}

{{ identity_fuzzy_mutual_best('eligible') }},
{%- endif %}

final as (

    select
        scored.record_num_a,
        scored.record_num_b,
        scored.source_a,
        scored.source_b,
        scored.levels,
        scored.term_frequencies,
        scored.match_weight,
        exists(
            select 1 as linked from {{ 'mutual_best' if one_to_one else 'eligible' }} as linked
            where
                linked.record_num_a = scored.record_num_a
                and linked.record_num_b = scored.record_num_b
        ) as is_match,
        {{ identity_run_id() }} as run_id

    from scored

)

select * from final
