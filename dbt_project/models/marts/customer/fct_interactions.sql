{#
    One timeline of everything a customer and the retailer said or did to each other
    outside a purchase, one row per interaction:

    - Instagram: comments on the account's posts (the business's replies too, as
      outbound to the comment's author) and Direct messages (thread: the conversation);
    - WhatsApp: inbound messages and the agents' replies (outbound, from their
      statuses; thread: Meta's conversation id of the reply, none for inbound messages,
      which WhatsApp sends without one); a reply Meta could not deliver is_failed;
    - Zendesk: a ticket opened, its public comments after the opening one (thread: the
      ticket), and the satisfaction rating the requester gave;
    - Mailchimp: campaign emails sent, opened, clicked, bounced and unsubscribed from
      (thread: the campaign);
    - HubSpot: calls, emails, notes and meetings staff logged (thread: the ticket or deal
      they are about).

    customer_id comes from identity resolution through the record that speaks for the
    person on that platform (Instagram user, WhatsApp number, Zendesk end user, Mailchimp
    member, HubSpot contact); null when no record does (a Zendesk Instagram-DM requester
    holds neither email nor phone, so is no identity record).

    channel is where the interaction happened: instagram, whatsapp, support (Zendesk,
    whose own channel is in via), email (marketing email), crm (staff activities).
    direction: inbound (from the customer), outbound (to them), internal (a staff note).

    Incremental on arrival, like fct_orders: a run rewrites the interactions whose
    staging rows (theirs, or the parent's they take a field from: the comment answered,
    the ticket, a reply's statuses) were loaded since the newest load stamp (_loaded_at)
    this model holds for their platform, whatever their updated_at, and those attributed
    through a record identity resolution assigned since the last build. Only those are
    attributed and written. An interaction that is no longer one (a CRM activity deleted in
    HubSpot, which the loader soft-deletes; a Zendesk ticket deleted, with its comments
    and rating; a row whose time went null) is written without a time, replacing the
    row held, and the post-hook deletes it and logs its key in the deletions log
    (source dbt_log.deleted_keys), where customer_journey finds it. An interaction whose
    staging row is gone (a raw record erased, or a table the loader replaced: staging
    logs the key) is deleted before the run builds, and logged, by the pre-hook, which
    reads only the keys staging logged since this model's last build; with a Zendesk
    ticket go its comments (a comment is an interaction of its ticket), with an
    Instagram comment the business's replies to it, and the rest of the thread (the
    ticket's rating, a customer's reply) is built again without its parent. Platforms the project is not built with (macro
    engagement_platforms) are left out.
#}

-- sqlfluff:indentation:template_blocks_indent:False
-- depends_on: {{ ref('int_identity__record_changes') }}
-- depends_on: {{ source('dbt_log', 'deleted_keys') }}
{#- a larger work_mem: macro attributed_facts_pre_hook #}
{{ config(
    materialized='incremental',
    unique_key='interaction_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    meta={'new_rows_stamp': 'built_at'},
    pre_hook=[
        attributed_facts_pre_hook(),
        "{{ delete_logged_since_built('interaction_key', [
            ('stg_instagram__comments', 'instagram:comment:'),
            ('stg_instagram__messages', 'instagram:message:'),
            ('stg_whatsapp__messages', 'whatsapp:message:'),
            ('stg_zendesk__tickets', 'zendesk:ticket:'),
            ('stg_zendesk__ticket_comments', 'zendesk:comment:'),
            ('stg_zendesk__satisfaction_ratings', 'zendesk:rating:'),
            ('stg_mailchimp__email_events', 'mailchimp:'),
            ('stg_hubspot__engagements', 'hubspot:'),
        ], threads=[
            ('stg_zendesk__tickets', 'source_platform', 'zendesk'),
            ('stg_instagram__comments', 'interaction_type', 'instagram_comment'),
        ]) }}",
    ],
    post_hook=[
        "{{ delete_logged('interaction_key', 'built.occurred_at is null') }}",
        "create unique index if not exists {{ this.identifier }}_key_idx on {{ this }} (interaction_key)",
        "create index if not exists {{ this.identifier }}_customer_idx on {{ this }} (customer_id, occurred_at)",
        "create index if not exists {{ this.identifier }}_loaded_idx on {{ this }} (source_platform, _loaded_at)",
        "create index if not exists {{ this.identifier }}_built_idx on {{ this }} (built_at)",
    ],
) }}

