{#
    The form of an email address used to match people across accounts and channels:
    surrounding whitespace removed, lower case, and an empty string treated as missing.
#}
{% macro normalize_email(column_name) -%}
    nullif(lower(regexp_replace({{ column_name }}, '^\s+|\s+$', '', 'g')), '')
{%- endmacro %}
