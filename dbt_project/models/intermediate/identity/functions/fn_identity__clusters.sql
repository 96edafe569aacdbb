{#
    identity.clusters(scope, edges, components, records, typed_values, guards): the
    clustering step. The deterministic components joined by the fuzzy stage's accepted
    pairs, then the cluster-level guards of `guards` (var identity_guards, as jsonb).
    Each argument but `guards` is a query text (as identity.connected_components takes
    its edges):
    - scope: record_num of the records to cluster (null: every record);
    - edges: (node, value_id, identifier_type) of the identifier graph, and each
      accepted fuzzy pair as two rows of type 'fuzzy' sharing one value_id;
    - components: (record_num, component_num), the deterministic components;
    - records: (record_num, full_name_key, first_name_canon), for nameless_bridge
      (null: that guard is off);
    - typed_values: (node, identifier_type, value_id), the linkable values of the types
      max_values_per_customer counts.
    Returns (node, lab, pre_guard_lab, guard) for every record of the scope that has an
    edge; lab is the smallest record of its cluster.

    The guards:
    - max_values_per_customer {type: n}: a component holding more than n distinct
      values of the type (two CPFs) is recomputed without the values whose records carry
      more than n of them (the shared phone of two people); a component still over the
      limit is cut into one cluster per value of the type, and its records that carry
      none become clusters of their own;
    - nameless_bridge (on unless guards.nameless_bridge is false): a record with no name
      (or a till's placeholder one) that joins parts whose named records have no first
      name in common (Sônia's CPF and her husband Marcos's mobile, typed at a till for a
      sale with no name) says nothing about whose it is: the named parts stay apart, and
      the nameless record goes with the part its strongest identifier reaches (CPF, then
      email, then phone, then a fuzzy pair), else alone;
    - max_cluster_size: a larger component is recomputed from the strong types only
      (max_cluster_size_strong_types, default cpf and email), and if still too large,
      one cluster per record.
#}
{{ config(materialized='sql_function', schema='identity', alias='clusters') }}

{#- Both guards that cut a violating cluster start alike: its records (temp table
    _identity_cl_violating holds the clusters' labels), each labelled by its component
    in the edges the guard keeps (temp table _identity_cl_sub_edges), a record without
    one of those edges alone. CTEs sub_cc and nodes (node, lab). #}
{%- set violating_parts -%}
sub_cc as (
                select cc.node, cc.lab
                from {{ ref('fn_identity__connected_components') }}(
                    'select node, value_id from pg_temp._identity_cl_sub_edges'
                ) as cc
            ),
            nodes as (
                select c.node, coalesce(s.lab, c.node) as lab
                from pg_temp._identity_cl_clusters as c
                join pg_temp._identity_cl_violating as v on v.lab = c.lab
                left join sub_cc as s on s.node = c.node
            )
{%- endset %}

create or replace function {{ this }}(
    scope text,
    edges text,
    components text,
    records text,
    typed_values text,
    guards jsonb
)
returns table (node bigint, lab bigint, pre_guard_lab bigint, guard text)
{{ identity_function_settings() }}
as $function$
#variable_conflict use_column
declare
    violating bigint;
    guarded_type text;
    value_limit int;
    max_size int := cast(guards ->> 'max_cluster_size' as int);
    strong text[] := case
        when guards ? 'max_cluster_size_strong_types'
            then array(select jsonb_array_elements_text(guards -> 'max_cluster_size_strong_types'))
        else array['cpf', 'email']
    end;
begin
    drop table if exists
        pg_temp._identity_cl_scope,
        pg_temp._identity_cl_edges,
        pg_temp._identity_cl_join_edges,
        pg_temp._identity_cl_clusters,
        pg_temp._identity_cl_typed;
    if scope is not null then
        execute format(
            'create temp table _identity_cl_scope as select distinct s.record_num from (%s) as s',
            scope
        );
        create index on pg_temp._identity_cl_scope (record_num);
        analyze pg_temp._identity_cl_scope;
    end if;
    execute format(
        'create temp table _identity_cl_edges as'
        ' select cast(e.node as bigint) as node, e.value_id, e.identifier_type from (%s) as e'
        ' where e.node is not null and e.value_id is not null%s',
        edges,
        case when scope is not null
            then ' and e.node in (select s.record_num from pg_temp._identity_cl_scope as s)'
            else ''
        end
    );
    analyze pg_temp._identity_cl_edges;

    -- the deterministic components (each a star around its component node) joined by
    -- the fuzzy pairs: a small graph, few passes
    execute format(
        'create temp table _identity_cl_join_edges as'
        ' select c.record_num as node, hashtextextended(''component:'' || c.component_num, 0) as value_id'
        ' from (%s) as c'
        ' where c.record_num in (select e.node from pg_temp._identity_cl_edges as e)'
        ' union all'
        ' select e.node, e.value_id from pg_temp._identity_cl_edges as e'
        ' where e.identifier_type = ''fuzzy''',
        components
    );
    analyze pg_temp._identity_cl_join_edges;

    create temp table _identity_cl_clusters as
        select cc.node, cc.lab, cc.lab as pre_guard_lab, cast(null as text) as guard
        from {{ ref('fn_identity__connected_components') }}(
            'select node, value_id from pg_temp._identity_cl_join_edges'
        ) as cc;
    create index on pg_temp._identity_cl_clusters (node);
    analyze pg_temp._identity_cl_clusters;

    if records is not null and coalesce(cast(guards ->> 'nameless_bridge' as boolean), true) then
        -- guard nameless_bridge: the parts of each cluster that its named records make
        -- alone (identifier edges and fuzzy pairs between named records)
        drop table if exists pg_temp._identity_cl_nameless, pg_temp._identity_cl_mixed;
        execute format(
            'create temp table _identity_cl_nameless as'
            ' select distinct e.node from pg_temp._identity_cl_edges as e'
            ' join (%s) as r on r.record_num = e.node where r.full_name_key is null',
            records
        );
        create index on pg_temp._identity_cl_nameless (node);
        analyze pg_temp._identity_cl_nameless;
        -- only clusters that hold a nameless record and named records of two first names
        execute format(
            'create temp table _identity_cl_mixed as'
            ' select c.node, c.lab from pg_temp._identity_cl_clusters as c'
            ' where c.lab in ('
            '  select c2.lab from pg_temp._identity_cl_clusters as c2'
            '  left join (%s) as r on r.record_num = c2.node and r.full_name_key is not null'
            '  group by c2.lab'
            '  having count(distinct r.first_name_canon) > 1'
            '   and bool_or(c2.node in (select n.node from pg_temp._identity_cl_nameless as n))'
            ' )',
            records
        );
        create index on pg_temp._identity_cl_mixed (node);
        analyze pg_temp._identity_cl_mixed;

        drop table if exists pg_temp._identity_cl_named_cc, pg_temp._identity_cl_bridged;
        create temp table _identity_cl_named_cc as
            select cc.node, cc.lab
            from {{ ref('fn_identity__connected_components') }}(
                'select e.node, e.value_id from pg_temp._identity_cl_edges as e'
                ' where e.node in (select m.node from pg_temp._identity_cl_mixed as m)'
                ' and e.node not in (select n.node from pg_temp._identity_cl_nameless as n)'
            ) as cc;
        analyze pg_temp._identity_cl_named_cc;

        execute format(
            'create temp table _identity_cl_bridged as'
            ' with parts as ('
            '  select c.node, c.lab as cluster_lab, coalesce(s.lab, c.node) as part'
            '  from pg_temp._identity_cl_mixed as c'
            '  left join pg_temp._identity_cl_named_cc as s on s.node = c.node'
            '  where c.node not in (select n.node from pg_temp._identity_cl_nameless as n)'
            ' ),'
            ' first_names as ('
            '  select parts.cluster_lab, parts.part,'
            '   array_agg(distinct r.first_name_canon)'
            '    filter (where r.first_name_canon is not null) as canons'
            '  from parts join (%s) as r on r.record_num = parts.node'
            '  group by parts.cluster_lab, parts.part'
            ' ),'
            ' bridged as ('
            '  select distinct a.cluster_lab from first_names as a'
            '  join first_names as b on b.cluster_lab = a.cluster_lab and a.part < b.part'
            '  where not (a.canons && b.canons)'
            ' )'
            ' select parts.node, parts.part as lab from parts'
            ' where parts.cluster_lab in (select bridged.cluster_lab from bridged)',
            records
        );
        create index on pg_temp._identity_cl_bridged (node);
        analyze pg_temp._identity_cl_bridged;
        select count(distinct c.lab) into violating
        from pg_temp._identity_cl_mixed as c
        join pg_temp._identity_cl_bridged as b on b.node = c.node;
        if violating > 0 then
            -- each nameless record of those clusters: the part its strongest identifier reaches
            insert into pg_temp._identity_cl_bridged (node, lab)
                select distinct on (n.node) n.node, coalesce(b.lab, n.node)
                from pg_temp._identity_cl_nameless as n
                join pg_temp._identity_cl_mixed as c on c.node = n.node
                left join pg_temp._identity_cl_edges as e on e.node = n.node
                left join pg_temp._identity_cl_edges as e2
                    on e2.value_id = e.value_id and e2.node <> e.node
                left join pg_temp._identity_cl_bridged as b on b.node = e2.node
                where c.lab in (
                    select m.lab from pg_temp._identity_cl_mixed as m
                    join pg_temp._identity_cl_bridged as b2 on b2.node = m.node
                )
                order by
                    n.node,
                    b.lab is null,
                    case e.identifier_type
                        when 'cpf' then 0 when 'email' then 1 when 'phone' then 2
                        when 'fuzzy' then 4 else 3
                    end,
                    b.lab;
            -- labels are the smallest record of each new cluster
            update pg_temp._identity_cl_clusters as c
            set lab = f.lab, guard = 'nameless_bridge'
            from (
                select b.node, min(b.node) over (partition by b.lab) as lab
                from pg_temp._identity_cl_bridged as b
            ) as f
            where f.node = c.node;
        end if;
        drop table
            pg_temp._identity_cl_nameless,
            pg_temp._identity_cl_mixed,
            pg_temp._identity_cl_named_cc,
            pg_temp._identity_cl_bridged;
    end if;

    if jsonb_typeof(guards -> 'max_values_per_customer') = 'object' then
        execute format(
            'create temp table _identity_cl_typed as'
            ' select cast(t.node as bigint) as node, t.identifier_type, t.value_id from (%s) as t'
            ' where t.node in (select c.node from pg_temp._identity_cl_clusters as c)',
            typed_values
        );
        create index on pg_temp._identity_cl_typed (node);
        analyze pg_temp._identity_cl_typed;
    end if;
    for guarded_type, value_limit in
        select g.key, cast(g.value as int)
        from jsonb_each_text(coalesce(guards -> 'max_values_per_customer', '{}')) as g
    loop
        -- guard max_values_per_customer: at most value_limit values of guarded_type
        drop table if exists pg_temp._identity_cl_violating;
        create temp table _identity_cl_violating as
            select c.lab
            from pg_temp._identity_cl_clusters as c
            join pg_temp._identity_cl_typed as t
                on t.node = c.node and t.identifier_type = guarded_type
            group by c.lab
            having count(distinct t.value_id) > value_limit;
        select count(*) into violating from pg_temp._identity_cl_violating;
        continue when violating = 0;
        -- the edges inside violating components, minus values bridging several of the type
        drop table if exists pg_temp._identity_cl_sub_edges, pg_temp._identity_cl_sub_final;
        create temp table _identity_cl_sub_edges as
            with sub as (
                select e.node, e.value_id, e.identifier_type
                from pg_temp._identity_cl_edges as e
                join pg_temp._identity_cl_clusters as c on c.node = e.node
                join pg_temp._identity_cl_violating as v on v.lab = c.lab
            ),
            bridging as (
                select sub.value_id
                from sub
                join pg_temp._identity_cl_typed as t
                    on t.node = sub.node and t.identifier_type = guarded_type
                where sub.identifier_type <> guarded_type
                group by sub.value_id
                having count(distinct t.value_id) > value_limit
            )
            select sub.node, sub.value_id
            from sub
            where sub.value_id not in (select bridging.value_id from bridging);
        -- still over the limit: one cluster per value of the type, the rest alone
        create temp table _identity_cl_sub_final as
            with {{ violating_parts }},
            still as (
                select nodes.lab
                from nodes
                join pg_temp._identity_cl_typed as t
                    on t.node = nodes.node and t.identifier_type = guarded_type
                group by nodes.lab
                having count(distinct t.value_id) > value_limit
            ),
            value_of as (
                select t.node, min(t.value_id) as value_id
                from pg_temp._identity_cl_typed as t
                where t.identifier_type = guarded_type
                group by t.node
            )
            select
                nodes.node,
                case
                    when still.lab is null then nodes.lab
                    when value_of.value_id is null then nodes.node
                    else min(nodes.node) over (partition by nodes.lab, value_of.value_id)
                end as lab
            from nodes
            left join still on still.lab = nodes.lab
            left join value_of on value_of.node = nodes.node;
        update pg_temp._identity_cl_clusters as c
        set lab = f.lab, guard = 'max_values_per_customer:' || guarded_type
        from pg_temp._identity_cl_sub_final as f
        where f.node = c.node;
    end loop;

    if max_size is not null then
        -- guard max_cluster_size
        drop table if exists pg_temp._identity_cl_violating;
        create temp table _identity_cl_violating as
            select c.lab from pg_temp._identity_cl_clusters as c
            group by c.lab having count(*) > max_size;
        select count(*) into violating from pg_temp._identity_cl_violating;
        if violating > 0 then
            drop table if exists pg_temp._identity_cl_sub_edges, pg_temp._identity_cl_sub_final;
            create temp table _identity_cl_sub_edges as
                select e.node, e.value_id
                from pg_temp._identity_cl_edges as e
                join pg_temp._identity_cl_clusters as c on c.node = e.node
                join pg_temp._identity_cl_violating as v on v.lab = c.lab
                where e.identifier_type = any(strong);
            create temp table _identity_cl_sub_final as
                with {{ violating_parts }}
                select
                    nodes.node,
                    case
                        when count(*) over (partition by nodes.lab) > max_size then nodes.node
                        else nodes.lab
                    end as lab
                from nodes;
            update pg_temp._identity_cl_clusters as c
            set lab = f.lab, guard = concat_ws(', ', c.guard, 'max_cluster_size')
            from pg_temp._identity_cl_sub_final as f
            where f.node = c.node;
        end if;
    end if;

    return query
        select c.node, c.lab, c.pre_guard_lab, c.guard from pg_temp._identity_cl_clusters as c;
    drop table if exists
        pg_temp._identity_cl_scope,
        pg_temp._identity_cl_edges,
        pg_temp._identity_cl_join_edges,
        pg_temp._identity_cl_clusters,
        pg_temp._identity_cl_typed,
        pg_temp._identity_cl_violating,
        pg_temp._identity_cl_sub_edges,
        pg_temp._identity_cl_sub_final;
end
$function$
