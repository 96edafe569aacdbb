{#
    identity.fuzzy_pattern_weights(patterns, parameters): the Fellegi-Sunter match weight
    of each levels pattern, log2 of the posterior odds that its pair is one person:
    log2(lambda / (1 - lambda)) plus, over the comparisons the pattern informs (level
    above 0), log2(m / u) of its level.
    - patterns: a query of (levels int[]), one row a pair (a pattern may repeat);
    - parameters: a query of (comp, lvl, m, u, lambda), as identity.fuzzy_parameters
      returns and int_identity__fuzzy_parameters stores them.
    Returns (levels, weight) for each distinct pattern. A pair's term-frequency
    adjustment comes on top (macro identity_fuzzy_tf_adjustment).
#}
{{ config(materialized='sql_function', schema='identity', alias='fuzzy_pattern_weights') }}

create or replace function {{ this }}(patterns text, parameters text)
returns table (levels int[], weight float8)
{{ identity_function_settings() }}
as $function$
#variable_conflict use_column
declare
    lam float8;
begin
    drop table if exists
        pg_temp._identity_pw_patterns,
        pg_temp._identity_pw_parameters,
        pg_temp._identity_pw_m,
        pg_temp._identity_pw_u;
    execute format(
        'create temp table _identity_pw_parameters as'
        ' select x.comp, x.lvl, x.m, x.u, x.lambda from (%s) as x',
        parameters
    );
    create temp table _identity_pw_m as select x.comp, x.lvl, x.m from pg_temp._identity_pw_parameters as x;
    create temp table _identity_pw_u as select x.comp, x.lvl, x.u from pg_temp._identity_pw_parameters as x;
    select min(x.lambda) into lam from pg_temp._identity_pw_parameters as x;
    execute format(
        'create temp table _identity_pw_patterns as'
        ' select p.levels, count(*)::float8 as n from (%s) as p group by p.levels',
        patterns
    );

    return query
        select
            p.levels,
            (ln(lam / (1 - lam)) + coalesce(sum(ln(m.m) - ln(u.u)) filter (where c.lvl > 0), 0)) / ln(2)
        from pg_temp._identity_pw_patterns as p
        cross join lateral unnest(p.levels) with ordinality as c (lvl, comp)
        left join pg_temp._identity_pw_m as m on m.comp = c.comp and m.lvl = c.lvl
        left join pg_temp._identity_pw_u as u on u.comp = c.comp and u.lvl = c.lvl
        group by p.levels;
    drop table
        pg_temp._identity_pw_patterns,
        pg_temp._identity_pw_parameters,
        pg_temp._identity_pw_m,
        pg_temp._identity_pw_u;
end
$function$
