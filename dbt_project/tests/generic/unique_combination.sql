{#
    No two rows share the values of `columns` (a grain: e.g. grain, period_start and
    channel of a KPI mart). Returns each repeated combination with its count.
#}
{% test unique_combination(model, columns) %}

    select
        {{ columns | join(', ') }},
        count(*) as occurrences
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1

{% endtest %}
