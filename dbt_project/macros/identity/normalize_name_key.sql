{#
    The matching form of a name (person, city, street) for the fuzzy stage: accents
    removed (a fixed Latin-1 transliteration, so no extension is needed and the
    expression stays immutable), lower case, anything but letters, digits and spaces
    turned into a space, spaces collapsed and trimmed; empty is null.
    "  JOÃO  D'Ávila-Conceição " → "joao d avila conceicao".
#}
{% macro normalize_name_key(column_name) -%}
    nullif(trim(regexp_replace(regexp_replace(
        translate(
            lower(cast({{ column_name }} as text)),
            'áàâãäåçéèêëíìîïñóòôõöúùûüýÿ',
            'aaaaaaceeeeiiiinooooouuuuyy'
        ),
        '[^a-z0-9 ]', ' ', 'g'), '\s+', ' ', 'g')), '')
{%- endmacro %}
