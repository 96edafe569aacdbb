{#
    The emails that may stand for a person outside identity resolution: each record's
    normalised email whose value no guard stopped (not blocklisted, not shared by too
    many people), with the record's customer_id. dim_customers picks a person's email
    among these; fct_orders attributes an order through its email when exactly one
    customer holds it.
#}

with

identifiers as (

    select * from {{ ref('int_identity__identifiers') }}

),

identifier_values as (

    select * from {{ ref('int_identity__identifier_values') }}

),

record_customers as (

    select * from {{ ref('int_identity__record_customers') }}

),

final as (

    select
        identifiers.record_num,
        identifiers.record_key,
        identifiers.identifier_label as email,
        record_customers.customer_id

    from identifiers
    inner join identifier_values
        on identifiers.value_id = identifier_values.value_id
    inner join record_customers
        on identifiers.record_key = record_customers.record_key
    where
        identifiers.identifier_type = 'email'
        and identifier_values.is_linkable

)

select * from final
