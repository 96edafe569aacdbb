{#
    Zendesk users of recent buyers: every help-desk end-user with an email whose person
    (identity resolution) bought in the online store (a non-cancelled order) in the
    `recent_buyers_window_days` days up to `as_of` (int_customer__recent_purchases). One
    row per email, the sync key (a person with two help-desk accounts has two rows); the
    destination tags each user `omnicanal_recent_buyer` and writes the date of the last
    order in a custom user field, so agents see who bought and when (the
    zendesk__recent_buyers exposure). A tag in the help desk is not marketing: no
    consent filter. Ground truth: channels/zendesk/truth.py. A project built without
    Zendesk (macro engagement_platforms) has no help-desk users: the model is then empty.
#}

-- sqlfluff:indentation:template_blocks_indent:False
{%- set with_zendesk = 'zendesk' in engagement_platforms() %}

with

{%- if with_zendesk %}

users as (

    select * from {{ ref('stg_zendesk__users') }}

),

{%- else %}

users as (

    select
        cast(null as text) as email_normalized,
        cast(null as bigint) as zendesk_user_id,
        false as is_end_user
    where false

),

{%- endif %}

record_customers as (

    select * from {{ ref('int_identity__record_customers') }}

),

recent_purchases as (

    select * from {{ ref('int_customer__recent_purchases') }}

),

help_desk_users as (

    select
        users.email_normalized as email,
        users.zendesk_user_id,
        record_customers.customer_id,
        -- Zendesk keeps one user per email; a desk that has two gets the older tagged
        row_number() over (
            partition by users.email_normalized order by users.zendesk_user_id
        ) as email_rank

    from users
    inner join record_customers
        on record_customers.record_key = 'zendesk:' || users.zendesk_user_id
    where
        users.is_end_user
        and users.email_normalized is not null

),

final as (

    select
        help_desk_users.email,
        help_desk_users.zendesk_user_id,
        help_desk_users.customer_id,
        cast(recent_purchases.last_order_at as date) as last_order_date

    from help_desk_users
    inner join recent_purchases
        on help_desk_users.customer_id = recent_purchases.customer_id
    where help_desk_users.email_rank = 1

)

select * from final
