{#
    Number of elements of a JSON array column, whichever way the loader stored it: as a
    jsonb array or as a Postgres array of jsonb (jsonb[], what target-postgres creates for
    an array of objects). A missing value, JSON null or a non-array gives null.
#}
{% macro json_array_length(column_name) -%}
    case
        when jsonb_typeof(to_jsonb({{ column_name }})) = 'array'
            then jsonb_array_length(to_jsonb({{ column_name }}))
    end
{%- endmacro %}
