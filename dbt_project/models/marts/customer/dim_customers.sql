{#
    One row per person (customer_id from identity resolution) with the golden record of
    all their records and their purchase history. Each attribute is chosen by the
    survivorship rules of the var identity_survivorship (dbt_project.yml) and comes with
    the source of the chosen value (<attribute>_source). Name and address are each
    taken from one record as a unit. A name goes by its completeness first (macro
    survivorship_name_completeness: a full name, then a first name alone, then a user
    name or the email's local part), the rules among equals; a till's placeholder
    ("Consumidor Final") is no name and never wins. Only linkable emails (not stopped
    by a guard) are candidates, and an email two customers could claim goes to neither. Email
    marketing consent is conservative: an opt-out on any record wins.
#}

{%- set attributes = {
    'name': 'case when name_completeness is not null'
        ~ ' then nullif(concat_ws(\' \', first_name, last_name), \'\') end',
    'email': 'email',
    'phone': 'phone_e164',
    'cpf': 'cpf',
    'address': 'nullif(concat_ws(\'|\', city, state), \'\')',
} %}

with

records as (

    select * from {{ ref('int_identity__records') }}

),

record_customers as (

    select * from {{ ref('int_identity__record_customers') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

linkable_emails as (

    select * from {{ ref('int_customer__linkable_emails') }}

),

-- the names a till or a form gives when the buyer gave none (seed
-- identity_fake_identifiers, type name)
placeholder_names as (

    select distinct {{ normalize_name_key('value') }} as name_key
    from {{ ref('identity_fake_identifiers') }}
    where identifier_type = 'name'

),

members as (

    select
        record_customers.customer_id,
        records.record_key,
        records.source,
        records.source_record_id,
        records.first_name,
        records.last_name,
        linkable_emails.email,
        records.phone_e164,
        records.cpf,
        records.city,
        records.state,
        records.accepts_email_marketing,
        records.created_at,
        records.updated_at,
        {{ survivorship_name_completeness(
            'records.first_name', 'records.last_name', 'records.email',
            'placeholder_names.name_key is not null'
        ) }} as name_completeness

    from records
    inner join record_customers
        on records.record_key = record_customers.record_key
    left join linkable_emails
        on records.record_num = linkable_emails.record_num
    left join placeholder_names
        on {{ normalize_name_key(
            "concat_ws(' ', records.first_name, records.last_name)"
        ) }} = placeholder_names.name_key

),

with_frequency as (

    {%- set frequencies = [] %}
    {%- for attribute, value_sql in attributes.items() %}
        {%- do frequencies.append(survivorship_frequency(attribute, value_sql)) %}
    {%- endfor %}

    select
        *,
        {{ frequencies | join(',\n        ') }}

    from members

),

ranked as (

    select
        *,
    {%- for attribute, value_sql in attributes.items() %}
        {{ survivorship_rank(
            attribute, value_sql,
            prefer=['name_completeness desc'] if attribute == 'name' else []
        ) }} as {{ attribute }}_rank
        {{- ',' if not loop.last }}
    {%- endfor %}

    from with_frequency

),

golden as (

    select
        customer_id,
        {%- for attribute, value_sql in attributes.items() %}
            max(source) filter (
                where {{ attribute }}_rank = 1 and ({{ value_sql }}) is not null
            ) as {{ attribute }}_source,
        {%- endfor %}
        max(first_name) filter (
            where name_rank = 1 and name_completeness is not null
        ) as first_name,
        max(last_name) filter (
            where name_rank = 1 and name_completeness is not null
        ) as last_name,
        max(email) filter (where email_rank = 1) as email,
        max(phone_e164) filter (where phone_rank = 1) as phone,
        max(cpf) filter (where cpf_rank = 1) as cpf,
        max(city) filter (where address_rank = 1) as city,
        max(state) filter (where address_rank = 1) as state,
        -- bool_and skips records with no known consent state; if none has one, false
        coalesce(bool_and(accepts_email_marketing), false) as accepts_email_marketing,
        array_agg(cast(source_record_id as bigint) order by cast(source_record_id as bigint))
        filter (where source = 'shopify') as shopify_customer_ids,
        array_agg(record_key order by record_key) as record_keys,
        min(created_at) as created_at

    from ranked
    group by customer_id

),

purchases as (

    select
        customer_id,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        count(*) as orders_count,
        sum(total_price) as lifetime_value

    from orders
    where
        not is_cancelled
        and customer_id is not null
    group by customer_id

),

final as (

    select
        golden.customer_id,
        -- an email two customers could claim (split by a guard) is neither's
        case
            when count(*) over (partition by golden.email) = 1 then golden.email
        end as email,
        golden.first_name,
        golden.last_name,
        golden.phone,
        golden.cpf,
        golden.city,
        golden.state,
        golden.accepts_email_marketing,
        coalesce(golden.shopify_customer_ids, cast('{}' as bigint[])) as shopify_customer_ids,
        purchases.first_order_at,
        purchases.last_order_at,
        coalesce(purchases.orders_count, 0) as orders_count,
        coalesce(purchases.lifetime_value, 0) as lifetime_value,
        golden.created_at,
        golden.name_source,
        golden.email_source,
        golden.phone_source,
        golden.cpf_source,
        golden.address_source,
        golden.record_keys

    from golden
    left join purchases
        on golden.customer_id = purchases.customer_id

)

select * from final
