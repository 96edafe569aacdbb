{#
    Golden-record survivorship, from the var identity_survivorship: for an attribute
    (a group of columns kept together, like first and last name), the rules in order:
    - source_priority: sources listed in identity_survivorship.source_priority first;
    - most_recent: the most recently updated record;
    - most_frequent: the value most records of the customer agree on;
    - longest: the longest value.
    Records without a value never win; ties fall to the latest update, then record_key.

    survivorship_frequency(attribute, value_sql): the column most_frequent needs, to be
    computed in an earlier CTE. survivorship_rank(attribute, value_sql): 1 for the
    winning record of each customer.
#}
{% macro survivorship_frequency(attribute, value_sql) -%}
    count(*) over (partition by customer_id, {{ value_sql }}) as {{ attribute }}_frequency
{%- endmacro %}

{% macro survivorship_rank(attribute, value_sql) -%}
    {%- set settings = var('identity_survivorship', {}) %}
    {%- set rules = settings.get(attribute, {}).get('rules', ['most_recent']) %}
    {%- set priority = settings.get('source_priority', []) %}
    row_number() over (
        partition by customer_id
        order by
            ({{ value_sql }}) is null
            {%- for rule in rules %},
            {%- if rule == 'source_priority' %}
            coalesce(array_position(
                cast(array[{% for s in priority %}'{{ s }}'{{ ', ' if not loop.last }}{% endfor %}] as text[]),
                source
            ), 1000)
            {%- elif rule == 'most_recent' %}
            updated_at desc nulls last
            {%- elif rule == 'most_frequent' %}
            {{ attribute }}_frequency desc
            {%- elif rule == 'longest' %}
            length(cast({{ value_sql }} as text)) desc nulls last
            {%- else %}
            {{ exceptions.raise_compiler_error(
                "identity_survivorship." ~ attribute ~ ": unknown rule '" ~ rule
                ~ "' (source_priority, most_recent, most_frequent, longest)"
            ) }}
            {%- endif %}
            {%- endfor %},
            updated_at desc nulls last,
            record_key desc
    )
{%- endmacro %}
