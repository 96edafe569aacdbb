{#
    The identifier graph's edges, as (record, identifier value) pairs: every normalised
    identifier each record carries. An email's value is the sha256 of its normalised
    form, so a plain email and a hashed one (Meta/Google style) are the same value; a
    WhatsApp wa_id is a phone; a social handle's type is its network;
    identifier_label keeps the readable form when there is one (for the audit).
    value_id is a 64-bit hash of "<type>:<value>", the node id of the value.
    Incremental: a run rewrites the edges of the records it touched only.
#}

-- depends_on: {{ ref('int_identity__record_changes') }}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ identity_identifiers_pre_hook() }}",
    post_hook=[
        "create index if not exists {{ this.identifier }}_record_idx on {{ this }} (record_num)",
        "create index if not exists {{ this.identifier }}_value_idx on {{ this }} (value_id)",
        after_commit("{{ identity_vacuum_analyze() }}"),
    ],
) }}

with

records as (

    select * from {{ ref('int_identity__records') }}
    where record_num in ({{ identity_touched_records() }})

),

typed as (

    select
        records.record_num,
        records.record_key,
        records.full_name_key,
        identifiers.identifier_type,
        identifiers.identifier_value,
        identifiers.identifier_label

    from records
    cross join
        lateral (
            values
            (
                'email',
                coalesce(
                    encode(sha256(convert_to(records.email, 'UTF8')), 'hex'),
                    records.email_sha256
                ),
                records.email
            ),
            ('phone', records.phone_e164, records.phone_e164),
            ('phone', nullif(records.wa_id_e164, records.phone_e164), records.wa_id_e164),
            ('cpf', records.cpf, records.cpf)
        ) as identifiers (identifier_type, identifier_value, identifier_label)
    where identifiers.identifier_value is not null

    union all

    select
        records.record_num,
        records.record_key,
        records.full_name_key,
        platform.key as identifier_type,
        platform.value as identifier_value,
        platform.value as identifier_label

    from records
    cross join lateral jsonb_each_text(records.platform_ids) as platform

    union all

    -- a social handle's type is its network (instagram, tiktok, ...)
    select
        records.record_num,
        records.record_key,
        records.full_name_key,
        handle.key as identifier_type,
        handle.value as identifier_value,
        '@' || handle.value as identifier_label

    from records
    cross join lateral jsonb_each_text(records.social_handles) as handle

),

final as (

    select
        record_num,
        record_key,
        identifier_type,
        identifier_value,
        identifier_label,
        hashtextextended(identifier_type || ':' || identifier_value, 0) as value_id,
        full_name_key

    from typed

)

select * from final
