{#
    The settings every plpgsql function of the identity schema runs under (the models in
    models/intermediate/identity/functions): its statements hash-join whole graphs and
    pattern tables (work_mem), a loop runs each statement many times, each compiled again
    by jit, and "table does not exist, skipping" from the drops of its own temp tables is
    noise to the caller.
#}
{% macro identity_function_settings() -%}
language plpgsql
volatile
set work_mem = '256MB'
set jit = off
set client_min_messages = warning
{%- endmacro %}
