"""An incremental identity run gives what a full run on the same records gives: the same
candidate pairs with the same comparison levels, the same fuzzy links and the same
clusters. One prepared case holds each way the incremental fuzzy stage and clustering
went wrong (blocks are at most three records here, so a handful of records makes a
block too large):

- a block too large for the full run is not compared in part: a new record (Otávio
  Teles) shares a large block with a record that another new record's small block
  reaches (Otávio Lima, through Sara Lima's postcode and surname);
- a block that grows past the limit loses the pairs of the records that did not change
  (the Reis at one postcode), and one that shrinks under it gains them (the Melos, when
  one of them is deleted);
- a phone that stops linking (a fourth person gives it) changes the comparison levels
  of every pair of its records, not only their pairs inside the recomputed components;
- a cluster that a guard split in two is judged whole again (Ana Souza: two records
  that a fuzzy pair joins, each in a component with its own CPF; a new record in one
  of them must not make that part one customer without the other);
- the blocks by canonical first name with a birth date (Zé and José Rocha), with a
  postcode (Chico and Francisco Alves), and with the family name and city (the
  Freitas, a block that grows past the limit) give the full run's pairs.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import psycopg

from omnicanal.cli import main

HEADER = ["record_id", "source", "email", "phone", "cpf", "first_name", "last_name",
          "birth_date", "city", "postcode", "address"]  # fmt: skip
FIRST = ["Bruno", "Carla", "Davi", "Eva", "Fábio", "Gil", "Hugo", "Iara", "Jonas", "Lia"]
LAST = ["Lima", "Costa", "Rocha", "Mendes", "Ramos", "Reis", "Melo", "Pires", "Dias", "Luz"]
#: blocks of at most three records: a block of four is too large
OPTIONS = ("--fuzzy", "max_block_size=3")
ANA = {
    "first_name": "Ana",
    "last_name": "Souza",
    "birth_date": "1990-05-12",
    "city": "São Paulo",
    "postcode": "01310-100",
    "address": "Avenida Paulista, 1000",
}


def population() -> list[dict[str, str]]:
    """Forty people with one record in each of two sources and no identifier: pairs for
    the fuzzy stage to learn its parameters from."""
    rows = []
    for i in range(40):
        for copy, source in enumerate(("shop", "pos")):
            first = FIRST[i % 10]
            rows.append(
                {
                    "record_id": f"p{i}-{copy}",
                    "source": source,
                    "first_name": first if copy else first.upper(),
                    "last_name": LAST[(i * 3) % 10],
                    "birth_date": f"19{60 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                    "city": "Curitiba",
                    "postcode": f"8{i:04d}-000",
                    "address": f"Rua {i}, {i * 7}",
                }
            )
    return rows


def person(record_id: str, first: str, last: str, **fields: str) -> dict[str, str]:
    return {"record_id": record_id, "source": "crm", "first_name": first, "last_name": last,
            **fields}  # fmt: skip


BEFORE = [
    # four Otávios in Natal: block (Natal, Otávio) is too large
    *(
        person(f"o{i}", "Otávio", last, city="Natal")
        for i, last in enumerate(["Araújo", "Barros", "Cunha", "Duarte"])
    ),
    person("x", "Otávio", "Lima", city="Natal", postcode="59000-001"),
    # three Reis at one postcode: a block of three, compared
    *(
        person(f"g{i}", first, "Reis", postcode="60000-100")
        for i, first in enumerate(["Gil", "Hugo", "Iara"])
    ),
    # four Melos at another: too large, until one of them goes
    *(
        person(f"h{i}", first, "Melo", postcode="70000-100")
        for i, first in enumerate(["Bruno", "Carla", "Davi", "Eva"])
    ),
    # three people give one phone (it links each one's records); Rui has a namesake
    person("q1", "Rui", "Campos", phone="(31) 99123-4567"),
    person("q2", "Lia", "Dias", phone="(31) 99123-4567"),
    person("q3", "Gil", "Costa", phone="(31) 99123-4567"),
    person("y", "Rui", "Campos", phone="(31) 98888-1111"),
    # Ana Souza: a and b are one person by the fuzzy stage; a's email is also on a
    # record with one CPF, b's phone on a record with another: the CPF guard splits them
    person("c1", "Ana", "Souza", email="ana.souza@example.com", cpf="529.982.247-25"),
    {"record_id": "a", "source": "shop", "email": "ana.souza@example.com", **ANA},
    person("c2", "Ana", "Souza", phone="(11) 98787-4321", cpf="390.533.447-05"),
    {"record_id": "b", "source": "pos", "phone": "11 98787-4321", **ANA, "first_name": "ANA"},
    # three Beatrizes of the Freitas family in Recife, by nickname or not, their other
    # surnames typed or not: one block by first name (Bia and Bibi are Beatriz), family
    # name (the last surname) and city, and no other; too large when Bia Freitas comes
    person("f0", "Beatriz", "Freitas", city="Recife"),
    person("f1", "Bia", "Lopes Freitas", city="Recife"),
    person("f2", "Bibi", "Souza Freitas", city="Recife"),
    # Zé at the till gives no surname, only his birth date: José Rocha's block by first
    # name and birth date
    person("z0", "José", "Rocha", birth_date="1971-03-09"),
    # Chico at the till gives his CEP: Francisco Alves's block by first name and postcode
    person("p0", "Francisco", "Alves", postcode="50000-123"),
    *population(),
]
AFTER = [
    *(row for row in BEFORE if row["record_id"] != "h3"),
    person("t", "Otávio", "Teles", city="Natal", postcode="59000-999"),
    person("s", "Sara", "Lima", city="Parnamirim", postcode="59000-001"),
    person("g3", "Jonas", "Reis", postcode="60000-100"),
    person("q4", "Eva", "Ramos", phone="31 99123 4567"),
    person("n", "Ana", "Souza", email="ana.souza@example.com"),
    person("f3", "Bia", "Freitas", city="Recife"),
    {"record_id": "z1", "source": "pos", "first_name": "Zé", "birth_date": "09/03/1971"},
    {"record_id": "p1", "source": "pos", "first_name": "Chico", "postcode": "50000123"},
]


def resolve(tmp_path: Path, rows: list[dict[str, str]], name: str, *options: str) -> None:
    src = tmp_path / f"{name}.csv"
    with src.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows([row.get(column, "") for column in HEADER] for row in rows)
    assert main(["identity", "resolve", str(src), "-o", str(tmp_path / f"{name}.out.csv"),
                 *options]) == 0  # fmt: skip


def outcome(url: str, schema: str) -> dict[str, set]:
    """What a run decided, by record keys (record numbers differ between the runs): the
    candidate pairs with their levels, the fuzzy links, and the clusters."""
    pairs = (
        "select least(a.record_key, b.record_key), greatest(a.record_key, b.record_key), {what}"
        " from {schema}.{table} as p"
        " join {schema}.int_identity__records as a on a.record_num = p.record_num_a"
        " join {schema}.int_identity__records as b on b.record_num = p.record_num_b"
    )
    with psycopg.connect(url) as conn:
        candidates = conn.execute(
            pairs.format(what="p.levels", schema=schema, table="int_identity__fuzzy_candidates")
        ).fetchall()
        links = conn.execute(
            pairs.format(what="p.is_match", schema=schema, table="int_identity__fuzzy_pairs")
        ).fetchall()
        groups: dict[str, set[str]] = defaultdict(set)
        for key, customer in conn.execute(
            f"select record_key, customer_id from {schema}.int_identity__record_customers"
        ):
            groups[customer].add(key)
    return {
        "candidates": {(a, b, tuple(levels)) for a, b, levels in candidates},
        "links": {(a, b) for a, b, is_match in links if is_match},
        "clusters": {frozenset(group) for group in groups.values()},
    }


def keep_parameters(url: str, learnt: str, schema: str, change: str = "") -> None:
    """A schema that holds the fuzzy parameters learnt in another, as a full refresh
    finds them (int_identity__fuzzy_parameters outlives it); ``change`` updates them."""
    with psycopg.connect(url) as conn:
        conn.execute(f"create schema {schema}")
        conn.execute(
            f"create table {schema}.int_identity__fuzzy_parameters as"
            f" select * from {learnt}.int_identity__fuzzy_parameters"
        )
        if change:
            conn.execute(f"update {schema}.int_identity__fuzzy_parameters set {change}")


def parameters(url: str, schema: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select comp, lvl, round(m::numeric, 9), round(u::numeric, 9),"
            f" round(lambda::numeric, 9) from {schema}.int_identity__fuzzy_parameters"
            " order by comp, lvl"
        ).fetchall()


def test_an_incremental_run_equals_a_full_run(warehouse_env: str, tmp_path: Path) -> None:
    resolve(tmp_path, BEFORE, "before", *OPTIONS)
    before = {pair[:2] for pair in outcome(warehouse_env, "identity_cli")["candidates"]}
    assert ("crm:f0", "crm:f1") in before and ("crm:f1", "crm:f2") in before
    resolve(tmp_path, AFTER, "after", *OPTIONS)
    # the full run weighs with the parameters the first run learnt, as a full refresh
    # does (learnt again on other records, every weight would move a little)
    keep_parameters(warehouse_env, "identity_cli", "identity_cli_full")
    resolve(tmp_path, AFTER, "full", *OPTIONS, "--schema", "identity_cli_full")
    assert parameters(warehouse_env, "identity_cli_full") == parameters(
        warehouse_env, "identity_cli"
    )
    incremental = outcome(warehouse_env, "identity_cli")
    full = outcome(warehouse_env, "identity_cli_full")
    keys = {pair[:2] for pair in full["candidates"]}
    # the case is what it says: the full run compares the Melos left and not the Reis,
    # nor Otávio Teles with Otávio Lima; and Ana's part with the first CPF stays apart
    assert ("crm:h0", "crm:h1") in keys and ("crm:g0", "crm:g1") not in keys
    assert ("crm:t", "crm:x") not in keys
    # the Freitas block grew past the limit; Zé and José met by first name and birth
    # date, Chico and Francisco by first name and postcode
    assert not keys & {("crm:f0", "crm:f1"), ("crm:f0", "crm:f2"), ("crm:f1", "crm:f2")}
    assert ("crm:z0", "pos:z1") in keys and ("crm:p0", "pos:p1") in keys
    assert ("pos:b", "shop:a") in full["links"]
    assert frozenset({"crm:c1"}) in full["clusters"]
    for what in ("candidates", "links", "clusters"):
        assert incremental[what] - full[what] == set(), f"{what} only after the incremental run"
        assert full[what] - incremental[what] == set(), f"{what} only after the full run"


def test_a_full_run_learns_again_when_asked(warehouse_env: str, tmp_path: Path) -> None:
    """Stored parameters are kept (the test above) unless var identity_fuzzy_relearn is
    true or the fuzzy settings they were learnt under changed."""
    from omnicanal.identity.resolve import resolve_file
    from omnicanal.settings import get_settings

    resolve(tmp_path, population(), "population", *OPTIONS)
    learnt = parameters(warehouse_env, "identity_cli")
    src = tmp_path / "population.csv"
    for schema, fuzzy, extra in (
        ("identity_relearnt", {"max_block_size": 3}, {"identity_fuzzy_relearn": True}),
        ("identity_other_settings", {"max_block_size": 4}, None),
    ):
        keep_parameters(warehouse_env, "identity_cli", schema, change="m = 0.25")
        resolve_file(get_settings(), src, None, schema=schema, fuzzy=fuzzy, extra_vars=extra)
        found = parameters(warehouse_env, schema)
        assert not all(row[2] == Decimal("0.25") for row in found), f"{schema} kept them"
    assert parameters(warehouse_env, "identity_relearnt") == learnt


def test_one_to_one_reranking_keeps_names_hardly_alike_apart(
    warehouse_env: str, tmp_path: Path
) -> None:
    """With one_to_one_across_sources an incremental run re-decides the pairs of the
    records that gained one (macro identity_fuzzy_rerank) by the same rules as a full
    run: Otto Almeida and Caio Almedia at one address, with emails of their own, are two
    people (first names different, family names only similar), however high their
    weight. The threshold is set so low that the rules alone decide."""
    options = ("--fuzzy", "one_to_one_across_sources=true", "--fuzzy", "threshold_weight=-500")
    home = {"city": "Joinville", "postcode": "89200-000", "address": "Rua das Flores, 12"}
    otto = {"record_id": "otto", "source": "shop", "first_name": "Otto", "last_name": "Almeida",
            "email": "otto.almeida@example.com", **home}  # fmt: skip
    caio = {"record_id": "caio", "source": "pos", "first_name": "Caio", "last_name": "Almedia",
            "email": "caio.a@example.com", **home}  # fmt: skip
    resolve(tmp_path, [*population(), otto], "before", *options)
    resolve(tmp_path, [*population(), otto, caio], "after", *options)
    keep_parameters(warehouse_env, "identity_cli", "identity_cli_full")
    resolve(
        tmp_path, [*population(), otto, caio], "full", *options, "--schema", "identity_cli_full"
    )
    incremental = outcome(warehouse_env, "identity_cli")
    full = outcome(warehouse_env, "identity_cli_full")
    assert ("pos:caio", "shop:otto") in {pair[:2] for pair in full["candidates"]}
    assert ("pos:caio", "shop:otto") not in full["links"]
    assert ("pos:caio", "shop:otto") not in incremental["links"]
    assert incremental["links"] == full["links"]
