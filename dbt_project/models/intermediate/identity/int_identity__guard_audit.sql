{#
    Why the graph did not link what it could have: one row per identifier value a guard
    stopped (fake_identifier, blocklist, max_people_per_value) and one per cluster a guard split
    (max_values_per_customer:<type>, max_cluster_size), with the numbers behind it.
#}

with

identifier_values as (

    select * from {{ ref('int_identity__identifier_values') }}

),

clusters as (

    select * from {{ ref('int_identity__clusters') }}

),

value_guards as (

    select
        guard,
        identifier_type,
        identifier_label as identifier_value,
        cast(null as bigint) as cluster_num,
        records_count,
        people_count,
        cast(null as bigint) as resulting_clusters,
        case guard
            when 'blocklist'
                then 'value is on the identity_guards blocklist'
            when 'fake_identifier'
                then 'a well-known fake '
                    || identifier_type
                    || ' (seed identity_fake_identifiers): '
                    || guard_detail
            else
                'value carried by ' || people_count || ' distinct people (' || names_count
                || ' names, compatible ones counted once; limit per type in'
                || ' identity_guards.max_people_per_value): it links nothing'
        end as reason

    from identifier_values
    where not is_linkable

),

cluster_guards as (

    select
        guard,
        cast(null as text) as identifier_type,
        cast(null as text) as identifier_value,
        pre_guard_cluster_num as cluster_num,
        count(*) as records_count,
        cast(null as bigint) as people_count,
        count(distinct cluster_num) as resulting_clusters,
        'component of ' || count(*) || ' records split into '
        || count(distinct cluster_num) || ' clusters by ' || guard as reason

    from clusters
    where guard is not null
    group by guard, pre_guard_cluster_num

),

final as (

    select * from value_guards
    union all
    select * from cluster_guards

)

select * from final
