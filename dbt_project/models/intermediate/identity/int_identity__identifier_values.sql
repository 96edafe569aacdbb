{#
    One row per distinct identifier value, with the value-level over-merge guards of the
    var identity_guards applied: a blocklisted value, or one carried by more distinct
    people than max_people_per_value allows for its type, is not linkable. "Distinct
    people" are distinct normalised full names: the store's phone typed on every walk-in
    sale belongs to many names. A record without a name is nobody else: a buyer's orders,
    which carry their account id and no name, are one person, not one each (a value has
    at least one person). Every value that a guard stops is listed in
    int_identity__guard_audit.
#}

-- depends_on: {{ ref('int_identity__record_changes') }}
{{ config(
    materialized='incremental',
    unique_key='value_id',
    incremental_strategy='merge',
    on_schema_change='append_new_columns',
    post_hook=[
        "create unique index if not exists {{ this.identifier }}_value_idx on {{ this }} (value_id)",
        after_commit("{{ identity_vacuum_analyze() }}"),
    ],
) }}

{%- set guards = var('identity_guards', {}) %}
{%- set limits = guards.get('max_people_per_value', {}) %}
{%- set blocklist = guards.get('blocklist', {}) %}

with

identifiers as (

    select * from {{ ref('int_identity__identifiers') }}
    {%- if is_incremental() %}
    -- recount only the values the touched records had or have
    where value_id in (
        select touched.value_id from {{ ref('int_identity__identifiers') }} as touched
        where touched.record_num in ({{ identity_touched_records() }})
        union
        select removed.value_id from {{ this.schema }}.int_identity__removed_identifiers as removed
    )
    {%- endif %}

),

blocklist as (

    select
        cast(null as text) as identifier_type,
        cast(null as text) as identifier_value
    where false
    {%- for identifier_type, values in blocklist.items() %}
        {%- for value in values %}

            union all
            select
                '{{ identifier_type }}' as identifier_type,
                {%- if identifier_type == 'email' %}
                    encode(
                        sha256(
                            convert_to(
                                {{ identity_email("'" ~ (value | replace("'", "''")) ~ "'") }},
                                'UTF8'
                            )
                        ),
                        'hex'
                    ) as identifier_value
                {%- elif identifier_type == 'phone' %}
                    {{ normalize_phone("'" ~ (value | replace("'", "''")) ~ "'") }}
                        as identifier_value
                {%- elif identifier_type == 'cpf' %}
                    regexp_replace('{{ value | replace("'", "''") }}', '\D', '', 'g')
                        as identifier_value
                {%- else %}
        '{{ value | replace("'", "''") }}' as identifier_value
        {%- endif %}
        {%- endfor %}
    {%- endfor %}

),

value_stats as (

    select
        value_id,
        identifier_type,
        identifier_value,
        min(identifier_label) as identifier_label,
        count(*) as records_count,
        greatest(count(distinct full_name_key), 1) as people_count

    from identifiers
    group by value_id, identifier_type, identifier_value

),

guarded as (

    select
        value_stats.*,
        case
            when blocklist.identifier_value is not null
                then 'blocklist'
            when value_stats.people_count > case value_stats.identifier_type
                    {%- for identifier_type, limit in limits.items()
                        if identifier_type != 'default' %}
                        when '{{ identifier_type }}' then {{ limit }}
                    {%- endfor %}
                    else {{ limits.get('default', 5) }}
                end
                then 'max_people_per_value'
        end as guard

    from value_stats
    left join blocklist
        on
            value_stats.identifier_type = blocklist.identifier_type
            and value_stats.identifier_value = blocklist.identifier_value

),

final as (

    select
        guarded.value_id,
        guarded.identifier_type,
        guarded.identifier_value,
        guarded.identifier_label,
        guarded.records_count,
        guarded.people_count,
        guarded.guard is null as is_linkable,
        guarded.guard,
        -- before this run's recount (null for a new value): a value that neither links
        -- now nor linked before (the store's phone) changes no component
        {{ 'existing.is_linkable' if is_incremental() else 'cast(null as boolean)' }}
            as was_linkable

    from guarded
    {%- if is_incremental() %}
    left join {{ this }} as existing
        on guarded.value_id = existing.value_id
    {%- endif %}

)

select * from final
