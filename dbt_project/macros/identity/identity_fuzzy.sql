{#
    The fuzzy stage's comparisons: for a pair of records (aliases a and b of
    int_identity__records), one level per comparison, as an int array:
      0 = no information (a value missing), 1 = disagree, 2 = similar, 3 = very similar,
      4 = exact.
    names, city: levenshtein <= 1 → 3; <= 2 or trigram similarity >= 0.5 → 2
    birth date (YYYYMMDD key): one digit off → 3, two (a transposition) → 2
    postcode: one digit off → 3; address: trigram similarity >= 0.7 → 3, >= 0.45 → 2
    phone: same E.164 → 4, same last eight digits → 3; email and CPF: exact or not.
#}
{% macro identity_fuzzy_comparisons() -%}
    {{ return([
        ('first_name', 'first_name_key', 'name'),
        ('last_name', 'last_name_key', 'name'),
        ('birth_date', 'birth_date_key', 'date'),
        ('city', 'city_key', 'name'),
        ('postcode', 'postcode_key', 'code'),
        ('address', 'address_key', 'text'),
        ('phone', 'phone_e164', 'phone'),
        ('email', 'email', 'exact'),
        ('cpf', 'cpf', 'exact'),
    ]) }}
{%- endmacro %}

{% macro identity_fuzzy_level(kind, column, a='a', b='b') -%}
    {%- set x = a ~ '.' ~ column -%}
    {%- set y = b ~ '.' ~ column -%}
    case
        when {{ x }} is null or {{ y }} is null then 0
        when {{ x }} = {{ y }} then 4
        {%- if kind == 'name' %}
        when levenshtein_less_equal({{ x }}, {{ y }}, 1) <= 1 then 3
        when levenshtein_less_equal({{ x }}, {{ y }}, 2) <= 2 or similarity({{ x }}, {{ y }}) >= 0.5 then 2
        {%- elif kind == 'date' %}
        when levenshtein_less_equal({{ x }}, {{ y }}, 1) <= 1 then 3
        when levenshtein_less_equal({{ x }}, {{ y }}, 2) <= 2 then 2
        {%- elif kind == 'code' %}
        when levenshtein_less_equal({{ x }}, {{ y }}, 1) <= 1 then 3
        {%- elif kind == 'text' %}
        when similarity({{ x }}, {{ y }}) >= 0.7 then 3
        when similarity({{ x }}, {{ y }}) >= 0.45 then 2
        {%- elif kind == 'phone' %}
        when right({{ x }}, 8) = right({{ y }}, 8) then 3
        {%- endif %}
        else 1
    end
{%- endmacro %}

{% macro identity_fuzzy_levels(a='a', b='b') -%}
    array[
        {%- for name, column, kind in identity_fuzzy_comparisons() %}
        {{ identity_fuzzy_level(kind, column, a, b) }}{{ ',' if not loop.last }}
        {%- endfor %}
    ]
{%- endmacro %}


