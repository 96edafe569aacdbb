"""``omnicanal identity explain``: why records are one customer, from the identity
tables: the identifier values that link them, the guards that stopped or split a value,
and each fuzzy pair as a waterfall of comparison weights summing to its match weight."""

from __future__ import annotations

import csv
from pathlib import Path

import psycopg
import pytest

from omnicanal.cli import main
from omnicanal.errors import OmnicanalError
from omnicanal.identity.explain import explain, render
from omnicanal.settings import get_settings

HEADER = ["record_id", "source", "email", "phone", "cpf", "first_name", "last_name",
          "birth_date", "city", "postcode", "address"]  # fmt: skip
FIRST = ["Bruno", "Carla", "Davi", "Eva", "Fábio", "Gil", "Hugo", "Iara", "Jonas", "Lia"]
LAST = ["Lima", "Costa", "Rocha", "Mendes", "Ramos", "Reis", "Melo", "Pires", "Dias", "Luz"]

ROWS = [
    ["a1", "shop", "ana@example.com", "(11) 8787-4321", "", "Ana", "Souza", "1990-05-12",
     "São Paulo", "01310-100", "Avenida Paulista, 1000"],
    ["a2", "crm", "", "+55 11 98787-4321", "123.456.789-09", "ANA", "SOUZA", "", "", "", ""],
    # no identifier: only the fuzzy stage can find her
    ["a3", "pos", "", "", "", "Ana", "Souza", "12/05/1990", "Sao Paulo", "01310100",
     "AVENIDA PAULISTA, 1000"],
    # her brother shares the family phone
    ["b1", "pos", "", "(11) 98787-4321", "", "Bruno", "Souza", "", "", "", ""],
]  # fmt: skip
for i in range(40):  # a population for the fuzzy stage's parameters
    for copy, source in enumerate(("shop", "pos")):
        ROWS.append(
            [f"p{i}-{copy}", source, "", "", "", FIRST[i % 10], LAST[(i * 3) % 10],
             f"19{60 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}", "Curitiba",
             f"8{i:04d}-000", f"Rua {i}, {i * 7}"]
        )  # fmt: skip


def test_explain_prints_edges_guards_and_fuzzy_weights(
    warehouse_env: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "in.csv"
    with src.open("w", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *ROWS])
    out = tmp_path / "out.csv"
    assert main(["identity", "resolve", str(src), "-o", str(out)]) == 0
    with out.open() as handle:
        ids = {row["record_id"]: row["customer_id"] for row in csv.DictReader(handle)}
    assert ids["a1"] == ids["a2"] == ids["a3"] != ids["b1"]

    settings = get_settings()
    by_record = explain(settings, "a3")  # a record id, as the input named it
    by_customer = explain(settings, ids["a1"])
    assert by_record.as_dict() == by_customer.as_dict()
    facts = by_customer
    assert [r["record_key"] for r in facts.records] == ["crm:a2", "pos:a3", "shop:a1"]
    assert [(e["identifier_type"], e["value"], e["record_keys"]) for e in facts.links] == [
        ("phone", "+5511987874321", ["crm:a2", "shop:a1"])
    ]
    # the family phone links Ana's records only; Bruno's name is another person
    (household,) = facts.households
    assert household["people_count"] == 2 and household["groups"] == ["ana souza"]
    (fake,) = facts.stopped
    assert fake["guard"] == "fake_identifier" and fake["value"] == "12345678909"
    # the fuzzy pair of a3 and a1, weighed comparison by comparison (a3 and a2 agree on
    # a name nobody else in the file has: a pair too, by its term frequencies)
    (pair,) = [
        p for p in facts.fuzzy_pairs if {p["record_a"], p["record_b"]} == {"pos:a3", "shop:a1"}
    ]
    parts = {c["comparison"]: c for c in pair["comparisons"]}
    assert parts["birth_date"]["level"] == "exact" and parts["birth_date"]["weight"] > 0
    assert parts["email"]["level"] == "missing" and parts["email"]["weight"] == 0
    # an exact agreement weighs by the frequency of its value: a1 and a3 hold that date
    assert parts["birth_date"]["term_frequency"] > 0
    assert parts["email"]["term_frequency"] is None
    assert parts["prior"]["weight"] < 0
    assert abs(sum(c["weight"] for c in pair["comparisons"]) - pair["match_weight"]) < 0.05
    # the same facts are a table an analyst can query
    with psycopg.connect(warehouse_env) as conn:
        (count,) = conn.execute(
            "select count(distinct comparison) from identity_cli.int_identity__fuzzy_pair_weights"
        ).fetchone()
    assert count == 10  # the prior and nine comparisons

    text = render(facts)
    assert "phone +5511987874321: crm:a2, shop:a1" in text
    assert "fake_identifier: cpf 12345678909 on crm:a2: links nobody" in text
    assert "2 people (ana souza; bruno souza)" in text
    assert "birth_date" in text and "(exact)" in text and "value held by" in text

    with pytest.raises(OmnicanalError, match="no record or customer 'nobody'"):
        explain(settings, "nobody")
    with pytest.raises(OmnicanalError, match="holds no identity tables"):
        explain(settings, "a1", schema="nowhere")
