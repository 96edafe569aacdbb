{#
    Social handles (a jsonb object network -> handle as given) in their matching form:
    lower case, without a leading "@", a profile URL reduced to its handle
    ("https://www.instagram.com/Ana.Souza/?hl=pt" -> "ana.souza"); a value that is not
    shaped like a handle (spaces, "-", "não tem") is dropped. Null when none is left.
#}
{% macro normalize_social_handles(column_name) -%}
    (
        select jsonb_object_agg(handles.network, handles.handle) as handles_by_network
        from (
            select
                lower(trim(entry.key)) as network,
                regexp_replace(
                    regexp_replace(
                        lower(trim(entry.value)), '^(https?://)?(www\.)?[a-z0-9.-]+\.[a-z]+/', ''
                    ),
                    '^@|[/?#].*$', '', 'g'
                ) as handle
            from jsonb_each_text({{ column_name }}) as entry
        ) as handles
        where handles.handle ~ '^[a-z0-9._]{1,30}$' and handles.handle ~ '[a-z0-9]'
    )
{%- endmacro %}
