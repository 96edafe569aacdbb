{#
    One row per OMS order. VTEX masks the shopper's email on orders: the alias
    (<hex>@ct.vtex.com.br) reaches no one and is unique per order, so it must never be
    an identity email. The real email comes from the CL profile the order's
    userProfileId points at; the conversation-tracker alias
    (<real email>-<digits>b.ct.vtex.com.br) carries it too, and is unwrapped when the
    profile is missing. A profile Master Data deleted lends its email to no order.

    Incremental on the loader's `_sdc_batched_at` (macros/staging_incremental.sql): a
    run reads the orders loaded since the newest it holds, and also those whose profile
    was loaded since (changed, created, deleted) or is gone, since the order's email
    and profile id come from it.
#}

{{ config(
    materialized='incremental',
    unique_key='vtex_order_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook=["{{ staging_delete_gone(source('vtex', 'orders'), '\"orderId\"', 'vtex_order_id') }}"],
) }}

with

source as (

    select * from {{ source('vtex', 'orders') }}
    {{ staging_loaded_since() }}
    {%- if is_incremental() and relation_has_column(this, '_loaded_at') %}
        or "clientProfileData" ->> 'userProfileId' in (
            select profiles_loaded."userId"
            from {{ source('vtex', 'customers') }} as profiles_loaded
            {{ staging_loaded_since() }}
        )
        or "orderId" in (
            select built.vtex_order_id
            from {{ this }} as built
            where
                built.vtex_profile_id is not null
                and not exists (
                    select 1 from {{ ref('stg_vtex__customers') }} as kept
                    where
                        kept.vtex_profile_id = built.vtex_profile_id
                        and kept.deleted_at is null
                )
        )
    {%- endif %}

),

profiles as (

    select * from {{ ref('stg_vtex__customers') }}
    where deleted_at is null

),

totals as (

    -- the totals array: Items, Discounts (negative), Shipping, Tax, in cents
    select
        source."orderId" as vtex_order_id,
        sum(cast(total ->> 'value' as numeric)) filter (
            where total ->> 'id' = 'Items'
        ) as items_cents,
        sum(cast(total ->> 'value' as numeric)) filter (
            where total ->> 'id' = 'Discounts'
        ) as discounts_cents,
        sum(cast(total ->> 'value' as numeric)) filter (
            where total ->> 'id' = 'Shipping'
        ) as shipping_cents,
        sum(cast(total ->> 'value' as numeric)) filter (
            where total ->> 'id' = 'Tax'
        ) as tax_cents
    from source
    cross join
        lateral jsonb_array_elements(
            case
                when jsonb_typeof(to_jsonb(source.totals)) = 'array' then to_jsonb(source.totals)
            end
        ) as total
    group by source."orderId"

),

flattened as (

    select
        source.*,
        source."clientProfileData" ->> 'email' as order_email,
        coalesce(
            lower(trim(source."clientProfileData" ->> 'email')) ~ '[@.]ct\.vtex\.com\.br$',
            false
        ) as is_masked_email,
        substring(
            trim(source."clientProfileData" ->> 'email')
            from '^(.+@.+)-\d+[a-z]?\.ct\.vtex\.com\.br$'
        ) as tracker_email,
        source."clientProfileData" ->> 'userProfileId' as user_profile_id,
        source."shippingData" -> 'logisticsInfo' -> 0 as first_logistics,
        source."shippingData" -> 'address' as shipping_address,
        nullif(concat_ws(
            ', ',
            nullif(trim(source."shippingData" -> 'address' ->> 'street'), ''),
            nullif(trim(source."shippingData" -> 'address' ->> 'number'), '')
        ), '') as street_line,
        coalesce(
            jsonb_path_exists(
                to_jsonb(source."shippingData" -> 'logisticsInfo'),
                '$[*] ? (@.deliveryChannel == "pickup-in-point")'
            ),
            false
        ) as is_pickup
    from source

),

renamed as (

    select

        ----------  ids
        flattened."orderId" as vtex_order_id,
        flattened.user_profile_id as vtex_user_id,
        profiles.vtex_profile_id,
        flattened.sequence as order_sequence,
        flattened."marketplaceOrderId" as marketplace_order_id,
        flattened.origin,
        nullif(flattened."affiliateId", '') as affiliate_id,
        flattened."salesChannel" as sales_channel,

        ----------  contact: the masked alias is kept, flagged, and never the email
        flattened.order_email,
        flattened.is_masked_email,
        coalesce(
            case
                when not flattened.is_masked_email
                    then {{ normalize_email('flattened.order_email') }}
            end,
            profiles.email_normalized,
            {{ normalize_email('flattened.tracker_email') }}
        ) as email_normalized,
        {{ normalize_proper_name("flattened.\"clientProfileData\" ->> 'firstName'") }}
            as first_name,
        {{ normalize_proper_name("flattened.\"clientProfileData\" ->> 'lastName'") }}
            as last_name,
        nullif(trim(flattened."clientProfileData" ->> 'phone'), '') as phone,
        {{ extract_cpf("flattened.\"clientProfileData\" ->> 'document'") }} as cpf,

        ----------  delivery: a pickup order's address is the shop's, not the shopper's
        flattened.is_pickup,
        flattened.first_logistics ->> 'deliveryChannel' as delivery_channel,
        flattened.first_logistics ->> 'selectedSla' as selected_sla,
        case
            when flattened.is_pickup then flattened.first_logistics ->> 'pickupPointId'
        end as pickup_point_id,
        case
            when flattened.is_pickup
                then flattened.first_logistics -> 'pickupStoreInfo' ->> 'friendlyName'
        end as pickup_point_name,
        case
            when not flattened.is_pickup
                then {{ normalize_proper_name("flattened.shipping_address ->> 'city'") }}
        end as city,
        case
            when not flattened.is_pickup
                then nullif(upper(trim(flattened.shipping_address ->> 'state')), '')
        end as state,
        case
            when not flattened.is_pickup
                then nullif(trim(flattened.shipping_address ->> 'postalCode'), '')
        end as postcode,
        case
            when not flattened.is_pickup then flattened.street_line
        end as address,

        ----------  status
        flattened.status,
        flattened."statusDescription" as status_description,
        flattened.status = 'canceled' as is_canceled,
        flattened.status = 'invoiced' as is_invoiced,
        flattened."cancelReason" as cancel_reason,

        ----------  amounts: VTEX sends cents; one money type, numeric in currency units
        coalesce(flattened."storePreferencesData" ->> 'currencyCode', 'BRL') as currency,
        round(cast(flattened.value as numeric) / 100, 2) as order_total,
        round(totals.items_cents / 100, 2) as items_total,
        round(totals.discounts_cents / 100, 2) as discounts_total,
        round(totals.shipping_cents / 100, 2) as shipping_total,
        round(totals.tax_cents / 100, 2) as tax_total,
        {{ json_array_length('flattened.items') }} as item_count,

        ----------  timestamps
        cast(flattened."creationDate" as timestamptz) as created_at,
        cast(flattened."lastChange" as timestamptz) as updated_at,
        cast(flattened."authorizedDate" as timestamptz) as authorized_at,
        cast(flattened."invoicedDate" as timestamptz) as invoiced_at,

        ----------  load
        flattened._sdc_batched_at as _loaded_at

    from flattened
    left join profiles
        on flattened.user_profile_id = profiles.vtex_user_id
    left join totals
        on flattened."orderId" = totals.vtex_order_id

)

select * from renamed
