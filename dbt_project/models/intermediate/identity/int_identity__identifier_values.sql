{#
    One row per distinct identifier value, with the value-level over-merge guards of the
    var identity_guards applied (README, "Guards"):
    - fake_identifier: a well-known fake (seed identity_fake_identifiers: 123.456.789-09,
      naotem@..., 99999-9999 with any area code ...) links nobody;
    - blocklist: the deployment's own values that never link;
    - max_people_per_value: a value carried by more people than its type allows links
      nothing (the store's phone). People are counted by compatible names
      (macros/identity/identity_names.sql): "Pedro", "Pedro Lucas Abreu" and a missing
      name are one person, José and Zé too; a placeholder name (Consumidor Final) is none;
    - a value that links and is carried by several people (a household's phone) links
      each one's records only: name_groups maps each name to its person (the group's
      fullest name), and the graph makes one node per group (macro identity_edge_node).
    Every value that a guard stops is listed in int_identity__guard_audit.
    JIT is off for this query: compiling its many expressions took longer than running
    it (24 s of 45 at 100k records on a loaded machine).
#}

-- depends_on: {{ ref('int_identity__record_changes') }}
{{ config(
    materialized='incremental',
    unique_key='value_id',
    incremental_strategy='merge',
    on_schema_change='append_new_columns',
    pre_hook="set local jit = off",
    post_hook=[
        "create unique index if not exists {{ this.identifier }}_value_idx on {{ this }} (value_id)",
        after_commit("{{ identity_vacuum_analyze() }}"),
    ],
) }}

{%- set guards = var('identity_guards', {}) %}
{%- set limits = guards.get('max_people_per_value', {}) %}
{%- set blocklist = guards.get('blocklist', {}) %}
{%- set max_names = guards.get('max_names_compared', 20) %}
{%- set split_types = guards.get('split_by_name', ['email', 'phone', 'cpf']) %}

with recursive

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

placeholder_names as materialized (

    select distinct {{ normalize_name_key('value') }} as name_key
    from {{ ref('identity_fake_identifiers') }}
    where identifier_type = 'name'

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

named as (

    select
        identifiers.*,
        -- a placeholder name ("Consumidor Final", the till's anonymous buyer) is no name
        case when placeholder.name_key is null then identifiers.full_name_key end as name_key

    from identifiers
    left join placeholder_names as placeholder
        on identifiers.full_name_key = placeholder.name_key

),

value_stats as (

    select
        value_id,
        identifier_type,
        identifier_value,
        min(identifier_label) as identifier_label,
        count(*) as records_count,
        count(distinct name_key) as names_count,
        min(name_key) as only_name_key

    from named
    group by value_id, identifier_type, identifier_value

),

-- the distinct names of each value written under 2 to max_names_compared names: who
-- they can be is worked out below; a value under more names is many people
value_names as (

    select distinct
        named.value_id,
        named.name_key

    from named
    inner join value_stats
        on named.value_id = value_stats.value_id
    where
        named.name_key is not null
        and value_stats.names_count between 2 and {{ max_names }}

),

name_tokens as materialized (

    {{ identity_name_tokens('select name_key from value_names') }}

),

value_name_pairs as (

    select
        a.name_key as name_a,
        b.name_key as name_b
    from value_names as a
    inner join value_names as b
        on
            a.value_id = b.value_id
            and a.name_key < b.name_key

),

compatible as materialized (

    {{ identity_compatible_name_pairs('select * from value_name_pairs', 'name_tokens') }}

),

compatible_directed as (

    select
        name_a as x,
        name_b as y
    from compatible
    union all
    select
        name_b as x,
        name_a as y
    from compatible

),

name_token_counts as (

    select
        name_key,
        count(*) as token_count
    from name_tokens
    group by name_key

),

-- a name of only particles ("de") says nothing: left out like a missing one
sized_names as (

    select
        value_names.value_id,
        value_names.name_key,
        tokens.token_count

    from value_names
    inner join name_token_counts as tokens
        on value_names.name_key = tokens.name_key

),

-- the most complete names: none of the value's names that fits them says more
maximal_names as (

    select sized_names.*
    from sized_names
    where not exists (
            select 1 as fuller
            from compatible_directed
            inner join sized_names as other
                on compatible_directed.y = other.name_key
            where
                compatible_directed.x = sized_names.name_key
                and other.value_id = sized_names.value_id
                and other.token_count > sized_names.token_count
        )

),

-- one person per group of compatible complete names (typos of one name chain together)
reach (value_id, name_key, root) as (

    select
        value_id,
        name_key,
        name_key as root
    from maximal_names
    union
    select
        reach.value_id,
        compatible_directed.y,
        reach.root
    from reach
    inner join compatible_directed
        on reach.name_key = compatible_directed.x
    inner join maximal_names
        on
            reach.value_id = maximal_names.value_id
            and compatible_directed.y = maximal_names.name_key

),

maximal_groups as (

    select
        value_id,
        name_key,
        min(root) as root
    from reach
    group by value_id, name_key

),

-- a shorter name ("Pedro") joins the one group whose names it fits; fitting several
-- groups ("Pedro" beside "Pedro Abreu" and "Pedro Lima") it is nobody's for sure
name_groups as (

    select
        value_id,
        name_key,
        root
    from maximal_groups
    union all
    select
        sized_names.value_id,
        sized_names.name_key,
        min(maximal_groups.root) as root

    from sized_names
    inner join compatible_directed
        on sized_names.name_key = compatible_directed.x
    inner join maximal_groups
        on
            sized_names.value_id = maximal_groups.value_id
            and compatible_directed.y = maximal_groups.name_key
    where not exists (
            select 1 as is_maximal from maximal_names
            where
                maximal_names.value_id = sized_names.value_id
                and maximal_names.name_key = sized_names.name_key
        )
    group by sized_names.value_id, sized_names.name_key
    having count(distinct maximal_groups.root) = 1

),

value_people as (

    select
        value_id,
        count(distinct root) as people_count,
        jsonb_object_agg(name_key, root) as name_groups

    from name_groups
    group by value_id

),

fake_identifiers as materialized (

    select
        identifier_type,
        source,
        case identifier_type
            when 'cpf' then regexp_replace(value, '\D', '', 'g')
            -- the subscriber number, after the ninth digit is added (any area code)
            when 'phone'
                then substr(
                        {{ normalize_phone("'11' || regexp_replace(value, '\\D', '', 'g')") }}, 6
                    )
            when 'email' then case
                    when value !~ '@\*$'
                        then encode(
                                sha256(convert_to({{ identity_email('value') }}, 'UTF8')), 'hex'
                            )
                end
        end as match_value,
        case
            when identifier_type = 'email' and value ~ '@\*$'
                then lower(trim(split_part(value, '@', 1)))
        end as any_domain_local_part

    from {{ ref('identity_fake_identifiers') }}
    where identifier_type in ('cpf', 'email', 'phone')

),

fake_values as (

    select
        identifier_type,
        match_value,
        min(source) as source
    from fake_identifiers
    where match_value is not null
    group by identifier_type, match_value

),

fake_local_parts as (

    select
        any_domain_local_part,
        min(source) as source
    from fake_identifiers
    where any_domain_local_part is not null
    group by any_domain_local_part

),

guarded as (

    select
        value_stats.*,
        case
            when value_stats.names_count <= 1 then 1
            when value_stats.names_count > {{ max_names }} then value_stats.names_count
            else greatest(coalesce(value_people.people_count, 1), 1)
        end as people_count,
        coalesce(
            value_people.name_groups,
            case
                when value_stats.names_count = 1
                    then jsonb_build_object(value_stats.only_name_key, value_stats.only_name_key)
                when value_stats.names_count = 0 then cast('{}' as jsonb)
            end
        ) as all_name_groups,
        coalesce(
            fake_values.source,
            fake_local_parts.source,
            case
                when
                    value_stats.identifier_type = 'phone'
                    and value_stats.identifier_value ~ '^\+55\d\d9?(\d)\1{7}$'
                    then 'a subscriber number of one repeated digit (99999-9999, any area code)'
            end
        ) as fake_source

    from value_stats
    left join value_people
        on value_stats.value_id = value_people.value_id
    left join fake_values
        on
            value_stats.identifier_type = fake_values.identifier_type
            and fake_values.match_value = case
                when value_stats.identifier_type <> 'phone' then value_stats.identifier_value
                when
                    value_stats.identifier_value like '+55%'
                    then substr(value_stats.identifier_value, 6)
            end
    left join fake_local_parts
        on
            value_stats.identifier_type = 'email'
            and split_part(value_stats.identifier_label, '@', 1)
            = fake_local_parts.any_domain_local_part

),

decided as (

    select
        guarded.*,
        case
            when guarded.fake_source is not null
                then 'fake_identifier'
            when blocklist.identifier_value is not null
                then 'blocklist'
            when guarded.people_count > case guarded.identifier_type
                    {%- for identifier_type, limit in limits.items()
                        if identifier_type != 'default' %}
                        when '{{ identifier_type }}' then {{ limit }}
                    {%- endfor %}
                    else {{ limits.get('default', 5) }}
                end
                then 'max_people_per_value'
        end as guard

    from guarded
    left join blocklist
        on
            guarded.identifier_type = blocklist.identifier_type
            and guarded.identifier_value = blocklist.identifier_value

),

final as (

    select
        decided.value_id,
        decided.identifier_type,
        decided.identifier_value,
        decided.identifier_label,
        decided.records_count,
        decided.names_count,
        decided.people_count,
        decided.guard is null as is_linkable,
        decided.guard,
        case
            when decided.guard = 'fake_identifier' then decided.fake_source
        end as guard_detail,
        -- several people under one value that still links (a household's phone): it
        -- links each person's records only, {name_key: group}; a record whose name is
        -- missing or fits several groups takes no edge of it. A Brazilian landline
        -- (+55, area code, eight digits, the first 2 to 5: Anatel's plan for fixed lines) is
        -- a home's, whoever answers it, so it is split by name even under one name: a
        -- till sale with no name on it is no one's of that home for sure. So is an
        -- email named for a family ("familiasilva@", "family.souza@"): the family's
        -- shared mailbox, as its own name says
        case
            when
                decided.guard is null
                and (
                    decided.people_count > 1
                    or (
                        decided.identifier_type = 'phone'
                        and decided.identifier_value ~ '^\+55\d\d[2-5]\d{7}$'
                    )
                    or (
                        decided.identifier_type = 'email'
                        and decided.identifier_label ~ '^famil(ia|y)'
                    )
                )
                and decided.identifier_type in (
                    '{{ split_types | join("', '") }}'  -- noqa: LT05
                )
                then decided.all_name_groups
        end as name_groups,
        -- before this run's recount (null for a new value): a value that neither links
        -- now nor linked before (the store's phone) changes no component
        {{ 'existing.is_linkable' if is_incremental() else 'cast(null as boolean)' }}
            as was_linkable

    from decided
    {%- if is_incremental() %}
    left join {{ this }} as existing
        on decided.value_id = existing.value_id
    {%- endif %}

)

select * from final
