{#
    Each record's cluster (one person) for this run: connected components of the
    identifier graph (int_identity__deterministic_components) joined by the fuzzy
    stage's accepted pairs, then the cluster-level guards of var identity_guards, by the
    installed function identity.clusters (model fn_identity__clusters, which describes
    the guards). cluster_num is the smallest record_num of the cluster: a label for this
    run only; the stable customer_id comes from int_identity__cluster_customer_ids.
    Incremental: a run recomputes only the previous clusters its changes reach (scope
    below) and replaces their rows (delete+insert on record_num; a deleted record's row
    goes in the post-hook); run_id marks the rows it wrote.
#}

{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='record_num',
    post_hook=[
        "{% if is_incremental() %}delete from {{ this }} where record_num in (
            select changes.record_num from {{ ref('int_identity__record_changes') }} as changes
            where changes.change = 'deleted'
        ){% endif %}",
        "create index if not exists {{ this.identifier }}_record_idx on {{ this }} (record_num)",
        "create index if not exists {{ this.identifier }}_cluster_idx on {{ this }} (cluster_num)",
        "create index if not exists {{ this.identifier }}_pre_guard_idx on {{ this }} (pre_guard_cluster_num)",
        "create index if not exists {{ this.identifier }}_run_idx on {{ this }} (run_id)",
        after_commit("{{ identity_vacuum_analyze() }}"),
    ],
) }}

{%- set identifiers = ref('int_identity__identifiers') %}
{%- set identifier_values = ref('int_identity__identifier_values') %}
{%- set fuzzy_pairs = ref('int_identity__fuzzy_pairs') %}
{%- set components = ref('int_identity__deterministic_components') %}
{%- set guards = var('identity_guards', {}) %}

{#- Incremental: the previous clusters holding a record whose component was recomputed,
    a touched record, a record of the fuzzy stage's scope (whose pairs it deleted) or a
    record of a fuzzy pair this run wrote or re-decided; closed under every edge: whole
    clusters as they were before the guards (a guard that split one cluster in two left
    an edge between them, and the guards must judge the whole again). #}
{%- set scope %}
    with reached as (
        select c.record_num from {{ components }} as c
        where c.run_id = {{ identity_run_id() }}
        union
        {{ identity_touched_records() }}
        union
        select fs.record_num from {{ this.schema }}.int_identity__fuzzy_scope as fs
        union
        select p.record_num_a from {{ fuzzy_pairs }} as p
        where p.run_id = {{ identity_run_id() }}
        union
        select p.record_num_b from {{ fuzzy_pairs }} as p
        where p.run_id = {{ identity_run_id() }}
    )
    select p.record_num from {{ this }} as p
    where p.pre_guard_cluster_num in (
        select p2.pre_guard_cluster_num from {{ this }} as p2
        where p2.record_num in (select reached.record_num from reached)
    )
    union
    select reached.record_num from reached
{%- endset %}

with

records as (

    select * from {{ ref('int_identity__records') }}
    {%- if is_incremental() %}
    where record_num in ({{ scope }})
    {%- endif %}

),

clusters as (

    select
        cl.node,
        cl.lab,
        cl.pre_guard_lab,
        cl.guard
    from
        {{ ref('fn_identity__clusters') }}(
            {{ '$scope$' ~ scope ~ '$scope$' if is_incremental() else 'null' }},
            $edges$
            select i.record_num as node, {{ identity_edge_node('i', 'v') }} as value_id, i.identifier_type
            from {{ identifiers }} as i
            join {{ identifier_values }} as v on v.value_id = i.value_id
            where {{ identity_edge_links('i', 'v') }}
            union all
            select p.record_num_a, hashtextextended('pair:' || p.record_num_a || ':' || p.record_num_b, 0), 'fuzzy'
            from {{ fuzzy_pairs }} as p where p.is_match
            union all
            select p.record_num_b, hashtextextended('pair:' || p.record_num_a || ':' || p.record_num_b, 0), 'fuzzy'
            from {{ fuzzy_pairs }} as p where p.is_match
            $edges$,
            $components$
            select c.record_num, c.component_num from {{ components }} as c
            $components$,
            {%- if guards.get('nameless_bridge', true) %}
            $records$
            select r.record_num, r.full_name_key, r.first_name_canon
            from {{ ref('int_identity__records') }} as r
            $records$,
            {%- else %}
            null,
            {%- endif %}
            $values$
            select i.record_num as node, i.identifier_type, i.value_id
            from {{ identifiers }} as i
            join {{ identifier_values }} as v on v.value_id = i.value_id and v.is_linkable
            where i.identifier_type in (
                '{{ guards.get('max_values_per_customer', {}).keys() | join("', '") }}'
            )
            $values$,
            cast($guards${{ tojson(guards) }}$guards$ as jsonb)
        ) as cl

),

final as (

    select
        records.record_num,
        records.record_key,
        coalesce(clusters.lab, records.record_num) as cluster_num,
        coalesce(clusters.pre_guard_lab, records.record_num) as pre_guard_cluster_num,
        clusters.guard,
        {{ identity_run_id() }} as run_id

    from records
    left join clusters
        on records.record_num = clusters.node

)

select * from final
