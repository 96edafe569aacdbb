{#
    An invariant between columns of a row: every row satisfies the SQL boolean
    `expression` (a null result counts as satisfied; the test's `where` config narrows
    the rows). E.g. refund_amount <= original_order_total on fct_order_returns.
#}
{% test expression_is_true(model, expression, column_name=none) %}

    select *
    from {{ model }}
    where not coalesce(({{ expression }}), true)

{% endtest %}
