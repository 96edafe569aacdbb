{#
    Staging models incremental on the loader's `_sdc_batched_at`.

    A staging model whose rows are each a function of one raw row (a record, or the
    lines unnested from it) keeps the batch stamp of that raw row as `_loaded_at`, and
    on an incremental run reads only the raw rows loaded after the newest stamp it
    holds (staging_loaded_since). Its unique_key is the raw row's key (for unnested
    lines, their parent's: delete+insert replaces every line of a changed record), so
    an upserted raw row replaces what was built from it. Soft deletes
    (`_sdc_deleted_at`) arrive as such upserts. A raw row that is gone (a table the
    loader replaced, a record erased) takes its staging rows with it
    (staging_delete_gone, a post-hook). `dbt build --full-refresh` rebuilds from raw.
    A model of unnested lines also deletes, before it builds, the lines of every raw
    row loaded in this run (staging_delete_reloaded, a pre-hook): delete+insert alone
    replaces only the keys that yield lines, so a record changed to have none (an
    order with every line removed) would keep its old ones.
#}

{#- where-clause (or nothing, on a full build) for the model's raw source CTE -#}
{% macro staging_loaded_since(column='_sdc_batched_at') -%}
    {#- a table built before it kept _loaded_at is read whole, once -#}
    {%- set stamped = is_incremental() and relation_has_column(this, '_loaded_at') -%}
    {%- if stamped %}
    where
        {{ column }} > (
            select coalesce(max(_loaded_at), cast('-infinity' as timestamptz))
            from {{ this }}
        )
        or {{ column }} is null
    {%- endif %}
{%- endmacro %}


{#- pre-hook: the rows built from every raw row this run reads, lines or none -#}
{% macro staging_delete_reloaded(raw_relation, raw_key, model_key) -%}
    {#- one statement: its max(_loaded_at) is read before any row goes -#}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where {{ model_key }} in (
            select {{ raw_key }} from {{ raw_relation }}
            {{ staging_loaded_since() }}
        )
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}


{#- post-hook: the model's rows whose raw row is gone -#}
{% macro staging_delete_gone(raw_relation, raw_key, model_key) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} as built
        where not exists (
            select from {{ raw_relation }} as raw
            where raw.{{ raw_key }} = built.{{ model_key }}
        )
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}


{#- whether `relation` (built) has `column`: a table built before the column existed -#}
{% macro relation_has_column(relation, column) -%}
    {%- if not execute -%}
        {%- do return(false) -%}
    {%- elif relation is string -%}
        {#- a unit test's `this`: its fixture, which has the model's columns -#}
        {%- do return(true) -%}
    {%- endif -%}
    {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
    {%- do return(column in names) -%}
{%- endmacro %}


{#-
    Marts incremental on arrival (fct_orders, fct_interactions): a condition true for a
    row whose load stamp `loaded_at` (its staging rows' `_loaded_at`) is newer than the
    newest `_loaded_at` this model holds for `partition` (its rows where `column` =
    `partition`: one platform, whose loads are stamped by their own extract), or that
    has no stamp. A platform with no row held yet is read whole.
-#}
{% macro loaded_since_held(loaded_at, column, partition) -%}
    (
        {{ loaded_at }} > coalesce(
            (
                select max(held._loaded_at) from {{ this }} as held
                where held.{{ column }} = '{{ partition }}'
            ),
            cast('-infinity' as timestamptz)
        )
        or {{ loaded_at }} is null
    )
{%- endmacro %}


{#-
    The pre-hook of the marts attributed through identity (fct_orders, fct_interactions),
    for their transaction (JIT is off for every model: dbt_project.yml): work_mem 256MB.
    The planner guesses a third of the records for records_assigned_since_built (a few in
    fact) and, at 100k people, hashes `record_key in (reassigned)` only when that guess
    fits in work_mem; with the default 4MB it scanned the list once per staging row
    (fct_interactions' incremental query: over 13 min; 6.2 s with it). The memory used
    is that of the rows actually assigned.
-#}
{% macro attributed_facts_pre_hook() -%}
    set local work_mem = '256MB'
{%- endmacro %}


{#-
    Marts attributed through identity (fct_orders, fct_interactions): the records that
    identity assigned to a customer (new, or moved to another) since this model's last
    build, from `record_customers` (a CTE over int_identity__record_customers).
-#}
{% macro records_assigned_since_built(record_customers='record_customers') -%}
    select record_key

    from {{ record_customers }}
    where
        assigned_at > coalesce(
            (select max(built.built_at) from {{ this }} as built),
            cast('-infinity' as timestamptz)
        )
{%- endmacro %}
