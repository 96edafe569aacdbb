{#
    Each record's cluster (one person) for this run: connected components of the
    identifier graph (int_identity__deterministic_components) joined by the fuzzy
    stage's accepted pairs, then the cluster-level guards (see macro identity_build_clusters). cluster_num is the
    smallest record_num of the cluster: a label for this run only; the stable
    customer_id comes from int_identity__cluster_customer_ids.
    Incremental: a run recomputes only the previous clusters its changes reach (records
    touched, components recomputed, new fuzzy links); run_id marks the rows it wrote.
#}

-- depends_on: {{ ref('int_identity__identifiers') }}
-- depends_on: {{ ref('int_identity__identifier_values') }}
-- depends_on: {{ ref('int_identity__fuzzy_pairs') }}
-- depends_on: {{ ref('int_identity__deterministic_components') }}
-- depends_on: {{ ref('int_identity__record_changes') }}
-- depends_on: {{ ref('int_identity__records') }}
-- depends_on: {{ ref('fn_identity__connected_components') }}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ identity_build_clusters(
        ref('int_identity__identifiers'),
        ref('int_identity__identifier_values'),
        ref('int_identity__fuzzy_pairs'),
        ref('int_identity__deterministic_components'),
        this if is_incremental() else none,
        records=ref('int_identity__records'),
    ) }}",
    post_hook=[
        "create index if not exists {{ this.identifier }}_record_idx on {{ this }} (record_num)",
        "create index if not exists {{ this.identifier }}_cluster_idx on {{ this }} (cluster_num)",
        "create index if not exists {{ this.identifier }}_pre_guard_idx on {{ this }} (pre_guard_cluster_num)",
        "create index if not exists {{ this.identifier }}_run_idx on {{ this }} (run_id)",
        after_commit("{{ identity_vacuum_analyze() }}"),
    ],
) }}

with

records as (

    select * from {{ ref('int_identity__records') }}
    {%- if is_incremental() %}
    where record_num in (select scope.record_num from pg_temp._id_scope as scope)
    {%- endif %}

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
    left join {{ identity_hook_result('_id_clusters', [
            ('node', 'bigint'), ('lab', 'bigint'), ('pre_guard_lab', 'bigint'), ('guard', 'text')
        ]) }} as clusters
        on records.record_num = clusters.node

)

select * from final
