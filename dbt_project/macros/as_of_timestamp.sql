{#
    The reference moment for time-window segments, as a SQL timestamptz expression:
    the `as_of` var when set (ISO 8601, e.g. --vars '{as_of: "2024-06-30T00:00:00Z"}'),
    otherwise the time of the build. Fixing it makes a segment reproducible and testable.
#}
{% macro as_of_timestamp() -%}
    {%- set as_of = var('as_of', none) -%}
    {%- if as_of is none or (as_of | string | trim) == '' -%}
        current_timestamp
    {%- else -%}
        cast('{{ as_of | string | trim | replace("'", "''") }}' as timestamptz)
    {%- endif -%}
{%- endmacro %}
