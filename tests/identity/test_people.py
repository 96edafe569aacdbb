"""``omnicanal identity resolve`` counts people the way people are: names written
differently in each channel (a first name alone, a missing name, nicknames, compound
first names, particles, surnames in another order) are one person; a household's phone
links each person's own records only; well-known fake identifiers and values carried by
many incompatible names link nobody; every old eight-digit mobile (prefixes 6 to 9)
meets its nine-digit form and reaches the people-per-value guard."""

from __future__ import annotations

import csv
from pathlib import Path

import psycopg

from omnicanal.cli import main

HEADER = ["record_id", "source", "email", "phone", "wa_id", "cpf", "first_name", "last_name"]


def resolve(tmp_path: Path, rows: list[list[str]], name: str = "in") -> dict[str, str]:
    src = tmp_path / f"{name}.csv"
    with src.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    out = tmp_path / f"{name}.out.csv"
    assert main(["identity", "resolve", str(src), "-o", str(out)]) == 0
    with out.open() as handle:
        return {row["record_id"]: row["customer_id"] for row in csv.DictReader(handle)}


def audit(warehouse_env: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(type, value) -> (guard, reason) of every value a guard stopped."""
    with psycopg.connect(warehouse_env) as conn:
        rows = conn.execute(
            "select identifier_type, identifier_value, guard, reason"
            " from identity_cli.int_identity__guard_audit where identifier_value is not null"
        ).fetchall()
    return {(t, v): (g, r) for t, v, g, r in rows}


PEOPLE = [
    # Pedro writes his name three ways and leaves it empty once: one person, and his
    # email links all four (the old guard counted three "people" and stopped it)
    ["p1", "shop", "pedro@example.com", "", "", "", "Pedro", ""],
    ["p2", "crm", "Pedro@Example.com", "", "", "", "Pedro Lucas", "Abreu"],
    ["p3", "pos", "pedro@example.com", "", "", "", "", ""],
    ["p4", "support", "pedro@example.com", "", "", "", "PEDRO", "ABREU"],
    # particles and surname order: "Ana Lima de Souza" and "Ana Souza Lima"
    ["a1", "shop", "ana.ls@example.com", "", "", "", "Ana", "Lima de Souza"],
    ["a2", "crm", "ana.ls@example.com", "", "", "", "Ana", "Souza Lima"],
    ["a3", "pos", "ana.ls@example.com", "", "", "", "A.", "Sousa"],  # initial and a typo
    # a household's phone: José (also "Zé" on WhatsApp), his daughters Maria Eduarda
    # ("Duda") and Maria Clara; every record holds the same number
    ["h1", "shop", "", "(31) 99111-2222", "", "", "José", "Carvalho"],
    ["h2", "whatsapp", "", "", "5531991112222", "", "Zé", ""],
    ["h3", "crm", "", "31 99111 2222", "", "", "Maria Eduarda", "da Silva Carvalho"],
    ["h4", "pos", "", "(31) 99111-2222", "", "", "Duda", "Carvalho"],
    ["h5", "shop", "", "+55 31 99111-2222", "", "", "Maria Clara", "Carvalho"],
    # nobody's name on the household phone: it cannot say whose record this is
    ["h6", "pos", "", "(31) 99111-2222", "", "", "", ""],
    # another household's mobile: Antônio ("Tonico" on WhatsApp, a nickname no edit
    # reaches) and his wife Maria
    ["t1", "shop", "", "(21) 98222-3333", "", "", "Antônio", "Souza"],
    ["t2", "whatsapp", "", "", "5521982223333", "", "Tonico", ""],
    ["t3", "crm", "", "21 98222 3333", "", "", "Maria", "Souza"],
    # 123.456.789-09 passes the check digits and is typed at tills all over Brazil:
    # Joana's real CPF and her email stay together with a till record that holds it
    ["j1", "shop", "joana@example.com", "", "", "390.533.447-05", "Joana", "Prado"],
    ["j2", "pos", "joana@example.com", "", "", "123.456.789-09", "Joana", "Prado"],
    ["m1", "pos", "", "", "", "123.456.789-09", "Marcos", "Teles"],
    # placeholders that pass format checks link nobody
    ["n1", "pos", "naotem@gmail.com", "(11) 99999-9999", "", "", "Rita", "Nunes"],
    ["n2", "pos", "NAOTEM@gmail.com", "11 99999 9999", "", "", "Sônia", "Reis"],
    # a valid CPF no list knows, typed for four different people: found from the data
    ["c1", "pos", "", "", "", "715.324.650-92", "Bruno", "Lima"],
    ["c2", "pos", "", "", "", "715.324.650-92", "Carla", "Mendes"],
    ["c3", "pos", "", "", "", "715.324.650-92", "Davi", "Rocha"],
    ["c4", "pos", "", "", "", "715.324.650-92", "Elis", "Prado"],
    # a sale with no name carrying Sônia's CPF and her husband Marcos's mobile: it
    # cannot make them one customer; it goes with Sônia, whose CPF it holds
    ["b1", "shop", "sonia.nunes@example.com", "", "", "529.982.247-25", "Sônia", "Nunes"],
    ["b2", "whatsapp", "", "", "5571983326756", "", "Marcos", "Nunes"],
    ["b3", "pos", "", "(71) 98332-6756", "", "529.982.247-25", "", ""],
    # the till's anonymous buyer is no name: it does not count as another person
    ["d1", "shop", "dora@example.com", "", "", "", "Dora", "Vaz"],
    ["d2", "pos", "dora@example.com", "", "", "", "Consumidor", "Final"],
]


def test_names_households_and_fake_identifiers(warehouse_env: str, tmp_path: Path) -> None:
    ids = resolve(tmp_path, PEOPLE)
    assert ids["p1"] == ids["p2"] == ids["p3"] == ids["p4"]
    assert ids["a1"] == ids["a2"] == ids["a3"]
    # the household: José and Zé, Maria Eduarda and Duda; Maria Clara alone
    assert ids["h1"] == ids["h2"]
    assert ids["h3"] == ids["h4"]
    assert len({ids["h1"], ids["h3"], ids["h5"], ids["h6"]}) == 4
    assert ids["t1"] == ids["t2"] != ids["t3"]
    # Joana is not split by the fake CPF; Marcos, who typed it too, is not Joana
    assert ids["j1"] == ids["j2"] != ids["m1"]
    assert ids["n1"] != ids["n2"]
    assert len({ids[f"c{i}"] for i in range(1, 5)}) == 4
    assert ids["d1"] == ids["d2"]
    assert ids["b1"] == ids["b3"] != ids["b2"]

    stopped = audit(warehouse_env)
    assert stopped[("cpf", "12345678909")][0] == "fake_identifier"
    assert "1 to 9 in order" in stopped[("cpf", "12345678909")][1]
    assert stopped[("email", "naotem@gmail.com")][0] == "fake_identifier"
    assert stopped[("phone", "+5511999999999")][0] == "fake_identifier"
    assert stopped[("cpf", "71532465092")][0] == "max_people_per_value"
    assert "4 distinct people" in stopped[("cpf", "71532465092")][1]
    for kept in (("email", "pedro@example.com"), ("phone", "+5531991112222")):
        assert kept not in stopped
    with psycopg.connect(warehouse_env) as conn:
        (people, groups) = conn.execute(
            "select people_count, name_groups from identity_cli.int_identity__identifier_values"
            " where identifier_type = 'phone' and identifier_value = '+5531991112222'"
        ).fetchone()
    assert people == 3
    assert groups["ze"] == groups["jose carvalho"] != groups["maria clara carvalho"]


# One area code per old-mobile prefix: (DDD, eight-digit number as written before 2016)
OLD_MOBILES = {"6": ("61", "6123-4567"), "7": ("71", "7123-4567"), "8": ("81", "8123-4567"),
               "9": ("91", "9123-4567")}  # fmt: skip


def test_every_old_mobile_prefix_links_and_reaches_the_people_guard(
    warehouse_env: str, tmp_path: Path
) -> None:
    rows = []
    for prefix, (ddd, old) in OLD_MOBILES.items():
        # one person: the old eight-digit form, the nine-digit form, a wa_id without it
        rows += [
            [f"o{prefix}a", "pos", "", f"({ddd}) {old}", "", "", "Lia", f"Prefixo{prefix}"],
            [f"o{prefix}b", "shop", "", f"+55 {ddd} 9{old}", "", "", "Lia", f"Prefixo{prefix}"],
            [f"o{prefix}c", "whatsapp", "", "", f"55{ddd}{old.replace('-', '')}", "", "Lia", ""],
        ]
        # the store's phone, written the old way on four walk-in sales of different
        # people, and on a walk-in sale to someone called Ana (a first name alone) ...
        store = f"({ddd}) {old[:-4]}0000"
        rows += [
            [f"s{prefix}{i}", "pos", "", store, "", "", first, last]
            for i, (first, last) in enumerate(
                [("Ana", "Souza"), ("Bruno", "Lima"), ("Carla", "Mendes"), ("Davi", "Rocha")]
            )
        ]
        rows.append([f"s{prefix}x", "pos", "", store, "", "", "Ana", ""])
        # ... while Ana Souza's own account holds it in its nine-digit form
        rows.append([f"s{prefix}y", "shop", "", f"+55{ddd}9{old[:-4].replace('-', '')}0000",
                     "", "", "Ana", "Souza"])  # fmt: skip
    ids = resolve(tmp_path, rows)
    stopped = audit(warehouse_env)
    for prefix, (ddd, old) in OLD_MOBILES.items():
        assert ids[f"o{prefix}a"] == ids[f"o{prefix}b"] == ids[f"o{prefix}c"], prefix
        store = f"+55{ddd}9{old[:-4].replace('-', '')}0000"
        # the store's phone, once normalised, is carried by four people: it links
        # nobody, so the walk-in Ana is not taken for Ana Souza
        assert stopped[("phone", store)][0] == "max_people_per_value", prefix
        assert ids[f"s{prefix}x"] != ids[f"s{prefix}y"], prefix
        assert ids[f"s{prefix}0"] != ids[f"s{prefix}y"], prefix


def test_a_nameless_bridge_arriving_later_splits_as_a_full_run_does(
    warehouse_env: str, tmp_path: Path
) -> None:
    """The incremental run that brings the nameless till sale (Sônia's CPF, Marcos's
    mobile) decides as the full run of test_names_households_and_fake_identifiers."""
    couple = [row for row in PEOPLE if row[0] in ("b1", "b2")]
    first = resolve(tmp_path, couple, "before")
    assert first["b1"] != first["b2"]
    sale = [row for row in PEOPLE if row[0] == "b3"]
    ids = resolve(tmp_path, [*couple, *sale], "after")
    assert ids["b1"] == ids["b3"] != ids["b2"]
    assert ids["b1"] == first["b1"] and ids["b2"] == first["b2"]
    with psycopg.connect(warehouse_env) as conn:
        changes = conn.execute(
            "select record_key, change from identity_cli.int_identity__record_changes"
        ).fetchall()
        guards = conn.execute(
            "select distinct guard from identity_cli.int_identity__clusters where guard is not null"
        ).fetchall()
    assert changes == [("pos:b3", "new")]  # an incremental run
    assert guards == [("nameless_bridge",)]
