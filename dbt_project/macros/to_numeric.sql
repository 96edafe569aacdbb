{#
    Money and other amounts that sources send as strings ("199.90"): trim, treat an
    empty string as missing, cast to numeric. Also accepts a column that already is numeric.
#}
{% macro to_numeric(column_name) -%}
    cast(nullif(trim(cast({{ column_name }} as text)), '') as numeric)
{%- endmacro %}
