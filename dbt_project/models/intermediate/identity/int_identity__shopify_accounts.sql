{#
    First slice of identity resolution: a person is identified by their normalised email.
    Accounts without an email are each a person of their own. The key is a hash of the
    identifier, so a person keeps the same customer_id on every run and in every
    environment.
#}

with

accounts as (

    select * from {{ ref('stg_shopify__customers') }}

),

keyed as (

    select
        *,
        case
            when email_normalized is not null
                then 'email:' || email_normalized
            else 'shopify_customer:' || shopify_customer_id
        end as identity_key

    from accounts

),

final as (

    select
        md5(identity_key) as customer_id,
        *

    from keyed

)

select * from final
