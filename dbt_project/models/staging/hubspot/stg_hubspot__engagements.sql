{#
    Calls, emails, notes and meetings staff logged in the CRM, one row each: HubSpot
    keeps them as four object types with the same timestamp (hs_timestamp) and owner,
    each with its own title, body, direction and outcome properties.
#}

{%- set engagements = {
    'calls': {
        'type': 'call', 'title': 'hs_call_title', 'body': 'hs_call_body',
        'direction': 'hs_call_direction', 'status': 'hs_call_status',
    },
    'emails': {
        'type': 'email', 'title': 'hs_email_subject', 'body': 'hs_email_text',
        'direction': 'hs_email_direction', 'status': 'hs_email_status',
    },
    'notes': {
        'type': 'note', 'title': none, 'body': 'hs_note_body',
        'direction': none, 'status': none,
    },
    'meetings': {
        'type': 'meeting', 'title': 'hs_meeting_title', 'body': 'hs_meeting_body',
        'direction': none, 'status': 'hs_meeting_outcome',
    },
} %}

with

{% for stream, spec in engagements.items() %}
{{ stream }} as (

    select
        '{{ spec.type }}:' || id as engagement_key,
        id as hubspot_engagement_id,
        '{{ spec.type }}' as engagement_type,
        associations -> 'contacts' ->> 0 as hubspot_contact_id,
        associations -> 'deals' ->> 0 as hubspot_deal_id,
        associations -> 'tickets' ->> 0 as hubspot_ticket_id,
        nullif(properties ->> 'hubspot_owner_id', '') as hubspot_owner_id,
        cast(nullif(properties ->> 'hs_timestamp', '') as timestamptz) as occurred_at,
        {% if spec.title %}nullif(trim(properties ->> '{{ spec.title }}'), ''){% else %}cast(null as text){% endif %} as title,
        nullif(trim(properties ->> '{{ spec.body }}'), '') as body,
        {% if spec.direction %}nullif(properties ->> '{{ spec.direction }}', ''){% else %}cast(null as text){% endif %} as direction,
        {% if spec.status %}nullif(properties ->> '{{ spec.status }}', ''){% else %}cast(null as text){% endif %} as status,
        {% if stream == 'calls' %}{{ to_numeric("properties ->> 'hs_call_duration'") }} / 1000{% else %}cast(null as numeric){% endif %} as duration_seconds,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        _sdc_deleted_at as deleted_at

    from {{ source('hubspot', stream) }}

),

{% endfor %}
unioned as (

    {% for stream in engagements %}
    select * from {{ stream }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select * from unioned
