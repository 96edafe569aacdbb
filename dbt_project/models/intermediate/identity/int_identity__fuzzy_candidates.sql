{#
    Candidate pairs of the fuzzy stage and their comparison levels: records that agree
    on every column of at least one blocking rule (var identity_fuzzy.blocking_rules),
    skipping blocks larger than max_block_size (a common name blocks nothing), and, with
    within_source false, pairs from the same source. Pairs that already share a
    linkable identifier are left to the graph.
#}

{%- set cfg = var('identity_fuzzy', {}) %}
{%- set enabled = cfg.get('enabled', true) and identity_fuzzy_available() %}
{%- set max_block = cfg.get('max_block_size', 200) %}

with

records as (

    select * from {{ ref('int_identity__records') }}

),

{%- if enabled %}
    {%- for rule in cfg.get('blocking_rules', []) %}

        block_{{ loop.index }} as (

            select
                record_num,
                source,
                concat_ws('|', {{ rule | join(', ') }}) as block_key,
                count(*) over (partition by {{ rule | join(', ') }}) as block_size

            from records
            where
                {{ rule | join(' is not null and ') }} is not null

        ),

        pairs_{{ loop.index }} as (

            select
                left_side.record_num as record_num_a,
                right_side.record_num as record_num_b

            from block_{{ loop.index }} as left_side
            inner join block_{{ loop.index }} as right_side
                on
                    left_side.block_key = right_side.block_key
                    and left_side.record_num < right_side.record_num
            {%- if not cfg.get('within_source', true) %}
            and left_side.source <> right_side.source
            {%- endif %}
            where left_side.block_size <= {{ max_block }}

        ),
    {%- endfor %}

    candidates as (

        {%- for rule in cfg.get('blocking_rules', []) %}
            select * from pairs_{{ loop.index }}
            {{ 'union' if not loop.last }}
        {%- endfor %}

    ),

    final as (

        select
            candidates.record_num_a,
            candidates.record_num_b,
            a.source as source_a,
            b.source as source_b,
            {{ identity_fuzzy_levels('a', 'b') }} as levels

        from candidates
        inner join records as a
            on candidates.record_num_a = a.record_num
        inner join records as b
            on candidates.record_num_b = b.record_num

    )

{%- else %}

final as (

    select
        cast(null as bigint) as record_num_a,
        cast(null as bigint) as record_num_b,
        cast(null as text) as source_a,
        cast(null as text) as source_b,
        cast(null as int []) as levels
    from records
    where false

)

{%- endif %}

select * from final
