{#
    Every record that says something about a person, from every source listed in the
    var identity_sources (or, for `omnicanal identity resolve`, the one input table
    named by identity_input), with each identifier normalised by the shared macros.
    One row per record; record_key = "<source>:<id in the source>".
    Incremental: a run normalises only the records int_identity__record_changes lists as
    new or changed (merged by record_key), and removes the deleted ones.
#}

-- depends_on: {{ ref('int_identity__record_changes') }}
{{ config(
    materialized='incremental',
    unique_key='record_key',
    incremental_strategy='merge',
    on_schema_change='append_new_columns',
    pre_hook="{{ identity_removed_terms_pre_hook() }}",
    post_hook=[
        "{{ identity_delete_changed('record_key', 'record_key', ['deleted']) }}",
        "create index if not exists {{ this.identifier }}_num_idx on {{ this }} (record_num)",
        "create unique index if not exists {{ this.identifier }}_key_idx on {{ this }} (record_key)",
        "{{ identity_blocking_indexes() }}",
        "{{ identity_term_indexes() }}",
        after_commit("{{ identity_vacuum_analyze() }}"),
    ],
) }}

with

source_records as (

    {{ identity_source_records() }}

),

-- A name that is only the email's local part, letters kept ("rodrigo.fernandes1956" as
-- "Rodrigofernandes"), is what a help desk or a form shows when nobody typed a name: it
-- says nothing about who wrote, and must not count as another person on that email. A
-- name with a space was typed ("Rodrigo Fernandes" stays), and so was a plain local
-- part ("ana@" with "Ana" stays).
typed_names as (

    select
        *,
        split_part(trim(email), '@', 1) as email_local_part,
        coalesce(
            nullif(trim(full_name), ''),
            nullif(concat_ws(' ', nullif(trim(first_name), ''), nullif(trim(last_name), '')), '')
        ) as typed_name

    from source_records

),

-- the names a till or a form gives when the buyer gave none ("Consumidor Final",
-- "Cliente", "Não informado"; seed identity_fake_identifiers, type name)
placeholder_names as materialized (

    select distinct {{ normalize_name_key('value') }} as name_key
    from {{ ref('identity_fake_identifiers') }}
    where identifier_type = 'name'

),

named_records as (

    select
        *,
        -- a placeholder is no name: the fuzzy stage reads it as missing (level 0, no
        -- information), not as a name that disagrees with the buyer's real one
        coalesce({{ normalize_name_key('typed_name') }} in (
            select placeholder_names.name_key from placeholder_names
        ), false) as name_is_placeholder,
        coalesce(
            email_local_part ~ '[^[:alpha:]]'
            and typed_name !~ '\s'
            and lower(regexp_replace(typed_name, '[^[:alpha:]]', '', 'g'))
            = lower(regexp_replace(email_local_part, '[^[:alpha:]]', '', 'g')),
            false
        ) as name_is_email,
        -- A user name ("antonio_assis28", "joao.silva", "maria_s", "bia123": a help desk,
        -- a chat or a social network shows it when it knows no name) is one word of
        -- letters, digits, dots, underscores or hyphens, with a digit, a dot or an
        -- underscore. Its dots and underscores part words, as in any name; its digits (a
        -- birth year, a count) are no part of anyone's name: they are dropped, so the
        -- name it was made of can fit the one the shop has. Whether it fits is the name
        -- check's to say, as for any name: made of nobody's name, it is another name.
        coalesce(
            typed_name ~ '^[[:alpha:]][[:alnum:]_.-]*$' and typed_name ~ '[0-9_.]', false
        ) as name_is_user_name

    from typed_names

),

-- the name as the matching forms read it: none for the email's stand-in; a user name
-- without its digits, read as a name typed in one field
name_forms as (

    select
        *,
        case
            when not name_is_email and not name_is_user_name and not name_is_placeholder
                then first_name
        end as split_first_name,
        case
            when not name_is_email and not name_is_user_name and not name_is_placeholder
                then last_name
        end as split_last_name,
        case
            when name_is_email or name_is_placeholder then null
            when name_is_user_name then regexp_replace(typed_name, '[0-9]+', ' ', 'g')
            else full_name
        end as one_field_name,
        case
            when name_is_email or name_is_placeholder then null
            when name_is_user_name then regexp_replace(typed_name, '[0-9]+', ' ', 'g')
            else coalesce(nullif(trim(full_name), ''), concat_ws(' ', first_name, last_name))
        end as matching_name

    from named_records

),
{%- if is_incremental() %}

changes as (

    select * from {{ ref('int_identity__record_changes') }}
    where change in ('new', 'changed')

),
{%- endif %}

