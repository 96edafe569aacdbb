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
    select record_num from {{ ref('int_identity__record_changes') }}
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
    The identity run's id: the invocation that built int_identity__record_changes. Not
    each model's own invocation_id: Cosmos runs every model as its own dbt invocation.
    Null when nothing changed (then no model recomputes anything).
#}
{% macro identity_run_id() -%}
    (select min(run_changes.run_id) from {{ ref('int_identity__record_changes') }} as run_changes)
{%- endmacro %}

{# A record's fingerprint: md5 of its raw fields (columns of identity_source_records). #}
{% macro identity_fingerprint() -%}
    md5(cast(row(
        source, source_record_id, email, email_sha256, phone, cpf, first_name, last_name,
        full_name, birth_date, city, state, postcode, address, accepts_email_marketing,
        created_at, updated_at, platform_ids
    ) as text))
{%- endmacro %}
