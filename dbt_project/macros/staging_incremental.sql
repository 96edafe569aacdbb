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
    (staging_delete_gone, a post-hook), and the keys it took go to the deletions log
    (source dbt_log.deleted_keys, below), from which the incremental facts learn what
    left; a staging table rebuilt from raw logs the same before it rebuilds
    (staging_log_gone, a pre-hook).
    `dbt build --full-refresh` rebuilds from raw.
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


{#- post-hook: the model's rows whose raw row is gone, their keys logged -#}
{% macro staging_delete_gone(raw_relation, raw_key, model_key) -%}
    {%- if is_incremental() -%}
        with gone as (
            delete from {{ this }} as built
            where not exists (
                select from {{ raw_relation }} as raw
                where raw.{{ raw_key }} = built.{{ model_key }}
            )
            returning built.{{ model_key }} as deleted_key
        )
        {{ deleted_keys_log_insert('gone') }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}


{#-
    pre-hook of a staging table (rebuilt from raw on every run): the keys of the rows it
    holds from the last run whose source row is gone, logged before the rebuild drops
    them (deletions log). `sources`: (relation, key column[, prefix]) tuples, the prefix
    put in front of the column's value to make the model's key; a row is gone when none
    of them has its key. An anti-join of the table held with its sources, on a run that
    reads them whole anyway (10k people: 1-75 ms a table); nothing on a first run.
-#}
{% macro staging_log_gone(model_key, sources) -%}
    {%- if execute and load_relation(this) is not none
        and relation_has_column(this, model_key) -%}
        insert into {{ source('dbt_log', 'deleted_keys') }} (model, deleted_key, run_started_at)
        select distinct
            '{{ this.identifier }}',
            cast(built.{{ model_key }} as text),
            cast('{{ run_started_at }}' as timestamptz)
        from {{ this }} as built
        where
            {%- for source_key in sources %}
            {{ 'and' if not loop.first }} not exists (
                select from {{ source_key[0] }} as raw
                where
                    {{ "'" ~ source_key[2] ~ "' || " if source_key | length > 2 }}raw.{{ source_key[1] }}
                    = built.{{ model_key }}
            )
            {%- endfor %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}


{#-
    The deletions log (source dbt_log.deleted_keys, in the staging schema): one row per
    key a model removed because what it was built from is gone, with the run that
    removed it. An incremental staging model logs the raw keys it deleted
    (staging_delete_gone); fct_orders, fct_interactions and fct_order_returns log the
    rows they deleted. Whoever reads a model incrementally takes the keys it logged in
    the runs since its own last build (deleted_keys_since): only those, through the
    log's index, so a run without deletions reads nothing. A full refresh reads no log:
    it rebuilds from what is there. Created before every run (on-run-start), so it is
    there on a first run, and kept: deletions are rare and a reader looks up its own.
-#}
{% macro deleted_keys_log_create() -%}
    {%- set log = source('dbt_log', 'deleted_keys') -%}
    create schema if not exists {{ log.schema }};
    create table if not exists {{ log }} (
        model text not null,
        deleted_key text not null,
        run_started_at timestamptz not null,
        deleted_at timestamptz not null default now()
    );
    create index if not exists {{ log.identifier }}_model_idx
    on {{ log }} (model, run_started_at)
{%- endmacro %}


{#- the insert into the log of the keys (deleted_key) in `rows` (a CTE): this model's -#}
{% macro deleted_keys_log_insert(rows) -%}
    insert into {{ source('dbt_log', 'deleted_keys') }} (model, deleted_key, run_started_at)
    select distinct
        '{{ this.identifier }}',
        cast({{ rows }}.deleted_key as text),
        cast('{{ run_started_at }}' as timestamptz)
    from {{ rows }}
{%- endmacro %}


{#-
    The keys `model` (a model's name) logged as deleted in the runs since `since` (a
    scalar query or expression: the reader's last build), as deleted_key, each with
    `prefix` in front.
-#}
{% macro deleted_keys_since(model, since, prefix='') -%}
    select {{ "'" ~ prefix ~ "' || " if prefix }}deleted.deleted_key as deleted_key
    from {{ source('dbt_log', 'deleted_keys') }} as deleted
    where
        deleted.model = '{{ model }}'
        and deleted.run_started_at > coalesce(({{ since }}), cast('-infinity' as timestamptz))
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
    build, from `record_customers` (a CTE over int_identity__record_customers), and the
    records its latest run deleted (int_identity__record_changes: a record gone or
    deleted at its source, such as a Square profile deleted or a HubSpot contact
    archived), whose facts a full refresh attributes without them. The caller declares
    `-- depends_on: int_identity__record_changes`.
-#}
{% macro records_assigned_since_built(record_customers='record_customers') -%}
    select record_key

    from {{ record_customers }}
    where
        assigned_at > coalesce(
            (select max(built.built_at) from {{ this }} as built),
            cast('-infinity' as timestamptz)
        )

    union all

    select record_key

    from {{ ref('int_identity__record_changes') }}
    where change = 'deleted'
{%- endmacro %}


{#-
    Facts that drop rows (deletions): delete this model's rows meeting `condition` (over
    `built`, the rows held) and log their `unique_key` (deletions log) in one
    statement. A hook: the caller decides when it runs.
-#}
{% macro delete_logged(unique_key, condition) -%}
    with gone as (
        delete from {{ this }} as built
        where {{ condition }}
        returning built.{{ unique_key }} as deleted_key
    )
    {{ deleted_keys_log_insert('gone') }}
{%- endmacro %}


{#-
    A fact's pre-hook on an incremental run: its rows built from what a model upstream
    deleted since this model's last build (the deletions log; `sources`: pairs of that
    model and the prefix that makes its key this model's `unique_key`), deleted and
    logged for the models downstream. `threads`: (model, column, value) triples, the
    rows whose thread_id is a key that model deleted (where `column` = `value`) go too:
    a thread whose parent is gone (fct_interactions builds again those of its rows that
    stand without it). A run without deletions looks up the log's index only; a key that
    never reached this model deletes nothing and logs nothing.
-#}
{% macro delete_logged_since_built(unique_key, sources, threads=[]) -%}
    {%- if is_incremental() -%}
        {%- set since = 'select max(held.built_at) from ' ~ this ~ ' as held' -%}
        {%- set condition -%}
            built.{{ unique_key }} in (
                {%- for model, prefix in sources %}
                {{ 'union all' if not loop.first }}
                {{ deleted_keys_since(model, since, prefix) }}
                {%- endfor %}
            )
            {%- for model, column, value in threads %}
            or (
                built.{{ column }} = '{{ value }}'
                and built.thread_id in ({{ deleted_keys_since(model, since) }})
            )
            {%- endfor %}
        {%- endset -%}
        {{ delete_logged(unique_key, condition) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}


{#-
    The per-customer models over customer_journey (int_customer__touches,
    int_customer__touch_days): the customers this model holds whose journey is gone
    since `since` (a scalar query: this model's last build). customer_journey logs each
    customer it leaves with no event (deletions log), so a run reads those keys only;
    when the journey was rebuilt whole since (a full refresh: its oldest row is newer,
    and it logs nothing), every customer held is checked against it instead. Reads
    `journey` (the model's CTE over customer_journey).
-#}
{% macro journeys_gone_since(since) -%}
    select gone.deleted_key as customer_id
    from ({{ deleted_keys_since('customer_journey', since) }}) as gone
    union
    select built.customer_id
    from {{ this }} as built
    where
        built.customer_id is not null
        and coalesce(
            (select min(rebuilt.built_at) from {{ ref('customer_journey') }} as rebuilt),
            cast('infinity' as timestamptz)
        ) > ({{ since }})
        and not exists (
            select from journey
            where journey.customer_id = built.customer_id
        )
{%- endmacro %}
