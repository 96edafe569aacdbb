{#
    Golden-record survivorship, from the var identity_survivorship: for an attribute
    (a group of columns kept together, like first and last name), the rules in order:
    - source_priority: sources listed in identity_survivorship.source_priority first;
    - most_recent: the most recently updated record;
    - most_frequent: the value most records of the customer agree on;
    - longest: the longest value.
    Records without a value never win; ties fall to the latest update, then record_key.

    survivorship_frequency(attribute, value_sql): the column most_frequent needs, to be
    computed in an earlier CTE. survivorship_rank(attribute, value_sql, prefer): 1 for
    the winning record of each customer; `prefer` (SQL order terms) comes before the
    rules, whatever they are (a name's completeness: survivorship_name_completeness).
#}
{% macro survivorship_frequency(attribute, value_sql) -%}
    count(*) over (partition by customer_id, {{ value_sql }}) as {{ attribute }}_frequency
{%- endmacro %}

{% macro survivorship_rank(attribute, value_sql, prefer=[]) -%}
    {%- set settings = var('identity_survivorship', {}) %}
    {%- set rules = settings.get(attribute, {}).get('rules', ['most_recent']) %}
    {%- set priority = settings.get('source_priority', []) %}
    row_number() over (
        partition by customer_id
        order by
            ({{ value_sql }}) is null
            {%- for term in prefer %},
            {{ term }}
            {%- endfor %}
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

{#
    How complete a person's name is, for the golden record (marketing tools greet people
    by it: Mailchimp's FNAME, HubSpot, Meta): 3 a full name (two words of two letters or
    more, particles such as "da" not counted: "Ana Souza", "João Pedro da Silva"); 2 a
    first name only ("Pedro", "Maria S"); 1 no real name: a user name ("antonio_assis28",
    "bia123": one word of letters, digits, dots, underscores or hyphens with a digit, a
    dot or an underscore, as int_identity__records reads it) or the email's local part
    as the name ("joaosilva" on joaosilva@..., letters compared); null for no name at
    all or a till's placeholder (`is_placeholder`: "Consumidor Final", seed
    identity_fake_identifiers), which is nobody's name.
#}
{% macro survivorship_name_completeness(first_name, last_name, email, is_placeholder) -%}
    {%- set typed = "nullif(trim(concat_ws(' ', nullif(trim(" ~ first_name ~ "), ''), nullif(trim("
        ~ last_name ~ "), ''))), '')" %}
    case
        when {{ typed }} is null or {{ is_placeholder }} then null
        when
            {{ typed }} ~ '^[[:alpha:]][[:alnum:]_.-]*$' and {{ typed }} ~ '[0-9_.]'
            then 1
        when
            {{ typed }} !~ '\s'
            and regexp_replace({{ normalize_name_key(typed) }}, '[^a-z]', '', 'g')
            = regexp_replace(
                {{ normalize_name_key("split_part(" ~ email ~ ", '@', 1)") }}, '[^a-z]', '', 'g'
            )
            then 1
        else (
            select
                case
                    when count(*) >= 2 then 3
                    when count(*) = 1 then 2
                    else 1
                end as completeness
            from unnest(string_to_array({{ normalize_name_key(typed) }}, ' ')) as name_words (word)
            where
                name_words.word ~ '^[a-z]{2,}$'
                and name_words.word not in ('{{ identity_name_particles() | join("', '") }}')
        )
    end
{%- endmacro %}
