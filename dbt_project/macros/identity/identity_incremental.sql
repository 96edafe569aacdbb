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
    Pre-hook of int_identity__records: the term-frequency and identifier columns of the
    records this run changes or deletes, as they were (int_identity__removed_terms), so
    int_identity__term_frequencies can count the values they held again.
#}
{% macro identity_removed_terms_pre_hook() -%}
    {%- set columns = identity_fuzzy_tf_columns() + identity_fuzzy_tf_columns(totals_only=true) %}
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
    The records whose fuzzy pairs a run recomputes: the touched records and every record
    of a deterministic component the run recomputed. A component that split (or joined)
    changes which of its pairs the fuzzy stage must compare, even between two records
    that did not change themselves.
#}
{% macro identity_fuzzy_scope() -%}
    select record_num from {{ ref('int_identity__deterministic_components') }}
    where run_id = {{ identity_run_id() }}
    union
    {{ identity_touched_records() }}
{%- endmacro %}

{#
    Pre-hook (incremental runs): the fuzzy scope as temp table _fz_scope, indexed and
    analysed, so the planner knows it is small (run_id = <this run> alone would be
    guessed at half the table) and drives the block lookups from it.
#}
{% macro identity_fuzzy_scope_table() -%}
    {%- if is_incremental() -%}
    drop table if exists _fz_scope;
    create temp table _fz_scope as {{ identity_fuzzy_scope() }};
    create unique index on _fz_scope (record_num);
    analyze _fz_scope;
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#
    Hook: delete this model's pairs (record_num_a, record_num_b) with a record in the fuzzy
    scope (_fz_scope); two deletes, each an index scan on an array of record_nums (a join
    would be hashed against a scan of millions of pairs).
#}
{% macro identity_delete_scope_pairs() -%}
    {%- if is_incremental() -%}
        {%- for column in ['record_num_a', 'record_num_b'] %}
    delete from {{ this }}
    where {{ column }} = any(array(select scope.record_num from _fz_scope as scope));
        {%- endfor %}
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
{% macro identity_vacuum_analyze() -%}
    {%- if is_incremental() -%}
        select 1
    {%- else -%}
        vacuum (analyze) {{ this }}
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
