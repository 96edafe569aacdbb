{#
    The identity records as the sources hold them (identity_sources), or the
    `omnicanal identity resolve` input table (var identity_input): one select of the
    raw fields (platform ids and social handles as jsonb objects by type and by network)
    and record_fingerprint (md5 of them, macro identity_fingerprint; for the input table,
    md5 of the row as loaded, so a run need not compute the fields to compare), shared
    by int_identity__record_changes (what changed since the last run) and
    int_identity__records (the normalised records).

    identity_sources (macro below) says which staging models feed identity and how.
#}
{% macro identity_source_records() -%}
{%- set input = var('identity_input', none) %}
{%- set fields = {
    'email': 'text', 'email_sha256': 'text', 'phone': 'text', 'wa_id': 'text', 'cpf': 'text',
    'first_name': 'text', 'last_name': 'text', 'full_name': 'text', 'birth_date': 'text',
    'city': 'text', 'state': 'text', 'postcode': 'text', 'address': 'text',
    'accepts_email_marketing': 'boolean', 'created_at': 'timestamptz',
    'updated_at': 'timestamptz'
} %}

    {%- if input %}

    -- the CLI loads the CSV as written: trimmed here, an empty value is null
    select
        {%- for column in ['source', 'record_id', 'email'] %}
        nullif(trim({{ column }}), '') as {{ 'source_record_id' if column == 'record_id' else column }},
        {%- endfor %}
        cast(null as text) as email_sha256,
        {%- for column in ['phone', 'wa_id', 'cpf', 'first_name', 'last_name', 'full_name',
            'birth_date', 'city'] %}
        nullif(trim({{ column }}), '') as {{ column }},
        {%- endfor %}
        cast(null as text) as state,
        nullif(trim(postcode), '') as postcode,
        nullif(trim(address), '') as address,
        cast(null as boolean) as accepts_email_marketing,
        cast(null as timestamptz) as created_at,
        cast(null as timestamptz) as updated_at,
        cast(null as jsonb) as platform_ids,
        {{ identity_jsonb_object({'instagram': "nullif(trim(instagram), '')"}) }} as social_handles,
        -- the fingerprint of the row as loaded: no expression above is computed for it
        md5(cast(row(
            source, record_id, email, phone, wa_id, cpf, first_name, last_name, full_name,
            birth_date, city, postcode, address, instagram
        ) as text)) as record_fingerprint

    from {{ input }}

{%- else %}

    select
        source_rows.*,
        {{ identity_fingerprint() }} as record_fingerprint

    from (
        {%- for src in identity_sources() %}
            {%- if not loop.first %}

    union all
    {%- endif %}

            select
                cast('{{ src.source }}' as text) as source,
                cast({{ src.record_id }} as text) as source_record_id,
                {%- for field, type in fields.items() %}
                    cast({{ src.columns.get(field) or 'null' }} as {{ type }}) as {{ field }},
                {%- endfor %}
                {{ identity_jsonb_object(src.get('ids')) }} as platform_ids,
                {{ identity_jsonb_object(src.get('handles')) }} as social_handles

            from {{ ref(src.model) }}
            {%- if src.get('where') %}
            where {{ src.where }}
            {%- endif %}
        {%- endfor %}
    ) as source_rows
    {%- endif %}
{%- endmacro %}


{# A jsonb object of {key: column} (as text, nulls dropped); null when there is no mapping. #}
{% macro identity_jsonb_object(mapping) -%}
    {%- if mapping -%}
        jsonb_strip_nulls(jsonb_build_object(
            {%- for key, column in mapping.items() %}
            '{{ key }}', cast({{ column }} as text){{ ',' if not loop.last }}
            {%- endfor %}
        ))
    {%- else -%}
        cast(null as jsonb)
    {%- endif -%}
{%- endmacro %}


{#
    Which staging models feed identity resolution, and which of their columns are which
    identity field: each channel declares it in its package (IdentityFeed in
    include/omnicanal/channels), and omnicanal hands the registry's list to dbt in
    OMNICANAL_IDENTITY_SOURCES, so adding a channel touches no shared dbt file. The var
    identity_sources, when set (--vars, unit tests), takes precedence.
#}
{% macro identity_sources() -%}
    {%- set declared = var('identity_sources', none) -%}
    {%- if declared is none -%}
        {%- set declared = fromjson(env_var('OMNICANAL_IDENTITY_SOURCES')) -%}
    {%- endif -%}
    {{ return(declared) }}
{%- endmacro %}
