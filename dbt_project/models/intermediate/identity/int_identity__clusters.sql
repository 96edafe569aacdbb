{#
    Each record's cluster (one person) for this run: connected components of the
    identifier graph (linkable values only) plus the fuzzy stage's accepted pairs, then
    the cluster-level guards (see macro identity_build_clusters). cluster_num is the
    smallest record_num of the cluster: a label for this run only; the stable
    customer_id comes from int_identity__customer_id_assignments.
#}

-- depends_on: {{ ref('int_identity__identifiers') }}
-- depends_on: {{ ref('int_identity__identifier_values') }}
-- depends_on: {{ ref('int_identity__fuzzy_pairs') }}
{{ config(
    pre_hook="{{ identity_build_clusters(
        ref('int_identity__identifiers'),
        ref('int_identity__identifier_values'),
        ref('int_identity__fuzzy_pairs'),
    ) }}"
) }}

with

records as (

    select * from {{ ref('int_identity__records') }}

),

final as (

    select
        records.record_num,
        records.record_key,
        coalesce(clusters.lab, records.record_num) as cluster_num,
        coalesce(clusters.pre_guard_lab, records.record_num) as pre_guard_cluster_num,
        clusters.guard

    from records
    {% if execute -%}
        left join pg_temp._id_clusters as clusters
    {%- else -%}
    left join (
        select
            cast(null as bigint) as node,
            cast(null as bigint) as lab,
            cast(null as bigint) as pre_guard_lab,
            cast(null as text) as guard
    ) as clusters
    {%- endif %}
        on records.record_num = clusters.node

)

select * from final
