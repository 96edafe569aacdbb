{#
    Each customer's events in time order, one row per event: their interactions
    (fct_interactions, but replies WhatsApp could not deliver), orders (fct_orders, not cancelled), checkouts they left
    without paying (Shopify abandoned checkouts never completed) and returns
    (fct_order_returns), numbered per customer (event_number).

    stage, where the event sits on the way from discovery to after-sales:
    - purchase: an order;
    - post_sale: a return or exchange; a support ticket (its comments and rating) after
      the customer's first order; a conversation (Instagram DM, WhatsApp, CRM activity)
      within var journey_post_sale_days of their latest order;
    - consideration: an abandoned checkout; a support ticket before any order; a
      conversation with no order in the days before it;
    - discovery: marketing and social touches (campaign emails, Instagram comments).

    Channel switches are between the customer's own consecutive actions (inbound
    interactions, orders, checkouts, returns): previous_channel is the channel of their
    action before, is_channel_switch when it differs ("web -> pos": bought online,
    returned in a shop). What the retailer sent (outbound, internal) has no previous
    channel and is no switch.

    Incremental: a customer's journey depends on their events alone, so a run rebuilds,
    whole, the journeys of the customers with an event new, changed, moved to or from
    them, or gone; the others stay as they are. Those events are the facts' rows written
    since this model's last build (built_at: fct_orders, fct_order_returns and
    fct_interactions rewrite a row when it arrives or changes, or when its customer
    does), the abandoned checkouts loaded since or whose account identity assigned
    since, the checkouts held that are no event any more (gone or recovered), and the
    events held whose fact was deleted since (an order, a return or an interaction whose
    source record was erased, an activity deleted in the CRM, a Zendesk ticket deleted:
    the facts log the keys they delete in the deletions log, source
    dbt_log.deleted_keys); an event counts for the customer it has now and for the one
    this model holds it under. Only their
    customers' events are read. A customer left with no event keeps one row without a
    key, so that delete+insert removes their old rows, and the post-hook deletes it and
    logs the customer in the deletions log (for int_customer__touches and
    int_customer__touch_days). A
    change of var journey_post_sale_days needs --full-refresh.
#}

-- sqlfluff:indentation:template_blocks_indent:False
-- depends_on: {{ source('dbt_log', 'deleted_keys') }}
{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    meta={'new_rows_stamp': 'built_at'},
    post_hook=[
        "{{ delete_logged('customer_id', 'built.journey_event_key is null') }}",
        "create unique index if not exists {{ this.identifier }}_key_idx on {{ this }} (journey_event_key)",
        "create index if not exists {{ this.identifier }}_customer_idx on {{ this }} (customer_id, event_number)",
        "create index if not exists {{ this.identifier }}_built_idx on {{ this }} (built_at)",
        "create index if not exists {{ this.identifier }}_checkout_idx on {{ this }} (journey_event_key) where event_source = 'abandoned_checkout'",
        "drop index if exists {{ this.schema }}.{{ this.identifier }}_crm_idx",
    ],
) }}

{%- set platforms = commerce_platforms() %}
{%- set post_sale_days = var('journey_post_sale_days', 30) | int %}

with

interactions as (

    select
        'interaction:' || interaction_key as journey_event_key,
        customer_id,
        occurred_at,
        'interaction' as event_source,
        interaction_type as event_type,
        channel,
        direction,
        interaction_key as source_key,
        cast(null as text) as order_key,
        cast(null as numeric) as amount

    from {{ ref('fct_interactions') }}
    -- a message that never arrived is no part of anyone's journey
    where customer_id is not null and is_failed is not true

),

orders as (

    select
        'order:' || order_key as journey_event_key,
        customer_id,
        ordered_at as occurred_at,
        'order' as event_source,
        'order' as event_type,
        channel,
        cast(null as text) as direction,
        order_key as source_key,
        order_key,
        total_price as amount

    from {{ ref('fct_orders') }}
    where customer_id is not null and not is_cancelled

),

returns as (

    select
        'return:' || return_key as journey_event_key,
        customer_id,
        returned_at as occurred_at,
        'return' as event_source,
        return_type as event_type,
        return_channel as channel,
        cast(null as text) as direction,
        return_key as source_key,
        original_order_key as order_key,
        refund_amount as amount

    from {{ ref('fct_order_returns') }}
    where customer_id is not null

),

{%- if 'shopify' in platforms %}

-- not materialized: read more than once, so Postgres would first copy the whole table;
-- inlined, each read takes only the rows it needs, through the table's indexes
record_customers as not materialized (

    select * from {{ ref('int_identity__record_customers') }}

),

abandoned_checkouts as (

    select
        'abandoned_checkout:shopify:' || checkouts.shopify_checkout_id as journey_event_key,
        customers.customer_id,
        checkouts.created_at as occurred_at,
        'abandoned_checkout' as event_source,
        'abandoned_checkout' as event_type,
        'web' as channel,
        cast(null as text) as direction,
        'shopify:' || checkouts.shopify_checkout_id as source_key,
        cast(null as text) as order_key,
        checkouts.total_price as amount

    from {{ ref('stg_shopify__abandoned_checkouts') }} as checkouts
    inner join record_customers as customers
        on 'shopify:' || checkouts.shopify_customer_id = customers.record_key
    where not checkouts.is_recovered

),
{%- endif %}

events as (

    select * from interactions
    union all
    select * from orders
    union all
    select * from returns
    {%- if 'shopify' in platforms %}
    union all
    select * from abandoned_checkouts
    {%- endif %}

),
{%- if is_incremental() %}

