{#
    Every non-null value of the column matches a POSIX regular expression (Postgres `~`).
    Used for identifiers with a fixed shape: CPF digits, md5 surrogate keys.
#}
{% test matches_pattern(model, column_name, pattern) %}

    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} is not null
        and not ({{ column_name }} ~ '{{ pattern }}')

{% endtest %}
