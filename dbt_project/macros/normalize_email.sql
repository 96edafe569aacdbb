{#
    The form of an email address used to match people across accounts and channels:
    surrounding whitespace removed, lower case, and an empty string treated as missing.

    provider_rules=true also applies the rules of providers that deliver every spelling
    of an address to the same mailbox: Gmail ignores dots in the local part and
    everything from a "+" (ana.souza+loja@gmail.com = anasouza@gmail.com), and
    googlemail.com is gmail.com; Outlook/Hotmail/Live ignore "+tags". Off by default:
    it is for matching, never for sending.
#}
{% macro normalize_email(column_name, provider_rules=false) -%}
    {%- set basic -%}
        nullif(lower(regexp_replace({{ column_name }}, '^\s+|\s+$', '', 'g')), '')
    {%- endset -%}
    {%- if not provider_rules -%}
        {{ basic }}
    {%- else -%}
        case
            when {{ basic }} ~ '^[^@]+@(gmail|googlemail)\.com$'
                then replace(
                    regexp_replace(split_part({{ basic }}, '@', 1), '\+.*$', ''), '.', ''
                ) || '@gmail.com'
            when {{ basic }} ~ '^[^@]+@(outlook|hotmail|live)\.com(\.br)?$'
                then regexp_replace({{ basic }}, '\+[^@]*@', '@')
            else {{ basic }}
        end
    {%- endif -%}
{%- endmacro %}
