{#
    The golden record of each person (customer_id from identity resolution), before
    dim_customers adds their purchases and gives up an email two people could claim.
    Each attribute is chosen by the survivorship rules of the var identity_survivorship
    (dbt_project.yml) and comes with the source of the chosen value (<attribute>_source).
    Name and address are each taken from one record as a unit. A name goes by its
    completeness first (macro survivorship_name_completeness: a full name, then a first
    name alone, then a user name or the email's local part), the rules among equals; a
    till's placeholder ("Consumidor Final") is no name and never wins. Only linkable
    emails (not stopped by a guard) are candidates. Email marketing consent is
    conservative: an opt-out on any record wins.

    Incremental: a golden record depends on its customer's records alone, so each row
    keeps members_digest, a digest of its members as survivorship reads them (each
    record's customer, fields and linkable email): their count and the sum of a 64-bit
    hash of each, which needs no sort (an md5 of the sorted members' md5s took twice as
    long). A run weighs only the customers identity resolution may have changed since
    this model's last build, each in the customer that holds it now and in the one this
    model last built it into (held rows' record_keys, a GIN index):
    - the records of int_identity__record_changes (new, changed, deleted);
    - the records int_identity__record_customers assigned (to a new or another
      customer) after this model's last build (its newest built_at);
    - the records carrying an email value the run's records had or have (its guard
      decision, hence the email's linkability, may have changed with them).
    Of those customers it rebuilds, whole, the ones whose digest is new, changed or
    gone. The others stay as they are. A customer left with no record keeps one row
    without a digest, so that delete+insert removes their old row, and the post-hook
    deletes it. Field and linkability changes come from the identity run this model
    follows (its record changes): when identity resolution assigned records in more
    than one run since the last build, this model missed a run and weighs every
    customer; a missed run that assigned no record goes unseen (--full-refresh). A change of var identity_survivorship or
    of the placeholder names (seed identity_fake_identifiers) needs --full-refresh.
#}

-- depends_on: {{ ref('int_identity__record_changes') }}
-- depends_on: {{ ref('int_identity__identifiers') }}
-- sqlfluff:indentation:template_blocks_indent:False
{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook=[
        "delete from {{ this }} where members_digest is null",
        "create unique index if not exists {{ this.identifier }}_customer_idx on {{ this }} (customer_id)",
        "create index if not exists {{ this.identifier }}_records_idx on {{ this }} using gin (record_keys)",
    ],
) }}

{%- set attributes = {
    'name': 'case when name_completeness is not null'
        ~ ' then nullif(concat_ws(\' \', first_name, last_name), \'\') end',
    'email': 'email',
    'phone': 'phone_e164',
    'cpf': 'cpf',
    'address': 'nullif(concat_ws(\'|\', city, state), \'\')',
} %}

with

-- not materialized: read more than once on an incremental run, so Postgres would first
-- copy the whole table; inlined, each read takes only the rows it needs, by index
records as not materialized (

    select * from {{ ref('int_identity__records') }}

),

record_customers as not materialized (

    select * from {{ ref('int_identity__record_customers') }}

),

linkable_emails as not materialized (

    select * from {{ ref('int_customer__linkable_emails') }}

),

-- the names a till or a form gives when the buyer gave none (seed
-- identity_fake_identifiers, type name)
placeholder_names as (

    select distinct {{ normalize_name_key('value') }} as name_key
    from {{ ref('identity_fake_identifiers') }}
    where identifier_type = 'name'

),

{%- if is_incremental() %}

-- the records identity resolution may have changed for survivorship since the last build
changed_records as (

    -- new, changed or deleted in the identity run
    select record_changes.record_key
    from {{ ref('int_identity__record_changes') }} as record_changes

    union

    -- moved to a new or another customer since the last build
    select record_customers.record_key
    from record_customers
    where
        record_customers.assigned_at > (
            select coalesce(max(held.built_at), cast('-infinity' as timestamptz))
            from {{ this }} as held
        )

    union

    -- carrying an email value the run's records had or have: its guard decision was
    -- counted again, so the email may have become linkable or stopped being
    select sharing.record_key
    from {{ ref('int_identity__identifiers') }} as sharing
    where
        sharing.identifier_type = 'email'
        and sharing.value_id = any(array(
            select run_values.value_id
            from {{ ref('int_identity__identifiers') }} as run_values
            inner join {{ ref('int_identity__record_changes') }} as record_changes
                on run_values.record_num = record_changes.record_num
            union
            select removed.value_id
            from {{ ref('int_identity__identifiers').schema }}.int_identity__removed_identifiers
                as removed
        ))

),

-- their customers: the one holding each now, and the one this model last built it into.
-- Lists as arrays (here and below): the planner then expects few rows and reads the
-- tables by index, where a join with a CTE it cannot count hashed whole tables
candidates as (

    select record_customers.customer_id
    from record_customers
    where
        record_customers.record_key
        = any(array(select changed_records.record_key from changed_records))

    union

    select held.customer_id
    from {{ this }} as held
    where held.record_keys && array(select changed_records.record_key from changed_records)

    union

    -- every customer, when identity resolution assigned records in more than one run
    -- since the last build (each run stamps its own time): this model missed a run,
    -- whose record changes are gone
    select record_customers.customer_id
    from record_customers
    where (
        select count(distinct missed.assigned_at)
        from record_customers as missed
        where
            missed.assigned_at > (
                select coalesce(max(held.built_at), cast('-infinity' as timestamptz))
                from {{ this }} as held
            )
    ) > 1

),
{%- endif %}

-- each record of a customer with what survivorship reads of it: plain columns only
member_fields as (

    select
        record_customers.customer_id,
        records.record_key,
        records.source,
        records.source_record_id,
        records.first_name,
        records.last_name,
        records.email as record_email,
        linkable_emails.email,
        records.phone_e164,
        records.cpf,
        records.city,
        records.state,
        records.accepts_email_marketing,
        records.created_at,
        records.updated_at,
        hashtextextended(cast(row(
            records.record_key, records.source, records.source_record_id,
            records.first_name, records.last_name, records.email, linkable_emails.email,
            records.phone_e164, records.cpf, records.city, records.state,
            records.accepts_email_marketing, records.created_at, records.updated_at
        ) as text), 0) as member_hash

    from records
    inner join record_customers
        on records.record_key = record_customers.record_key
    {%- if is_incremental() %}
    -- each candidate record's email looked up by index (a join hashed the whole view;
    -- int_customer__linkable_emails has at most one row per record)
    cross join lateral (
        select (
            select linkable.email
            from linkable_emails as linkable
            where linkable.record_num = records.record_num
        ) as email
    ) as linkable_emails
    where record_customers.customer_id = any(array(select candidates.customer_id from candidates))
    {%- else %}
    left join linkable_emails
        on records.record_num = linkable_emails.record_num
    {%- endif %}

),

digests as (

    -- order-free: a count and a sum of 64-bit hashes need no sort within each customer
    select
        customer_id,
        count(*) || ':' || sum(member_hash) as members_digest

    from member_fields
    group by customer_id

),
{%- if is_incremental() %}

touched as (

    -- the candidates whose members are not those the row held for them was built from
    select candidates.customer_id

    from candidates
    left join digests
        on candidates.customer_id = digests.customer_id
    left join {{ this }} as held
        on candidates.customer_id = held.customer_id
    where digests.members_digest is distinct from held.members_digest

),

in_scope as (

    select member_fields.*

    from member_fields
    inner join touched
        on member_fields.customer_id = touched.customer_id

),
{%- else %}

in_scope as (

    select * from member_fields

),
{%- endif %}

members as (

    select
        in_scope.*,
        {{ survivorship_name_completeness(
            'in_scope.first_name', 'in_scope.last_name', 'in_scope.record_email',
            'placeholder_names.name_key is not null'
        ) }} as name_completeness

    from in_scope
    left join placeholder_names
        on {{ normalize_name_key(
            "concat_ws(' ', in_scope.first_name, in_scope.last_name)"
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

final as (

    select
        golden.customer_id,
        golden.email,
        golden.first_name,
        golden.last_name,
        golden.phone,
        golden.cpf,
        golden.city,
        golden.state,
        golden.accepts_email_marketing,
        golden.shopify_customer_ids,
        golden.created_at,
        golden.name_source,
        golden.email_source,
        golden.phone_source,
        golden.cpf_source,
        golden.address_source,
        golden.record_keys,
        digests.members_digest,
        cast('{{ run_started_at }}' as timestamptz) as built_at

    from golden
    inner join digests
        on golden.customer_id = digests.customer_id

)

{%- if is_incremental() %}

select
    touched.customer_id,
    final.email,
    final.first_name,
    final.last_name,
    final.phone,
    final.cpf,
    final.city,
    final.state,
    final.accepts_email_marketing,
    final.shopify_customer_ids,
    final.created_at,
    final.name_source,
    final.email_source,
    final.phone_source,
    final.cpf_source,
    final.address_source,
    final.record_keys,
    final.members_digest,
    final.built_at

from touched
left join final
    on touched.customer_id = final.customer_id

{%- else %}

select * from final

{%- endif %}
