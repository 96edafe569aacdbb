{#
    One row per customer and consent channel (email, sms, whatsapp, ads): whether the
    person may be reached there for marketing now, which record decided it and when.
    The sync engine sends a destination with a consent_channel only the customers whose
    row here says consents, and removes the others where a sync put them.

    Every record that says something about consent is a signal, a consent or a
    revocation, with a time:
    - Mailchimp: subscribed is an email consent (when they opted in); unsubscribed is a
      revocation (when the status changed). cleaned (the address bounced), pending
      (never confirmed), transactional and archived say nothing about consent.
    - Shopify: email and SMS marketing consent, subscribed or unsubscribed, at the
      consent's own timestamp. The SMS consent is the store's opt-in for marketing
      messages to the mobile, which covers WhatsApp.
    - Square: an address that was not unsubscribed is an email consent, an unsubscribed
      one a revocation, at the profile's update.
    - VTEX: the newsletter opt-in is an email consent; an unticked box says nothing.
    - HubSpot: a contact opted out of all email (hs_email_optout "true") is a revocation,
      at the contact's last modification (HubSpot keeps no time of its own for it); not
      opted out says nothing (HubSpot has no opt-in there).
    - WhatsApp: a user_preferences "stop" (no more marketing messages from the retailer)
      is a revocation; a "resume" is a consent to marketing on WhatsApp only (not sms,
      not ads), at the webhook's timestamp.
    HubSpot and WhatsApp count when the project is built with them (engagement_platforms).
    A revocation counts for every channel: the person counts as not consenting anywhere
    until a consent later than their latest revocation. A revocation without a time wins
    over every consent; a consent without a time loses to every revocation. ads (may be
    used for ads matching) is any marketing consent later than the latest revocation.
    Deleted accounts say nothing (identity leaves them out).
#}

-- sqlfluff:indentation:template_blocks_indent:False
{%- set platforms = engagement_platforms() %}

with

record_customers as (

    select * from {{ ref('int_identity__record_customers') }}

),

mailchimp_members as (

    select * from {{ ref('stg_mailchimp__members') }}

),

shopify_customers as (

    select * from {{ ref('stg_shopify__customers') }}

),

square_customers as (

    select * from {{ ref('stg_square__customers') }}

),

vtex_customers as (

    select * from {{ ref('stg_vtex__customers') }}

),
{%- if 'hubspot' in platforms %}

hubspot_contacts as (

    select * from {{ ref('stg_hubspot__contacts') }}

),
{%- endif %}
{%- if 'whatsapp' in platforms %}

whatsapp_preferences as (

    select * from {{ ref('stg_whatsapp__user_preferences') }}

),
{%- endif %}

channels as (

    select channel
    from (values ('email'), ('sms'), ('whatsapp'), ('ads')) as listed (channel)

),

-- what each record says: medium email, phone or whatsapp, kind consent or revocation
signals as (

    select
        'mailchimp:' || mailchimp_member_key as record_key,
        'mailchimp' as source,
        'email' as medium,
        case member_status when 'subscribed' then 'consent' else 'revocation' end as kind,
        case member_status
            when 'subscribed' then coalesce(opted_in_at, signed_up_at, updated_at)
            else coalesce(unsubscribed_at, updated_at)
        end as signal_at

    from mailchimp_members
    where member_status in ('subscribed', 'unsubscribed')

    union all

    select
        'shopify:' || shopify_customer_id as record_key,
        'shopify' as source,
        'email' as medium,
        case email_marketing_consent_state
            when 'subscribed' then 'consent' else 'revocation'
        end as kind,
        coalesce(email_marketing_consent_updated_at, updated_at) as signal_at

    from shopify_customers
    where email_marketing_consent_state in ('subscribed', 'unsubscribed')

    union all

    select
        'shopify:' || shopify_customer_id as record_key,
        'shopify' as source,
        'phone' as medium,
        case sms_marketing_consent_state
            when 'subscribed' then 'consent' else 'revocation'
        end as kind,
        coalesce(sms_marketing_consent_updated_at, updated_at) as signal_at

    from shopify_customers
    where sms_marketing_consent_state in ('subscribed', 'unsubscribed')

    union all

    select
        'square:' || square_customer_id as record_key,
        'square' as source,
        'email' as medium,
        case when accepts_email_marketing then 'consent' else 'revocation' end as kind,
        updated_at as signal_at

    from square_customers
    where accepts_email_marketing is not null

    union all

    select
        'vtex:' || vtex_profile_id as record_key,
        'vtex' as source,
        'email' as medium,
        'consent' as kind,
        updated_at as signal_at

    from vtex_customers
    where accepts_email_marketing
    {% if 'hubspot' in platforms %}

    union all

    select
        'hubspot:' || hubspot_contact_id as record_key,
        'hubspot' as source,
        'email' as medium,
        'revocation' as kind,
        email_opted_out_at as signal_at

    from hubspot_contacts
    where is_email_opted_out and not is_deleted
    {% endif %}
    {% if 'whatsapp' in platforms %}

    union all

    select
        'whatsapp:' || wa_id as record_key,
        'whatsapp' as source,
        'whatsapp' as medium,
        case preference when 'resume' then 'consent' else 'revocation' end as kind,
        preference_at as signal_at

    from whatsapp_preferences
    where preference in ('stop', 'resume')
    {% endif %}

),

customer_signals as (

    select
        record_customers.customer_id,
        signals.record_key,
        signals.source,
        signals.medium,
        signals.kind,
        signals.signal_at,
        -- unknown times are ordered against the person: a revocation last, a consent first
        coalesce(
            signals.signal_at,
            case
                when signals.kind = 'revocation' then cast('infinity' as timestamptz)
                else cast('-infinity' as timestamptz)
            end
        ) as ordered_at

    from signals
    inner join record_customers
        on signals.record_key = record_customers.record_key

),

latest_revocations as (

    select distinct on (customer_id)
        customer_id,
        record_key,
        source,
        signal_at as revoked_at,
        ordered_at as revocation_order

    from customer_signals
    where kind = 'revocation'
    order by customer_id asc, ordered_at desc, record_key asc

),

-- each consent, once per channel it opens: email for email, sms and whatsapp for the
-- phone, whatsapp alone for a WhatsApp resume, ads for any but that
channel_consents as (

    select
        customer_signals.customer_id,
        channels.channel,
        customer_signals.record_key,
        customer_signals.source,
        customer_signals.signal_at,
        customer_signals.ordered_at

    from customer_signals
    inner join channels
        on
            (channels.channel = 'ads' and customer_signals.medium != 'whatsapp')
            or (customer_signals.medium = 'email' and channels.channel = 'email')
            or (customer_signals.medium = 'whatsapp' and channels.channel = 'whatsapp')
            or (customer_signals.medium = 'phone' and channels.channel in ('sms', 'whatsapp'))
    where customer_signals.kind = 'consent'

),

latest_consents as (

    select distinct on (customer_id, channel)
        customer_id,
        channel,
        record_key,
        source,
        signal_at as consented_at,
        ordered_at as consent_order

    from channel_consents
    order by customer_id asc, channel asc, ordered_at desc, record_key asc

),

customers as (

    select distinct customer_id
    from record_customers

),

final as (

    select
        customers.customer_id,
        channels.channel,
        coalesce(
            latest_consents.consent_order > coalesce(
                latest_revocations.revocation_order, cast('-infinity' as timestamptz)
            ),
            false
        ) as consents,
        latest_consents.consented_at,
        latest_revocations.revoked_at,
        latest_revocations.customer_id is not null as has_revoked,
        latest_consents.record_key as consent_record_key,
        latest_consents.source as consent_source,
        latest_revocations.record_key as revocation_record_key,
        latest_revocations.source as revocation_source

    from customers
    cross join channels
    left join latest_consents
        on
            customers.customer_id = latest_consents.customer_id
            and channels.channel = latest_consents.channel
    left join latest_revocations
        on customers.customer_id = latest_revocations.customer_id

),

decided as (

    select
        customer_id,
        channel,
        consents,
        -- the record that decides: the consent when it holds, else the revocation
        case
            when consents then consent_source
            when has_revoked then revocation_source
        end as decided_by_source,
        case
            when consents then consent_record_key
            when has_revoked then revocation_record_key
        end as decided_by_record_key,
        case
            when consents then consented_at
            when has_revoked then revoked_at
        end as decided_at,
        has_revoked,
        consented_at,
        revoked_at

    from final

)

select * from decided
