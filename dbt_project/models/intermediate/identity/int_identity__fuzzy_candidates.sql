{#
    Candidate pairs of the fuzzy stage and their comparison levels: records that agree
    on every column of at least one blocking rule (var identity_fuzzy.blocking_rules),
    skipping blocks larger than max_block_size (a common name blocks nothing), and, with
    within_source false, pairs from the same source. Pairs already in one component
    of the identifier graph (int_identity__deterministic_components) are not compared.
    Incremental: a run recomputes the pairs of its touched records and the pairs whose
    two records are both in its scope (macro identity_fuzzy_scope_build: recomputed
    components, blocks whose size crossed max_block_size), in blocks of at most
    max_block_size records (counted whole, through the blocking indexes of
    int_identity__records), and the stored pairs whose weight its term frequencies may
    carry across the threshold (macro identity_fuzzy_drift_rewrite), so the rows it
    writes are those a full run would write for them; run_id marks the rows it wrote. A
    stored pair of two untouched records of the scope that is still compared keeps its
    row, run_id included (`kept`: its levels read records the run did not change; macro
    identity_delete_scope_pairs).
#}

-- depends_on: {{ ref('int_identity__record_changes') }}
-- depends_on: {{ ref('int_identity__identifiers') }}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook=[
        "{{ identity_fuzzy_scope_build() }}",
        "{{ identity_delete_scope_pairs(kept='_fz_kept') }}",
        "{{ identity_fuzzy_drift_rewrite() }}",
    ],
    post_hook=[
        "{{ identity_fuzzy_candidates_indexes(this) }}",
        after_commit("{{ identity_vacuum_analyze() }}"),
    ],
) }}

{%- set cfg = var('identity_fuzzy', {}) %}
{%- set enabled = cfg.get('enabled', true) and identity_fuzzy_available() %}
{#- the parameters int_identity__fuzzy_pairs weighs with (learnt before, when this run
    learns them): each pair is weighed as it is written #}
{%- set parameters = ref('int_identity__fuzzy_parameters') %}
{%- set max_block = cfg.get('max_block_size', 200) %}
{%- set rules = cfg.get('blocking_rules', []) %}

with
{%- if enabled and is_incremental() %}

scope as (

    select
        record_num,
        touched
    from pg_temp._fz_scope

),

scope_records as (

    select
        records.*,
        scope.touched
    from {{ ref('int_identity__records') }} as records
    inner join scope on records.record_num = scope.record_num

),

-- the blocks of the records in scope, rule by rule, that hold at most max_block_size
-- records: counted through the rule's index, reading at most max_block_size + 1 entries;
-- whether a touched record is in the block (its every record is then a member)
{%- for rule in rules %}

block_keys_{{ loop.index }} as materialized (

    select
        block_keys.*,
        sizes.block_size

    from (
        select
            {{ rule | join(', ') }},
            bool_or(touched) as touched
        from scope_records
        where {{ rule | join(' is not null and ') }} is not null
        group by {{ rule | join(', ') }}
    ) as block_keys
    cross join lateral (
        select count(*) as block_size
        from (
            select 1 as found from {{ ref('int_identity__records') }} as sized
            where
            {%- for column in rule %}
                sized.{{ column }} = block_keys.{{ column }}{{ ' and' if not loop.last }}
            {%- endfor %}
            limit {{ max_block + 1 }}
        ) as limited
    ) as sizes
    where sizes.block_size <= {{ max_block }}

),
{%- endfor %}

-- the records in scope, every record of the blocks of a touched one, and the records of
-- the stored pairs written again for their term frequencies (_fz_rewritten)
members as (

    select record_num from scope_records

    union

    select rewritten.record_num_a from pg_temp._fz_rewritten as rewritten

    union

    select rewritten.record_num_b from pg_temp._fz_rewritten as rewritten
    {%- for rule in rules %}

    union

    select others.record_num
    from block_keys_{{ loop.index }} as block_keys
    inner join {{ ref('int_identity__records') }} as others
        on
        {%- for column in rule %}
            others.{{ column }} = block_keys.{{ column }}{{ ' and' if not loop.last }}
        {%- endfor %}
    where block_keys.touched
    {%- endfor %}

),
{%- endif %}

