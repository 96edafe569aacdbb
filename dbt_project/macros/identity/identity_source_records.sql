{#
    The identity records as the sources hold them (var identity_sources), or the
    `omnicanal identity resolve` input table (var identity_input): one select of the
    raw fields, shared by int_identity__record_changes (what changed since the last run)
    and int_identity__records (the normalised records).
#}
{% macro identity_source_records() -%}
{%- set input = var('identity_input', none) %}
{%- set fields = {
    'email': 'text', 'email_sha256': 'text', 'phone': 'text', 'cpf': 'text',
    'first_name': 'text', 'last_name': 'text', 'full_name': 'text', 'birth_date': 'text',
    'city': 'text', 'state': 'text', 'postcode': 'text', 'address': 'text',
    'accepts_email_marketing': 'boolean', 'created_at': 'timestamptz',
    'updated_at': 'timestamptz'
} %}

    {%- if input %}

    select
        cast(source as text) as source,
        cast(record_id as text) as source_record_id,
        cast(email as text) as email,
        cast(null as text) as email_sha256,
        cast(phone as text) as phone,
        cast(cpf as text) as cpf,
        cast(first_name as text) as first_name,
        cast(last_name as text) as last_name,
        cast(full_name as text) as full_name,
        cast(birth_date as text) as birth_date,
        cast(city as text) as city,
        cast(null as text) as state,
        cast(postcode as text) as postcode,
        cast(address as text) as address,
        cast(null as boolean) as accepts_email_marketing,
        cast(null as timestamptz) as created_at,
        cast(null as timestamptz) as updated_at,
        cast(null as jsonb) as platform_ids

    from {{ input }}

{%- else %}
        {%- for src in var('identity_sources') %}
            {%- if not loop.first %}

    union all
    {%- endif %}

            select
                cast('{{ src.source }}' as text) as source,
                cast({{ src.record_id }} as text) as source_record_id,
                {%- for field, type in fields.items() %}
                    cast({{ src.columns.get(field) or 'null' }} as {{ type }}) as {{ field }},
                {%- endfor %}
                {%- if src.get('ids') %}
                    jsonb_strip_nulls(jsonb_build_object(
                        {%- for id_type, column in src.ids.items() %}
                            '{{ id_type }}', cast({{ column }} as text){{ ',' if not loop.last }}
                        {%- endfor %}
                    )) as platform_ids
                {%- else %}
        cast(null as jsonb) as platform_ids
        {%- endif %}

            from {{ ref(src.model) }}
        {%- endfor %}
    {%- endif %}
{%- endmacro %}
