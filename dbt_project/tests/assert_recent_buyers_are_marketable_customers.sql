-- Every member of the Mailchimp audience is a known customer with that same email who
-- accepts email marketing. Returns the members that break it.

select
    segment.email,
    segment.customer_id

from {{ ref('sync_mailchimp__recent_buyers') }} as segment
left join {{ ref('dim_customers') }} as customers
    on segment.customer_id = customers.customer_id
where
    customers.customer_id is null
    or customers.email is distinct from segment.email
    or not customers.accepts_email_marketing
