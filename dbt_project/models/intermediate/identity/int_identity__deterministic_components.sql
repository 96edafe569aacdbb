{#
    The identifier graph's connected components: records linked through linkable
    identifier values only (no fuzzy pair, no cluster-level guard yet), computed by the
    installed function identity.connected_components (model
    fn_identity__connected_components). component_num is the smallest record_num of the
    component. The fuzzy stage skips pairs that already share a component, and
    int_identity__clusters starts from these components.
    Incremental: a run recomputes only the components its touched records reach (scope
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
        "create index if not exists {{ this.identifier }}_component_idx on {{ this }} (component_num)",
        "create index if not exists {{ this.identifier }}_run_idx on {{ this }} (run_id)",
        after_commit("{{ identity_vacuum_analyze() }}"),
    ],
) }}

{%- set identifiers = ref('int_identity__identifiers') %}
{%- set identifier_values = ref('int_identity__identifier_values') %}

{#- Incremental: the records this run touched, those that carry a value they had or have
    (one that links now or linked before: not the store's phone), and every record of
    the previous components of all these: recomputed as a closed subgraph. #}
{%- set scope %}
    with touched as (
        {{ identity_touched_records() }}
    ),
    touched_values as (
        select v.value_id from {{ identifier_values }} as v
        where
            (v.is_linkable or v.was_linkable)
            and v.value_id in (
                select i.value_id from {{ identifiers }} as i
                where i.record_num in (select touched.record_num from touched)
                union
                select removed.value_id
                from {{ this.schema }}.int_identity__removed_identifiers as removed
            )
    ),
    reached as (
        select touched.record_num from touched
        union
        select i.record_num from {{ identifiers }} as i
        where i.value_id in (select touched_values.value_id from touched_values)
    )
    select p.record_num from {{ this }} as p
    where p.component_num in (
        select p2.component_num from {{ this }} as p2
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

components as (

    select
        cc.node,
        cc.lab
    from
        {{ ref('fn_identity__connected_components') }}(
            $edges$
            select i.record_num as node, {{ identity_edge_node('i', 'v') }} as value_id
            from {{ identifiers }} as i
            join {{ identifier_values }} as v on v.value_id = i.value_id
            where {{ identity_edge_links('i', 'v') }}
            {%- if is_incremental() %}
                and i.record_num in ({{ scope }})
            {%- endif %}
            $edges$
        ) as cc

),

final as (

    select
        records.record_num,
        coalesce(components.lab, records.record_num) as component_num,
        {{ identity_run_id() }} as run_id

    from records
    left join components
        on records.record_num = components.node

)

select * from final
