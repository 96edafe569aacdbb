{#
    One row per service conversation, with how long the customer waited for the first
    answer and for the resolution: the unit the response-time KPIs average.

    - support: a Zendesk ticket. It starts when opened; the first response is the first
      public comment of someone other than the requester; it is resolved when Zendesk
      says it was solved (ticket metrics' solved_at, on a solved or closed ticket).
    - instagram: a Direct thread. It starts with the customer's first message; the first
      response is the business's first message after it; resolved at the business's
      last message (messaging has no ticket status: the last answer closes it).
    - whatsapp: WhatsApp has no threads, so a conversation starts with a customer's
      message after var kpi_conversation_gap_hours (24, WhatsApp's customer service
      window) without any message either way; first response and resolution as for
      Instagram. Replies Meta could not deliver are no answer.

    Minutes are calendar minutes. resolution_minutes >= first_response_minutes.

    Incremental per thread (thread_key: the ticket, the Direct thread, the WhatsApp
    number, whose conversations are numbered over all its messages): a run rebuilds,
    whole, the threads with a message that fct_interactions wrote since this model's
    last build (new, changed, or moved to another customer), and the tickets whose
    solved_at no longer gives the resolution held. A thread left with no conversation
    keeps one row without a conversation_key, so that delete+insert removes its old
    rows, and the post-hook deletes it. A table built before thread_key existed is
    rebuilt whole once (its rows without one are deleted after).
#}

-- sqlfluff:indentation:template_blocks_indent:False
{{ config(
    materialized='incremental',
    unique_key='thread_key',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    meta={'new_rows_stamp': 'built_at'},
    post_hook=[
        "delete from {{ this }} where conversation_key is null or thread_key is null",
        "create index if not exists {{ this.identifier }}_thread_idx on {{ this }} (thread_key)",
    ],
) }}
{%- set platforms = engagement_platforms() %}
{%- set support_resolved_at = (
    'case when solved.solved_at is not null'
    ~ ' then greatest(solved.solved_at, answered.first_response_at) end'
    if 'zendesk' in platforms else 'cast(null as timestamptz)'
) %}
{%- set gap_hours = var('kpi_conversation_gap_hours', 24) | int %}
{%- set per_thread = is_incremental() and relation_has_column(this, 'thread_key') %}

with

service_messages as (

    select
        interaction_key,
        channel,
        customer_id,
        record_key,
        thread_id,
        direction,
        interaction_type,
        is_failed,
        occurred_at,
        built_at,
        case
            when channel = 'whatsapp' then record_key
            else channel || ':' || thread_id
        end as thread_key

    from {{ ref('fct_interactions') }}
    where
        interaction_type in ('instagram_dm', 'whatsapp_message', 'ticket_opened', 'ticket_comment')

),
{%- if 'zendesk' in platforms %}

solved as (

    select
        'support:' || metrics.zendesk_ticket_id as conversation_key,
        metrics.solved_at

    from {{ ref('stg_zendesk__ticket_metrics') }} as metrics
    inner join {{ ref('stg_zendesk__tickets') }} as tickets
        on metrics.zendesk_ticket_id = tickets.zendesk_ticket_id
    where tickets.is_solved and metrics.solved_at is not null

),
{%- endif %}
{%- if per_thread %}

touched as (

    -- threads with a message written since this model's last build
    select distinct service_messages.thread_key
    from service_messages
    where
        service_messages.built_at > (
            select coalesce(max(held.built_at), cast('-infinity' as timestamptz))
            from {{ this }} as held
        )
    {%- if 'zendesk' in platforms %}

    union

    -- tickets whose solved_at gives another resolution than the one held
    select held.thread_key
    from {{ this }} as held
    left join solved
        on held.conversation_key = solved.conversation_key
    where
        held.channel = 'support'
        and held.resolved_at is distinct from {{ support_resolved_at | replace('answered.', 'held.') }}
    {%- endif %}

),

messages as (

    select service_messages.*
    from service_messages
    inner join touched
        on service_messages.thread_key = touched.thread_key
    where not service_messages.is_failed

),
{%- else %}

messages as (

    select * from service_messages
    where not is_failed

),
{%- endif %}

whatsapp_gaps as (

    select
        *,
        occurred_at - lag(occurred_at) over (
            partition by record_key order by occurred_at, interaction_key
        ) as since_previous

    from messages
    where channel = 'whatsapp'

),

whatsapp_numbered as (

    select
        *,
        sum(
            case
                when
                    direction = 'inbound'
                    and (
                        since_previous is null
                        or since_previous > interval '{{ gap_hours }} hours'
                    )
                    then 1
                else 0
            end
        ) over (
            partition by record_key order by occurred_at, interaction_key
            rows between unbounded preceding and current row
        ) as conversation_number

    from whatsapp_gaps

),

threaded as (

    select
        channel,
        customer_id,
        direction,
        interaction_type,
        occurred_at,
        thread_key,
        'instagram:' || thread_id as conversation_key

    from messages
    where channel = 'instagram'

    union all

    select
        channel,
        customer_id,
        direction,
        interaction_type,
        occurred_at,
        thread_key,
        -- the number's conversations in order: whatsapp:<wa_id>:<n>
        record_key || ':' || conversation_number as conversation_key

    from whatsapp_numbered
    -- a reply before the customer ever wrote starts nothing
    where conversation_number > 0

    union all

    select
        channel,
        customer_id,
        direction,
        interaction_type,
        occurred_at,
        thread_key,
        'support:' || thread_id as conversation_key

    from messages
    where channel = 'support'

),

started as (

    select
        conversation_key,
        min(thread_key) as thread_key,
        min(channel) as channel,
        min(customer_id) as customer_id,
        min(occurred_at) filter (
            where direction = 'inbound' or interaction_type = 'ticket_opened'
        ) as started_at

    from threaded
    group by conversation_key

),

answered as (

    select
        started.conversation_key,
        min(threaded.occurred_at) as first_response_at,
        max(threaded.occurred_at) as last_response_at

    from started
    inner join threaded
        on
            started.conversation_key = threaded.conversation_key
            and threaded.direction = 'outbound'
            and started.started_at <= threaded.occurred_at
    group by started.conversation_key

),

timed as (

    select
        started.conversation_key,
        started.thread_key,
        started.channel,
        started.customer_id,
        started.started_at,
        answered.first_response_at,
        case
            when started.channel = 'support' then {{ support_resolved_at }}
            else answered.last_response_at
        end as resolved_at

    from started
    left join answered
        on started.conversation_key = answered.conversation_key
    {%- if 'zendesk' in platforms %}
    left join solved
        on started.conversation_key = solved.conversation_key
    {%- endif %}
    where started.started_at is not null

),

final as (

    select
        conversation_key,
        channel,
        customer_id,
        started_at,
        first_response_at,
        resolved_at,
        first_response_at is not null as is_responded,
        resolved_at is not null as is_resolved,
        round(
            cast(extract(epoch from first_response_at - started_at) / 60 as numeric), 2
        ) as first_response_minutes,
        round(cast(extract(epoch from resolved_at - started_at) / 60 as numeric), 2)
            as resolution_minutes,
        thread_key,
        cast('{{ run_started_at }}' as timestamptz) as built_at

    from timed

)
{%- if per_thread %}

select
    final.conversation_key,
    final.channel,
    final.customer_id,
    final.started_at,
    final.first_response_at,
    final.resolved_at,
    final.is_responded,
    final.is_resolved,
    final.first_response_minutes,
    final.resolution_minutes,
    touched.thread_key,
    cast('{{ run_started_at }}' as timestamptz) as built_at

from touched
left join final
    on touched.thread_key = final.thread_key

{%- else %}

select * from final

{%- endif %}
