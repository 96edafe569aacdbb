"""An incremental run moves the term frequencies of records it did not touch, and a
stored pair of two such records can cross the threshold: its weight counts -log2 f for
each exact agreement, f = n / N (the value's records over the column's), and the run
moves n for the values its records hold and N for every value. The incremental run
decides those pairs as a full run on the same records does (macro
identity_fuzzy_drift_build):

- a value's count moves: a third Eliseu arrives, and the two records of Eliseu Quaresma,
  linked by their rare first name, now agree on a less rare one and stay apart;
- the column's total moves: twenty new people arrive, every value is rarer than it was,
  and the two records of Quitéria Aragão, under the threshold before, are over it now.

Each case sets the threshold a tenth of a bit from the pair's weight (learnt by a first
run on the same records: the threshold takes no part in learning), so its premise is
asserted before the equality."""

from __future__ import annotations

from pathlib import Path

import psycopg

from identity.test_incremental_exact import keep_parameters, outcome, population, resolve


def person(record_id: str, source: str, first: str, last: str) -> dict[str, str]:
    return {"record_id": record_id, "source": source, "first_name": first, "last_name": last}


#: two people with two records each, first and last name only: one agreement pattern
BEFORE = [
    *population(),
    person("eliseu-web", "shop", "Eliseu", "Quaresma"),
    person("eliseu-till", "pos", "ELISEU", "QUARESMA"),
    person("quiteria-web", "shop", "Quitéria", "Aragão"),
    person("quiteria-till", "pos", "QUITÉRIA", "ARAGÃO"),
]
ELISEU = ("pos:eliseu-till", "shop:eliseu-web")
QUITERIA = ("pos:quiteria-till", "shop:quiteria-web")
#: twenty new people, none alike: every name column's total grows by a quarter
NEWCOMERS = [
    person(f"new{i}", "crm", first, last)
    for i, (first, last) in enumerate(
        zip(
            ["Abel", "Benedita", "Celso", "Dirce", "Elói", "Filomena", "Gérson", "Hilda",
             "Ivo", "Jacira", "Lauro", "Marlene", "Nilo", "Odete", "Pércio", "Rosália",
             "Saulo", "Tereza", "Ubirajara", "Valquíria"],
            ["Antunes", "Bezerra", "Cordeiro", "Damasceno", "Espíndola", "Fagundes",
             "Galvão", "Holanda", "Inácio", "Jardim", "Leitão", "Macedo", "Nóbrega",
             "Orsini", "Paixão", "Queiroz", "Rangel", "Siqueira", "Toledo", "Valadares"],
            strict=True,
        )
    )
]  # fmt: skip


def pair_weight(url: str, schema: str, pair: tuple[str, str]) -> float:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"""
            select c.match_weight from {schema}.int_identity__fuzzy_pairs as c
            join {schema}.int_identity__records as a on a.record_num = c.record_num_a
            join {schema}.int_identity__records as b on b.record_num = c.record_num_b
            where array[a.record_key, b.record_key] <@ array[%s, %s]
            """,
            pair,
        ).fetchone()
    assert row is not None and row[0] is not None, f"{pair} is no fuzzy pair"
    return float(row[0])


def incremental_and_full(
    url: str, tmp_path: Path, name: str, after: list[dict[str, str]], threshold: float
) -> tuple[dict[str, set], dict[str, set], dict[str, set]]:
    """BEFORE, then ``after`` incrementally, in schema ``name``; ``after`` again in a
    schema of its own with the parameters the first run learnt, as a full refresh finds
    them. What BEFORE decided, what the incremental run and the full run decided."""
    options = ("--fuzzy", f"threshold_weight={threshold}", "--schema", name)
    resolve(tmp_path, BEFORE, f"{name}-before", *options)
    before = outcome(url, name)
    resolve(tmp_path, after, f"{name}-after", *options)
    keep_parameters(url, name, f"{name}_full")
    full_options = ("--fuzzy", f"threshold_weight={threshold}", "--schema", f"{name}_full")
    resolve(tmp_path, after, f"{name}-full", *full_options)
    for schema in (name, f"{name}_full"):
        assert_weights_kept(url, schema)
    return before, outcome(url, name), outcome(url, f"{name}_full")


def assert_weights_kept(url: str, schema: str) -> None:
    """Every candidate pair keeps the weight it was weighed with (written by the
    candidates model from the stored parameters, or by the pairs model's post-hook on a
    run that learns them): the one the pairs model gave it."""
    with psycopg.connect(url) as conn:
        missing, differing, compared = conn.execute(
            f"""
            select
                count(*) filter (where c.match_weight is null),
                count(*) filter (where abs(c.match_weight - p.match_weight) > 1e-9),
                count(p.match_weight)
            from {schema}.int_identity__fuzzy_candidates as c
            left join {schema}.int_identity__fuzzy_pairs as p
                on p.record_num_a = c.record_num_a and p.record_num_b = c.record_num_b
            """
        ).fetchone()
    assert (missing, differing) == (0, 0)
    assert compared > 0


def assert_equal(incremental: dict[str, set], full: dict[str, set]) -> None:
    for what in ("candidates", "links", "clusters"):
        assert incremental[what] - full[what] == set(), f"{what} only after the incremental run"
        assert full[what] - incremental[what] == set(), f"{what} only after the full run"


def test_stored_pairs_cross_the_threshold_as_in_a_full_run(
    warehouse_env: str, tmp_path: Path
) -> None:
    # every candidate over a threshold this low, with its weight
    resolve(
        tmp_path, BEFORE, "probe", "--schema", "identity_probe", "--fuzzy", "threshold_weight=-100"
    )
    weight = pair_weight(warehouse_env, "identity_probe", ELISEU)
    # one agreement pattern, both names held by two records: one weight
    assert abs(pair_weight(warehouse_env, "identity_probe", QUITERIA) - weight) < 1e-9

    # a third Eliseu: Eliseu Quaresma's first name agrees on 3 records in N, not 2
    third = person("eliseu-crm", "crm", "Eliseu", "Barbosa")
    before, incremental, full = incremental_and_full(
        warehouse_env, tmp_path, "identity_value", [*BEFORE, third], round(weight - 0.1, 6)
    )
    assert ELISEU in before["links"] and ELISEU not in full["links"]
    assert_equal(incremental, full)

    # twenty newcomers: every name's frequency falls, Quitéria Aragão's two records rise
    before, incremental, full = incremental_and_full(
        warehouse_env, tmp_path, "identity_total", [*BEFORE, *NEWCOMERS], round(weight + 0.1, 6)
    )
    assert QUITERIA not in before["links"] and QUITERIA in full["links"]
    assert_equal(incremental, full)
