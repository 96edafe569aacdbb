{#
    Tidy a person's or place's name typed into a store: trim and collapse whitespace,
    treat an empty string as missing, and fix the case only when the whole value was
    typed in one case ("ANA SOUZA", "curitiba"). Mixed-case values ("McDonald",
    "Maria da Silva") are kept as typed, except the Portuguese particles da/de/do/das/dos
    (anywhere, a last name's first word included) and e (between words), which are
    written lower case however they were typed: "Rio De Janeiro" and "RIO DE JANEIRO" give
    "Rio de Janeiro", the last name "Dos Reis" gives "dos Reis".
#}
{% macro normalize_proper_name(column_name) -%}
    {%- set tidy -%}
        nullif(regexp_replace(trim({{ column_name }}), '\s+', ' ', 'g'), '')
    {%- endset -%}
    {%- set cased -%}
        case
            when {{ tidy }} <> upper({{ tidy }}) and {{ tidy }} <> lower({{ tidy }})
                then {{ tidy }}
            else initcap({{ tidy }})
        end
    {%- endset -%}
    regexp_replace(
        regexp_replace({{ cased }}, '(^| )D(a|e|o|as|os)(?= )', '\1d\2', 'g'),
        ' E(?= )', ' e', 'g'
    )
{%- endmacro %}
