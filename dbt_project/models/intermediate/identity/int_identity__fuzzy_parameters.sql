{#
    The fuzzy stage's Fellegi-Sunter parameters: m and u of each comparison level, and
    lambda, the chance that two random records are one person. int_identity__fuzzy_pairs
    and int_identity__fuzzy_candidates weigh pairs with them.
    A run learns them (identity.fuzzy_parameters, functions/fn_identity__fuzzy_parameters.sql)
    when macro identity_fuzzy_learns says so: there are none, the fuzzy settings they were
    learnt under differ (a full run), or a full refresh with var identity_fuzzy_relearn.
    Otherwise this table keeps the rows it holds (stamped with the settings of the run).
    - u: the levels of random_pairs_for_u random record pairs; an identifier's exact level
      from its values' people (int_identity__identifier_values), not from random pairs;
    - m: one EM session per rule of em_sessions, on the pairs of a sample of at most
      em_max_records records agreeing on the rule, in blocks of at most max_block_size,
      ignoring the comparisons the rule uses (macro identity_fuzzy_blocked_comparisons);
    - lambda: the pairs agreeing on a rule of prior.rules, over their assumed recall, over
      all the pairs the stage may compare.
    learnt_run is the run that learnt them (macro identity_run_id).
#}
{{ config(materialized='table') }}

-- the query texts below (u's random pairs, the identifiers' values, each EM session's
-- patterns, the prior's pairs) are Jinja loops inside dollar-quoted strings, whose
-- indentation sqlfluff's layout rule reads as the model's
-- noqa: disable=LT02

{%- set cfg = var('identity_fuzzy', {}) %}
{%- set comparisons = identity_fuzzy_comparisons() %}
{%- set records = ref('int_identity__records') %}
{%- set values = ref('int_identity__identifier_values') %}
{%- set terms = ref('int_identity__term_frequencies') %}
{%- set learner = ref('fn_identity__fuzzy_parameters') %}
{%- set run_id = identity_run_id() %}
{%- set max_block = cfg.get('max_block_size', 200) %}
{%- set within_source = cfg.get('within_source', true) %}
{%- set prior = cfg.get('prior', {}) %}
{%- set prior_rules = prior.get(
    'rules', [['first_name_key', 'last_name_key', 'birth_date_key']]
) %}
{%- set stored = adapter.get_relation(
    this.database, this.schema, this.identifier
) if execute else none %}
{%- set pairs = adapter.get_relation(
    this.database, this.schema, 'int_identity__fuzzy_pairs'
) if execute else none %}
{%- set learns = execute and identity_fuzzy_learns(
    incremental=pairs is not none and not flags.FULL_REFRESH
) %}

{#- u: the levels of random pairs of records (random() seeded by identity.fuzzy_parameters) #}
{%- set random_pairs %}
            with pairs as materialized (
                select
                    1 + floor(random() * total.records)::bigint as x,
                    1 + floor(random() * total.records)::bigint as y
                from generate_series(1, {{ cfg.get('random_pairs_for_u', 300000) }})
                cross join (select count(*) as records from {{ records }}) as total
            )
            select {{ identity_fuzzy_levels('a', 'b') }} as levels
            from pairs
            inner join {{ records }} as a on pairs.x = a.record_num
            inner join {{ records }} as b on pairs.y = b.record_num
            where pairs.x <> pairs.y
{%- endset %}

{#- an identifier's exact u: its linkable values, and the records holding any value #}
{%- set identifier_values %}
{%- for comparison in comparisons if comparison.get('identifier') %}
            select
                {{ comparisons.index(comparison) + 1 }} as comp,
                v.records_count,
                v.people_count,
                totals.records as records_total
            from {{ values }} as v
            cross join (
                select records from {{ terms }}
                where term_column = '{{ comparison.column }}' and term = ''
            ) as totals
            where v.identifier_type = '{{ comparison.identifier }}' and v.is_linkable
            {{- '\n            union all' if not loop.last }}
{%- endfor %}
{%- endset %}

{#- lambda: the pairs agreeing on any prior rule, over the share of all matches those rules
    are thought to find (recall), over all the pairs the stage may compare #}
{%- set prior_share %}
            select
                count(*) / {{ prior.get('recall', 0.9) }} / greatest((
                    select
                        {%- if within_source %}
                        count(*)::float8 * (count(*) - 1) / 2
                        {%- else %}
                        (count(*)::float8 * count(*) - (
                            select sum(n * n)
                            from (select count(*)::float8 as n from {{ records }} group by source) as s
                        )) / 2
                        {%- endif %}
                    from {{ records }}
                ), 1)
            from (
                {%- for rule in prior_rules %}
                select a.record_num as x, b.record_num as y
                from {{ records }} as a
                inner join {{ records }} as b
                    on
                        {% for column in rule %}a.{{ column }} = b.{{ column }} and {% endfor %}
                        a.record_num < b.record_num
                        {%- if not within_source %} and a.source <> b.source{% endif %}
                {{ 'union' if not loop.last }}
                {%- endfor %}
            ) as agreeing
{%- endset %}

with

{%- if learns %}

parameters as (

    select
        learnt.comp,
        learnt.lvl,
        learnt.m,
        learnt.u,
        learnt.lambda,
        {{ run_id }} as learnt_run
    from
        {{ learner }}(
            $random_pairs${{ random_pairs }}
            $random_pairs$,
            $identifier_values${{ identifier_values }}
            $identifier_values$,
            -- m: one EM session per rule of em_sessions (the comparisons it uses ignored)
            jsonb_build_array(
                {%- for rule in cfg.get('em_sessions', []) %}
                {%- set ignored = identity_fuzzy_blocked_comparisons(rule) %}
                jsonb_build_object(
                    'ignore',
                    jsonb_build_array(
                        {%- for comparison in comparisons if comparison.name in ignored %}
                        {{ comparisons.index(comparison) + 1 }}{{ ',' if not loop.last }}
                        {%- endfor %}
                    ),
                    'patterns',
                    $patterns$
            -- EM session {{ loop.index }}: pairs agreeing on {{ rule | join(', ') }}
            with sampled as (
                select
                    *,
                    count(*) over (partition by {{ rule | join(', ') }}) as block_size
                from {{ records }}
                where
                    {{ rule | join(' is not null and ') }} is not null
                    and (abs(hashint8(record_num)) % 1000000) < (
                        select
                            least(
                                1.0,
                                {{ cfg.get('em_max_records', 200000) }}::float8
                                / greatest(count(*), 1)
                            )
                        from {{ records }}
                    ) * 1000000
            )
            select {{ identity_fuzzy_levels('a', 'b', ignored) }} as levels, count(*)::float8 as n
            from sampled as a
            inner join sampled as b
                on
                    {% for column in rule %}a.{{ column }} = b.{{ column }} and {% endfor %}
                    a.record_num < b.record_num
                    {%- if not within_source %} and a.source <> b.source{% endif %}
            where a.block_size <= {{ max_block }}
            group by 1
                    $patterns$
                ){{ ',' if not loop.last }}
                {%- endfor %}
            ),
            $prior${{ prior_share }}
            $prior$,
            {{ comparisons | length }},
            {{ cfg.get('em_iterations', 25) }},
            0.4242
        ) as learnt

),
{%- else %}

-- the stored parameters, kept
parameters as (

    select
        stored.comp,
        stored.lvl,
        stored.m,
        stored.u,
        stored.lambda,
        {%- if stored and 'learnt_run' in (
            adapter.get_columns_in_relation(stored) | map(attribute='name') | list
        ) %}
        stored.learnt_run
        {%- else %}
        cast(null as text) as learnt_run
        {%- endif %}
    from {{ this }} as stored

),
{%- endif %}

final as (

    select
        comp,
        lvl,
        m,
        u,
        lambda,
        '{{ identity_fuzzy_settings_key() }}' as settings,  -- noqa: RF04
        learnt_run
    from parameters

)

select * from final
