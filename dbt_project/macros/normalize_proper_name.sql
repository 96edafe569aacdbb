{#
    Tidy a person's or place's name typed into a store: trim and collapse whitespace,
    treat an empty string as missing, and fix the case only when the whole value was
    typed in one case ("ANA SOUZA", "curitiba"). Mixed-case values ("McDonald",
    "Maria da Silva") are kept as typed. After re-casing, the Portuguese particles
    da/de/do/das/dos/e stay lower case ("Rio de Janeiro", "Costa e Silva").
#}
{% macro normalize_proper_name(column_name) -%}
    {%- set tidy -%}
        nullif(regexp_replace(trim({{ column_name }}), '\s+', ' ', 'g'), '')
    {%- endset -%}
    case
        when {{ tidy }} <> upper({{ tidy }}) and {{ tidy }} <> lower({{ tidy }})
            then {{ tidy }}
        else
            regexp_replace(
                regexp_replace(initcap({{ tidy }}), ' D(a|e|o|as|os)(?= )', ' d\1', 'g'),
                ' E(?= )', ' e', 'g'
            )
    end
{%- endmacro %}
