{#
    identity.fuzzy_em(patterns, u, iterations): m of the fuzzy stage (the chance of each
    comparison level between two records of one person) and the match share, by
    expectation-maximisation with u held fixed, as Splink's EM sessions do.
    - patterns: a query of (levels int[], n): each levels pattern (one level per
      comparison, 0 = no information) and how many pairs show it;
    - u: a query of (comp, lvl, u), every comparison and level 1 to 4 (identity.fuzzy_u);
    - iterations: how many rounds.
    m starts from "agreement is likely" (0.85 exact, 0.08 and 0.04 the similar levels,
    0.03 disagree) and the match share from 0.1. Each round: each pattern's chance of
    being a match (its log-likelihood ratio sum of ln(m / u) over its informative
    levels, clamped to +-500, and the match share's odds), the match share as the
    patterns' mean chance, and each level's m as its share of the matches' levels, plus
    0.01 (no m reaches zero).
    Returns (comp, lvl, m, lambda) for every row of u, lambda the final match share.
#}
{{ config(materialized='sql_function', schema='identity', alias='fuzzy_em') }}

create or replace function {{ this }}(patterns text, u text, iterations int)
returns table (comp bigint, lvl bigint, m float8, lambda float8)
{{ identity_function_settings() }}
as $function$
#variable_conflict use_column
declare
    lam float8 := 0.1;
begin
    drop table if exists
        pg_temp._identity_em_patterns,
        pg_temp._identity_em_u,
        pg_temp._identity_em_m,
        pg_temp._identity_em_llr,
        pg_temp._identity_em_post,
        pg_temp._identity_em_m_next;
    execute format(
        'create temp table _identity_em_patterns as'
        ' select p.levels, cast(p.n as float8) as n from (%s) as p',
        patterns
    );
    execute format(
        'create temp table _identity_em_u as select x.comp, x.lvl, x.u from (%s) as x', u
    );
    create temp table _identity_em_m as
        select
            x.comp,
            x.lvl,
            case x.lvl when 4 then 0.85 when 3 then 0.08 when 2 then 0.04 else 0.03 end::float8 as m
        from pg_temp._identity_em_u as x;

    for i in 1..iterations loop
        drop table if exists pg_temp._identity_em_llr;
        create temp table _identity_em_llr as
            select p.levels, p.n, coalesce(sum(ln(m.m) - ln(u.u)) filter (where c.lvl > 0), 0) as llr
            from pg_temp._identity_em_patterns as p
            cross join lateral unnest(p.levels) with ordinality as c (lvl, comp)
            left join pg_temp._identity_em_m as m on m.comp = c.comp and m.lvl = c.lvl
            left join pg_temp._identity_em_u as u on u.comp = c.comp and u.lvl = c.lvl
            group by p.levels, p.n;
        drop table if exists pg_temp._identity_em_post;
        create temp table _identity_em_post as
            select
                l.levels,
                l.n,
                1.0 / (1.0 + exp(-(ln(lam / (1 - lam)) + least(greatest(l.llr, -500), 500)))) as post
            from pg_temp._identity_em_llr as l;
        select coalesce(sum(p.n * p.post) / nullif(sum(p.n), 0), 0.1) into lam
        from pg_temp._identity_em_post as p;
        lam := least(greatest(lam, 1e-6), 1 - 1e-6);
        create temp table _identity_em_m_next as
            with weighted as (
                select c.comp, c.lvl, sum(p.n * p.post) as w
                from pg_temp._identity_em_post as p
                cross join lateral unnest(p.levels) with ordinality as c (lvl, comp)
                where c.lvl > 0
                group by c.comp, c.lvl
            )
            select
                u.comp,
                u.lvl,
                (coalesce(weighted.w, 0) + 0.01)
                / sum(coalesce(weighted.w, 0) + 0.01) over (partition by u.comp) as m
            from pg_temp._identity_em_u as u
            left join weighted on weighted.comp = u.comp and weighted.lvl = u.lvl;
        drop table pg_temp._identity_em_m;
        alter table pg_temp._identity_em_m_next rename to _identity_em_m;
    end loop;

    return query
        select cast(m.comp as bigint), cast(m.lvl as bigint), m.m, lam from pg_temp._identity_em_m as m;
    drop table if exists
        pg_temp._identity_em_patterns,
        pg_temp._identity_em_u,
        pg_temp._identity_em_m,
        pg_temp._identity_em_llr,
        pg_temp._identity_em_post;
end
$function$
