{#
    The recent-buyers window in days (var recent_buyers_window_days, default 90), checked
    once for every model that uses it: a whole number of days, 1 or more.
#}
{% macro recent_buyers_window_days() -%}
    {%- set days = var('recent_buyers_window_days', 90) | string | trim -%}
    {%- if not days.isdigit() or days | int < 1 -%}
        {{ exceptions.raise_compiler_error(
            "var recent_buyers_window_days must be a whole number of days (1 or more), got '"
            ~ days ~ "'"
        ) }}
    {%- endif -%}
    {{ return(days | int) }}
{%- endmacro %}