last_build as (

    select coalesce(max(built_at), cast('-infinity' as timestamptz)) as built_at
    from {{ this }}

),

-- the events written since the last build, with the customer each has now (any,
-- an event without a customer included: it may have left one)
written as (

    select
        'interaction:' || interaction_key as journey_event_key,
        customer_id

    from {{ ref('fct_interactions') }}
    where built_at > (select last_build.built_at from last_build)

    union all

    select
        'order:' || order_key as journey_event_key,
        customer_id

    from {{ ref('fct_orders') }}
    where built_at > (select last_build.built_at from last_build)

    union all

    select
        'return:' || return_key as journey_event_key,
        customer_id

    from {{ ref('fct_order_returns') }}
    where built_at > (select last_build.built_at from last_build)

    union all

    -- events held whose fact is gone: the facts log what they delete (a record erased
    -- at its source, an activity deleted in the CRM, a Zendesk ticket deleted, a return
    -- gone); only the keys logged since the last build are looked up, by the key index
    select
        built.journey_event_key,
        cast(null as text) as customer_id

    from {{ this }} as built
    where built.journey_event_key in (
        {{ deleted_keys_since('fct_interactions', 'select last_build.built_at from last_build',
            'interaction:') }}
        union all
        {{ deleted_keys_since('fct_orders', 'select last_build.built_at from last_build',
            'order:') }}
        union all
        {{ deleted_keys_since('fct_order_returns', 'select last_build.built_at from last_build',
            'return:') }}
    )
    {%- if 'shopify' in platforms %}

    union all

    select
        'abandoned_checkout:shopify:' || checkouts.shopify_checkout_id as journey_event_key,
        customers.customer_id

    from {{ ref('stg_shopify__abandoned_checkouts') }} as checkouts
    left join record_customers as customers
        on 'shopify:' || checkouts.shopify_customer_id = customers.record_key
    where
        checkouts._loaded_at > (select last_build.built_at from last_build)
        or checkouts._loaded_at is null
        or customers.assigned_at > (select last_build.built_at from last_build)

    union all

    -- checkouts held that are no event any more (gone, recovered, without a customer);
    -- a partial index keeps this to the checkouts' rows
    select
        built.journey_event_key,
        cast(null as text) as customer_id

    from {{ this }} as built
    where
        built.event_source = 'abandoned_checkout'
        and not exists (
            select from abandoned_checkouts
            where abandoned_checkouts.journey_event_key = built.journey_event_key
        )
    {%- endif %}

),

touched as (

    select written.customer_id from written
    where written.customer_id is not null
    union
    select built.customer_id
    from written
    inner join {{ this }} as built
        on written.journey_event_key = built.journey_event_key

),

rebuilt as (

    select events.*
    from events
    where events.customer_id in (select touched.customer_id from touched)

),
{%- else %}

rebuilt as (

    select * from events

),
{%- endif %}

placed as (

    select
        *,
        coalesce(direction, 'inbound') = 'inbound' as is_customer_action,
        row_number() over (
            partition by customer_id order by occurred_at, journey_event_key
        ) as event_number,
        -- the latest order up to this event (the event itself when it is one)
        max(case when event_source = 'order' then occurred_at end) over (
            partition by customer_id
            order by occurred_at, journey_event_key
            rows between unbounded preceding and current row
        ) as last_order_at

    from rebuilt

),

actions as (

    select
        journey_event_key,
        lag(channel) over (
            partition by customer_id order by event_number
        ) as previous_channel

    from placed
    where is_customer_action

),

staged as (

    select
        placed.*,
        actions.previous_channel,
        case
            when placed.event_source = 'order' then 'purchase'
            when placed.event_source = 'return' then 'post_sale'
            when placed.event_source = 'abandoned_checkout' then 'consideration'
            when placed.event_type like 'email\_%' or placed.event_type = 'instagram_comment'
                then 'discovery'
            when placed.channel = 'support' and placed.last_order_at is null
                then 'consideration'
            when placed.channel = 'support' then 'post_sale'
            when
                placed.last_order_at >= placed.occurred_at - interval '{{ post_sale_days }} days'
                then 'post_sale'
            else 'consideration'
        end as journey_stage

    from placed
    left join actions
        on placed.journey_event_key = actions.journey_event_key

),

final as (

    select
        journey_event_key,
        customer_id,
        event_number,
        occurred_at,
        event_source,
        event_type,
        channel,
        direction,
        is_customer_action,
        -- `stage` is the journey's own word
        journey_stage as stage,  -- noqa: RF04
        previous_channel,
        coalesce(previous_channel <> channel, false) as is_channel_switch,
        case
            when previous_channel <> channel then previous_channel || ' -> ' || channel
        end as channel_switch,
        source_key,
        order_key,
        amount,
        cast('{{ run_started_at }}' as timestamptz) as built_at

    from staged

)

{%- if is_incremental() %}

select
    final.journey_event_key,
    touched.customer_id,
    final.event_number,
    final.occurred_at,
    final.event_source,
    final.event_type,
    final.channel,
    final.direction,
    final.is_customer_action,
    final.stage,
    final.previous_channel,
    final.is_channel_switch,
    final.channel_switch,
    final.source_key,
    final.order_key,
    final.amount,
    final.built_at

from touched
left join final
    on touched.customer_id = final.customer_id

{%- else %}

select * from final

{%- endif %}