{#
    Fellegi-Sunter parameters, as a DO block for the pre-hook of int_identity__fuzzy_pairs:
    u (the chance of each level between two different people) from random record pairs,
    then m (the same between two records of one person) and lambda (the share of
    matches among the candidates) by expectation-maximisation over the candidates'
    level patterns, u held fixed. Leaves temp table _fz_pattern_weights (levels, weight):
    the match weight, log2 of the posterior odds, of each pattern seen.
#}
{% macro identity_fuzzy_parameters(records, candidates) -%}
    {%- set cfg = var('identity_fuzzy', {}) %}
    {%- set comparisons = identity_fuzzy_comparisons() %}
do $fz$
declare
    total bigint;
    lam float8 := 0.3;
    i int;
begin
    perform setseed(0.4242);
    drop table if exists _fz_patterns;
    create temp table _fz_patterns as
        select levels, count(*)::float8 as n from {{ candidates }} group by levels;
    analyze _fz_patterns;

    -- u: level frequencies between random pairs of records
    select count(*) into total from {{ records }};
    drop table if exists _fz_random_pairs;
    create temp table _fz_random_pairs as
        select 1 + floor(random() * total)::bigint as x, 1 + floor(random() * total)::bigint as y
        from generate_series(1, {{ cfg.get('random_pairs_for_u', 300000) }});
    analyze _fz_random_pairs;
    drop table if exists _fz_u;
    create temp table _fz_u as
        with levels as (
            select {{ identity_fuzzy_levels('a', 'b') }} as levels
            from _fz_random_pairs as pairs
            join {{ records }} as a on a.record_num = pairs.x
            join {{ records }} as b on b.record_num = pairs.y
            where pairs.x <> pairs.y
        ),
        counted as (
            select c.comp, c.lvl, count(*)::float8 as n
            from levels cross join lateral unnest(levels.levels) with ordinality as c (lvl, comp)
            where c.lvl > 0
            group by c.comp, c.lvl
        ),
        grid as (
            select comp, lvl from generate_series(1, {{ comparisons | length }}) as comp
            cross join generate_series(1, 4) as lvl
        )
        select grid.comp, grid.lvl,
            (coalesce(counted.n, 0) + 1) / (sum(coalesce(counted.n, 0) + 1) over (partition by grid.comp)) as u
        from grid left join counted on counted.comp = grid.comp and counted.lvl = grid.lvl;

    -- m: start from "agreement is likely", then EM
    drop table if exists _fz_m;
    create temp table _fz_m as
        select comp, lvl, case lvl when 4 then 0.85 when 3 then 0.08 when 2 then 0.04 else 0.03 end::float8 as m
        from _fz_u;

    for i in 1..{{ cfg.get('em_iterations', 25) }} loop
        drop table if exists _fz_post;
        create temp table _fz_post as
            with scored as (
                select p.levels, p.n,
                    sum(ln(m.m) - ln(u.u)) as llr
                from _fz_patterns as p
                cross join lateral unnest(p.levels) with ordinality as c (lvl, comp)
                join _fz_m as m on m.comp = c.comp and m.lvl = c.lvl
                join _fz_u as u on u.comp = c.comp and u.lvl = c.lvl
                group by p.levels, p.n
            )
            select p.levels, p.n,
                1.0 / (1.0 + exp(-(ln(lam / (1 - lam)) + least(greatest(coalesce(s.llr, 0), -500), 500)))) as post
            from _fz_patterns as p left join scored as s on s.levels = p.levels;
        select sum(n * post) / sum(n) into lam from _fz_post;
        lam := least(greatest(lam, 1e-6), 1 - 1e-6);
        drop table if exists _fz_m_next;
        create temp table _fz_m_next as
            with weighted as (
                select c.comp, c.lvl, sum(p.n * p.post) as w
                from _fz_post as p
                cross join lateral unnest(p.levels) with ordinality as c (lvl, comp)
                where c.lvl > 0
                group by c.comp, c.lvl
            )
            select u.comp, u.lvl,
                (coalesce(weighted.w, 0) + 0.01) / sum(coalesce(weighted.w, 0) + 0.01) over (partition by u.comp) as m
            from _fz_u as u left join weighted on weighted.comp = u.comp and weighted.lvl = u.lvl;
        drop table _fz_m;
        alter table _fz_m_next rename to _fz_m;
    end loop;
    raise notice 'fuzzy stage: lambda among candidates %', lam;

    drop table if exists _fz_pattern_weights;
    create temp table _fz_pattern_weights as
        select p.levels,
            (ln(lam / (1 - lam)) + coalesce(sum(ln(m.m) - ln(u.u)) filter (where c.lvl > 0), 0)) / ln(2) as weight
        from _fz_patterns as p
        cross join lateral unnest(p.levels) with ordinality as c (lvl, comp)
        left join _fz_m as m on m.comp = c.comp and m.lvl = c.lvl
        left join _fz_u as u on u.comp = c.comp and u.lvl = c.lvl
        group by p.levels;
    drop table if exists _fz_parameters;
    create temp table _fz_parameters as
        select m.comp, m.lvl, m.m, u.u, lam as lambda from _fz_m as m join _fz_u as u using (comp, lvl);
end
$fz$
{%- endmacro %}
