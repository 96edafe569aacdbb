{#
    A Brazilian CPF as its 11 digits, or null unless it is a real one: punctuation and
    spaces are dropped, exactly 11 digits must remain, one digit repeated eleven times
    (000.000.000-00, 111.111.111-11) is rejected, and both mod-11 check digits must be
    right (weights 10..2 over the first nine digits give the tenth, 11..2 over the first
    ten give the eleventh; a remainder r gives (10 * sum mod 11) mod 10). An invalid CPF
    is null, so it links nothing.
#}
{% macro normalize_cpf(column_name) -%}
    {%- set d -%} regexp_replace(cast({{ column_name }} as text), '\D', '', 'g') {%- endset -%}
    {%- set check1 -%}
        mod(mod(10 * (
            {%- for i in range(9) %}
            cast(substr({{ d }}, {{ i + 1 }}, 1) as int) * {{ 10 - i }}{{ ' +' if not loop.last }}
            {%- endfor %}
        ), 11), 10)
    {%- endset -%}
    {%- set check2 -%}
        mod(mod(10 * (
            {%- for i in range(10) %}
            cast(substr({{ d }}, {{ i + 1 }}, 1) as int) * {{ 11 - i }}{{ ' +' if not loop.last }}
            {%- endfor %}
        ), 11), 10)
    {%- endset -%}
    case
        when
            {{ d }} ~ '^\d{11}$'
            and {{ d }} !~ '^(\d)\1{10}$'
            and {{ check1 }} = cast(substr({{ d }}, 10, 1) as int)
            and {{ check2 }} = cast(substr({{ d }}, 11, 1) as int)
            then {{ d }}
    end
{%- endmacro %}
