"""A help desk or a form that gets no name shows the email's local part instead
("rodrigo.fernandes1956" as "Rodrigofernandes"): that stand-in is no name, so it
neither splits the person from their own email nor links anyone by itself."""

from __future__ import annotations

from pathlib import Path

from identity.csv_resolve import resolve


def test_a_name_made_of_the_email_is_no_other_person(warehouse_env: str, tmp_path: Path):
    ids = resolve(
        tmp_path,
        [
            # the shop and the CRM have his name; the help desk shows his address's letters
            [
                "r1",
                "shop",
                "rodrigo.fernandes1956@hotmail.com",
                "",
                "",
                "Rodrigo",
                "Freitas Fernandes",
            ],
            [
                "r2",
                "crm",
                "rodrigo.fernandes1956@hotmail.com",
                "",
                "",
                "Rodrigo Freitas",
                "Fernandes",
            ],
            ["r3", "support", "rodrigo.fernandes1956@hotmail.com", "", "", "Rodrigofernandes", ""],
            [
                "r4",
                "support",
                "Rodrigo.Fernandes1956@hotmail.com",
                "",
                "",
                "rodrigo.fernandes1956",
                "",
            ],
            # control: a typed name that differs is still another person on a shared
            # address (a couple's email): the household rule keeps them apart
            ["c1", "shop", "casa.lima22@gmail.com", "", "", "Ana", "Lima"],
            ["c2", "crm", "casa.lima22@gmail.com", "", "", "Ana", "Lima"],
            ["c3", "support", "casa.lima22@gmail.com", "", "", "Bruno", "Lima"],
            ["c4", "pos", "casa.lima22@gmail.com", "", "", "Bruno", "Lima"],
            # a name typed in two fields is typed, even when the address spells it: Bruno
            # and Maria on one address are two people
            ["b1", "shop", "bruno.alves.1980@outlook.com", "", "", "Bruno", "Alves"],
            ["b2", "crm", "bruno.alves.1980@outlook.com", "", "", "Maria", "Souza"],
            # a local part without digits or dots may be a real first name: kept as one
            ["m1", "shop", "marta@example.com", "", "", "Marta", ""],
            ["m2", "support", "marta@example.com", "", "", "Marta", "Quintela"],
        ],
    )
    assert ids["r1"] == ids["r2"] == ids["r3"] == ids["r4"]
    assert ids["c1"] == ids["c2"] and ids["c3"] == ids["c4"] and ids["c1"] != ids["c3"]
    assert ids["m1"] == ids["m2"]
    assert ids["b1"] != ids["b2"]
