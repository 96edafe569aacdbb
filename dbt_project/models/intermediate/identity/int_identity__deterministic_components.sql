{#
    The identifier graph's connected components: records linked through linkable
    identifier values only (no fuzzy pair, no cluster-level guard yet). component_num is
    the smallest record_num of the component. The fuzzy stage skips pairs that already
    share a component, and int_identity__clusters starts from these components.
    Incremental: a run recomputes only the components its touched records reach (macro
    identity_deterministic_components); run_id marks the rows it wrote.
#}

-- depends_on: {{ ref('int_identity__identifiers') }}
-- depends_on: {{ ref('int_identity__identifier_values') }}
-- depends_on: {{ ref('int_identity__record_changes') }}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ identity_deterministic_components(
        ref('int_identity__identifiers'),
        ref('int_identity__identifier_values'),
        this if is_incremental() else none,
    ) }}",
    post_hook=[
        "create index if not exists {{ this.identifier }}_record_idx on {{ this }} (record_num)",
        "create index if not exists {{ this.identifier }}_component_idx on {{ this }} (component_num)",
        "create index if not exists {{ this.identifier }}_run_idx on {{ this }} (run_id)",
        after_commit("{{ identity_vacuum_analyze() }}"),
    ],
) }}

with

records as (

    select * from {{ ref('int_identity__records') }}
    {%- if is_incremental() %}
    where record_num in (select scope.record_num from pg_temp._id_det_scope as scope)
    {%- endif %}

),

final as (

    select
        records.record_num,
        coalesce(components.lab, records.record_num) as component_num,
        {{ identity_run_id() }} as run_id

    from records
    left join {{ identity_hook_result('_id_det_cc', [
            ('node', 'bigint'), ('lab', 'bigint')
        ]) }} as components
        on records.record_num = components.node

)

select * from final
