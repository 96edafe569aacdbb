"""A home's people, end to end through ``omnicanal identity resolve``:
- a Brazilian landline (eight digits, the first 2 to 5) is the home's, whoever answers
  it: it links the records of the names written under it, each to their own, and a
  record with no name (a till's "Consumidor Final") to none of them; a mobile is one
  person's, and a nameless record on it goes with its one named holder;
- an initial stands for one name: "Jorge M Santos" is not "Marcio Marques" because the
  "M" cannot be both Marcio and Marques, so the two are two people on one mobile."""

from __future__ import annotations

from pathlib import Path

from identity.csv_resolve import resolve


def test_a_nameless_sale_on_a_homes_landline_is_no_ones(warehouse_env: str, tmp_path: Path) -> None:
    rows = [
        # Ana at the web store and in the CRM, with the home's landline
        ["ana-web", "shop", "ana.souza@example.com", "(11) 3246-8800", "", "Ana", "Souza"],
        ["ana-crm", "crm", "", "11 3246 8800", "", "ANA", "SOUZA"],
        # a sale at the till with no name, on the same landline: someone of the home
        ["till", "pos", "", "(11) 3246-8800", "", "Consumidor", "Final"],
        ["till-bare", "pos", "", "1132468800", "", "", ""],
        # Bruno's mobile, and a nameless sale on it: his
        ["bruno", "crm", "bruno.lima@example.com", "(11) 98765-0001", "", "Bruno", "Lima"],
        ["till-mobile", "pos", "", "11987650001", "", "", ""],
    ]  # fmt: skip
    ids = resolve(tmp_path, rows)
    assert ids["ana-web"] == ids["ana-crm"]
    assert ids["till"] not in {ids["ana-web"], ids["till-bare"]}
    assert ids["till-bare"] != ids["ana-web"]
    assert ids["till-mobile"] == ids["bruno"]


def test_an_initial_stands_for_one_name(warehouse_env: str, tmp_path: Path) -> None:
    rows = [
        # Márcio's mobile at the web store and on WhatsApp; a till sale by Jorge M.
        # Santos, who gave the same number (it was Márcio's old one, or a typo)
        ["marcio-web", "shop", "mmarques@example.com", "(62) 96381-0401", "", "Márcio", "Marques"],
        ["marcio-wa", "whatsapp", "", "+55 62 96381-0401", "", "Marcio", "Marques"],
        ["jorge", "pos", "", "62963810401", "", "Jorge M", "Santos"],
        # João P Silva and João Pedro Silva on one mobile: one person
        ["joao-pos", "pos", "", "(21) 99111-2222", "", "João P", "Silva"],
        ["joao-web", "shop", "", "21991112222", "", "João Pedro", "Silva"],
    ]  # fmt: skip
    ids = resolve(tmp_path, rows)
    assert ids["marcio-web"] == ids["marcio-wa"]
    assert ids["jorge"] != ids["marcio-web"]
    assert ids["joao-pos"] == ids["joao-web"]
