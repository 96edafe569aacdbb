{#
    Create the extensions the fuzzy stage uses (fuzzystrmatch: levenshtein; pg_trgm:
    similarity) when the server offers them and they are missing. Without them the
    fuzzy stage is skipped (int_identity__fuzzy_pairs is empty) and says so in the log.
#}
{% macro identity_create_extensions() -%}
do $ext$
declare
    ext text;
begin
    foreach ext in array array['fuzzystrmatch', 'pg_trgm'] loop
        if not exists (select 1 from pg_extension where extname = ext)
            and exists (select 1 from pg_available_extensions where name = ext) then
            begin
                execute format('create extension if not exists %I', ext);
            exception when others then
                raise notice 'identity: could not create extension %: %', ext, sqlerrm;
            end;
        end if;
    end loop;
end
$ext$
{%- endmacro %}

{% macro identity_fuzzy_available() -%}
    {%- if not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set result = run_query(
        "select count(*) from pg_extension where extname in ('fuzzystrmatch', 'pg_trgm')"
    ) -%}
    {{ return(result.columns[0].values()[0] == 2) }}
{%- endmacro %}
