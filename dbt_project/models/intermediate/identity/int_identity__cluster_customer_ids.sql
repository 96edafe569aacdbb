{#
    The stable customer_id of each cluster of this run, from the ids records held after
    the previous run (int_identity__record_customers, read as it stands before this run
    updates it):
    - each previous id goes to the cluster holding most of its records (its heir);
    - a cluster that is heir to several ids (a merge) keeps the oldest one; the others
      are listed in merged_customer_ids (-> customer_id_history);
    - a cluster heir to none gets a new id, md5 of its founding record (the earliest
      created, then the smallest record_key); if its records held ids that stayed with
      another part (a split), those are listed in split_from_customer_ids.
    So a rerun on the same data changes no id, and new records join existing ids.
#}

-- depends_on: {{ ref('int_identity__record_changes') }}
{%- set state = adapter.get_relation(
    database=this.database, schema=this.schema, identifier='int_identity__record_customers'
) if execute else none %}

with

clusters as (

    -- the clusters this run (re)computed: all of them on a full run
    select * from {{ ref('int_identity__clusters') }}
    where run_id = {{ identity_run_id() }}

),

records as (

    select
        record_num,
        record_key,
        created_at
    from {{ ref('int_identity__records') }}
    {%- if state %}
    -- a later run recomputes some clusters: their records. A semi-join, not
    -- `= any(array(...))`: a rerun over a warehouse that has ids (a full refresh)
    -- recomputes every cluster, and each record scanned that whole array (744 s at 100k)
    where record_num in (select clusters.record_num from clusters)
    {%- endif %}

),

previous as (

    {%- if state %}
    -- the ids the records of this run's clusters held (the other clusters keep theirs)
    select
        record_key,
        customer_id,
        customer_id_created_at
    from {{ state }}
    where record_key in (select clusters.record_key from clusters)
    {%- else %}
        select
            cast(null as text) as record_key,
            cast(null as text) as customer_id,
            cast(null as timestamptz) as customer_id_created_at
        where false
    {%- endif %}

),

overlap as (

    select
        clusters.cluster_num,
        previous.customer_id,
        previous.customer_id_created_at,
        count(*) as shared_records

    from clusters
    inner join previous
        on clusters.record_key = previous.record_key
    group by clusters.cluster_num, previous.customer_id, previous.customer_id_created_at

),

heirs as (

    select
        *,
        row_number() over (
            partition by customer_id
            order by shared_records desc, cluster_num asc
        ) = 1 as is_heir

    from overlap

),

inherited as (

    select
        cluster_num,
        (array_agg(customer_id order by customer_id_created_at asc, customer_id asc))[1]
            as customer_id,
        min(customer_id_created_at) as customer_id_created_at,
        (array_agg(customer_id order by customer_id_created_at asc, customer_id asc))[2:]
            as merged_customer_ids

    from heirs
    where is_heir
    group by cluster_num

),

split_from as (

    select
        cluster_num,
        array_agg(distinct customer_id order by customer_id) as split_from_customer_ids

    from heirs
    where not is_heir
    group by cluster_num

),

founders as (

    select distinct on (clusters.cluster_num)
        clusters.cluster_num,
        records.record_key as founding_record_key

    from clusters
    inner join records
        on clusters.record_num = records.record_num
    order by
        clusters.cluster_num asc,
        records.created_at asc nulls last,
        records.record_key asc

),

final as (

    select
        founders.cluster_num,
        coalesce(
            inherited.customer_id,
            case
                when exists (
                        select 1 as found from {{ state if state else 'previous' }} as taken
                        where taken.customer_id
                            = md5('customer:' || founders.founding_record_key)
                    )
                    then md5(
                            'customer:'
                            || founders.founding_record_key
                            || ':'
                            || '{{ run_started_at }}'
                        )
                else md5('customer:' || founders.founding_record_key)
            end
        ) as customer_id,
        coalesce(
            inherited.customer_id_created_at, cast('{{ run_started_at }}' as timestamptz)
        ) as customer_id_created_at,
        inherited.customer_id is null as is_new,
        founders.founding_record_key,
        coalesce(inherited.merged_customer_ids, cast('{}' as text[])) as merged_customer_ids,
        coalesce(split_from.split_from_customer_ids, cast('{}' as text[]))
            as split_from_customer_ids

    from founders
    left join inherited
        on founders.cluster_num = inherited.cluster_num
    left join split_from
        on founders.cluster_num = split_from.cluster_num

)

select * from final
