{#
    Every association the tap read, one row per (from, to) pair: each object's
    associated ids per type, as the tap attached them to its record. HubSpot answers an
    association from both sides; the tap reads each pair from one side only (contacts →
    companies, deals → contacts and companies, tickets → contacts, companies and deals,
    engagements → contacts, companies, deals and tickets), so each pair appears once.
#}

{%- set sides = ['contacts', 'deals', 'tickets', 'calls', 'emails', 'notes', 'meetings'] %}

with

unioned as (

    {% for stream in sides %}
        select
            '{{ stream }}' as from_object_type,
            source.id as from_object_id,
            links.key as to_object_type,
            ids.to_id as to_object_id,
            source.updated_at

        from {{ source('hubspot', stream) }} as source
        cross join lateral jsonb_each(coalesce(source.associations, cast('{}' as jsonb))) as links
        cross join lateral jsonb_array_elements_text(links.value) as ids (to_id)
        where source._sdc_deleted_at is null
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

renamed as (

    select
        from_object_type || ':' || from_object_id
        || '>' || to_object_type || ':' || to_object_id as association_id,
        from_object_type,
        from_object_id,
        to_object_type,
        to_object_id,
        cast(updated_at as timestamptz) as updated_at

    from unioned

)

select * from renamed
