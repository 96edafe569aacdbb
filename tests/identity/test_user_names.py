"""A help desk, a chat or a social network often knows a person by a user name
("antonio_assis28", "joao.silva", "bia123") where a shop has the name they typed. A user
name made from the person's name is that person, so their own email still links the
record; one that fits several people, or nobody, on a shared email links none of them."""

from __future__ import annotations

from pathlib import Path

from identity.csv_resolve import resolve


def test_a_user_name_made_of_the_name_is_that_person(warehouse_env: str, tmp_path: Path):
    ids = resolve(
        tmp_path,
        [
            # the shop and the newsletter have his name; the help desk his user name
            # (digits attached), on the same email, whose local part is no name
            ["a1", "shop", "a.assis1987@gmail.com", "", "", "Antônio", "de Assis"],
            ["a2", "newsletter", "a.assis1987@gmail.com", "", "", "Antônio de Assis", ""],
            ["a3", "support", "a.assis1987@gmail.com", "", "", "antonio_assis28", ""],
            # a nickname with digits: Bia is Beatriz
            ["b1", "shop", "bl.1990@uol.com.br", "", "", "Beatriz", "Lima"],
            ["b2", "support", "bl.1990@uol.com.br", "", "", "bia123", ""],
            # first name and the surname's initial, dotted names, digits alone
            ["m1", "crm", "msouza@bol.com.br", "", "", "Maria", "Souza"],
            ["m2", "support", "msouza@bol.com.br", "", "", "maria_s", ""],
            ["j1", "shop", "jp.silva@terra.com.br", "", "", "João Pedro", "Silva"],
            ["j2", "support", "jp.silva@terra.com.br", "", "", "joao.silva_1984", ""],
            # on a family's email a user name joins the one person it is made from ...
            ["f1", "shop", "familia.rocha@gmail.com", "", "", "Carla", "Rocha"],
            ["f2", "crm", "familia.rocha@gmail.com", "", "", "Carla", "Rocha"],
            ["f3", "shop", "familia.rocha@gmail.com", "", "", "Davi", "Rocha"],
            ["f4", "support", "familia.rocha@gmail.com", "", "", "davi.rocha10", ""],
            # ... and one that fits both (the family name alone) joins neither
            ["f5", "support", "familia.rocha@gmail.com", "", "", "rocha_77", ""],
            # Paulo's user name on Paula's email is another person (a sibling), digits or
            # not, and so is a user name made of nobody's name
            ["p1", "shop", "preis@gmail.com", "", "", "Paula", "Reis"],
            ["p2", "support", "preis@gmail.com", "", "", "paulo_reis82", ""],
            ["g1", "shop", "ana.l@gmail.com", "", "", "Ana", "Lima"],
            ["g2", "crm", "ana.l@gmail.com", "", "", "Ana", "Lima"],
            ["g3", "support", "ana.l@gmail.com", "", "", "gatinha_2001", ""],
        ],
    )
    assert ids["a1"] == ids["a2"] == ids["a3"]
    assert ids["b1"] == ids["b2"]
    assert ids["m1"] == ids["m2"]
    assert ids["j1"] == ids["j2"]
    assert ids["f1"] == ids["f2"] and ids["f3"] == ids["f4"] and ids["f1"] != ids["f3"]
    assert ids["f5"] not in {ids["f1"], ids["f3"]}
    assert ids["p1"] != ids["p2"]
    assert ids["g1"] == ids["g2"] != ids["g3"]


def test_a_glued_handle_is_the_name_it_is_made_of(warehouse_env: str, tmp_path: Path):
    """A name field or an email's local part made by gluing an initial or a first name
    to a surname ("jsilva", "joaosilva", "jpsilva") is the person it was made from, so
    their own email links it; on a family's email it joins only the one person it fits."""
    ids = resolve(
        tmp_path,
        [
            # João Pedro's account; the help desk and the CRM know him by glued handles
            ["j1", "shop", "jp.silva@terra.com.br", "", "", "João Pedro", "Silva"],
            ["j2", "support", "jp.silva@terra.com.br", "", "", "jsilva", ""],
            ["j3", "support", "jp.silva@terra.com.br", "", "", "joaosilva", ""],
            ["j4", "crm", "jp.silva@terra.com.br", "", "", "jpsilva", ""],
            # the email's local part typed as the name
            ["k1", "shop", "kduarte@gmail.com", "", "", "Karina", "Duarte"],
            ["k2", "newsletter", "kduarte@gmail.com", "", "", "kduarte", ""],
            # a family's email: "juliasilva" is Júlia's, "jsilva" fits João and Júlia
            # and joins neither, "rsouza" is nobody's name here and another person
            ["f1", "shop", "familia.silva@gmail.com", "", "", "João", "Silva"],
            ["f2", "shop", "familia.silva@gmail.com", "", "", "Júlia", "Silva"],
            ["f3", "support", "familia.silva@gmail.com", "", "", "juliasilva", ""],
            ["f4", "support", "familia.silva@gmail.com", "", "", "jsilva", ""],
            ["f5", "crm", "familia.silva@gmail.com", "", "", "rsouza", ""],
        ],
    )
    assert ids["j1"] == ids["j2"] == ids["j3"] == ids["j4"]
    assert ids["k1"] == ids["k2"]
    assert ids["f2"] == ids["f3"] and ids["f1"] != ids["f2"]
    assert ids["f4"] not in {ids["f1"], ids["f2"]}
    assert ids["f5"] not in {ids["f1"], ids["f2"], ids["f4"]}
