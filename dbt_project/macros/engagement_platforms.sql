{#
    The engagement platforms whose interactions the customer marts gather
    (fct_interactions and what reads it): the var engagement_platforms when set (a list
    of instagram, whatsapp, zendesk, mailchimp, hubspot), otherwise those of them the
    project is built with, i.e. with an identity feed (OMNICANAL_IDENTITY_SOURCES, see
    identity_sources()). A project built without a channel has no staging tables of it.
#}
{% macro engagement_platforms() -%}
    {%- set known = ['instagram', 'whatsapp', 'zendesk', 'mailchimp', 'hubspot'] -%}
    {%- set declared = var('engagement_platforms', none) -%}
    {%- if declared is none -%}
        {%- set declared = [] -%}
        {%- for feed in identity_sources() -%}
            {%- do declared.append(feed['source'].split('_')[0]) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(known | select('in', declared) | list) }}
{%- endmacro %}

