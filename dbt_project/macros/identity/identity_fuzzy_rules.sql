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

{#
    Whether a fuzzy pair is a father and his son (or a grandfather and grandson, an
    uncle and nephew): one first name (level 3 or 4), no birth date in common, and the
    generational suffixes closing the two full names differ ("José Carlos Pereira" and
    "José Carlos Pereira Filho"; "Filho" and "Neto"). In Brazil a son named after his
    father carries Filho or Júnior (Neto after a grandfather, Sobrinho after an uncle)
    as part of his legal name, so the two share the first name, the surnames, and often
    the home, phone and postcode; a suffix is no typo. "Jr" is "Júnior". The same person
    dropping the suffix in one channel, with a birth date on both records, still links
    (the birth date agrees); without one, the suffix says two people, unless the other
    name holds it as a word elsewhere (a surname Neto moved). Nameless sides
    (level 0) are no such pair. `a` and `b`: the two records, as int_identity__records
    rows (full_name_key).
#}
{% macro identity_fuzzy_generations_differ(pairs, a, b) -%}
    {%- set names = identity_fuzzy_comparisons() | map(attribute='name') | list -%}
    (
        {{ pairs }}.levels[{{ names.index('first_name') + 1 }}] >= 3
        and {{ pairs }}.levels[{{ names.index('birth_date') + 1 }}] <= 1
        and {{ identity_name_generation(a ~ '.full_name_key') }}
            <> {{ identity_name_generation(b ~ '.full_name_key') }}
        -- Neto, Filho and Sobrinho are surnames too, and surnames change order between
        -- forms ("Antônio Marcos Neto Ferreira"): a suffix the other name holds as a
        -- word elsewhere is no other generation
        and not {{ identity_name_holds_generation(a ~ '.full_name_key', b ~ '.full_name_key') }}
        and not {{ identity_name_holds_generation(b ~ '.full_name_key', a ~ '.full_name_key') }}
    )
{%- endmacro %}

{#
    Whether name `x` is name `z` as typed or with one slip: equal, or both of four
    letters or more and one edit apart (a letter added, dropped or mistyped: "noblke"
    and "noble", "luc y" and "lucy") or two neighbouring letters swapped ("sebretgs"
    and "sebregts"), but not the masculine and feminine forms of one name (Paulo and
    Paula). The fuzzy names' level reads it for names swapped between the first and last
    name fields, where a typo often comes with the swap (FEBRL's duplicates: "campblel
    joshua" for Joshua Campbell).
#}
{% macro identity_fuzzy_one_slip(x, z) -%}
    (
        {{ x }} = {{ z }}
        or (
            least(length({{ x }}), length({{ z }})) >= 4
            and not {{ identity_gender_pair(x, z) }}
            and (
                levenshtein_less_equal({{ x }}, {{ z }}, 1) <= 1
                or (
                    length({{ x }}) = length({{ z }})
                    and levenshtein_less_equal({{ x }}, {{ z }}, 2) = 2
                    and exists (
                        select 1 as swapped
                        from generate_series(1, length({{ z }}) - 1) as slip (i)
                        where
                            {{ x }} = left({{ z }}, slip.i - 1) || substr({{ z }}, slip.i + 1, 1)
                            || substr({{ z }}, slip.i, 1) || substr({{ z }}, slip.i + 2)
                    )
                )
            )
        )
    )
{%- endmacro %}
