{#
    How many records hold each value of the fuzzy stage's term-frequency columns (the
    comparisons with `tf` in macro identity_fuzzy_comparisons: first and last name,
    birth date, city, postcode, address), one row per (term_column, term); and, per
    column and per identifier column (email, phone_e164, cpf), a total row (term '')
    counting the records that hold a value at all. A value's frequency is its records
    over its column's total: an exact agreement on it weighs log2(m / frequency) in
    int_identity__fuzzy_pairs ("maria" less than "eliseu").
    Incremental: only the values the touched records hold now or held before the run
    (int_identity__removed_terms, kept by int_identity__records' pre-hook) are counted
    again, each through an index of int_identity__records; the totals move by the
    difference. A value no record holds any more keeps a row with 0 records.
#}

-- depends_on: {{ ref('int_identity__record_changes') }}
{{ config(
    materialized='incremental',
    unique_key=['term_column', 'term'],
    incremental_strategy='merge',
    on_schema_change='append_new_columns',
    post_hook=[
        "create unique index if not exists {{ this.identifier }}_term_idx
            on {{ this }} (term_column, term)",
        after_commit("{{ identity_vacuum_analyze() }}"),
    ],
) }}

{%- set columns = identity_fuzzy_tf_columns() %}
{%- set totalled = columns + identity_fuzzy_tf_columns(totals_only=true) %}

with
{%- if is_incremental() %}

    -- the values the touched records hold now and held before
    current_terms as (

        select * from {{ ref('int_identity__records') }}
        where record_num in ({{ identity_touched_records() }})

    ),

    removed_terms as (

        select * from {{ this.schema }}.int_identity__removed_terms

    ),

    touched as (

        {%- for column in columns %}
            select
                '{{ column }}' as term_column,
                {{ column }} as term
            from current_terms
            where {{ column }} is not null
            union
            select
                '{{ column }}' as term_column,
                {{ column }} as term
            from removed_terms
            where {{ column }} is not null
            {{ 'union' if not loop.last }}
        {%- endfor %}

    ),

    counted as (

        {%- for column in columns %}
            select
                touched.term_column,
                touched.term,
                (
                    select count(*) from {{ ref('int_identity__records') }} as records
                    where records.{{ column }} = touched.term
                ) as records
            from touched
            where touched.term_column = '{{ column }}'
            {{ 'union all' if not loop.last }}
        {%- endfor %}

    ),

    -- each column's total moves by the values the touched records gained and lost
    totals as (

        {%- for column in totalled %}
            select
                '{{ column }}' as term_column,
                '' as term,
                coalesce((
                    select previous.records from {{ this }} as previous
                    where previous.term_column = '{{ column }}' and previous.term = ''
                ), 0)
                + (select count({{ column }}) from current_terms)
                - (select count({{ column }}) from removed_terms) as records
            {{ 'union all' if not loop.last }}
        {%- endfor %}

    ),
{%- else %}

    -- one pass over the records: a grouping set per column
    counted as (

        select
            case
                {%- for column in columns %}
                    when grouping({{ column }}) = 0 then '{{ column }}'
                {%- endfor %}
            end as term_column,
            coalesce({{ columns | join(', ') }}) as term,
            count(*) as records
        from {{ ref('int_identity__records') }}
        group by grouping sets (({{ columns | join('), (') }}))
        having coalesce({{ columns | join(', ') }}) is not null

    ),

    record_counts as (

        select
            {%- for column in totalled %}
                count({{ column }}) as {{ column }},
            {%- endfor %}
            count(*) as all_records
        from {{ ref('int_identity__records') }}

    ),

    totals as (

        {%- for column in totalled %}
            select
                '{{ column }}' as term_column,
                '' as term,
                record_counts.{{ column }} as records
            from record_counts
            {{ 'union all' if not loop.last }}
        {%- endfor %}

    ),
{%- endif %}

final as (

    select
        cast(term_column as text) as term_column,
        cast(term as text) as term,
        cast(records as bigint) as records
    from counted
    union all
    select
        cast(term_column as text) as term_column,
        cast(term as text) as term,
        cast(records as bigint) as records
    from totals

)

select * from final
