{#
    identity.connected_components(edges text): the connected components of a graph
    given as a query. `edges` returns one row per edge between a node (column node, an
    integer) and a value (column value_id, any type with equality: an identifier value,
    a component, a fuzzy pair); nodes that share a value are connected. Returns
    (node, lab) for every node that has an edge, lab the smallest node of its
    component. Edges with a null node or value connect nothing. The edges come as a query
    text, as pgRouting's pgr_connectedComponents(edges_sql) takes them, so a model passes
    a select over its ref()s and the graph is never copied into an array first.

        select * from identity.connected_components(
            'select record_num as node, value_id from int_identity__identifiers'
        );

    Method: groups of nodes, each labelled by its root (its smallest node so far), that
    hook onto each other (Shiloach-Vishkin's idea, min-label hooking). Start: every node
    takes the smallest node of its values. Each pass: every value takes the smallest
    label of its nodes, every node the smallest label of its values, and every group
    hooks onto the smallest label any of its nodes saw; then pointer doubling (a node
    takes its label's label, until nothing moves) makes every label a root again. A
    group with a smaller neighbour hooks onto one, and one without is hooked onto by its
    neighbours or hooks in the next pass, so the groups halve every two passes at least:
    a 500-record chain numbered at random takes a handful of passes (plain label
    propagation took over a hundred). Each step is a CREATE TABLE AS over hash joins
    (no UPDATE bloat) on session-temporary tables (no WAL), dropped before it returns;
    the loop stops when no group hooked.
#}
{{ config(materialized='sql_function', schema='identity', alias='connected_components') }}

create or replace function {{ this }}(edges text)
returns table (node bigint, lab bigint)
{{ identity_function_settings() }}
as $function$
#variable_conflict use_column
declare
    passes int := 0;
    hooked bigint;
    moved boolean;
begin
    drop table if exists
        pg_temp._identity_cc_edges,
        pg_temp._identity_cc_values,
        pg_temp._identity_cc_seen,
        pg_temp._identity_cc_hooks,
        pg_temp._identity_cc_next,
        pg_temp._identity_cc_labels;
    execute format(
        'create temp table _identity_cc_edges as'
        ' select cast(e.node as bigint) as node, e.value_id from (%s) as e'
        ' where e.node is not null and e.value_id is not null',
        edges
    );
    analyze pg_temp._identity_cc_edges;

    -- start: each node the smallest node of its values
    create temp table _identity_cc_values as
        select e.value_id, min(e.node) as lab
        from pg_temp._identity_cc_edges as e group by e.value_id;
    analyze pg_temp._identity_cc_values;
    create temp table _identity_cc_labels as
        select e.node, min(v.lab) as lab
        from pg_temp._identity_cc_edges as e
        join pg_temp._identity_cc_values as v on v.value_id = e.value_id
        group by e.node;
    analyze pg_temp._identity_cc_labels;

    loop
        -- pointer doubling: every label becomes a root (a node labelled by itself);
        -- labels only decrease, so this ends
        loop
            create temp table _identity_cc_next as
                select l.node, p.lab, p.lab <> l.lab as moved
                from pg_temp._identity_cc_labels as l
                join pg_temp._identity_cc_labels as p on p.node = l.lab;
            select exists (select from pg_temp._identity_cc_next as n where n.moved) into moved;
            drop table pg_temp._identity_cc_labels;
            alter table pg_temp._identity_cc_next rename to _identity_cc_labels;
            alter table pg_temp._identity_cc_labels drop column moved;
            analyze pg_temp._identity_cc_labels;
            exit when not moved;
        end loop;

        passes := passes + 1;
        if passes > 100 then
            raise exception 'identity.connected_components: no fixed point after % passes', passes;
        end if;
        -- the smallest label each node sees through its values
        drop table pg_temp._identity_cc_values;
        create temp table _identity_cc_values as
            select e.value_id, min(l.lab) as lab
            from pg_temp._identity_cc_edges as e
            join pg_temp._identity_cc_labels as l on l.node = e.node
            group by e.value_id;
        analyze pg_temp._identity_cc_values;
        create temp table _identity_cc_seen as
            select e.node, min(v.lab) as lab
            from pg_temp._identity_cc_edges as e
            join pg_temp._identity_cc_values as v on v.value_id = e.value_id
            group by e.node;
        analyze pg_temp._identity_cc_seen;
        -- each group hooks onto the smallest label its nodes saw (never its own: larger)
        create temp table _identity_cc_hooks as
            select l.lab as root, min(s.lab) as lab
            from pg_temp._identity_cc_labels as l
            join pg_temp._identity_cc_seen as s on s.node = l.node
            group by l.lab
            having min(s.lab) < l.lab;
        select count(*) into hooked from pg_temp._identity_cc_hooks;
        drop table pg_temp._identity_cc_seen;
        if hooked = 0 then
            drop table pg_temp._identity_cc_hooks;
            exit;
        end if;
        analyze pg_temp._identity_cc_hooks;
        create temp table _identity_cc_next as
            select l.node, coalesce(h.lab, l.lab) as lab
            from pg_temp._identity_cc_labels as l
            left join pg_temp._identity_cc_hooks as h on h.root = l.lab;
        drop table pg_temp._identity_cc_labels, pg_temp._identity_cc_hooks;
        alter table pg_temp._identity_cc_next rename to _identity_cc_labels;
        analyze pg_temp._identity_cc_labels;
    end loop;

    return query select l.node, l.lab from pg_temp._identity_cc_labels as l;
    drop table
        pg_temp._identity_cc_edges,
        pg_temp._identity_cc_values,
        pg_temp._identity_cc_labels;
end
$function$
