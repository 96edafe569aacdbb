{#
    Postgres column introspection that names array types precisely ("jsonb[]", "int8[]")
    instead of information_schema's bare "ARRAY", which is not a castable type.

    dbt's unit tests cast every fixture value to the introspected type, so with the stock
    macro any model reading an array column fails with `cast(... as ARRAY)`
    (dbt-labs/dbt-adapters#939). The Singer loader stores arrays of objects as jsonb[]
    (Shopify line_items, addresses, …) and dim_customers has an array column, so without
    this no unit test could touch those models. Everything else is reported as before.
#}
{% macro postgres__get_columns_in_relation(relation) -%}
    {% call statement('get_columns_in_relation', fetch_result=True) %}
        select
            column_name,
            case
                when data_type = 'ARRAY' then substr(udt_name, 2) || '[]'
                else data_type
            end as data_type,
            character_maximum_length,
            numeric_precision,
            numeric_scale
        from {{ relation.information_schema('columns') }}
        where
            table_name = '{{ relation.identifier }}'
            {% if relation.schema -%}
            and table_schema = '{{ relation.schema }}'
            {%- endif %}
        order by ordinal_position
    {% endcall %}
    {{ return(sql_convert_columns_in_relation(load_result('get_columns_in_relation').table)) }}
{%- endmacro %}
