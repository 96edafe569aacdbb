{#
    Materialization `sql_function`: the model's SQL is one `create or replace function
    {{ this }}(...)` statement, run as it is. A function written as a model is built by
    `dbt run`, `dbt build` and Cosmos like any model, the models that call it ref() it
    (lineage, and it is built before them), and sqlfluff lints it with the models.
    dbt's own `functions/` resource (1.11) would not do here: on Postgres it makes scalar
    LANGUAGE SQL functions only (no plpgsql, no set-returning), `dbt run` skips it and
    Cosmos does not know the node type.

    Several runs may replace one function at once (Cosmos tasks, the CLI, a bench on the
    same database): Postgres fails a concurrent CREATE OR REPLACE of one function with
    "tuple concurrently updated", so each replacement holds a transaction-scoped
    advisory lock.
#}
{% materialization sql_function, adapter='postgres' %}
    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {% call statement('main') -%}
        select pg_advisory_xact_lock(hashtextextended('omnicanal sql_function', 0));
        create schema if not exists {{ adapter.quote(this.schema) }};
        {{ sql }}
    {%- endcall %}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': []}) }}
{% endmaterialization %}
