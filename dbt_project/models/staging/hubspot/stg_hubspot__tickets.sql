with

source as (

    select * from {{ source('hubspot', 'tickets') }}

),

renamed as (

    select

        ----------  ids
        id as hubspot_ticket_id,
        associations -> 'contacts' ->> 0 as hubspot_contact_id,
        nullif(properties ->> 'hubspot_owner_id', '') as hubspot_owner_id,

        ----------  ticket
        nullif(trim(properties ->> 'subject'), '') as subject,
        nullif(trim(properties ->> 'content'), '') as ticket_content,
        nullif(properties ->> 'hs_pipeline', '') as pipeline,
        nullif(properties ->> 'hs_pipeline_stage', '') as pipeline_stage,
        nullif(properties ->> 'hs_ticket_priority', '') as priority,
        nullif(properties ->> 'hs_ticket_category', '') as category,
        -- the channel the case came in through: EMAIL, CHAT, PHONE, FORM
        nullif(properties ->> 'source_type', '') as source_type,

        ----------  resolution
        cast(nullif(properties ->> 'closed_date', '') as timestamptz) as closed_at,
        nullif(properties ->> 'closed_date', '') is not null as is_closed,
        extract(
            epoch from
            cast(nullif(properties ->> 'closed_date', '') as timestamptz)
            - cast(created_at as timestamptz)
        ) as seconds_to_close,

        ----------  timestamps
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        _sdc_deleted_at as deleted_at

    from source

)

select * from renamed
