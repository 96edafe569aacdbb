"""The fuzzy stage's reading of names, end to end:
- a father and his son: one name but for the son's Filho (Júnior, Neto), often one home.
  Brazilians named after a parent or grandparent carry the generational suffix in their
  legal name, so without a birth date in common the suffix tells two people; with one, a
  record that drops it is the same person (macro identity_fuzzy_generations_differ);
- first and last name typed in each other's field with a slip (macro
  identity_fuzzy_one_slip), reached by the postcode alone."""

from __future__ import annotations

from pathlib import Path

from identity.csv_resolve import resolve

HEADER = [
    "record_id",
    "source",
    "email",
    "full_name",
    "first_name",
    "last_name",
    "birth_date",
    "city",
    "postcode",
    "address",
]
HOME = ["Belo Horizonte", "30130-170", "Rua da Bahia, 1148"]
FIRST = ["Bruno", "Carla", "Davi", "Eva", "Fábio", "Gil", "Hugo", "Iara", "Jonas", "Lia"]
LAST = ["Lima", "Costa", "Rocha", "Mendes", "Ramos", "Reis", "Melo", "Pires", "Dias", "Luz"]


def population() -> list[list[str]]:
    """Forty people with a record at the web store and one at the till, no identifier:
    pairs for the fuzzy stage to learn its parameters from."""
    rows = []
    for i in range(40):
        first, last = FIRST[i % 10], LAST[(i * 3) % 10]
        birth = f"19{60 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        for copy, source in enumerate(("shop", "pos")):
            rows.append(
                [f"p{i}-{copy}", source, "", "", first if copy else first.upper(), last, birth,
                 "Curitiba", f"8{i:04d}-000", f"Rua {i}, {i * 7}"]
            )  # fmt: skip
    return rows


def test_a_father_and_his_son_filho_are_two_people(warehouse_env: str, tmp_path: Path) -> None:
    rows = [
        # the father at the web store, no birth date; the son on a paper loyalty form
        # (one name field) at the same home: every field agrees but the suffix
        ["pai", "shop", "jose.pereira@example.com", "", "José Carlos", "Pereira", "", *HOME],
        ["filho", "loyalty", "", "JOSÉ CARLOS PEREIRA FILHO", "", "", "2001-04-10", *HOME],
        # one man who writes "Júnior" at the web store and not at the till: their birth
        # date agrees, so he is one person
        ["web", "shop", "pedro.alves@example.com", "", "Pedro", "Alves Júnior", "1990-02-02",
         "Recife", "50030-230", "Rua do Sol, 20"],
        ["till", "pos", "", "", "PEDRO", "ALVES", "02/02/1990", "Recife", "50030-230",
         "Rua do Sol, 20"],
        *population(),
    ]  # fmt: skip
    ids = resolve(tmp_path, rows, HEADER)
    assert ids["pai"] != ids["filho"]
    assert ids["web"] == ids["till"]
    # the population links as it should: the stage ran and learnt
    assert all(ids[f"p{i}-0"] == ids[f"p{i}-1"] for i in range(40))


def test_names_swapped_with_a_slip_link_at_one_postcode(warehouse_env: str, tmp_path: Path) -> None:
    rows = [
        # a help desk's agent typed the surname, misspelt, as the first name; the street
        # written another way: only the postcode blocks them together
        ["web", "shop", "daniel.nobre@example.com", "", "Daniel", "Nobre", "", *HOME],
        ["desk", "support", "", "", "NOBRRE", "DANIEL", "", "Belo Horizonte", "30130170",
         "R. da Bahia 1148, apto 3"],
        # at the same postcode, a neighbour whose names are not the swapped ones
        ["neighbour", "support", "", "", "Nilo", "Danta", "", "Belo Horizonte", "30130170",
         "R. da Bahia 1148, apto 5"],
        *population(),
    ]  # fmt: skip
    ids = resolve(tmp_path, rows, HEADER)
    assert ids["web"] == ids["desk"]
    assert ids["neighbour"] not in (ids["web"], ids["desk"])
    assert all(ids[f"p{i}-0"] == ids[f"p{i}-1"] for i in range(40))
