{#
    identity.fuzzy_u(pairs, comparisons, identifier_values): u of the fuzzy stage, the
    chance of each comparison level between the records of two different people.
    - pairs: a query of (levels int[]), the levels of record pairs taken at random (one
      level per comparison, 0 = no information): each level's u is its share among the
      pairs' informative levels of that comparison, plus one of each (levels 1 to 4 of
      comparisons 1 to `comparisons`: a level never seen is not impossible);
    - identifier_values (null or blank: none): a query of (comp, records_count, people_count,
      records_total), the linkable values of each identifier comparison, how many
      records and people hold each, and how many records hold any value. A shared email
      between random pairs is nearly always one person's two records, so an identifier's
      exact level (4) takes its u from its values instead: the chance that a record
      holding a value meets another person's record holding it,
      sum over the values of (n / N) * max(n (1 - 1 / people), 1) / N (within 1e-12 and
      0.5), as the candidates' term frequencies count it; its other levels keep their
      share of the rest.
    Returns (comp, lvl, u) for every comparison and level 1 to 4.
#}
{{ config(materialized='sql_function', schema='identity', alias='fuzzy_u') }}

create or replace function {{ this }}(pairs text, comparisons int, identifier_values text)
returns table (comp int, lvl int, u float8)
{{ identity_function_settings() }}
as $function$
#variable_conflict use_column
declare
    identifier int;
begin
    drop table if exists pg_temp._identity_fu_u, pg_temp._identity_fu_values;
    execute format(
        'create temp table _identity_fu_u as'
        ' with counted as ('
        '  select c.comp, c.lvl, count(*)::float8 as n'
        '  from (%s) as levels'
        '  cross join lateral unnest(levels.levels) with ordinality as c (lvl, comp)'
        '  where c.lvl > 0'
        '  group by c.comp, c.lvl'
        ' ),'
        ' grid as ('
        '  select comp, lvl from generate_series(1, %s) as comp'
        '  cross join generate_series(1, 4) as lvl'
        ' )'
        ' select grid.comp, grid.lvl,'
        '  (coalesce(counted.n, 0) + 1)'
        '  / (sum(coalesce(counted.n, 0) + 1) over (partition by grid.comp)) as u'
        ' from grid left join counted on counted.comp = grid.comp and counted.lvl = grid.lvl',
        pairs,
        comparisons
    );

    if nullif(btrim(identifier_values, E' \n'), '') is not null then
        execute format(
            'create temp table _identity_fu_values as select * from (%s) as v', identifier_values
        );
        -- comparison by comparison, in order
        for identifier in select distinct v.comp from pg_temp._identity_fu_values as v order by 1 loop
            with exact as (
                select
                    least(greatest(
                        sum(v.records_count * greatest(v.records_count * (1 - 1.0 / greatest(v.people_count, 1)), 1))
                        / power(nullif(min(v.records_total), 0), 2),
                        1e-12
                    ), 0.5) as u
                from pg_temp._identity_fu_values as v
                where v.comp = identifier
            ),
            rest as (
                select sum(r.u) as u from pg_temp._identity_fu_u as r where r.comp = identifier and r.lvl < 4
            )
            update pg_temp._identity_fu_u as t
            set u = case
                when t.lvl = 4 then exact.u
                else t.u / rest.u * (1 - exact.u)
            end
            from exact, rest
            where t.comp = identifier;
        end loop;
        drop table pg_temp._identity_fu_values;
    end if;

    return query select t.comp, t.lvl, t.u from pg_temp._identity_fu_u as t;
    drop table pg_temp._identity_fu_u;
end
$function$