{#- only the columns the blocks and the comparisons read: the CTE is materialised #}
{%- set needed = ['record_num', 'source'] %}
{%- for rule in rules %}{% for column in rule if column not in needed %}
    {%- do needed.append(column) %}
{%- endfor %}{% endfor %}
{%- for comparison in identity_fuzzy_comparisons() %}
    {%- for column in [comparison.column, comparison.get('swap')]
        if column and column not in needed %}
        {%- do needed.append(column) %}
    {%- endfor %}
{%- endfor %}

{#- an identifier a guard stopped (a fake CPF, the store's phone) is no evidence here either #}
{%- set guarded = {
    'email': "coalesce(encode(sha256(convert_to(records.email, 'UTF8')), 'hex'), records.email_sha256)",
    'phone_e164': 'records.phone_e164',
    'cpf': 'records.cpf',
} %}

{%- set tf_columns = identity_fuzzy_tf_columns() %}
{%- set totalled = tf_columns + identity_fuzzy_tf_columns(totals_only=true) %}
{%- set totalled_list = "'" ~ totalled | join("', '") ~ "'" %}

-- each term-frequency column's records holding a value (int_identity__term_frequencies)
term_totals as materialized (

    select
        {%- for column in totalled %}
            max(records) filter (where term_column = '{{ column }}') as {{ column }},
        {%- endfor %}
        count(*) as term_columns
    from {{ ref('int_identity__term_frequencies') }}
    where term_column in ({{ totalled_list }}) and term = ''

),

records as (

    select
        {%- for column in needed %}
            {%- if column in guarded %}
                case when guard_{{ column }}.is_linkable is not false then records.{{ column }} end
                    as {{ column }},
                -- the share of records holding the value that are another person's:
                -- max(n (1 - 1 / people), 1) / N
                cast(greatest(
                    guard_{{ column }}.records_count
                    * (1 - 1.0 / greatest(guard_{{ column }}.people_count, 1)),
                    1
                ) as float8) / nullif(term_totals.{{ column }}, 0) as tf_{{ column }},
            {%- else %}
                records.{{ column }},
                {%- if column in tf_columns %}
                    cast(tf_{{ column }}.records as float8)
                    / nullif(term_totals.{{ column }}, 0) as tf_{{ column }},
                {%- endif %}
            {%- endif %}
        {%- endfor %}
        {%- if enabled and is_incremental() %}
            scope.record_num is not null as in_scope,
            coalesce(scope.touched, false) as touched,
        {%- endif %}
        components.component_num

    from {{ ref('int_identity__records') }} as records
    inner join {{ ref('int_identity__deterministic_components') }} as components
        on records.record_num = components.record_num
    cross join term_totals
    {%- for column in tf_columns if column in needed %}
        left join {{ ref('int_identity__term_frequencies') }} as tf_{{ column }}
            on
                tf_{{ column }}.term_column = '{{ column }}'
                and records.{{ column }} = tf_{{ column }}.term
    {%- endfor %}
    {%- for column, value in guarded.items() if column in needed %}
        {%- set value_type = (
            'email' if column == 'email' else ('phone' if column == 'phone_e164' else 'cpf')
        ) %}
        left join {{ ref('int_identity__identifier_values') }} as guard_{{ column }}
            on guard_{{ column }}.value_id = hashtextextended(
                    '{{ value_type }}:' || {{ value }}, 0
                )
    {%- endfor %}
    {%- if enabled and is_incremental() %}
        left join scope on records.record_num = scope.record_num
    where records.record_num in (select members.record_num from members)
    {%- endif %}

),

{%- if enabled %}
    {%- for rule in rules %}

        block_{{ loop.index }} as (

            select
                record_num,
                source,
                component_num,
                {%- if is_incremental() %}
                    in_scope,
                    touched,
                {%- endif %}
                concat_ws('|', {{ rule | join(', ') }}) as block_key,
                count(*) over (partition by {{ rule | join(', ') }}) as block_size

            from records
            where
                {{ rule | join(' is not null and ') }} is not null{% if is_incremental() %}
                -- only the blocks of the records in scope that hold at most max_block_size
                -- records (members holds them whole where a touched record is in them)
                and ({{ rule | join(', ') }}) in (
                    select {{ rule | join(', ') }} from block_keys_{{ loop.index }}
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
                {%- if is_incremental() %}
                    -- a touched record's pairs, and the pairs inside the scope
                    left_side.touched
                    or right_side.touched
                    or (left_side.in_scope and right_side.in_scope)
                {%- else %}
                    left_side.block_size <= {{ max_block }}
                {%- endif %}

        ),
    {%- endfor %}

    candidates as (

        {%- for rule in rules %}
            select * from pairs_{{ loop.index }}
            {{ 'union' if not loop.last }}
        {%- endfor %}
        {%- if is_incremental() and rules %}
            -- the stored pairs whose term frequencies moved, written again whole (macro
            -- identity_fuzzy_drift_rewrite); inside the scope, if still compared
            union
            select
                rewritten.record_num_a,
                rewritten.record_num_b
            from pg_temp._fz_rewritten as rewritten
            where not (
                rewritten.record_num_a in (select scope.record_num from scope)
                and rewritten.record_num_b in (select scope.record_num from scope)
            )
        {%- endif %}

    ),
    {%- if is_incremental() %}

    -- the stored rows of two untouched records of the scope that are still compared
    -- and whose weight no drift moved: written back as they were
    kept as (

        select kept.*
        from pg_temp._fz_kept as kept
        inner join candidates
            on
                kept.record_num_a = candidates.record_num_a
                and kept.record_num_b = candidates.record_num_b
        where not exists (
            select 1 as rewritten from pg_temp._fz_rewritten as rewritten
            where
                rewritten.record_num_a = kept.record_num_a
                and rewritten.record_num_b = kept.record_num_b
        )

    ),
    {%- endif %}

    compared as (

        select
            candidates.record_num_a,
            candidates.record_num_b,
            a.source as source_a,
            b.source as source_b,
            {{ identity_fuzzy_levels('a', 'b') }} as levels,
            -- per comparison, the frequency of the value both records hold (an exact
            -- agreement of a term-frequency comparison), else null
            cast(array[
                {%- for comparison in identity_fuzzy_comparisons() %}
                    {%- if comparison.get('tf') or comparison.get('identifier') %}
                        case
                            when a.{{ comparison.column }} = b.{{ comparison.column }}
                                then a.tf_{{ comparison.column }}
                        end{{ ',' if not loop.last }}
                    {%- else %}
                        null{{ ',' if not loop.last }}
                    {%- endif %}
                {%- endfor %}
            ] as float8[]) as term_frequencies,
            {{ identity_run_id() }} as run_id

        from candidates
        inner join records as a
            on candidates.record_num_a = a.record_num
        inner join records as b
            on candidates.record_num_b = b.record_num
        {%- if is_incremental() %}
        where not exists (
            select 1 as kept from kept
            where
                kept.record_num_a = candidates.record_num_a
                and kept.record_num_b = candidates.record_num_b
        )
        {%- endif %}
        -- a subquery of its own, not flattened into `final`: there each levels[i] and
        -- term_frequencies[i] of the weight would compute the whole array again (ten
        -- times the levenshtein and trigram calls); no order: one row per pair, none dropped
        offset 0  -- noqa: AM09

    ),

    weights as materialized (

        {{ identity_fuzzy_stored_weights(parameters) }}  -- noqa: RF04

    ),

    final as (

        select
            compared.record_num_a,
            compared.record_num_b,
            compared.source_a,
            compared.source_b,
            compared.levels,
            compared.term_frequencies,
            -- the pair's weight with the run's parameters: later runs find by it the
            -- stored pairs their term frequencies may move over or under the threshold
            -- (macro identity_fuzzy_drift_build)
            {{ identity_fuzzy_weight('compared.levels', 'compared.term_frequencies', 'weights') }}
                as match_weight,
            compared.run_id

        from compared
        cross join weights
        {%- if is_incremental() %}

        union all

        select
            kept.record_num_a,
            kept.record_num_b,
            kept.source_a,
            kept.source_b,
            kept.levels,
            kept.term_frequencies,
            kept.match_weight,
            kept.run_id
        from kept
        {%- endif %}

    )

{%- else %}

final as (

    select
        cast(null as bigint) as record_num_a,
        cast(null as bigint) as record_num_b,
        cast(null as text) as source_a,
        cast(null as text) as source_b,
        cast(null as int []) as levels,
        cast(null as float8 []) as term_frequencies,
        cast(null as float8) as match_weight,
        cast(null as text) as run_id
    from records
    where false

)

{%- endif %}

select * from final
