{#
    Term-frequency drift on incremental runs (issue 13: the incremental path stays exact).
    Each candidate pair keeps the weight it was weighed with
    (int_identity__fuzzy_candidates.match_weight); each run keeps how far it may have moved
    the weights of the pairs it did not touch (int_identity__fuzzy_drift), and weighs
    again the stored pairs that its term frequencies may carry across the threshold.
#}

{#
    The stored parameters (int_identity__fuzzy_parameters) as one row of weights in
    bits, for int_identity__fuzzy_candidates to weigh its pairs as it writes them: prior
    (log2 of lambda's odds), w_<comparison>_<level> (log2 m / u) and log2_u_<comparison>
    (its exact level's u, which a term frequency replaces: macro
    identity_fuzzy_tf_adjustment). The parameters that int_identity__fuzzy_pairs weighs
    with when it does not learn them (macro identity_fuzzy_learns).
#}
{% macro identity_fuzzy_stored_weights(parameters) -%}
    select
        ln(min(lambda) / (1 - min(lambda))) / ln(2) as prior,
        {%- for comparison in identity_fuzzy_comparisons() %}
        {%- set comp = loop.index %}
        {%- for level in range(1, 5) %}
        coalesce(max(ln(m / u) / ln(2)) filter (where comp = {{ comp }} and lvl = {{ level }}), 0)
            as w_{{ comp }}_{{ level }},
        {%- endfor %}
        max(ln(u) / ln(2)) filter (where comp = {{ comp }} and lvl = 4) as log2_u_{{ comp }}
        {{- ',' if not loop.last }}
        {%- endfor %}
    from {{ parameters }}
{%- endmacro %}

{# A pair's match weight from its levels, its term frequencies and a row of
   identity_fuzzy_stored_weights (`weights`): what int_identity__fuzzy_pairs computes. #}
{% macro identity_fuzzy_weight(levels, term_frequencies, weights) -%}
    (
        {{ weights }}.prior
        {%- for comparison in identity_fuzzy_comparisons() %}
        {%- set comp = loop.index %}
        + case {{ levels }}[{{ comp }}]
            {%- for level in range(1, 5) %}
            when {{ level }} then {{ weights }}.w_{{ comp }}_{{ level }}
            {%- endfor %}
            else 0
        end
        {%- endfor %}
        + {{ identity_fuzzy_tf_adjustment(term_frequencies, weights) }}
    )
{%- endmacro %}

{# The indexes of int_identity__fuzzy_candidates (`relation`): by each record of a pair,
   and (run_id, match_weight): a run's rows, and the weights a later run looks up. #}
{% macro identity_fuzzy_candidates_indexes(relation) -%}
    {%- set names = identity_fuzzy_candidates_index_names(relation) %}
    create index if not exists {{ names[0] }} on {{ relation }} (record_num_a);
    create index if not exists {{ names[1] }} on {{ relation }} (record_num_b);
    create index if not exists {{ names[2] }} on {{ relation }} (run_id, match_weight)
{%- endmacro %}

{% macro identity_fuzzy_candidates_index_names(relation) -%}
    {{ return([
        relation.identifier ~ '_a_idx', relation.identifier ~ '_b_idx',
        relation.identifier ~ '_run_weight_idx',
    ]) }}
{%- endmacro %}

{#
    Pre-hook of int_identity__fuzzy_candidates, before the scope is built: the stored
    candidate pairs of records this run did not touch whose decision the run's term
    frequencies may have changed (temp table _fz_drift_pairs; the model writes each again,
    as a full run would, macro identity_fuzzy_drift_rewrite). A pair's weight counts, for
    each exact agreement of a term-frequency
    comparison, -log2 f with f = n / N (its value's records over the column's); the run
    moves N for every value and n for the values its records hold or held. So:
    - a value whose frequency moved by more than `tf_drift_exact_shift` bits (0.05: the
      log2 change of its count less that of N; the values of a few records, a third
      Eliseu) and every identifier value recounted: each stored pair agreeing on it is
      weighed again;
    - every other stored pair moved by at most the run's bound, per comparison: log2 of
      N's change for a value that did not move, minus the deviation of one that moved by
      less (a common name, a city: their n moves with N). Table int_identity__fuzzy_drift keeps each run's
      bounds (lo, hi, per comparison, in bits); a pair weighed by run s (its run_id) has
      moved, since, by at most the sums of the bounds of the runs after s over the
      comparisons it agrees on exactly (term_frequencies not null); it is weighed again
      when that could put it on the other side of threshold_weight. The candidates'
      match_weight (filled by int_identity__fuzzy_pairs' post-hook) and an index on
      (run_id, match_weight) find them without reading the others.
    m, u and lambda are not moved by incremental runs (macro identity_fuzzy_learns).
    A full run starts the table again. Pairs written before the table existed (no run
    of theirs in it) are not looked at: after upgrading, a full refresh makes them exact.
#}
{% macro identity_fuzzy_drift_build() -%}
    {%- set drift_table = this.schema ~ '.int_identity__fuzzy_drift' %}
    {%- set cfg = var('identity_fuzzy', {}) %}
    {%- set threshold = cfg.get('threshold_weight', 4.0) %}
    {%- set exact_shift = cfg.get('tf_drift_exact_shift', 0.05) %}
    {%- set comparisons = identity_fuzzy_comparisons() %}
    {%- set size = comparisons | length %}
    {%- set records = ref('int_identity__records') %}
    {%- set terms = ref('int_identity__term_frequencies') %}
    {%- set zeros = 'array_fill(0::float8, array[' ~ size ~ '])' %}
    drop table if exists _fz_drift_pairs;
    create temp table _fz_drift_pairs (record_num_a bigint, record_num_b bigint, why text);
    {%- if not is_incremental() %}
    drop table if exists {{ drift_table }};
    create table {{ drift_table }} (
        run_id text, seq bigint, lo float8 [], hi float8 [],
        moved_values bigint, exact_values bigint, exact_pairs bigint, band_pairs bigint
    );
    insert into {{ drift_table }}
        select {{ identity_run_id() }}, 0, {{ zeros }}, {{ zeros }}, 0, 0, 0, 0;
    {%- elif cfg.get('enabled', true) and identity_fuzzy_available() %}
    {#- a table from before match_weight (its first run after upgrading) has no weights #}
    {%- set has_weights = 'match_weight' in (
        adapter.get_columns_in_relation(this) | map(attribute='name') | list
    ) %}
    create table if not exists {{ drift_table }} (
        run_id text, seq bigint, lo float8 [], hi float8 [],
        moved_values bigint, exact_values bigint, exact_pairs bigint, band_pairs bigint
    );
    -- the records this run wrote (new or changed), and those it removed or replaced
    -- (int_identity__removed_terms, kept by int_identity__records' pre-hook)
    drop table if exists _fz_arrived;
    create temp table _fz_arrived as
        select * from {{ records }}
        where record_num in (
            select record_num from {{ ref('int_identity__record_changes') }}
            where change <> 'deleted'
        );
    -- each column's total (identifiers too), before and after
    drop table if exists _fz_tf_totals;
    create temp table _fz_tf_totals as
        {%- for comparison in comparisons if comparison.get('tf') or comparison.get('identifier') %}
        {%- set column = comparison.column %}
        select
            {{ comparisons.index(comparison) + 1 }} as comp,
            totals.records as n_new,
            totals.records - (select count({{ column }}) from _fz_arrived)
            + (select count({{ column }}) from {{ this.schema }}.int_identity__removed_terms)
                as n_old
        from {{ terms }} as totals
        where totals.term_column = '{{ column }}' and totals.term = ''
        {{ 'union all' if not loop.last }}
        {%- endfor %};
    -- each term-frequency column's values whose count the run moved, before and after,
    -- per comparison (1-based, as in levels), and how far their frequency moved in bits
    -- (deviation: the log2 change of n less that of N; a common value moves with N, so
    -- hardly at all): a stored pair of records the run did not touch agrees on a value
    -- both hold before and after, so only values held by two records or more, before and
    -- after, have one
    drop table if exists _fz_tf_moved;
    create temp table _fz_tf_moved as
        with
        {%- for comparison in comparisons if comparison.get('tf') %}
        {%- set column = comparison.column %}
        counted_{{ loop.index }} as (
            select
                moved.term,
                terms.records as n_new,
                terms.records - moved.gained + moved.lost as n_old
            from (
                select
                    coalesce(gained.term, lost.term) as term,
                    coalesce(gained.n, 0) as gained,
                    coalesce(lost.n, 0) as lost
                from (
                    select {{ column }} as term, count(*) as n from _fz_arrived
                    where {{ column }} is not null group by {{ column }}
                ) as gained
                full outer join (
                    select {{ column }} as term, count(*) as n
                    from {{ this.schema }}.int_identity__removed_terms
                    where {{ column }} is not null group by {{ column }}
                ) as lost on gained.term = lost.term
                where coalesce(gained.n, 0) <> coalesce(lost.n, 0)
            ) as moved
            inner join {{ terms }} as terms
                on terms.term_column = '{{ column }}' and terms.term = moved.term
        ),
        {%- endfor %}
        moved as (
            {%- for comparison in comparisons if comparison.get('tf') %}
            select {{ comparisons.index(comparison) + 1 }} as comp, * from counted_{{ loop.index }}
            {{ 'union all' if not loop.last }}
            {%- endfor %}
        )
        select
            moved.*,
            case
                when moved.n_old >= 2 and moved.n_new >= 2 and totals.n_old > 0
                    then
                        ln(moved.n_new::float8 / moved.n_old) / ln(2)
                        - ln(totals.n_new::float8 / totals.n_old) / ln(2)
            end as deviation
        from moved
        inner join _fz_tf_totals as totals on moved.comp = totals.comp;
    -- the run's bounds per comparison, in bits of weight: log2 of N's change for a value
    -- that did not move; less the value's own log2 change (minus its deviation) for one
    -- whose frequency moved by at most tf_drift_exact_shift
    insert into {{ drift_table }} (run_id, seq, lo, hi, moved_values, exact_values)
        with
        columns as (
            select
                totals.comp,
                case
                    when totals.n_old > 0 and totals.n_new > 0
                        then ln(totals.n_new::float8 / totals.n_old) / ln(2)
                    else 0
                end as n_shift
            from _fz_tf_totals as totals
        ),
        bounded as (
            select
                columns.comp,
                least(columns.n_shift, min(-moved.deviation)) as lo,
                greatest(columns.n_shift, max(-moved.deviation)) as hi
            from columns
            left join _fz_tf_moved as moved
                on
                    moved.comp = columns.comp
                    and abs(moved.deviation) <= {{ exact_shift }}
            group by columns.comp, columns.n_shift
        )
        select
            {{ identity_run_id() }},
            coalesce((select max(seq) from {{ drift_table }}), 0) + 1,
            array[
                {%- for comparison in comparisons %}
                coalesce((select lo from bounded where comp = {{ loop.index }}), 0)
                {{- ',' if not loop.last }}
                {%- endfor %}
            ]::float8 [],
            array[
                {%- for comparison in comparisons %}
                coalesce((select hi from bounded where comp = {{ loop.index }}), 0)
                {{- ',' if not loop.last }}
                {%- endfor %}
            ]::float8 [],
            (select count(*) from _fz_tf_moved where deviation is not null),
            (select count(*) from _fz_tf_moved where abs(deviation) > {{ exact_shift }})
        where {{ identity_run_id() }} is not null;
    -- the records holding a value that moved more (or an identifier value recounted),
    -- per comparison; their stored pairs agreeing exactly on it are weighed again
    insert into _fz_drift_pairs (record_num_a, record_num_b, why)
        with
        {%- for comparison in comparisons if comparison.get('tf') or comparison.get('identifier') %}
        {%- set position = comparisons.index(comparison) + 1 %}
        holders_{{ position }} as (
            {%- if comparison.get('tf') %}
            select record_num from {{ records }}
            where {{ comparison.column }} = any(array(
                select term from _fz_tf_moved
                where comp = {{ position }} and abs(deviation) > {{ exact_shift }}
            ))
            {%- else %}
            select identifiers.record_num
            from {{ ref('int_identity__identifiers') }} as identifiers
            where
                identifiers.identifier_type = '{{ comparison.identifier }}'
                and identifiers.value_id = any(array(
                select recounted.value_id from {{ ref('int_identity__identifiers') }} as recounted
                where recounted.record_num in (
                    select record_num from {{ ref('int_identity__record_changes') }}
                )
                union
                select value_id from {{ this.schema }}.int_identity__removed_identifiers
            ))
            {%- endif %}
        ),
        {%- endfor %}
        exact as (
            {%- for comparison in comparisons if comparison.get('tf') or comparison.get('identifier') %}
            {%- set position = comparisons.index(comparison) + 1 %}
            {%- for side in ['record_num_a', 'record_num_b'] %}
            select pairs.record_num_a, pairs.record_num_b
            from {{ this }} as pairs
            where
                pairs.{{ side }} = any(array(select record_num from holders_{{ position }}))
                and pairs.term_frequencies[{{ position }}] is not null
            {{ 'union' if not loop.last }}
            {%- endfor %}
            {{ 'union' if not loop.last }}
            {%- endfor %}
        ),
        -- per stored run: the bounds summed over the runs after it (this one included)
        since as (
            select
                earlier.run_id,
                {%- for comparison in comparisons %}
                coalesce(sum(later.lo[{{ loop.index }}]), 0) as lo_{{ loop.index }},
                coalesce(sum(later.hi[{{ loop.index }}]), 0) as hi_{{ loop.index }}
                {{- ',' if not loop.last }}
                {%- endfor %}
            from {{ drift_table }} as earlier
            inner join {{ drift_table }} as later on later.seq > earlier.seq
            group by earlier.run_id
        ),
        reach as (
            select
                since.*,
                0
                {%- for comparison in comparisons %} + least(lo_{{ loop.index }}, 0){% endfor %}
                    as lowest,
                0
                {%- for comparison in comparisons %} + greatest(hi_{{ loop.index }}, 0){% endfor %}
                    as highest
            from since
        ),
        band as (
            {%- if not has_weights %}
            select cast(null as bigint) as record_num_a, cast(null as bigint) as record_num_b
            where false
            {%- else %}
            select pairs.record_num_a, pairs.record_num_b
            from reach
            cross join lateral (
                select
                    stored.record_num_a,
                    stored.record_num_b,
                    stored.match_weight,
                    0
                    {%- for comparison in comparisons %}
                    + case
                        when stored.term_frequencies[{{ loop.index }}] is not null
                            then reach.lo_{{ loop.index }} else 0
                    end
                    {%- endfor %} as lo,
                    0
                    {%- for comparison in comparisons %}
                    + case
                        when stored.term_frequencies[{{ loop.index }}] is not null
                            then reach.hi_{{ loop.index }} else 0
                    end
                    {%- endfor %} as hi
                from {{ this }} as stored
                where
                    stored.run_id = reach.run_id
                    and stored.match_weight >= {{ threshold }} - 1e-6 - reach.highest
                    and stored.match_weight < {{ threshold }} + 1e-6 - reach.lowest
                -- read per stored run through the (run_id, match_weight) index: pulled up
                -- into a join, the planner hashes a scan of every stored pair instead
                offset 0
            ) as pairs
            where
                -- below the threshold and possibly over it now, or over and possibly below
                (
                    pairs.match_weight < {{ threshold }} + 1e-6
                    and pairs.match_weight + pairs.hi >= {{ threshold }} - 1e-6
                )
                or (
                    pairs.match_weight >= {{ threshold }} - 1e-6
                    and pairs.match_weight + pairs.lo < {{ threshold }} + 1e-6
                )
            {%- endif %}
        )
        select record_num_a, record_num_b, 'exact' as why from exact
        union all
        select record_num_a, record_num_b, 'band' as why from band;
    update {{ drift_table }} set
        exact_pairs = (select count(*) from _fz_drift_pairs where why = 'exact'),
        band_pairs = (select count(*) from _fz_drift_pairs where why = 'band')
    where run_id = {{ identity_run_id() }};
    {%- endif %}
{%- endmacro %}

{#
    Pre-hook of int_identity__fuzzy_candidates, after its scope's pairs are deleted: the
    drift pairs (_fz_drift_pairs) of two untouched records are deleted too (those inside
    the scope were, and are written again if still compared), and kept in
    int_identity__fuzzy_rewritten (and temp table _fz_rewritten, analysed): the model
    writes each again from the records, as a full run writes it (same levels, the run's
    term frequencies, its weight), without comparing the other pairs of their blocks;
    int_identity__fuzzy_pairs replaces their decisions (macro
    identity_fuzzy_rewritten_pairs_delete). Their records are untouched, their blocks and
    components unchanged: each is still a candidate.
#}
{% macro identity_fuzzy_drift_rewrite() -%}
    {%- set rewritten = this.schema ~ '.int_identity__fuzzy_rewritten' %}
    drop table if exists {{ rewritten }};
    create table {{ rewritten }} (record_num_a bigint, record_num_b bigint);
    {%- if is_incremental() %}
    insert into {{ rewritten }}
        select distinct drift.record_num_a, drift.record_num_b
        from _fz_drift_pairs as drift
        left join _fz_scope as scope_a on drift.record_num_a = scope_a.record_num
        left join _fz_scope as scope_b on drift.record_num_b = scope_b.record_num
        where
            -- the scope recomputes the pairs of a touched record
            not coalesce(scope_a.touched, false)
            and not coalesce(scope_b.touched, false);
    delete from {{ this }} as pairs
    using {{ rewritten }} as rewritten
    where
        pairs.record_num_a = rewritten.record_num_a
        and pairs.record_num_b = rewritten.record_num_b;
    {%- endif %}
    drop table if exists _fz_rewritten;
    create temp table _fz_rewritten as select * from {{ rewritten }};
    analyze _fz_rewritten
{%- endmacro %}

{#
    Pre-hook of int_identity__fuzzy_pairs (incremental): the stored decisions of the pairs
    int_identity__fuzzy_candidates wrote again for their term frequencies
    (int_identity__fuzzy_rewritten) are deleted, as this run's candidates hold them again.
    The records of a link among them join int_identity__fuzzy_scope (touched false: the
    fuzzy stage has used its scope by now), so int_identity__clusters recomputes the
    clusters it held together; with one_to_one_across_sources they are re-ranked
    (_fz_rerank: a record that lost a pair).
#}
{% macro identity_fuzzy_rewritten_pairs_delete() -%}
    {%- if is_incremental() %}
    {%- set scope_table = this.schema ~ '.int_identity__fuzzy_scope' %}
    {%- set one_to_one = var('identity_fuzzy', {}).get('one_to_one_across_sources', false) %}
    with
    removed as (
        delete from {{ this }} as pairs
        using {{ this.schema }}.int_identity__fuzzy_rewritten as rewritten
        where
            pairs.record_num_a = rewritten.record_num_a
            and pairs.record_num_b = rewritten.record_num_b
        returning pairs.record_num_a, pairs.record_num_b, pairs.is_match
    ),
    {%- if one_to_one %}
    reranked as (
        insert into _fz_rerank (record_num)
        select record_num_a from removed
        union
        select record_num_b from removed
    ),
    {%- endif %}
    linked as (
        select record_num_a as record_num from removed where is_match
        union
        select record_num_b from removed where is_match
    )
    insert into {{ scope_table }} (record_num, touched)
    select linked.record_num, false from linked
    where linked.record_num not in (select scoped.record_num from {{ scope_table }} as scoped)
    {%- else %}
    select 1
    {%- endif %}
{%- endmacro %}
