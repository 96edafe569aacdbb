{#
    A phone number in E.164 ("+5511987654321"), or null when it cannot be one.

    Numbers written with an international prefix ("+", "00") keep their country code;
    foreign numbers are returned as "+" and their digits (8 to 15 of them). Everything
    else is read as a Brazilian number, by the rules of the Brazilian numbering plan:
    - the country code 55 is optional ("5511987654321");
    - the trunk prefix 0 and the carrier selection code that follows it in long-distance
      dialling (0 + two-digit carrier + area code, e.g. "0 15 11 98765-4321") are dropped;
    - the two-digit area code (DDD, digits 1-9 each) is required: a bare local number
      cannot be placed and gives null;
    - mobiles got a ninth digit, a leading 9, in 2012-2016; an eight-digit subscriber
      number that starts with 6, 7, 8 or 9 is a mobile written the old way and gets it;
      one starting with 2 to 5 is a landline and stays eight digits.
    Anything else (too short, too long, letters only) is null.
#}
{% macro normalize_phone(column_name) -%}
    {%- set raw -%} trim(cast({{ column_name }} as text)) {%- endset -%}
    {%- set digits -%} regexp_replace({{ raw }}, '\D', '', 'g') {%- endset -%}
    {#- the national significant number of a Brazilian phone, before ninth-digit repair -#}
    {%- set national -%}
        case
            when {{ raw }} ~ '^(\+|00)' and {{ digits }} !~ '^(00)?55'
                then null
            when {{ raw }} ~ '^(\+|00)'
                then regexp_replace({{ digits }}, '^(00)?55', '')
            when {{ digits }} ~ '^55[1-9][1-9]\d{8,9}$'
                then substr({{ digits }}, 3)
            when {{ digits }} ~ '^0\d\d[1-9][1-9]\d{8,9}$'
                then substr({{ digits }}, 4)
            when {{ digits }} ~ '^0[1-9][1-9]\d{8,9}$'
                then substr({{ digits }}, 2)
            else {{ digits }}
        end
    {%- endset -%}
    case
        when {{ raw }} ~ '^(\+|00)' and {{ digits }} !~ '^(00)?55'
            then case
                when regexp_replace({{ digits }}, '^00', '') ~ '^[1-9]\d{7,14}$'
                    then '+' || regexp_replace({{ digits }}, '^00', '')
            end
        when ({{ national }}) ~ '^[1-9][1-9]9\d{8}$'
            then '+55' || ({{ national }})
        when ({{ national }}) ~ '^[1-9][1-9][2-5]\d{7}$'
            then '+55' || ({{ national }})
        when ({{ national }}) ~ '^[1-9][1-9][6-9]\d{7}$'
            then '+55' || left(({{ national }}), 2) || '9' || right(({{ national }}), 8)
    end
{%- endmacro %}
