{#
    Every record that says something about a person, from every source listed in the
    var identity_sources (or, for `omnicanal identity resolve`, the one input table
    named by identity_input), with each identifier normalised by the shared macros.
    One row per record; record_key = "<source>:<id in the source>".
#}

{%- set input = var('identity_input', none) %}
{%- set fields = {
    'email': 'text', 'email_sha256': 'text', 'phone': 'text', 'cpf': 'text',
    'first_name': 'text', 'last_name': 'text', 'full_name': 'text', 'birth_date': 'text',
    'city': 'text', 'state': 'text', 'postcode': 'text', 'address': 'text',
    'accepts_email_marketing': 'boolean', 'created_at': 'timestamptz',
    'updated_at': 'timestamptz'
} %}

with

source_records as (

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

),

normalized as (

    select
        source || ':' || source_record_id as record_key,
        source,
        source_record_id,

        ----------  strong identifiers
        {{ identity_email('email') }} as email,
        case
            when lower(trim(email_sha256)) ~ '^[0-9a-f]{64}$' then lower(trim(email_sha256))
        end as email_sha256,
        {{ normalize_phone('phone') }} as phone_e164,
        {{ normalize_cpf('cpf') }} as cpf,
        platform_ids,

        ----------  as given, for the golden record
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        coalesce(
            nullif(trim(full_name), ''),
            nullif(trim(concat_ws(' ', trim(first_name), trim(last_name))), '')
        ) as full_name,
        nullif(trim(phone), '') as phone_raw,
        nullif(trim(city), '') as city,
        nullif(trim(state), '') as state,
        nullif(trim(postcode), '') as postcode,
        nullif(trim(address), '') as address,
        accepts_email_marketing,
        created_at,
        updated_at,

        ----------  matching forms for the fuzzy stage
        {{ normalize_name_key('first_name') }} as first_name_key,
        {{ normalize_name_key('last_name') }} as last_name_key,
        {{ normalize_name_key(
            "coalesce(nullif(trim(full_name), ''), concat_ws(' ', first_name, last_name))"
        ) }} as full_name_key,
        case
            when trim(birth_date) ~ '^\d{4}-\d{2}-\d{2}'
                then replace(left(trim(birth_date), 10), '-', '')
            when trim(birth_date) ~ '^\d{8}$'
                then trim(birth_date)
            when trim(birth_date) ~ '^\d{2}/\d{2}/\d{4}$'
                then
                    right(trim(birth_date), 4)
                    || substr(trim(birth_date), 4, 2)
                    || left(trim(birth_date), 2)
        end as birth_date_key,
        {{ normalize_name_key('city') }} as city_key,
        nullif(regexp_replace(postcode, '\D', '', 'g'), '') as postcode_key,
        {{ normalize_name_key('address') }} as address_key

    from source_records

),

final as (

    select
        row_number() over (order by record_key) as record_num,
        *,
        -- a real calendar date, when the key is one
        case
            when
                birth_date_key ~ '^(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$'
                and cast(right(birth_date_key, 2) as int) <= extract(day from (
                    make_date(
                        cast(left(birth_date_key, 4) as int),
                        cast(substr(birth_date_key, 5, 2) as int),
                        1
                    ) + interval '1 month' - interval '1 day'
                ))
                then make_date(
                        cast(left(birth_date_key, 4) as int),
                        cast(substr(birth_date_key, 5, 2) as int),
                        cast(right(birth_date_key, 2) as int)
                    )
        end as birth_date,
        right(regexp_replace(phone_raw, '\D', '', 'g'), 8) as phone_last8

    from normalized

)

select * from final
