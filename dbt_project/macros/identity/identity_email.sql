{#
    An email as an identity identifier: normalised (see normalize_email, with the
    provider rules when the var identity_email_provider_rules is true), the big
    providers' domains typed wrong written right (identity_email_domain_typos), and kept
    only when it has the shape local@domain.tld; junk ("n/a", "sem email", "ana@") is null.
#}
{% macro identity_email(column_name) -%}
    {%- set normalized = normalize_email(
        column_name, provider_rules=var('identity_email_provider_rules', false)
    ) -%}
    {%- set fixed = identity_email_domain_typos(normalized) -%}
    case
        when {{ fixed }} ~ '^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$'
            then {{ fixed }}
    end
{%- endmacro %}

{#
    Misspellings of the big webmail domains, written right: a form filled in by hand or
    typed from handwriting (a loyalty card, a till) gives "gmial.com", "gmail.con",
    "hotmal.com" or "gmail.com.br" for the address its owner gives elsewhere, and no
    one else can hold it (none of them is a mailbox provider's domain; the lists of
    such slips are what email-suggestion tools like mailcheck correct). Real domains
    that look alike stay apart: yahoo.com and yahoo.com.br, hotmail.com and
    hotmail.com.br are different mailboxes.
#}
{% macro identity_email_domain_typos(email) -%}
    regexp_replace(regexp_replace(regexp_replace(regexp_replace(
        {{ email }},
        '@(gmial|gamil|gmai|gmal|gnail|gmaill|gmali|gmil|gmeil)\.(com|con|co|cm|om|comm|com\.br)$|@gmail\.(con|co|cm|om|comm|com\.br)$',
        '@gmail.com'),
        '@(hotmal|hotmial|hotamil|hotmai|hotmil|hotnail|hormail|hotmaill|homail)\.(com|con|co|cm|om)$|@hotmail\.(con|co|cm|om)$',
        '@hotmail.com'),
        '@(outlok|outllok|otlook|outloo|outlook)\.(con|co|cm|om)$|@(outlok|outllok|otlook|outloo)\.com$',
        '@outlook.com'),
        '@(yaho|yahooo|yhoo|yhaoo)\.com\.br$|@yahoo\.com\.(bt|vr|be)$',
        '@yahoo.com.br')
{%- endmacro %}
