{#
    A Brazilian CPF (taxpayer id) from free text: keep the digits, accept exactly 11 of
    them, and reject placeholders made of one repeated digit (00000000000, 11111111111, …).
    Anything else (a company name, a 14-digit CNPJ, a truncated number) becomes null.
    Check digits are not verified here.
#}
{% macro extract_cpf(column_name) -%}
    {%- set digits -%}
        regexp_replace({{ column_name }}, '\D', '', 'g')
    {%- endset -%}
    case
        when {{ digits }} ~ '^\d{11}$' and {{ digits }} !~ '^(\d)\1{10}$'
            then {{ digits }}
    end
{%- endmacro %}
