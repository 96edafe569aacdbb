{#
    Use a model's custom schema exactly as configured (staging, intermediate, marts,
    activation) instead of dbt's default "<target_schema>_<custom_schema>". The warehouse
    is shared by the loader, dbt and the sync engine, which all address these schemas by
    name. Models without a custom schema fall back to the target's schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
