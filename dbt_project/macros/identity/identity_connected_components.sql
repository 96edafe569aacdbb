{#
    Connected components of the temp table `edges` (node, value_id) into temp table `out`
    (node, lab), by the installed function identity.connected_components (model
    fn_identity__connected_components): plpgsql statements for the DO block below.
#}
{% macro identity_cc_loop(edges, out) -%}
    drop table if exists {{ out }};
    create temp table {{ out }} as
        select cc.node, cc.lab
        from {{ ref('fn_identity__connected_components') }}('select node, value_id from {{ edges }}') as cc;
    analyze {{ out }};
{%- endmacro %}


{#
    The whole clustering step as one DO block: the deterministic components joined by
    the fuzzy stage's accepted pairs, then the cluster-level guards of the
    var identity_guards:
    - max_values_per_customer {type: n}: a component holding more than n distinct
      values of the type (two CPFs) is recomputed without the values whose records carry
      more than n of them (the shared phone of two people); a component still over the
      limit is cut into one cluster per value of the type, and its records that carry
      none become clusters of their own;
    - nameless_bridge (on unless identity_guards.nameless_bridge is false): a record
      with no name (or a till's placeholder one) that joins parts whose named records
      have no first name in common (Sônia's CPF and her husband Marcos's mobile, typed
      at a till for a sale with no name) says nothing about whose it is: the named parts
      stay apart, and the nameless record goes with the part its strongest identifier
      reaches (CPF, then email, then phone, then a fuzzy pair), else alone;
    - max_cluster_size: a larger component is recomputed from the strong types only
      (max_cluster_size_strong_types), and if still too large, one cluster per record.
    Leaves temp table _id_clusters (node, lab, pre_guard_lab, guard).
#}
{% macro identity_build_clusters(identifiers, identifier_values, fuzzy_pairs, components, previous=none, records=none) -%}
    {%- set guards = var('identity_guards', {}) %}
    {%- set max_size = guards.get('max_cluster_size', none) %}
    {%- set strong = guards.get('max_cluster_size_strong_types', ['cpf', 'email']) %}
    {%- set in_scope = ' in (select record_num from _id_scope)' if previous else '' %}
do $identity$
declare
    violating bigint;
begin
    set local work_mem = '256MB';
    {%- if previous %}
    -- incremental: the previous clusters holding a record whose component was recomputed,
    -- a touched record, a record of the fuzzy stage's scope (whose pairs it deleted) or a
    -- record of a fuzzy pair this run wrote or re-decided; closed under every edge: whole
    -- clusters as they were before the guards (a guard that split one cluster in two left
    -- an edge between them, and the guards must judge the whole again)
    drop table if exists _id_scope;
    create temp table _id_scope as
        with reached as (
            select record_num from {{ components }} where run_id = {{ identity_run_id() }}
            union
            {{ identity_touched_records() }}
            union
            select record_num from {{ this.schema }}.int_identity__fuzzy_scope
            union
            select record_num_a from {{ fuzzy_pairs }} where run_id = {{ identity_run_id() }}
            union
            select record_num_b from {{ fuzzy_pairs }} where run_id = {{ identity_run_id() }}
        )
        select p.record_num from {{ previous }} as p
        where p.pre_guard_cluster_num in (
            select p2.pre_guard_cluster_num from {{ previous }} as p2
            where p2.record_num in (select record_num from reached)
        )
        union
        select record_num from reached;
    create index on _id_scope (record_num);
    analyze _id_scope;
    delete from {{ previous }} where record_num in (select record_num from _id_scope);
    {%- endif %}
    drop table if exists _id_edges;
    create temp table _id_edges as
        select i.record_num as node, {{ identity_edge_node('i', 'v') }} as value_id, i.identifier_type
        from {{ identifiers }} as i
        join {{ identifier_values }} as v on v.value_id = i.value_id
        where {{ identity_edge_links('i', 'v') }}{% if previous %} and i.record_num{{ in_scope }}{% endif %}
        union all
        select p.record_num_a, hashtextextended('pair:' || p.record_num_a || ':' || p.record_num_b, 0), 'fuzzy'
        from {{ fuzzy_pairs }} as p where p.is_match{% if previous %} and p.record_num_a{{ in_scope }}{% endif %}
        union all
        select p.record_num_b, hashtextextended('pair:' || p.record_num_a || ':' || p.record_num_b, 0), 'fuzzy'
        from {{ fuzzy_pairs }} as p where p.is_match{% if previous %} and p.record_num_b{{ in_scope }}{% endif %};
    analyze _id_edges;

    -- the deterministic components (each a star around its component node) joined by
    -- the fuzzy pairs: a small graph, few passes
    drop table if exists _id_join_edges;
    create temp table _id_join_edges as
        select c.record_num as node, hashtextextended('component:' || c.component_num, 0) as value_id
        from {{ components }} as c
        where c.record_num in (select e.node from _id_edges as e){% if previous %} and c.record_num{{ in_scope }}{% endif %}
        union all
        select e.node, e.value_id from _id_edges as e where e.identifier_type = 'fuzzy';
    analyze _id_join_edges;

    {{ identity_cc_loop('_id_join_edges', '_id_cc') }}

    drop table if exists _id_clusters;
    create temp table _id_clusters as
        select node, lab, lab as pre_guard_lab, cast(null as text) as guard from _id_cc;
    create index on _id_clusters (node);
    analyze _id_clusters;

    {%- if records is not none and guards.get('nameless_bridge', true) %}

    -- guard nameless_bridge: the parts of each cluster that its named records make
    -- alone (identifier edges and fuzzy pairs between named records)
    drop table if exists _id_nameless;
    create temp table _id_nameless as
        select distinct e.node
        from _id_edges as e
        join {{ records }} as r on r.record_num = e.node
        where r.full_name_key is null;
    create index on _id_nameless (node);
    analyze _id_nameless;
    -- only clusters that hold a nameless record and named records of two first names
    drop table if exists _id_mixed;
    create temp table _id_mixed as
        select c.node, c.lab
        from _id_clusters as c
        where c.lab in (
            select c2.lab
            from _id_clusters as c2
            left join {{ records }} as r
                on r.record_num = c2.node and r.full_name_key is not null
            group by c2.lab
            having
                count(distinct r.first_name_canon) > 1
                and bool_or(c2.node in (select n.node from _id_nameless as n))
        );
    create index on _id_mixed (node);
    analyze _id_mixed;
    drop table if exists _id_named_edges;
    create temp table _id_named_edges as
        select e.node, e.value_id from _id_edges as e
        where
            e.node in (select m.node from _id_mixed as m)
            and e.node not in (select n.node from _id_nameless as n);
    analyze _id_named_edges;

    {{ identity_cc_loop('_id_named_edges', '_id_named_cc') }}

    drop table if exists _id_bridged;
    create temp table _id_bridged as
        with parts as (
            select c.node, c.lab as cluster_lab, coalesce(s.lab, c.node) as part
            from _id_mixed as c
            left join _id_named_cc as s on s.node = c.node
            where c.node not in (select n.node from _id_nameless as n)
        ),
        first_names as (
            select
                parts.cluster_lab,
                parts.part,
                array_agg(distinct r.first_name_canon)
                    filter (where r.first_name_canon is not null) as canons
            from parts
            join {{ records }} as r on r.record_num = parts.node
            group by parts.cluster_lab, parts.part
        ),
        bridged as (
            select distinct a.cluster_lab
            from first_names as a
            join first_names as b on b.cluster_lab = a.cluster_lab and a.part < b.part
            where not (a.canons && b.canons)
        )
        select parts.node, parts.part as lab
        from parts
        where parts.cluster_lab in (select bridged.cluster_lab from bridged);
    create index on _id_bridged (node);
    analyze _id_bridged;
    select count(distinct c.lab) into violating
    from _id_mixed as c join _id_bridged as b on b.node = c.node;
    if violating > 0 then
        -- each nameless record of those clusters: the part its strongest identifier reaches
        insert into _id_bridged (node, lab)
            select distinct on (n.node) n.node, coalesce(b.lab, n.node)
            from _id_nameless as n
            join _id_mixed as c on c.node = n.node
            left join _id_edges as e on e.node = n.node
            left join _id_edges as e2 on e2.value_id = e.value_id and e2.node <> e.node
            left join _id_bridged as b on b.node = e2.node
            where c.lab in (
                select m.lab from _id_mixed as m join _id_bridged as b2 on b2.node = m.node
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
        update _id_clusters as c
        set lab = f.lab, guard = 'nameless_bridge'
        from (
            select node, min(node) over (partition by lab) as lab from _id_bridged
        ) as f
        where f.node = c.node;
        raise notice 'guard nameless_bridge split % clusters', violating;
    end if;
    {%- endif %}

    {%- for identifier_type, limit in guards.get('max_values_per_customer', {}).items() %}

    -- guard max_values_per_customer: {{ identifier_type }} <= {{ limit }}
    drop table if exists _id_violating;
    create temp table _id_violating as
        select c.lab
        from _id_clusters as c
        join {{ identifiers }} as i on i.record_num = c.node and i.identifier_type = '{{ identifier_type }}'
        join {{ identifier_values }} as iv on iv.value_id = i.value_id and iv.is_linkable
        group by c.lab
        having count(distinct i.value_id) > {{ limit }};
    select count(*) into violating from _id_violating;
    if violating > 0 then
        -- the edges inside violating components, minus values bridging several {{ identifier_type }}s
        drop table if exists _id_sub_edges;
        create temp table _id_sub_edges as
            with sub as (
                select e.node, e.value_id, e.identifier_type
                from _id_edges as e
                join _id_clusters as c on c.node = e.node
                join _id_violating as v on v.lab = c.lab
            ),
            bridging as (
                select sub.value_id
                from sub
                join {{ identifiers }} as i on i.record_num = sub.node and i.identifier_type = '{{ identifier_type }}'
                join {{ identifier_values }} as iv on iv.value_id = i.value_id and iv.is_linkable
                where sub.identifier_type <> '{{ identifier_type }}'
                group by sub.value_id
                having count(distinct i.value_id) > {{ limit }}
            )
            select sub.node, sub.value_id
            from sub
            where sub.value_id not in (select value_id from bridging);
        analyze _id_sub_edges;

        {{ identity_cc_loop('_id_sub_edges', '_id_sub_cc') }}

        -- still over the limit: one cluster per value of the type, the rest alone
        drop table if exists _id_sub_final;
        create temp table _id_sub_final as
            with nodes as (
                select c.node, c.lab as old_lab, coalesce(s.lab, c.node) as lab
                from _id_clusters as c
                join _id_violating as v on v.lab = c.lab
                left join _id_sub_cc as s on s.node = c.node
            ),
            still as (
                select nodes.lab
                from nodes
                join {{ identifiers }} as i on i.record_num = nodes.node and i.identifier_type = '{{ identifier_type }}'
                join {{ identifier_values }} as iv on iv.value_id = i.value_id and iv.is_linkable
                group by nodes.lab
                having count(distinct i.value_id) > {{ limit }}
            ),
            value_of as (
                select i.record_num as node, min(i.value_id) as value_id
                from {{ identifiers }} as i
                join {{ identifier_values }} as iv on iv.value_id = i.value_id and iv.is_linkable
                where i.identifier_type = '{{ identifier_type }}'
                group by i.record_num
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

        update _id_clusters as c
        set lab = f.lab, guard = 'max_values_per_customer:{{ identifier_type }}'
        from _id_sub_final as f
        where f.node = c.node;
        raise notice 'guard max_values_per_customer:% split % components', '{{ identifier_type }}', violating;
    end if;
    {%- endfor %}

    {%- if max_size %}

    -- guard max_cluster_size: {{ max_size }}
    drop table if exists _id_violating;
    create temp table _id_violating as
        select lab from _id_clusters group by lab having count(*) > {{ max_size }};
    select count(*) into violating from _id_violating;
    if violating > 0 then
        drop table if exists _id_sub_edges;
        create temp table _id_sub_edges as
            select e.node, e.value_id
            from _id_edges as e
            join _id_clusters as c on c.node = e.node
            join _id_violating as v on v.lab = c.lab
            where e.identifier_type in ('{{ strong | join("', '") }}');
        analyze _id_sub_edges;

        {{ identity_cc_loop('_id_sub_edges', '_id_sub_cc') }}

        drop table if exists _id_sub_final;
        create temp table _id_sub_final as
            with nodes as (
                select c.node, coalesce(s.lab, c.node) as lab
                from _id_clusters as c
                join _id_violating as v on v.lab = c.lab
                left join _id_sub_cc as s on s.node = c.node
            )
            select
                node,
                case when count(*) over (partition by lab) > {{ max_size }} then node else lab end as lab
            from nodes;
        update _id_clusters as c
        set lab = f.lab, guard = concat_ws(', ', c.guard, 'max_cluster_size')
        from _id_sub_final as f
        where f.node = c.node;
        raise notice 'guard max_cluster_size split % components', violating;
    end if;
    {%- endif %}
    analyze _id_clusters;
end
$identity$
{%- endmacro %}


{#
    An edge of the identifier graph: record `i` (int_identity__identifiers) to value `v`
    (int_identity__identifier_values). A value under several people's names (a
    household's phone, name_groups) is one node per person: a record meets the node of
    its name's group, and a record without a name, or whose name fits several groups,
    meets none (identity_edge_links leaves it out).
#}
{% macro identity_edge_node(i, v) -%}
    case
        when {{ v }}.name_groups is null then {{ i }}.value_id
        else hashtextextended({{ i }}.value_id || ':' || ({{ v }}.name_groups ->> {{ i }}.full_name_key), 0)
    end
{%- endmacro %}

{% macro identity_edge_links(i, v) -%}
    {{ v }}.is_linkable and ({{ v }}.name_groups is null or {{ v }}.name_groups ? {{ i }}.full_name_key)
{%- endmacro %}
