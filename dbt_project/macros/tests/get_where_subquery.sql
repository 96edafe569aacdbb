{#
    What a data test reads of the model it tests: dbt's own `where` config, as in dbt,
    and in the pipeline's incremental build only the rows this run built.

    The pipeline's build (OMNICANAL_DBT_TEST_SCOPE=new, set by pipeline_env in
    include/omnicanal/orchestration/dbt.py) tests an incremental model on the rows this
    run wrote: those whose stamp column (the model's meta `new_rows_stamp`, e.g.
    built_at = run_started_at) says so. The older rows were tested by the run that
    wrote them, and delete+insert on the model's unique_key replaces a row rather
    than duplicating it, so a run only has to vouch for its own rows. Every other test
    reads the whole model, as does every test of a full refresh, of a model without
    the stamp, and of analysts' `omnicanal dbt build` and CI (no OMNICANAL_DBT_TEST_SCOPE).
    A relationships test still looks the parent up in the whole `to` model.
#}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set stamp = new_rows_stamp() -%}
    {%- if stamp -%}
        {%- do conditions.append(
            adapter.quote(stamp) ~ " >= cast('" ~ run_started_at ~ "' as timestamptz)"
        ) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ conditions | join(' and ') }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{#
    The stamp column of the rows this run built, when the test being compiled should
    read only those (see get_where_subquery); none otherwise.
#}
{% macro new_rows_stamp() -%}
    {%- if env_var('OMNICANAL_DBT_TEST_SCOPE', 'all') != 'new' or flags.FULL_REFRESH -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set tested = model.get('attached_node') if model is mapping else none -%}
    {%- set node = graph.nodes.get(tested) if tested and graph is defined else none -%}
    {%- if node is none or node.config.materialized != 'incremental' -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- do return(node.config.meta.get('new_rows_stamp')) -%}
{%- endmacro %}
