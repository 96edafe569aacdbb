{#
    identity.fuzzy_parameters(random_pairs, identifier_values, sessions, prior,
    comparisons, iterations, seed): the fuzzy stage's Fellegi-Sunter parameters, learnt
    as Splink learns them. Each argument but the numbers is a query text (as
    identity.connected_components takes its edges), so the caller's comparisons, blocking
    rules and sampling stay in the model that writes them (int_identity__fuzzy_parameters).
    - u (identity.fuzzy_u): from the levels of `random_pairs` (levels int[]), the
      identifiers' exact level from `identifier_values` (comp, records_count,
      people_count, records_total; null: none);
    - m: expectation-maximisation in sessions (identity.fuzzy_em), u held fixed. Each
      element of the jsonb array `sessions` is {"patterns": a query of (levels int[], n),
      the pairs of one blocking rule, "ignore": [the comparisons that rule uses]}: a
      session that blocks on a comparison cannot estimate its m (its pairs agree on it by
      construction), so each session's m counts only for the comparisons it does not
      ignore, and a comparison's m is the mean over those sessions; with none, the prior
      m (0.85 exact, 0.08, 0.04, 0.03 disagree). EM over the prediction candidates
      themselves would learn "same name" as the match class on a dedupe of families
      (FEBRL3), hence the sessions;
    - lambda, the chance that two random records are one person (Splink's
      probability_two_random_records_match): the one value `prior` returns, within 1e-9
      and 0.5.
    random() is seeded with `seed` first, so one set of records learns one set of
    parameters. Returns (comp, lvl, m, u, lambda) for every comparison and level 1 to 4.
#}
{{ config(materialized='sql_function', schema='identity', alias='fuzzy_parameters') }}

create or replace function {{ this }}(
    random_pairs text,
    identifier_values text,
    sessions jsonb,
    prior text,
    comparisons int,
    iterations int,
    seed float8
)
returns table (comp bigint, lvl bigint, m float8, u float8, lambda float8)
{{ identity_function_settings() }}
as $function$
#variable_conflict use_column
declare
    lam float8;
    em_session jsonb;
    session_number int := 0;
begin
    perform setseed(seed);
    drop table if exists
        pg_temp._identity_fp_u,
        pg_temp._identity_fp_m_prior,
        pg_temp._identity_fp_m_sessions,
        pg_temp._identity_fp_m;
    create temp table _identity_fp_u as
        select x.comp, x.lvl, x.u
        from {{ ref('fn_identity__fuzzy_u') }}(random_pairs, comparisons, identifier_values) as x;

    -- prior m: "agreement is likely"
    create temp table _identity_fp_m_prior as
        select
            x.comp,
            x.lvl,
            case x.lvl when 4 then 0.85 when 3 then 0.08 when 2 then 0.04 else 0.03 end::float8 as m
        from pg_temp._identity_fp_u as x;
    create temp table _identity_fp_m_sessions (session int, comp bigint, lvl bigint, m float8);
    for em_session in select s.value from jsonb_array_elements(coalesce(sessions, '[]')) as s loop
        session_number := session_number + 1;
        insert into pg_temp._identity_fp_m_sessions
            select session_number, e.comp, e.lvl, e.m
            from {{ ref('fn_identity__fuzzy_em') }}(
                em_session ->> 'patterns',
                'select comp, lvl, u from pg_temp._identity_fp_u',
                iterations
            ) as e
            where e.comp not in (
                select cast(i.value as bigint)
                from jsonb_array_elements_text(coalesce(em_session -> 'ignore', '[]')) as i
            );
    end loop;
    create temp table _identity_fp_m as
        select p.comp, p.lvl, coalesce(avg(s.m), min(p.m)) as m
        from pg_temp._identity_fp_m_prior as p
        left join pg_temp._identity_fp_m_sessions as s on s.comp = p.comp and s.lvl = p.lvl
        group by p.comp, p.lvl;

    execute prior into lam;
    lam := least(greatest(lam, 1e-9), 0.5);

    return query
        select cast(x.comp as bigint), cast(x.lvl as bigint), x.m, y.u, lam
        from pg_temp._identity_fp_m as x
        join pg_temp._identity_fp_u as y using (comp, lvl);
    drop table
        pg_temp._identity_fp_u,
        pg_temp._identity_fp_m_prior,
        pg_temp._identity_fp_m_sessions,
        pg_temp._identity_fp_m;
end
$function$
