{#
    Name compatibility: whether two names written for a record can be one person's.

    People write their names differently in each channel: "Pedro" at the till, "Pedro
    Lucas Abreu" on the web store, "PEDRO L ABREU" on a form, "Zé" on WhatsApp for José,
    "Maria Eduarda" as "Duda", surnames in another order, with or without "da"/"dos".
    A name is its tokens (normalize_name_key, split on spaces) without the particles
    and generational suffixes (identity_name_particles); two names are compatible when
    the tokens of one all fit tokens of the other, its distinct words as many of them
    (an initial stands for one name: "Jorge M Santos" is not "Marcio Marques"; a
    compound's nickname, Corrinha for Maria do Socorro, counts for two), and its first
    token fits the other's first or second one (a compound first name goes by either
    part). Two tokens fit when (macro identity_name_tokens_fit):
    - they share a form: equal, or one is a nickname, diminutive or spelling of the other,
      or both of one name (seed identity_name_variants: Zé and Zezinho are both José's);
    - one is an initial of the other ("A" and "Ana");
    - one edit apart, the longer of four letters or more (Souza/Sousa, Luiz/Luz), or
      two letters swapped (Suoza).
    So "Pedro" fits "Pedro Lucas Abreu", "Duda Silva" fits "Maria Eduarda da Silva",
    "Ana Lima Souza" fits "Ana Souza Lima"; "Maria Clara Silva" and "Maria Eduarda Silva"
    (sisters) do not, nor do "Ana Souza" and "Ana Lima". A missing name is nobody else:
    it fits every name (the callers leave nameless records out).
#}

{# Tokens that say nothing about who someone is: particles and generational suffixes. #}
{% macro identity_name_particles() -%}
    {{ return(['d', 'da', 'das', 'de', 'del', 'della', 'di', 'do', 'dos', 'du', 'e',
        'van', 'von', 'filho', 'filha', 'junior', 'jr', 'neto', 'neta', 'sobrinho',
        'sobrinha', 'segundo', 'terceiro']) }}
{%- endmacro %}


{#
    A select of (name_key, pos, token, forms) for the distinct name keys of `names`
    (a select with a column name_key): one row per meaningful token in order (pos from
    1), with the forms it stands for: itself and every name it is a variant of (seed
    identity_name_variants).
#}
{% macro identity_name_tokens(names) -%}
    with name_keys as (
        select distinct given.name_key
        from ({{ names }}) as given
        where given.name_key is not null
    ),

    -- the names a variant stands for, read as the tokens below are (without particles:
    -- Graça stands for "maria gracas"), and the variants of each name (for glued handles)
    listed as (
        select
            {{ normalize_name_key('seeded.variant') }} as variant,
            {{ identity_name_without_particles(normalize_name_key('seeded.name')) }} as named
        from {{ ref('identity_name_variants') }} as seeded
    ),

    variants as (
        select
            listed.variant,
            array_agg(distinct listed.named) as variant_names
        from listed
        group by listed.variant
    ),

    nicknames as (
        select
            listed.named,
            array_agg(distinct listed.variant) as name_variants
        from listed
        where listed.named !~ ' '
        group by listed.named
    ),

    split as (
        select
            name_keys.name_key,
            parts.token,
            parts.ord
        from name_keys
        cross join lateral unnest(string_to_array(name_keys.name_key, ' '))
            with ordinality as parts (token, ord)
        where parts.token not in ('{{ identity_name_particles() | join("', '") }}')
    ),

    ordered as (
        select
            split.name_key,
            split.token,
            row_number() over (partition by split.name_key order by split.ord) as pos,
            lead(split.token) over (partition by split.name_key order by split.ord) as next_token
        from split
    )

    select
        ordered.name_key,
        ordered.pos,
        ordered.token,
        array[ordered.token]
        || coalesce(variants.variant_names, cast(array[] as text[]))
        -- a first word's diminutive stands for the name it is made from (Pedrinho,
        -- Aninha, Joãozinho), and a compound first name is also the one form a
        -- nickname of the whole stands for ("maria luiza" for Malu, "carlos eduardo"
        -- for Cadu); surnames keep their own (Coutinho is not Couto)
        || case
            when ordered.pos = 1
                then {{ identity_diminutive_base('ordered.token') }}
                || case
                    when ordered.next_token is not null
                        then array[ordered.token || ' ' || ordered.next_token]
                    else cast(array[] as text[])
                end
            else cast(array[] as text[])
        end as forms,
        coalesce(nicknames.name_variants, cast(array[] as text[])) as nicknames
    from ordered
    left join variants on ordered.token = variants.variant
    left join nicknames on ordered.token = nicknames.named
{%- endmacro %}


{# A name key without its particles and generational suffixes ("maria das gracas" →
   "maria gracas"), as identity_name_tokens reads names. #}
{% macro identity_name_without_particles(name_key) -%}
    array_to_string(array(
        select words.word
        from unnest(string_to_array({{ name_key }}, ' ')) with ordinality as words (word, ord)
        where words.word not in ('{{ identity_name_particles() | join("', '") }}')
        order by words.ord
    ), ' ')
{%- endmacro %}


{#
    The names a first word's Portuguese diminutive can be made from, as an array (empty
    when the word is none; the likelier first): -inho/-inha added to the stem, the final
    vowel kept (Pedrinho → pedro, Aninha → ana, Carlinhos → carlos, Gracinha → graca)
    or after an i (Marcinha → marcia, Julinho → julio), -zinho/-zinha added to a name
    ending in a vowel (Joãozinho → joao, Zezinho → ze). Irregular ones (Toninho,
    Chiquinho) are in the seed identity_name_variants.
#}
{% macro identity_diminutive_base(token) -%}
    case
        when
            {{ token }} ~ '^[a-z]{2,}zinh[oa]s?$'
            and regexp_replace({{ token }}, 'zinh[oa]s?$', '') ~ '(a|e|o)$'
            then array[regexp_replace({{ token }}, 'zinh[oa]s?$', '')]
        when {{ token }} ~ '^[a-z]{2,}inh[oa]s?$'
            then array[
                regexp_replace({{ token }}, 'inh([oa]s?)$', '\1'),
                regexp_replace({{ token }}, 'inh([oa]s?)$', 'i\1')
            ]
        else cast(array[] as text[])
    end
{%- endmacro %}


{# Whether two tokens (aliases x and y of identity_name_tokens rows) can be one name. #}
{% macro identity_name_tokens_fit(x, y) -%}
    (
        {{ x }}.forms && {{ y }}.forms
        or (
            least(length({{ x }}.token), length({{ y }}.token)) = 1
            and left({{ x }}.token, 1) = left({{ y }}.token, 1)
        )
        {%- if identity_fuzzy_available() %}
        or (
            greatest(length({{ x }}.token), length({{ y }}.token)) >= 4
            and levenshtein_less_equal({{ x }}.token, {{ y }}.token, 1) <= 1
            and not {{ identity_gender_pair(x ~ '.token', y ~ '.token') }}
        )
        {%- endif %}
        or (
            length({{ x }}.token) = length({{ y }}.token)
            and length({{ x }}.token) >= 4
            {%- if identity_fuzzy_available() %}
            -- cheap first: most token pairs are far apart
            and levenshtein_less_equal({{ x }}.token, {{ y }}.token, 2) <= 2
            {%- endif %}
            and {{ identity_letters_sorted(x ~ '.token') }} = {{ identity_letters_sorted(y ~ '.token') }}
            and (
                select count(*) as differing
                from generate_series(1, length({{ x }}.token)) as positions (i)
                where substr({{ x }}.token, positions.i, 1) <> substr({{ y }}.token, positions.i, 1)
            ) = 2
        )
    )
{%- endmacro %}

{#
    Masculine and feminine forms of one name (Paulo/Paula, Márcio/Márcia, Mário/Maria):
    two people (siblings share a phone), not a typo.
#}
{% macro identity_gender_pair(x, y) -%}
    (
        length({{ x }}) = length({{ y }})
        and left({{ x }}, -1) = left({{ y }}, -1)
        and right({{ x }}, 1) || right({{ y }}, 1) in ('ao', 'oa')
    )
{%- endmacro %}

{% macro identity_letters_sorted(column) -%}
    array(
        select letters.letter
        from unnest(string_to_array({{ column }}, null)) as letters (letter)
        order by letters.letter
    )
{%- endmacro %}


{#
    A select of (name_a, name_b) for the compatible pairs among `pairs` (a select with
    columns name_a, name_b of name keys), given `tokens` (a relation or CTE of
    identity_name_tokens rows covering both sides). Either direction may fit.
#}
{% macro identity_compatible_name_pairs(pairs, tokens) -%}
    with pairs as (
        select distinct
            given.name_a,
            given.name_b
        from ({{ pairs }}) as given
    ),

    directed as (
        select
            pairs.name_a as x,
            pairs.name_b as y
        from pairs
        union
        select
            pairs.name_b as x,
            pairs.name_a as y
        from pairs
    ),

    -- each token of x against each token of y: do they fit?
    token_pairs as materialized (
        select
            directed.x,
            directed.y,
            tx.pos as x_pos,
            tx.token as x_token,
            length(tx.token) > 1 as x_is_word,
            ty.pos as y_pos,
            -- a nickname of a compound stands for two words (Corrinha for Maria do
            -- Socorro, Malu for Maria Luiza; a first word's own form with the next
            -- word is no nickname)
            case
                when
                    length(ty.token) > 1
                    and exists (
                        select 1 as compound
                        from unnest(ty.forms) as y_forms (form)
                        where
                            strpos(y_forms.form, ' ') > 0
                            and y_forms.form not like ty.token || ' %'
                    )
                    then 2
                else 1
            end as y_covers,
            fit.ok
        from directed
        inner join {{ tokens }} as tx on directed.x = tx.name_key
        inner join {{ tokens }} as ty on directed.y = ty.name_key
        cross join lateral (select {{ identity_name_tokens_fit('tx', 'ty') }} as ok) as fit
    ),

    -- each token of x: does it fit a token of y, and (first token) y's first or second?
    token_fits as (
        select
            token_pairs.x,
            token_pairs.y,
            token_pairs.x_pos as pos,
            bool_or(token_pairs.ok) as fits_any,
            bool_or(token_pairs.ok and token_pairs.y_pos <= 2) as fits_lead
        from token_pairs
        group by token_pairs.x, token_pairs.y, token_pairs.x_pos
    ),

    -- how many of y's tokens x's distinct words (not its initials) fit: an initial
    -- stands for one name, so x's words need as many of y's tokens ("M" is Marcio or
    -- Marques, not both: "Marcio Marques" is not "Jorge M Santos"); x's own initials
    -- may repeat a word ("Isabela S Souza" is "Isabela Souza Costa" typed short), and
    -- so may its words ("Isabela Oliveira de Oliveira")
    fitted_tokens as (
        select distinct
            token_pairs.x,
            token_pairs.y,
            token_pairs.y_pos,
            token_pairs.y_covers
        from token_pairs
        where token_pairs.ok and token_pairs.x_is_word
    ),

    covered as (
        select
            fitted_tokens.x,
            fitted_tokens.y,
            sum(fitted_tokens.y_covers) as positions
        from fitted_tokens
        group by fitted_tokens.x, fitted_tokens.y
    ),

    fitted_positions as (
        select
            token_pairs.x,
            token_pairs.y,
            coalesce(min(covered.positions), 0) as positions,
            count(distinct token_pairs.x_token) filter (where token_pairs.x_is_word) as words
        from token_pairs
        left join covered
            on
                token_pairs.x = covered.x
                and token_pairs.y = covered.y
        group by token_pairs.x, token_pairs.y
    ),

    fitting as (
        select
            token_fits.x,
            token_fits.y
        from token_fits
        inner join fitted_positions
            on
                token_fits.x = fitted_positions.x
                and token_fits.y = fitted_positions.y
        where fitted_positions.positions >= fitted_positions.words
        group by token_fits.x, token_fits.y
        having
            bool_and(token_fits.fits_any)
            and bool_or(token_fits.pos = 1 and token_fits.fits_lead)
    )
    {%- if identity_fuzzy_available() %},

    -- a slip across a space ("Bruno Dal Uz" for "Bruno da Luz", "Gabriel Desouza"):
    -- the whole names, without spaces, one or two edits apart, same first letter, and
    -- not Paulo beside Paula
    close_strings as (
        select
            pairs.name_a as x,
            pairs.name_b as y
        from pairs
        where
            left(pairs.name_a, 1) = left(pairs.name_b, 1)
            and least(length(pairs.name_a), length(pairs.name_b)) >= 8
            and levenshtein_less_equal(
                replace(pairs.name_a, ' ', ''), replace(pairs.name_b, ' ', ''), 2
            ) <= 2
            and not {{ identity_gender_pair(
                "split_part(pairs.name_a, ' ', 1)", "split_part(pairs.name_b, ' ', 1)"
            ) }}
    )
    {%- endif %},

    -- a glued handle ("jsilva", "joaosilva", "jpsilva", "joaopedrosilva": a name field
    -- or an email's local part made of the name without its spaces): one word, of four
    -- letters or more, that is two of the other name's words glued in order (the first
    -- or second, whole or its initial, then a later one, whole), all its words glued, or
    -- the initials of all but the last glued to the last. Only fits: on a family's
    -- email, "jsilva" beside João and Júlia Silva fits both and is nobody's for sure.
    glued_forms as (
        select
            first_part.name_key,
            head.form || later_part.token as glued
        from {{ tokens }} as first_part
        cross join lateral (
            select first_part.token as form
            union all
            select left(first_part.token, 1) as form
            -- a nickname glued in its place: "zesilva" for José Silva
            union all
            select nickname.form from unnest(first_part.nicknames) as nickname (form)
        ) as head
        inner join {{ tokens }} as later_part
            on
                first_part.name_key = later_part.name_key
                and first_part.pos < later_part.pos
        where first_part.pos <= 2 and length(later_part.token) >= 2
        union
        select
            whole.name_key,
            string_agg(whole.token, '' order by whole.pos) as glued
        from {{ tokens }} as whole
        group by whole.name_key
        having count(*) >= 2
        union
        select
            initials.name_key,
            string_agg(
                case when initials.pos < initials.last_pos then left(initials.token, 1) else initials.token end,
                '' order by initials.pos
            ) as glued
        from (
            select
                named_tokens.name_key,
                named_tokens.pos,
                named_tokens.token,
                max(named_tokens.pos) over (partition by named_tokens.name_key) as last_pos
            from {{ tokens }} as named_tokens
        ) as initials
        group by initials.name_key
        having count(*) >= 2
    ),

    glued_names as (
        select
            directed.x,
            directed.y
        from directed
        inner join glued_forms
            on
                directed.y = glued_forms.name_key
                and directed.x = glued_forms.glued
        where strpos(directed.x, ' ') = 0 and length(directed.x) >= 4
    )

    select distinct
        least(fitting.x, fitting.y) as name_a,
        greatest(fitting.x, fitting.y) as name_b
    from fitting
    union
    select
        least(glued_names.x, glued_names.y) as name_a,
        greatest(glued_names.x, glued_names.y) as name_b
    from glued_names
    {%- if identity_fuzzy_available() %}
    union
    select
        close_strings.x,
        close_strings.y
    from close_strings
    {%- endif %}
{%- endmacro %}


{#
    The generational suffixes closing a name key, as one string ('' when none): "jose
    pereira filho" → 'filho', "joao silva neto" → 'neto', "pedro costa jr" → 'junior'
    (Jr is Júnior's abbreviation). Filho/Filha (son or daughter of a parent of the same
    name), Júnior, Neto/Neta (grandchild), Sobrinho/Sobrinha (nephew, niece), Segundo,
    Terceiro: part of a Brazilian's legal name, telling apart relatives who share the
    rest of it.
#}
{% macro identity_name_generation(name_key) -%}
    replace(
        coalesce(
            substring(
                ' ' || {{ name_key }}
                from '((?: (?:filho|filha|junior|jr|neto|neta|sobrinho|sobrinha|segundo|terceiro))+)$'
            ),
            ''
        ),
        ' jr',
        ' junior'
    )
{%- endmacro %}


{# Whether name key `other` holds as words, anywhere, the generational suffixes closing
   name key `name` (macro identity_name_generation; false when `name` has none). #}
{% macro identity_name_holds_generation(name, other) -%}
    (
        {{ identity_name_generation(name) }} <> ''
        and strpos(
            replace(' ' || {{ other }} || ' ', ' jr ', ' junior '),
            {{ identity_name_generation(name) }} || ' '
        ) > 0
    )
{%- endmacro %}
