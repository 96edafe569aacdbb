{#
    The commerce platforms whose orders and returns the customer marts gather
    (fct_orders, fct_order_returns): the var commerce_platforms when set (a list of
    shopify, square, vtex), otherwise those of them the project is built with, i.e.
    with an identity feed (OMNICANAL_IDENTITY_SOURCES, see identity_sources()). A
    project built without a channel then has no staging tables of it to read.
#}
{% macro commerce_platforms() -%}
    {%- set known = ['shopify', 'square', 'vtex'] -%}
    {%- set declared = var('commerce_platforms', none) -%}
    {%- if declared is none -%}
        {%- set declared = [] -%}
        {%- for feed in identity_sources() -%}
            {%- do declared.append(feed['source'].split('_')[0]) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(known | select('in', declared) | list) }}
{%- endmacro %}
