{#
    Why each fuzzy pair weighs what it weighs, as a waterfall: one row per pair of
    int_identity__fuzzy_pairs (those over the threshold) and comparison, with the
    comparison's level and its weight log2(m / u) from the parameters the run used
    (int_identity__fuzzy_parameters; log2(m / f) for an exact agreement on a value of
    frequency f, `term_frequency`: "maria" weighs less than "eliseu"), plus a first row,
    `prior`, of log2 of the odds that two random records match. The weights of a pair sum to its match_weight. A view:
    it costs nothing until someone asks (`omnicanal identity explain` reads it).
#}

{{ config(materialized='view') }}

{%- set comparisons = identity_fuzzy_comparisons() %}
{%- set level_names = {0: 'missing', 1: 'different', 2: 'similar', 3: 'very similar', 4: 'exact'} %}

with

pairs as (

    select * from {{ ref('int_identity__fuzzy_pairs') }}

),

parameters as (

    select * from {{ ref('int_identity__fuzzy_parameters') }}

),

comparisons as (

    select
        cast(comparison_index as int) as comparison_index,
        cast(comparison as text) as comparison
    from (
        values
        (0, 'prior'),
        {%- for comparison in comparisons %}
            ({{ loop.index }}, '{{ comparison.name }}'){{ ',' if not loop.last }}
        {%- endfor %}
    ) as listed (comparison_index, comparison)

),

levels as (

    select
        cast(comparison_level as int) as comparison_level,
        cast(level_name as text) as level_name
    from (
        values
        {%- for level, name in level_names.items() %}
            ({{ level }}, '{{ name }}'){{ ',' if not loop.last }}
        {%- endfor %}
    ) as listed (comparison_level, level_name)

),

prior_odds as (

    select min(lambda) as lambda from parameters

),

final as (

    select
        pairs.record_num_a,
        pairs.record_num_b,
        pairs.is_match,
        pairs.match_weight,
        comparisons.comparison_index,
        comparisons.comparison,
        case
            when comparisons.comparison_index > 0
                then pairs.levels[comparisons.comparison_index]
        end as comparison_level,
        levels.level_name,
        parameters.m,
        parameters.u,
        -- an exact agreement on a value of this frequency: it weighs log2(m / frequency)
        pairs.term_frequencies[comparisons.comparison_index] as term_frequency,
        case
            when comparisons.comparison_index = 0
                then ln(prior_odds.lambda / (1 - prior_odds.lambda)) / ln(2)
            when pairs.levels[comparisons.comparison_index] = 0 then 0
            when pairs.term_frequencies[comparisons.comparison_index] is not null
                then
                    ln(parameters.m / pairs.term_frequencies[comparisons.comparison_index])
                    / ln(2)
            else ln(parameters.m / parameters.u) / ln(2)
        end as weight

    from pairs
    cross join comparisons
    cross join prior_odds
    left join parameters
        on
            comparisons.comparison_index = parameters.comp
            and pairs.levels[comparisons.comparison_index] = parameters.lvl
    left join levels
        on pairs.levels[comparisons.comparison_index] = levels.comparison_level

)

select * from final