{%- set platforms = engagement_platforms() %}
{%- set incremental = is_incremental() and relation_has_column(this, '_loaded_at') %}

{%- set parts = {
    'instagram': ['instagram_comment_interactions', 'instagram_message_interactions'],
    'whatsapp': ['whatsapp_interactions'],
    'zendesk': [
        'zendesk_ticket_interactions', 'zendesk_comment_interactions',
        'zendesk_rating_interactions'
    ],
    'mailchimp': ['mailchimp_interactions'],
    'hubspot': ['hubspot_interactions'],
} %}
{%- set selected = [] %}
{%- for platform in platforms %}{% do selected.extend(parts[platform]) %}{% endfor %}

with

-- not materialized: read more than once, so Postgres would first copy the whole table;
-- inlined, each read takes only the rows it needs, through the table's indexes
record_customers as not materialized (

    select * from {{ ref('int_identity__record_customers') }}

),

{%- if incremental %}

-- records identity resolution assigned (new, or to another customer) since the last build
reassigned as (

    {{ records_assigned_since_built() }}

),

-- threads whose parent the source deleted since the last build (a Zendesk ticket, an
-- Instagram comment): the pre-hook deleted them, and what stands without the parent
-- (a rating, a customer's reply) is built again
deleted_threads as (

    {%- set since = 'select max(held.built_at) from ' ~ this ~ ' as held' %}
    select
        'zendesk' as source_platform,
        tickets.deleted_key as thread_id
    from ({{ deleted_keys_since('stg_zendesk__tickets', since) }}) as tickets
    union all
    select
        'instagram' as source_platform,
        comments.deleted_key as thread_id
    from ({{ deleted_keys_since('stg_instagram__comments', since) }}) as comments

),
{%- endif %}

{%- if 'instagram' in platforms %}

instagram_comments as (

    select * from {{ ref('stg_instagram__comments') }}

),

instagram_comment_interactions as (

    select
        'instagram:comment:' || replies.comment_id as interaction_key,
        'instagram' as source_platform,
        replies.comment_id as source_id,
        -- the business's reply is to the author of the comment it answers
        'instagram:' || case
            when replies.is_from_business then parents.author_id
            else replies.author_id
        end as record_key,
        'instagram' as channel,
        cast(null as text) as via,
        case when replies.is_from_business then 'outbound' else 'inbound' end as direction,
        'instagram_comment' as interaction_type,
        coalesce(replies.parent_comment_id, replies.comment_id) as thread_id,
        replies.comment_text as detail,
        false as is_failed,
        replies.commented_at as occurred_at,
        replies.commented_at as updated_at,
        greatest(replies._loaded_at, parents._loaded_at) as _loaded_at

    from instagram_comments as replies
    left join instagram_comments as parents
        on replies.parent_comment_id = parents.comment_id
    where not replies.is_from_business or parents.author_id is not null

),

instagram_message_interactions as (

    select
        'instagram:message:' || message_id as interaction_key,
        'instagram' as source_platform,
        message_id as source_id,
        'instagram:' || instagram_user_id as record_key,
        'instagram' as channel,
        cast(null as text) as via,
        case when is_from_business then 'outbound' else 'inbound' end as direction,
        'instagram_dm' as interaction_type,
        conversation_id as thread_id,
        message_text as detail,
        false as is_failed,
        created_at as occurred_at,
        created_at as updated_at,
        _loaded_at

    from {{ ref('stg_instagram__messages') }}

),
{%- endif %}

{%- if 'whatsapp' in platforms %}

-- a reply's statuses: Meta's conversation id, and when the latest one arrived (a
-- 'failed' after 'sent' rewrites the row)
whatsapp_statuses as (

    select
        whatsapp_message_id,
        min(conversation_id) as conversation_id,
        max(received_at) as last_received_at,
        max(_loaded_at) as last_loaded_at

    from {{ ref('stg_whatsapp__statuses') }}
    group by whatsapp_message_id

),

whatsapp_interactions as (

    select
        'whatsapp:message:' || messages.whatsapp_message_id as interaction_key,
        'whatsapp' as source_platform,
        messages.whatsapp_message_id as source_id,
        'whatsapp:' || messages.wa_id as record_key,
        'whatsapp' as channel,
        cast(null as text) as via,
        messages.direction,
        'whatsapp_message' as interaction_type,
        statuses.conversation_id as thread_id,
        coalesce(messages.body, messages.message_type) as detail,
        messages.failed_at is not null as is_failed,
        coalesce(messages.sent_at, messages.failed_at) as occurred_at,
        greatest(messages.received_at, statuses.last_received_at) as updated_at,
        greatest(messages._loaded_at, statuses.last_loaded_at) as _loaded_at

    from {{ ref('stg_whatsapp__messages') }} as messages
    left join whatsapp_statuses as statuses
        on messages.whatsapp_message_id = statuses.whatsapp_message_id

),
{%- endif %}

{%- if 'zendesk' in platforms %}

zendesk_tickets as (

    select * from {{ ref('stg_zendesk__tickets') }}

),

zendesk_ticket_interactions as (

    select
        'zendesk:ticket:' || zendesk_ticket_id as interaction_key,
        'zendesk' as source_platform,
        cast(zendesk_ticket_id as text) as source_id,
        'zendesk:' || zendesk_requester_id as record_key,
        'support' as channel,
        channel as via,
        'inbound' as direction,
        'ticket_opened' as interaction_type,
        cast(zendesk_ticket_id as text) as thread_id,
        subject as detail,
        false as is_failed,
        -- a deleted ticket (spam, or removed by an agent) is no interaction, nor is
        -- anything said on it: written without a time, the post-hook deletes it
        case when ticket_status <> 'deleted' then created_at end as occurred_at,
        updated_at,
        _loaded_at

    from zendesk_tickets

),

zendesk_comment_interactions as (

    select
        'zendesk:comment:' || ticket_comments.zendesk_comment_id as interaction_key,
        'zendesk' as source_platform,
        cast(ticket_comments.zendesk_comment_id as text) as source_id,
        'zendesk:' || tickets.zendesk_requester_id as record_key,
        'support' as channel,
        ticket_comments.channel as via,
        case
            when ticket_comments.zendesk_author_id = tickets.zendesk_requester_id then 'inbound'
            else 'outbound'
        end as direction,
        'ticket_comment' as interaction_type,
        cast(ticket_comments.zendesk_ticket_id as text) as thread_id,
        ticket_comments.body as detail,
        false as is_failed,
        case when tickets.ticket_status <> 'deleted' then ticket_comments.created_at end
            as occurred_at,
        ticket_comments.created_at as updated_at,
        greatest(ticket_comments._loaded_at, tickets._loaded_at) as _loaded_at

    from {{ ref('stg_zendesk__ticket_comments') }} as ticket_comments
    inner join zendesk_tickets as tickets
        on ticket_comments.zendesk_ticket_id = tickets.zendesk_ticket_id
    where
        ticket_comments.is_public
        -- the requester's opening comment is the ticket itself
        and not (
            ticket_comments.zendesk_author_id = tickets.zendesk_requester_id
            and ticket_comments.created_at = tickets.created_at
        )

),

zendesk_rating_interactions as (

    select
        'zendesk:rating:' || ratings.zendesk_satisfaction_rating_id as interaction_key,
        'zendesk' as source_platform,
        cast(ratings.zendesk_satisfaction_rating_id as text) as source_id,
        'zendesk:' || coalesce(ratings.zendesk_requester_id, tickets.zendesk_requester_id)
            as record_key,
        'support' as channel,
        tickets.channel as via,
        'inbound' as direction,
        'satisfaction_rating' as interaction_type,
        cast(ratings.zendesk_ticket_id as text) as thread_id,
        ratings.score as detail,
        false as is_failed,
        case when coalesce(tickets.ticket_status, '') <> 'deleted' then ratings.rated_at end
            as occurred_at,
        ratings.updated_at,
        greatest(ratings._loaded_at, tickets._loaded_at) as _loaded_at

    from {{ ref('stg_zendesk__satisfaction_ratings') }} as ratings
    left join zendesk_tickets as tickets
        on ratings.zendesk_ticket_id = tickets.zendesk_ticket_id
    where ratings.is_rated

),
{%- endif %}

{%- if 'mailchimp' in platforms %}

mailchimp_interactions as (

    select
        'mailchimp:' || email_event_id as interaction_key,
        'mailchimp' as source_platform,
        email_event_id as source_id,
        'mailchimp:' || mailchimp_member_key as record_key,
        'email' as channel,
        cast(null as text) as via,
        -- a bounce is the sent email coming back, not the member's doing
        case when event_type in ('sent', 'bounce') then 'outbound' else 'inbound' end
            as direction,
        'email_' || event_type as interaction_type,
        mailchimp_campaign_id as thread_id,
        coalesce(url, bounce_type, unsubscribe_reason) as detail,
        false as is_failed,
        occurred_at,
        occurred_at as updated_at,
        _loaded_at

    from {{ ref('stg_mailchimp__email_events') }}
    where event_type in ('sent', 'open', 'click', 'bounce', 'unsubscribe')

),
{%- endif %}

{%- if 'hubspot' in platforms %}

hubspot_interactions as (

    select
        'hubspot:' || engagement_key as interaction_key,
        'hubspot' as source_platform,
        engagement_key as source_id,
        'hubspot:' || hubspot_contact_id as record_key,
        'crm' as channel,
        cast(null as text) as via,
        case
            when engagement_type = 'note' then 'internal'
            when direction in ('INBOUND', 'INCOMING_EMAIL') then 'inbound'
            else 'outbound'
        end as direction,
        'crm_' || engagement_type as interaction_type,
        coalesce('ticket:' || hubspot_ticket_id, 'deal:' || hubspot_deal_id) as thread_id,
        coalesce(title, status) as detail,
        false as is_failed,
        -- a deleted activity has no time: on an incremental run its row replaces the one
        -- held, and the post-hook deletes it
        case when deleted_at is null then coalesce(occurred_at, created_at) end as occurred_at,
        updated_at,
        _loaded_at

    from {{ ref('stg_hubspot__engagements') }}
    {%- if not incremental %}
    where deleted_at is null
    {%- endif %}

),
{%- endif %}

unioned as (
    {%- for part in selected %}
    {%- if not loop.first %}
    union all
    {%- endif %}
    select * from {{ part }}
    {%- if incremental %}
    -- loaded since, or attributed through a record assigned since the last build
    where
        {{ loaded_since_held('_loaded_at', 'source_platform', part.split('_')[0]) }}
        or record_key in (select reassigned.record_key from reassigned)
        {%- if part.startswith('zendesk') or part == 'instagram_comment_interactions' %}
        or (source_platform, thread_id) in (
            select deleted_threads.source_platform, deleted_threads.thread_id
            from deleted_threads
        )
        {%- endif %}
    {%- endif %}
    {%- endfor %}
    {%- if not selected %}
    -- no engagement platform in this project: an empty timeline of the same shape
    select
        cast(null as text) as interaction_key,
        cast(null as text) as source_platform,
        cast(null as text) as source_id,
        cast(null as text) as record_key,
        cast(null as text) as channel,
        cast(null as text) as via,
        cast(null as text) as direction,
        cast(null as text) as interaction_type,
        cast(null as text) as thread_id,
        cast(null as text) as detail,
        false as is_failed,
        cast(null as timestamptz) as occurred_at,
        cast(null as timestamptz) as updated_at,
        cast(null as timestamptz) as _loaded_at
    where false
    {%- endif %}

),

attributed as (

    select
        unioned.*,
        record_customers.customer_id

    from unioned
    left join record_customers
        on unioned.record_key = record_customers.record_key
    {%- if not incremental %}
    where unioned.occurred_at is not null
    {%- endif %}

),

final as (

    select
        interaction_key,
        customer_id,
        record_key,
        source_platform,
        source_id,
        channel,
        via,
        direction,
        interaction_type,
        thread_id,
        detail,
        is_failed,
        occurred_at,
        updated_at,
        _loaded_at,
        cast('{{ run_started_at }}' as timestamptz) as built_at

    from attributed

)

select * from final
