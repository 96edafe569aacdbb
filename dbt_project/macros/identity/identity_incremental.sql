{#
    Helpers of the incremental identity run. The records a run touches are those of
    int_identity__record_changes (new, changed, deleted); each model after it recomputes
    only what they reach and marks the rows it wrote with the run's id (identity_run_id).
#}

{# Hook: delete this model's rows whose `column` is the `changes_column` of a change of the given kinds. #}
{% macro identity_delete_changed(column, changes_column, kinds) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ column }} in (
            select {{ changes_column }} from {{ ref('int_identity__record_changes') }}
            where change in ('{{ kinds | join("', '") }}')
        )
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# The record_nums this run touched: new, changed or deleted. #}
{% macro identity_touched_records() -%}
    select touched.record_num from {{ ref('int_identity__record_changes') }} as touched
{%- endmacro %}

{#
    Pre-hook of int_identity__identifiers: keep the (record, value) edges the touched
    records had (int_identity__removed_identifiers: their values need recounting and
    their components recomputing), then delete them.
#}
{% macro identity_identifiers_pre_hook() -%}
    drop table if exists {{ this.schema }}.int_identity__removed_identifiers;
    {%- if is_incremental() %}
    create table {{ this.schema }}.int_identity__removed_identifiers as
        select record_num, value_id from {{ this }}
        where record_num in ({{ identity_touched_records() }});
    delete from {{ this }} where record_num in ({{ identity_touched_records() }});
    {%- else %}
    create table {{ this.schema }}.int_identity__removed_identifiers (record_num bigint, value_id bigint);
    {%- endif %}
{%- endmacro %}

{#
    Pre-hook of int_identity__records: the term-frequency, identifier and blocking
    columns of the records this run changes or deletes, as they were
    (int_identity__removed_terms), so int_identity__term_frequencies can count the values
    they held again and the fuzzy stage can find the blocks they left.
#}
{% macro identity_removed_terms_pre_hook() -%}
    {%- set columns = identity_fuzzy_tf_columns() + identity_fuzzy_tf_columns(totals_only=true) %}
    {%- for column in identity_fuzzy_blocking_columns() if column not in columns %}
        {%- do columns.append(column) %}
    {%- endfor %}
    drop table if exists {{ this.schema }}.int_identity__removed_terms;
    {%- if is_incremental() %}
    create table {{ this.schema }}.int_identity__removed_terms as
        select record_num, {{ columns | join(', ') }} from {{ this }}
        where record_num in (
            select touched.record_num from {{ ref('int_identity__record_changes') }} as touched
            where change in ('changed', 'deleted')
        );
    {%- else %}
    create table {{ this.schema }}.int_identity__removed_terms (
        record_num bigint{% for column in columns %}, {{ column }} text{% endfor %}
    );
    {%- endif %}
{%- endmacro %}

{# The record columns the fuzzy stage's blocking rules use, each once. #}
{% macro identity_fuzzy_blocking_columns() -%}
    {%- set cfg = var('identity_fuzzy', {}) %}
    {%- set columns = [] %}
    {%- if cfg.get('enabled', true) %}
        {%- for rule in cfg.get('blocking_rules', []) %}{% for column in rule if column not in columns %}
            {%- do columns.append(column) %}
        {%- endfor %}{% endfor %}
    {%- endif %}
    {{ return(columns) }}
{%- endmacro %}

{#
    The identity run's id: the invocation that built int_identity__record_changes. Not
    each model's own invocation_id: Cosmos runs every model as its own dbt invocation.
    Null when nothing changed (then no model recomputes anything). A subquery, not a
    literal read at run time: the planner then guesses "many rows" and hashes, where
    a literal it has no statistics for would be guessed at one row and looped over.
#}
{% macro identity_run_id() -%}
    (select min(run_changes.run_id) as run_id from {{ ref('int_identity__record_changes') }} as run_changes)
{%- endmacro %}

{# A record's fingerprint: md5 of its raw fields (columns of identity_source_records). #}
{% macro identity_fingerprint() -%}
    md5(cast(row(
        source, source_record_id, email, email_sha256, phone, wa_id, cpf, first_name,
        last_name, full_name, birth_date, city, state, postcode, address,
        accepts_email_marketing, created_at, updated_at, platform_ids, social_handles
    ) as text))
{%- endmacro %}

{#
    Pre-hook of int_identity__fuzzy_candidates (incremental runs): the fuzzy stage's
    scope, kept as table int_identity__fuzzy_scope (record_num, touched) for
    int_identity__fuzzy_pairs and int_identity__clusters, and as temp table _fz_scope,
    indexed and analysed (so the planner knows it is small and drives the block lookups
    from it). A run recomputes every pair of a `touched` record, and the pairs whose two
    records are both in the scope (a stored one still compared keeps its row: macro
    identity_delete_scope_pairs):
    - touched: the records the run touched (new, changed, deleted), and the records
      holding an identifier value whose guard decision the run changed (a phone that now
      links nobody: the pair's levels read the guarded value, whoever the other record is);
    - in the scope only: every record of a deterministic component the run recomputed
      (a component that split or joined changes which of its pairs are compared: pairs
      inside the old or the new components, never with a record outside them, whose
      component did not change), and every record of a block whose size crossed
      max_block_size (a block that grew past it loses its pairs, one that shrank under it
      gains them, between records that did not change). A block's size before the run
      is its size now, less the touched records it holds now, plus those it held
      (int_identity__removed_terms); its size now is counted through the rule's index,
      reading at most max_block_size + 1 + (the records it gained) entries.
#}
{% macro identity_fuzzy_scope_build() -%}
    {%- set scope_table = this.schema ~ '.int_identity__fuzzy_scope' %}
    {%- set cfg = var('identity_fuzzy', {}) %}
    {%- set max_block = cfg.get('max_block_size', 200) %}
    {%- set rules = cfg.get('blocking_rules', []) if cfg.get('enabled', true) else [] %}
    {%- set records = ref('int_identity__records') %}
    {{ identity_fuzzy_drift_build() }}
    drop table if exists {{ scope_table }};
    {%- if is_incremental() %}
    create table {{ scope_table }} as
        with
        changes as (
            select record_num, change from {{ ref('int_identity__record_changes') }}
        ),
        -- the values whose guard decision this run changed (recounted: held by a touched record)
        flipped as (
            select value_id from {{ ref('int_identity__identifier_values') }}
            where
                was_linkable is not null
                and is_linkable is distinct from was_linkable
                and value_id in (
                    select value_id from {{ ref('int_identity__identifiers') }}
                    where record_num in (select record_num from changes)
                    union
                    select value_id from {{ this.schema }}.int_identity__removed_identifiers
                )
        ),
        touched as (
            select record_num from changes
            union
            select record_num from {{ ref('int_identity__identifiers') }}
            where value_id in (select value_id from flipped)
        ),
        arrived as (
            select * from {{ records }}
            where record_num in (select record_num from changes where change <> 'deleted')
        )
        {%- for rule in rules %}
        , crossing_{{ loop.index }} as (
            with moved as (
                select
                    {%- for column in rule %}
                    coalesce(gained.{{ column }}, lost.{{ column }}) as {{ column }},
                    {%- endfor %}
                    coalesce(gained.n, 0) as gained,
                    coalesce(lost.n, 0) as lost
                from (
                    select {{ rule | join(', ') }}, count(*) as n from arrived
                    where {{ rule | join(' is not null and ') }} is not null
                    group by {{ rule | join(', ') }}
                ) as gained
                full outer join (
                    select {{ rule | join(', ') }}, count(*) as n
                    from {{ this.schema }}.int_identity__removed_terms
                    where {{ rule | join(' is not null and ') }} is not null
                    group by {{ rule | join(', ') }}
                ) as lost
                    on
                    {%- for column in rule %}
                        gained.{{ column }} = lost.{{ column }}{{ ' and' if not loop.last }}
                    {%- endfor %}
                where coalesce(gained.n, 0) <> coalesce(lost.n, 0)
            ),
            crossed as (
                select moved.* from moved
                cross join lateral (
                    select count(*) as block_size
                    from (
                        select 1 as found from {{ records }} as sized
                        where
                        {%- for column in rule %}
                            sized.{{ column }} = moved.{{ column }}{{ ' and' if not loop.last }}
                        {%- endfor %}
                        limit {{ max_block + 1 }} + moved.gained
                    ) as limited
                ) as sizes
                where
                    (sizes.block_size <= {{ max_block }})
                    <> (sizes.block_size - moved.gained + moved.lost <= {{ max_block }})
            )
            select members.record_num
            from crossed
            inner join {{ records }} as members
                on
                {%- for column in rule %}
                    members.{{ column }} = crossed.{{ column }}{{ ' and' if not loop.last }}
                {%- endfor %}
        )
        {%- endfor %}
        select record_num, bool_or(touched) as touched
        from (
            select record_num, true as touched from touched
            union all
            select record_num, false from {{ ref('int_identity__deterministic_components') }}
            where run_id = {{ identity_run_id() }}
            {%- for rule in rules %}
            union all
            select record_num, false from crossing_{{ loop.index }}
            {%- endfor %}
        ) as scoped
        group by record_num;
    {%- else %}
    create table {{ scope_table }} (record_num bigint, touched boolean);
    {%- endif %}
    {{ identity_fuzzy_scope_table() }}
{%- endmacro %}

{#
    Pre-hook (incremental runs): the fuzzy scope (int_identity__fuzzy_scope, made by
    identity_fuzzy_scope_build) as temp table _fz_scope, indexed and analysed, so the
    planner knows it is small (run_id = <this run> alone would be guessed at half the
    table) and drives the lookups from it.
#}
{% macro identity_fuzzy_scope_table() -%}
    {%- if is_incremental() -%}
    drop table if exists _fz_scope;
    create temp table _fz_scope as
        select record_num, touched from {{ this.schema }}.int_identity__fuzzy_scope;
    create unique index on _fz_scope (record_num);
    analyze _fz_scope;
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#
    Hook: delete this model's pairs (record_num_a, record_num_b) that the run recomputes:
    those with a touched record of the fuzzy scope (_fz_scope), and those with both
    records in it; each delete an index scan on an array of record_nums (a join would be
    hashed against a scan of millions of pairs). A pair of two untouched records of the
    scope keeps its row when it is still a candidate (its levels read records the run
    did not change; the term-frequency drift of its weight is decided apart, macro
    identity_fuzzy_drift_rewrite): int_identity__fuzzy_candidates keeps those it deletes
    in temp table _fz_kept (`kept`) and writes back the ones still compared, and
    int_identity__fuzzy_pairs (`spare`: the candidates table) keeps the decision of a pair
    whose candidate row kept its older run_id.
#}
{% macro identity_delete_scope_pairs(kept=none, spare=none) -%}
    {%- if is_incremental() -%}
        {%- for column in ['record_num_a', 'record_num_b'] %}
    delete from {{ this }}
    where {{ column }} = any(array(select scope.record_num from _fz_scope as scope where scope.touched));
        {%- endfor %}
        {%- if kept %}
    drop table if exists {{ kept }};
    create temp table {{ kept }} as
        select record_num_a, record_num_b, source_a, source_b, levels, term_frequencies,
            match_weight, run_id
        from {{ this }} where false;
    with removed as (
        {%- endif %}
    delete from {{ this }} as pairs
    where
        pairs.record_num_a = any(array(select scope.record_num from _fz_scope as scope))
        and pairs.record_num_b in (select scope.record_num from _fz_scope as scope)
        {%- if spare %}
        and not exists (
            select 1 as kept from {{ spare }} as candidates
            where
                candidates.record_num_a = pairs.record_num_a
                and candidates.record_num_b = pairs.record_num_b
                and candidates.run_id is distinct from {{ identity_run_id() }}
        )
        {%- endif %}
        {%- if kept %}
        returning
            pairs.record_num_a, pairs.record_num_b, pairs.source_a, pairs.source_b,
            pairs.levels, pairs.term_frequencies, pairs.match_weight, pairs.run_id
    )
    insert into {{ kept }} select * from removed;
    create index on {{ kept }} (record_num_a, record_num_b);
    analyze {{ kept }}
        {%- endif %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#
    Post-hook of int_identity__records: one btree index per blocking rule of the fuzzy
    stage (named by its columns), so an incremental run finds the blocks of its records
    by index lookups instead of reading every record once per rule.
#}
{% macro identity_blocking_indexes() -%}
    {%- set cfg = var('identity_fuzzy', {}) %}
    {%- if cfg.get('enabled', true) and cfg.get('blocking_rules') -%}
        {%- for rule in cfg.get('blocking_rules') %}
    create index if not exists {{ this.identifier }}_block_{{ local_md5(rule | join(',')) [:10] }}
        on {{ this }} ({{ rule | join(', ') }});
        {%- endfor %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#
    Post-hook of int_identity__records: an index on each term-frequency column that no
    blocking index starts with, so an incremental run counts a value's records
    (int_identity__term_frequencies) by an index scan.
#}
{% macro identity_term_indexes() -%}
    {%- set cfg = var('identity_fuzzy', {}) %}
    {%- set leading = [] %}
    {%- if cfg.get('enabled', true) %}
        {%- for rule in cfg.get('blocking_rules', []) %}{% do leading.append(rule[0]) %}{% endfor %}
    {%- endif %}
    {%- set missing = [] %}
    {%- for column in identity_fuzzy_tf_columns() if column not in leading %}
        {%- do missing.append(column) %}
    {%- endfor %}
    {%- if missing -%}
        {%- for column in missing %}
    create index if not exists {{ this.identifier }}_term_{{ column }} on {{ this }} ({{ column }});
        {%- endfor %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#
    Post-hook, after the commit: a full build vacuums and analyses its table, which sets
    the visibility map and the statistics at once, so autovacuum does not come for the
    million new rows while the next run is working. An incremental run changes a few
    rows of large tables: it leaves both to autovacuum.
#}
{% macro identity_vacuum_analyze(relation=none) -%}
    {%- if is_incremental() -%}
        select 1
    {%- else -%}
        vacuum (analyze) {{ relation or this }}
    {%- endif -%}
{%- endmacro %}

{#
    The temp table a model's pre-hook (a DO block) leaves, as a relation for the model's
    select: pg_temp.<name> when the model runs; when dbt only parses (execute is false,
    no hook ran), a typed stand-in with the same columns, `columns` as (name, type) pairs.
#}
{% macro identity_hook_result(name, columns) -%}
    {%- if execute -%}
        pg_temp.{{ name }}
    {%- else -%}
        (
            select
            {%- for column, type in columns %}
                cast(null as {{ type }}) as {{ column }}{{ ',' if not loop.last }}
            {%- endfor %}
        )
    {%- endif -%}
{%- endmacro %}

{#
    The fingerprint of the normalisation int_identity__records applies (md5, as a
    literal): the records model's code, the SQL each normalisation macro it calls renders
    (so their vars too, identity_email_provider_rules), and the checksums of the seeds it
    reads (nicknames, placeholder names). Each record keeps the fingerprint it was
    normalised under; int_identity__record_changes lists a record whose fingerprint is not
    this one as changed, so a run after a change to any of these normalises every record
    again, as a full refresh would (no --full-refresh needed). A macro that
    int_identity__records starts calling for a normalised column belongs in the list
    below (tests/identity/test_normalization_fingerprint.py checks the model's macros).
#}
{% macro identity_normalization_fingerprint() -%}
    {%- if not execute %}{{ return('') }}{% endif %}
    {%- set parts = [] %}
    {#- a unit test's context has no graph: its fingerprint is the macros' alone #}
    {%- set nodes = graph.get('nodes') or {} %}
    {%- set records = nodes.values()
        | selectattr('resource_type', 'equalto', 'model')
        | selectattr('name', 'equalto', 'int_identity__records') | list %}
    {%- for node in records %}
        {%- do parts.append(node.raw_code) %}
        {%- for parent in node.depends_on.nodes if parent.startswith('seed.') %}
            {%- do parts.append(parent ~ ':' ~ nodes[parent].checksum.checksum) %}
        {%- endfor %}
    {%- endfor %}
    {%- for name in identity_normalization_macros() %}
        {%- do parts.append(name ~ ':' ~ context[name]('x')) %}
    {%- endfor %}
    {{ return(local_md5(parts | join('\n'))) }}
{%- endmacro %}

{# The macros int_identity__records normalises columns with (each called with one column). #}
{% macro identity_normalization_macros() -%}
    {{ return([
        'identity_email', 'normalize_email', 'identity_email_domain_typos', 'normalize_phone',
        'normalize_cpf', 'normalize_name_key', 'normalize_social_handles',
        'identity_diminutive_base',
    ]) }}
{%- endmacro %}
