{#
    The fuzzy stage's comparisons: for a pair of records (aliases a and b of
    int_identity__records), one level per comparison, as an int array:
      0 = no information (a value missing), 1 = disagree, 2 = similar, 3 = very similar,
      4 = exact.
    names: levenshtein <= 1, the words of one all among the other's (a partial name:
      "maria" and "maria eduarda"), a nickname of the other (first names of one word
      with one first_name_canon: "bia" and "beatriz", seed identity_name_variants), or
      equal to the other record's other name part, or one slip from it (first and last
      name swapped, macro identity_fuzzy_one_slip) → 3; levenshtein <= 2 or trigram
      similarity >= 0.5 → 2
    city: levenshtein <= 1 → 3; <= 2 or trigram similarity >= 0.5 → 2
    birth date (YYYYMMDD key): one digit off → 3; two digits off, or day and month
    transposed → 2
    postcode: one digit off → 3, two neighbouring digits swapped → 2; address: trigram
    similarity >= 0.7 → 3, >= 0.45 → 2
    phone: same E.164 → 4, same last eight digits → 3; email and CPF: exact or not.
    Each comparison names the record columns a blocking rule may use that carry its
    information: an EM session blocking on one of them cannot estimate its m.
    Term frequencies (`tf`): an exact agreement on a value weighs log2(m / f), f the
    value's share of the records that have one (int_identity__term_frequencies), instead
    of log2(m / u): "maria" or "silva" agree often between different people, "eliseu"
    seldom (Fellegi-Sunter with term frequencies, as Splink's term_frequency_adjustments).
    Identifiers (`identifier`: their type in int_identity__identifier_values) count the
    people behind a value, not its records: f is the share of the records that another
    person's record holding the value makes, max(n (1 - 1 / people), 1) / N; one person's
    own email, held by three of their records, is no common value.
#}
{% macro identity_fuzzy_comparisons() -%}
    {{ return([
        {'name': 'first_name', 'column': 'first_name_key', 'kind': 'name',
         'swap': 'last_name_key', 'canon': 'first_name_canon',
         'keys': ['first_name_key', 'full_name_key', 'name_pair_key', 'first_name_prefix',
                  'first_name_canon'], 'tf': true},
        {'name': 'last_name', 'column': 'last_name_key', 'kind': 'name',
         'swap': 'first_name_key',
         'keys': ['last_name_key', 'full_name_key', 'name_pair_key', 'last_name_prefix',
                  'family_name_key'],
         'tf': true},
        {'name': 'birth_date', 'column': 'birth_date_key', 'kind': 'date',
         'keys': ['birth_date_key', 'birth_date'], 'tf': true},
        {'name': 'city', 'column': 'city_key', 'kind': 'city', 'keys': ['city_key'],
         'tf': true},
        {'name': 'postcode', 'column': 'postcode_key', 'kind': 'code',
         'keys': ['postcode_key'], 'tf': true},
        {'name': 'address', 'column': 'address_key', 'kind': 'text',
         'keys': ['address_key'], 'tf': true},
        {'name': 'phone', 'column': 'phone_e164', 'kind': 'phone',
         'keys': ['phone_e164', 'phone_last8'], 'identifier': 'phone'},
        {'name': 'email', 'column': 'email', 'kind': 'exact', 'keys': ['email'],
         'identifier': 'email'},
        {'name': 'cpf', 'column': 'cpf', 'kind': 'exact', 'keys': ['cpf'],
         'identifier': 'cpf'},
    ]) }}
{%- endmacro %}

{# The record columns whose values' frequencies int_identity__term_frequencies counts
   (comparisons with `tf`), and those it only totals (identifiers: records holding one). #}
{% macro identity_fuzzy_tf_columns(totals_only=false) -%}
    {%- set columns = [] %}
    {%- for comparison in identity_fuzzy_comparisons()
        if (comparison.get('identifier') if totals_only else comparison.get('tf')) %}
        {%- do columns.append(comparison.column) %}
    {%- endfor %}
    {{ return(columns) }}
{%- endmacro %}

{% macro identity_fuzzy_level(comparison, a='a', b='b') -%}
    {%- set kind = comparison.kind -%}
    {%- set x = a ~ '.' ~ comparison.column -%}
    {%- set y = b ~ '.' ~ comparison.column -%}
    case
        when {{ x }} is null or {{ y }} is null then 0
        when {{ x }} = {{ y }} then 4
        {%- if comparison.get('canon') %}
        -- masculine and feminine forms of one first name (Raimundo/Raimunda,
        -- Daniel/Daniela): siblings, a couple, a parent and child, not a typo
        when
            {{ identity_gender_pair(x, y) }}
            or {{ x }} || 'a' = {{ y }}
            or {{ y }} || 'a' = {{ x }}
            then 1
        {%- endif %}
        {%- if kind in ('name', 'city') %}
        when levenshtein_less_equal({{ x }}, {{ y }}, 1) <= 1 then 3
        {%- if kind == 'name' %}
        -- part of the other: "maria" and "maria eduarda", "silva" and "da silva santos"
        when
            string_to_array({{ x }}, ' ') <@ string_to_array({{ y }}, ' ')
            or string_to_array({{ y }}, ' ') <@ string_to_array({{ x }}, ' ')
            then 3
        {%- endif %}
        {%- if comparison.get('canon') %}
        -- one word each, one a nickname or diminutive of the other: "bia" and "beatriz"
        when
            {{ x }} !~ ' ' and {{ y }} !~ ' '
            and {{ a ~ '.' ~ comparison.canon }} = {{ b ~ '.' ~ comparison.canon }}
            then 3
        {%- endif %}
        {%- if comparison.get('swap') %}
        -- first and last name swapped between the fields, each as typed or with one
        -- slip ("noblke daniel" for Daniel Noble: macro identity_fuzzy_one_slip)
        when
            {{ identity_fuzzy_one_slip(x, b ~ '.' ~ comparison.swap) }}
            and {{ identity_fuzzy_one_slip(y, a ~ '.' ~ comparison.swap) }}
            then 3
        {%- endif %}
        when levenshtein_less_equal({{ x }}, {{ y }}, 2) <= 2 or similarity({{ x }}, {{ y }}) >= 0.5 then 2
        {%- elif kind == 'date' %}
        when levenshtein_less_equal({{ x }}, {{ y }}, 1) <= 1 then 3
        when
            levenshtein_less_equal({{ x }}, {{ y }}, 2) <= 2
            or {{ x }} = left({{ y }}, 4) || right({{ y }}, 2) || substr({{ y }}, 5, 2)
            then 2
        {%- elif kind == 'code' %}
        when levenshtein_less_equal({{ x }}, {{ y }}, 1) <= 1 then 3
        -- two neighbouring digits swapped (2289 / 2298): a typing slip
        when
            length({{ x }}) = length({{ y }})
            and levenshtein_less_equal({{ x }}, {{ y }}, 2) = 2
            and exists (
                select 1 as swapped from generate_series(1, length({{ y }}) - 1) as swap (i)
                where {{ x }} = left({{ y }}, swap.i - 1) || substr({{ y }}, swap.i + 1, 1)
                    || substr({{ y }}, swap.i, 1) || substr({{ y }}, swap.i + 2)
            )
            then 2
        {%- elif kind == 'text' %}
        when similarity({{ x }}, {{ y }}) >= 0.7 then 3
        when similarity({{ x }}, {{ y }}) >= 0.45 then 2
        {%- elif kind == 'phone' %}
        when right({{ x }}, 8) = right({{ y }}, 8) then 3
        {%- endif %}
        else 1
    end
{%- endmacro %}

{#
    The levels array; comparisons in `ignore` (their names) are left at 0 (no
    information), as an EM session does for the comparisons its blocking rule fixes.
#}
{% macro identity_fuzzy_levels(a='a', b='b', ignore=[]) -%}
    array[
        {%- for comparison in identity_fuzzy_comparisons() %}
        {%- if comparison.name in ignore %}
        0{{ ',' if not loop.last }}
        {%- else %}
        {{ identity_fuzzy_level(comparison, a, b) }}{{ ',' if not loop.last }}
        {%- endif %}
        {%- endfor %}
    ]
{%- endmacro %}

{# The comparisons (names) a blocking rule (list of record columns) leaves uninformative. #}
{% macro identity_fuzzy_blocked_comparisons(rule) -%}
    {%- set names = [] %}
    {%- for comparison in identity_fuzzy_comparisons() %}
        {%- for column in rule if column in comparison['keys'] and comparison.name not in names %}
            {%- do names.append(comparison.name) %}
        {%- endfor %}
    {%- endfor %}
    {{ return(names) }}
{%- endmacro %}


{#
    Whether this run learns the Fellegi-Sunter parameters (m, u, lambda: model
    int_identity__fuzzy_parameters, by identity.fuzzy_parameters) or keeps the stored
    ones. A run learns when there are none, when the fuzzy settings they were learnt
    under differ (identity_fuzzy_settings_key), and on `--full-refresh` with var
    identity_fuzzy_relearn true. A plain full refresh keeps them, so it decides every
    pair as the incremental runs before it did: learnt again on the data of each full
    refresh, they would move every pair's weight a little and flip those near the
    threshold, and a full refresh would not check incremental runs. Incremental runs
    (`incremental`: whether int_identity__fuzzy_pairs runs incrementally; by default the
    calling model's is_incremental()) never learn.
#}
{% macro identity_fuzzy_learns(incremental=none) -%}
    {%- if not execute %}{{ return(false) }}{% endif %}
    {%- set stored = adapter.get_relation(
        database=this.database, schema=this.schema, identifier='int_identity__fuzzy_parameters'
    ) %}
    {%- if not stored %}{{ return(true) }}{% endif %}
    {%- if (is_incremental() if incremental is none else incremental) %}{{ return(false) }}{% endif %}
    {%- if var('identity_fuzzy_relearn', false) %}{{ return(true) }}{% endif %}
    {%- set columns = adapter.get_columns_in_relation(stored) | map(attribute='name') | list %}
    {%- if 'settings' not in columns %}{{ return(true) }}{% endif %}
    {%- set found = run_query(
        "select count(*) filter (where settings = '" ~ identity_fuzzy_settings_key()
        ~ "'), count(*) from " ~ stored
    ) %}
    {{ return(found.rows[0][0] == 0 or found.rows[0][0] != found.rows[0][1]) }}
{%- endmacro %}

{# The fuzzy settings and comparisons the parameters are learnt under, as one md5. #}
{% macro identity_fuzzy_settings_key() -%}
    {{- local_md5(
        tojson(var('identity_fuzzy', {}), sort_keys=true)
        ~ tojson(identity_fuzzy_comparisons(), sort_keys=true)
    ) -}}
{%- endmacro %}


{#
    The weights of int_identity__fuzzy_pairs (selects for two of its CTEs; macros, so a
    dbt unit test can give them as subqueries): each levels pattern of this run's candidates (all of them on a full
    run) with its weight under the run's parameters
    (int_identity__fuzzy_parameters, by identity.fuzzy_pattern_weights), and log2 u of
    each term-frequency comparison's exact level: an exact agreement on a value of
    frequency f weighs log2(m / u) + log2(u / f) = log2(m / f).
#}
{% macro identity_fuzzy_pattern_weights() -%}
    select
        weights.levels,
        weights.weight
    from
        {{ ref('fn_identity__fuzzy_pattern_weights') }}(
            $patterns$
            select candidates.levels
            from {{ ref('int_identity__fuzzy_candidates') }} as candidates
            {%- if is_incremental() %}
            where candidates.run_id = {{ identity_run_id() }}
            {%- endif %}
            $patterns$,
            $parameters$
            select comp, lvl, m, u, lambda from {{ ref('int_identity__fuzzy_parameters') }}
            $parameters$
        ) as weights
{%- endmacro %}

{% macro identity_fuzzy_tf_base() -%}
    select
        {%- for comparison in identity_fuzzy_comparisons() %}
        {%- if comparison.get('tf') or comparison.get('identifier') %}
        max(ln(u) / ln(2)) filter (where comp = {{ loop.index }} and lvl = 4)
            as log2_u_{{ loop.index }}{{ ',' if not loop.last }}
        {%- else %}
        cast(null as float8) as log2_u_{{ loop.index }}{{ ',' if not loop.last }}
        {%- endif %}
        {%- endfor %}
    from {{ ref('int_identity__fuzzy_parameters') }}
{%- endmacro %}

{#
    A pair's term-frequency adjustment, in bits: for each comparison whose exact level
    it reaches on a value of frequency f (`term_frequencies`, from
    int_identity__fuzzy_candidates), log2(u / f), u that level's u (`base`: macro
    identity_fuzzy_tf_base); the level's log2(m / u) plus it is log2(m / f).
#}
{% macro identity_fuzzy_tf_adjustment(term_frequencies, base) -%}
    (
        0
        {%- for comparison in identity_fuzzy_comparisons() %}
        {%- if comparison.get('tf') or comparison.get('identifier') %}
        + coalesce({{ base }}.log2_u_{{ loop.index }} - ln({{ term_frequencies }}[{{ loop.index }}]) / ln(2), 0)
        {%- endif %}
        {%- endfor %}
    )
{%- endmacro %}

{#
    Whether a pair above the threshold may link: never across two different valid CPFs,
    never on a place alone (no name, birth date, email or CPF in common), never between household
    members (one family name and one home, different first names, no birth date in
    common), never on names hardly alike (macro identity_fuzzy_names_differ, which reads
    the two records' names in int_identity__records), never between a father and a son
    (macro identity_fuzzy_generations_differ: Filho, Júnior, Neto); with one_to_one_across_sources,
    only across sources. `pairs` has record_num_a, record_num_b, levels, match_weight
    (and source_a, source_b). The one place these rules are: int_identity__fuzzy_pairs
    and the one-to-one re-ranking of incremental runs (macro identity_fuzzy_rerank) both
    call it, so they decide alike.
#}
{% macro identity_fuzzy_eligible(pairs) -%}
    {%- set names = identity_fuzzy_comparisons() | map(attribute='name') | list -%}
    {%- set at = {} -%}
    {%- for name in names %}{% do at.update({name: loop.index}) %}{% endfor -%}
    {{ pairs }}.match_weight >= {{ var('identity_fuzzy', {}).get('threshold_weight', 4.0) }}
    and {{ pairs }}.levels[{{ at['cpf'] }}] <> 1
    -- a place is no person: with no name, no birth date, no email and no CPF in common
    -- (both names different or missing), an address, postcode, city and phone shared by
    -- the people who live or work there link nobody, however rare the address. A phone
    -- is a home's (a landline, a family's mobile, a number recycled to a new owner): on
    -- the adversarial file, letting it through linked 290 more pairs of two people. A
    -- record's own email or CPF still links it
    and not (
        {{ pairs }}.levels[{{ at['first_name'] }}] <= 1
        and {{ pairs }}.levels[{{ at['last_name'] }}] <= 1
        and {{ pairs }}.levels[{{ at['birth_date'] }}] <= 1
        and {{ pairs }}.levels[{{ at['email'] }}] <= 1
        and {{ pairs }}.levels[{{ at['cpf'] }}] <= 1
    )
    -- two names that differ whole (first name and family name, both given) and no
    -- birth date in common are two people, whatever they share: a couple's email or a
    -- family's phone that the deterministic stage already kept apart by their names
    and not (
        {{ pairs }}.levels[{{ at['first_name'] }}] = 1
        and {{ pairs }}.levels[{{ at['last_name'] }}] = 1
        and {{ pairs }}.levels[{{ at['birth_date'] }}] <= 1
    )
    -- a household: one family name and one home (postcode, address or phone), first
    -- names that differ and no birth date in common are two people, not one
    and not (
        {{ pairs }}.levels[{{ at['first_name'] }}] = 1
        and {{ pairs }}.levels[{{ at['last_name'] }}] >= 3
        and {{ pairs }}.levels[{{ at['birth_date'] }}] <= 1
        and greatest(
            {{ pairs }}.levels[{{ at['postcode'] }}],
            {{ pairs }}.levels[{{ at['address'] }}],
            {{ pairs }}.levels[{{ at['phone'] }}]
        ) >= 3
    )
    -- names hardly alike: one name different and the other only similar, with the
    -- records' own data against them or a household's; or a father and a son: one
    -- first name, no birth date in common, generational suffixes that differ (Filho)
    and not exists (
        select 1 as names_differ
        from {{ ref('int_identity__records') }} as record_a
        inner join {{ ref('int_identity__records') }} as record_b
            on record_b.record_num = {{ pairs }}.record_num_b
        where
            record_a.record_num = {{ pairs }}.record_num_a
            and (
                {{ identity_fuzzy_names_differ(pairs, 'record_a', 'record_b') }}
                or {{ identity_fuzzy_generations_differ(pairs, 'record_a', 'record_b') }}
            )
    )
    {%- if var('identity_fuzzy', {}).get('one_to_one_across_sources', false) %}
    and {{ pairs }}.source_a <> {{ pairs }}.source_b
    {%- endif %}
{%- endmacro %}

{#
    CTEs (ending in `mutual_best`): the pairs of `eligible` (record_num_a, record_num_b,
    source_a, source_b, match_weight) where each record is the other's best match in the
    other's source. A record is ranked over all its pairs whichever side of them it is on
    (record_num_a is only the smaller number).
#}
{% macro identity_fuzzy_mutual_best(eligible) -%}
directed as (

    select
        record_num_a as record_num,
        record_num_b as partner_num,
        source_b as partner_source,
        match_weight
    from {{ eligible }}
    union all
    select
        record_num_b as record_num,
        record_num_a as partner_num,
        source_a as partner_source,
        match_weight
    from {{ eligible }}

),

best as (

    select distinct on (record_num, partner_source)
        record_num,
        partner_num
    from directed
    order by record_num asc, partner_source asc, match_weight desc, partner_num asc

),

mutual_best as (

    select
        best.record_num as record_num_a,
        best.partner_num as record_num_b
    from best
    inner join best as back
        on best.partner_num = back.record_num and best.record_num = back.partner_num
    where best.record_num < best.partner_num

)
{%- endmacro %}

{#
    Pre-hook of int_identity__fuzzy_pairs (incremental, one_to_one_across_sources): the
    records of the stored pairs the run is about to delete (temp table _fz_rerank); their
    best matches may change although they are not in the run's scope. The pairs are found
    as identity_delete_scope_pairs finds them, by index.
#}
{% macro identity_fuzzy_rerank_start() -%}
    {%- if not (is_incremental() and var('identity_fuzzy', {}).get('one_to_one_across_sources', false)) -%}
    select 1
    {%- else %}
    drop table if exists _fz_rerank;
    create temp table _fz_rerank as
        with touching as (
            select record_num_a, record_num_b from {{ this }}
            where record_num_a = any(array(select scope.record_num from _fz_scope as scope where scope.touched))
            union all
            select record_num_a, record_num_b from {{ this }}
            where record_num_b = any(array(select scope.record_num from _fz_scope as scope where scope.touched))
            union all
            select record_num_a, record_num_b from {{ this }}
            where
                record_num_a = any(array(select scope.record_num from _fz_scope as scope))
                and record_num_b in (select scope.record_num from _fz_scope as scope)
        )
        select record_num_a as record_num from touching
        union
        select record_num_b from touching
    {%- endif %}
{%- endmacro %}

{#
    Post-hook of int_identity__fuzzy_pairs (incremental, one_to_one_across_sources): a
    pair's decision depends on every pair of its two records, so re-decide each stored
    pair of a record that lost a pair (_fz_rerank) or gained one (this run's rows),
    ranking over all the pairs of their records. A changed decision takes this run's id,
    so int_identity__clusters recomputes the clusters it reaches.
#}
{% macro identity_fuzzy_rerank() -%}
    {%- if not (is_incremental() and var('identity_fuzzy', {}).get('one_to_one_across_sources', false)) -%}
    select 1
    {%- else %}
    update {{ this }} as pairs
    set is_match = decided.is_match, run_id = {{ identity_run_id() }}
    from (
        with affected as (
            select record_num from _fz_rerank
            union
            select record_num_a from {{ this }} where run_id = {{ identity_run_id() }}
            union
            select record_num_b from {{ this }} where run_id = {{ identity_run_id() }}
        ),
        touching as (
            select * from {{ this }} where record_num_a in (select record_num from affected)
            union
            select * from {{ this }} where record_num_b in (select record_num from affected)
        ),
        endpoints as (
            select record_num_a as record_num from touching
            union
            select record_num_b from touching
        ),
        incident as (
            select * from {{ this }} where record_num_a in (select record_num from endpoints)
            union
            select * from {{ this }} where record_num_b in (select record_num from endpoints)
        ),
        eligible as (
            select * from incident where {{ identity_fuzzy_eligible('incident') }}
        ),
        {{ identity_fuzzy_mutual_best('eligible') }}
        select
            touching.record_num_a,
            touching.record_num_b,
            mutual_best.record_num_a is not null as is_match
        from touching
        left join mutual_best
            on touching.record_num_a = mutual_best.record_num_a
            and touching.record_num_b = mutual_best.record_num_b
    ) as decided
    where
        pairs.record_num_a = decided.record_num_a
        and pairs.record_num_b = decided.record_num_b
        and pairs.is_match is distinct from decided.is_match
    {%- endif %}
{%- endmacro %}
