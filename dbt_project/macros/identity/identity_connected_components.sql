{#
    An edge of the identifier graph: record `i` (int_identity__identifiers) to value `v`
    (int_identity__identifier_values). A value under several people's names (a
    household's phone, name_groups) is one node per person: a record meets the node of
    its name's group, and a record without a name, or whose name fits several groups,
    meets none (identity_edge_links leaves it out).
#}
{% macro identity_edge_node(i, v) -%}
    case
        when {{ v }}.name_groups is null then {{ i }}.value_id
        else hashtextextended({{ i }}.value_id || ':' || ({{ v }}.name_groups ->> {{ i }}.full_name_key), 0)
    end
{%- endmacro %}

{% macro identity_edge_links(i, v) -%}
    {{ v }}.is_linkable and ({{ v }}.name_groups is null or {{ v }}.name_groups ? {{ i }}.full_name_key)
{%- endmacro %}