{%- set typed_full_key = normalize_name_key("one_field_name") %}
{#- generational suffixes closing a name ("Filho", "Neto") are not its surname #}
{%- set trailing_suffixes = (
    "( (filho|filha|junior|jr|neto|neta|sobrinho|sobrinha|segundo|terceiro))+$"
) %}

normalized as (

    select
        source || ':' || source_record_id as record_key,
        record_fingerprint,
        -- the code this record was normalised under (int_identity__record_changes
        -- normalises it again when that changes)
        cast('{{ identity_normalization_fingerprint() }}' as text) as normalization_fingerprint,
        source,
        source_record_id,

        ----------  strong identifiers
        {{ identity_email('email') }} as email,
        case
            when lower(trim(email_sha256)) ~ '^[0-9a-f]{64}$' then lower(trim(email_sha256))
        end as email_sha256,
        -- WhatsApp's wa_id is the number in international form without "+" (Brazilian
        -- ones often without the ninth digit): a phone; the record's phone falls back to it
        {{ normalize_phone("'+' || nullif(regexp_replace(wa_id, '\\D', '', 'g'), '')") }}
            as wa_id_e164,
        coalesce(
            {{ normalize_phone('phone') }},
            {{ normalize_phone("'+' || nullif(regexp_replace(wa_id, '\\D', '', 'g'), '')") }}
        ) as phone_e164,
        {{ normalize_cpf('cpf') }} as cpf,
        platform_ids,
        {{ normalize_social_handles('social_handles') }} as social_handles,

        ----------  as given, for the golden record
        case when not name_is_email then nullif(trim(first_name), '') end as first_name,
        case when not name_is_email then nullif(trim(last_name), '') end as last_name,
        case
            when not name_is_email
                then coalesce(
                        nullif(trim(full_name), ''),
                        nullif(trim(concat_ws(' ', trim(first_name), trim(last_name))), '')
                    )
        end as full_name,
        coalesce(nullif(trim(phone), ''), nullif(trim(wa_id), '')) as phone_raw,
        nullif(trim(city), '') as city,
        nullif(trim(state), '') as state,
        nullif(trim(postcode), '') as postcode,
        nullif(trim(address), '') as address,
        accepts_email_marketing,
        created_at,
        updated_at,

        ----------  matching forms for the fuzzy stage
        -- a name typed in one field ("Maria Eduarda da Silva": a loyalty form, a help
        -- desk) gives its last surname as last name and the words before it as first
        -- name (a compound first name stays whole), so the fuzzy stage can block and
        -- compare it with split names
        coalesce(
            {{ normalize_name_key("split_first_name") }},
            regexp_replace(
                regexp_replace({{ typed_full_key }}, '{{ trailing_suffixes }}', ''),
                '( (d|da|das|de|do|dos|e))* [a-z0-9]+$', ''
            )
        ) as first_name_key,
        coalesce(
            {{ normalize_name_key("split_last_name") }},
            substring(
                regexp_replace({{ typed_full_key }}, '{{ trailing_suffixes }}', '')
                from ' ([a-z0-9]+)$'
            )
        ) as last_name_key,
        {{ normalize_name_key("matching_name") }} as full_name_key,
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

    from name_forms

),

{%- set record_num = 'changes.record_num' if is_incremental()
    else 'row_number() over (order by normalized.record_key)' %}

numbered as (

    select
        {{ record_num }} as record_num,
        normalized.*

    from normalized
    {%- if is_incremental() %}
    inner join changes
        on normalized.record_key = changes.record_key
    {%- endif %}

),

-- nicknames and diminutives (Zé, Bia, Duda) with the name they stand for; a nickname
-- of a compound first name (Malu for Maria Luiza) goes by the compound's first word, as
-- the compound itself does below
name_variants as (

    select
        variant as name_variant,
        min(split_part(name, ' ', 1)) as canonical_name

    from {{ ref('identity_name_variants') }}
    group by variant

),

final as (

    select
        numbered.*,
        -- a real calendar date, when the key is one
        case
            when
                numbered.birth_date_key ~ '^(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$'
                and cast(right(numbered.birth_date_key, 2) as int) <= extract(day from (
                    make_date(
                        cast(left(numbered.birth_date_key, 4) as int),
                        cast(substr(numbered.birth_date_key, 5, 2) as int),
                        1
                    ) + interval '1 month' - interval '1 day'
                ))
                then make_date(
                        cast(left(numbered.birth_date_key, 4) as int),
                        cast(substr(numbered.birth_date_key, 5, 2) as int),
                        cast(right(numbered.birth_date_key, 2) as int)
                    )
        end as birth_date,
        right(regexp_replace(numbered.phone_raw, '\D', '', 'g'), 8) as phone_last8,
        -- blocking keys for what exact name keys miss: first and last name swapped
        -- (the two in alphabetical order), and typos after the first letters
        case
            when numbered.first_name_key is not null and numbered.last_name_key is not null
                then concat_ws(
                        '|',
                        least(numbered.first_name_key, numbered.last_name_key),
                        greatest(numbered.first_name_key, numbered.last_name_key)
                    )
        end as name_pair_key,
        left(numbered.first_name_key, 3) as first_name_prefix,
        left(numbered.last_name_key, 4) as last_name_prefix,
        -- the family name: the last surname, generational suffixes aside. Brazilians
        -- give one, two or three surnames, the family's last, and drop or reorder the
        -- others between forms ("Lopes Oliveira", "Oliveira", "da Silva Oliveira Filho"
        -- are one family name), so a person's records agree on it when their surnames
        -- as typed do not
        substring(
            regexp_replace(numbered.last_name_key, '{{ trailing_suffixes }}', '')
            from '([a-z0-9]+)$'
        ) as family_name_key,
        -- the first name's first word as the name it stands for: Bia and Beatriz agree,
        -- and so do Pedrinho and Pedro (macro identity_diminutive_base)
        coalesce(
            name_variants.canonical_name,
            ({{ identity_diminutive_base("split_part(numbered.first_name_key, ' ', 1)") }})[1],
            split_part(numbered.first_name_key, ' ', 1)
        ) as first_name_canon

    from numbered
    left join name_variants
        on split_part(numbered.first_name_key, ' ', 1) = name_variants.name_variant

)

select * from final
