{#
    The first day of the period (grain: 'day', 'week' from Monday, 'month') a moment
    falls in, on the retailer's calendar (var kpi_time_zone, default
    America/Sao_Paulo): KPI marts count each event in its local day, week and month.
#}
{% macro kpi_period(grain, moment) -%}
    cast(date_trunc({{ grain }}, {{ moment }} at time zone '{{ var("kpi_time_zone", "America/Sao_Paulo") }}') as date)
{%- endmacro %}
