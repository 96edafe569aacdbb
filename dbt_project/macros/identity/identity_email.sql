{#
    An email as an identity identifier: normalised (see normalize_email, with the
    provider rules when the var identity_email_provider_rules is true) and kept only
    when it has the shape local@domain.tld; junk ("n/a", "sem email", "ana@") is null.
#}
{% macro identity_email(column_name) -%}
    {%- set normalized = normalize_email(
        column_name, provider_rules=var('identity_email_provider_rules', false)
    ) -%}
    case
        when {{ normalized }} ~ '^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$'
            then {{ normalized }}
    end
{%- endmacro %}
