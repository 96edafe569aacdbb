{#
    Whether a fuzzy pair's two names say two people: one of the first name and the
    family name different (level 1) and the other no closer than "similar" (level 2:
    two edits apart or only alike: Márcio and Marcos, Lúcia Lima and Luiz Souza), both
    given, no birth date in common, and the two records' own data otherwise against
    them or a household's: birth dates or emails that differ (level 1), or a phone on
    both (a different one, or the family's shared one). One person's records differ by
    a typo in a name (level 3), a nickname (3) or a missing part (3, or 0 when absent),
    not by a name that is someone else's beside one that is hardly theirs. Names
    swapped between the fields are no such pair (`a` and `b`: the two records, as
    int_identity__records rows): "Ho Lily" for "Lily Oh". Extends macro
    identity_fuzzy_eligible's "two names that differ whole" (levels 1 and 1).
    A name field replaced whole, with nothing else on either record but the address
    (FEBRL's corruption), is left to the weights.
#}
{% macro identity_fuzzy_names_differ(pairs, a, b) -%}
    {%- set names = identity_fuzzy_comparisons() | map(attribute='name') | list -%}
    {%- set first = pairs ~ '.levels[' ~ (names.index('first_name') + 1) ~ ']' -%}
    {%- set last = pairs ~ '.levels[' ~ (names.index('last_name') + 1) ~ ']' -%}
    (
        {{ first }} + {{ last }} = 3
        and {{ first }} >= 1
        and {{ last }} >= 1
        and {{ pairs }}.levels[{{ names.index('birth_date') + 1 }}] <= 1
        and (
            {{ pairs }}.levels[{{ names.index('birth_date') + 1 }}] = 1
            or {{ pairs }}.levels[{{ names.index('email') + 1 }}] = 1
            or {{ pairs }}.levels[{{ names.index('phone') + 1 }}] >= 1
        )
        and not (
            levenshtein_less_equal({{ a }}.first_name_key, {{ b }}.last_name_key, 2) <= 2
            and levenshtein_less_equal({{ a }}.last_name_key, {{ b }}.first_name_key, 2) <= 2
        )
    )
{%- endmacro %}
