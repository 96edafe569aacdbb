"""Brazilian first names as people write them in each channel: diminutives (Robertinho,
Marcinha, Joãozinho), nicknames of a compound first name (Malu for Maria Luiza, Cadu for
Carlos Eduardo, Gracinha for Maria das Graças) and a nickname glued to the surname as a
handle ("zesilva" for José Silva) are the person's own name, so their own email or phone
links them; beside a sister with another compound name, the nickname joins only its own."""

from __future__ import annotations

from pathlib import Path

from identity.csv_resolve import resolve


def test_diminutives_compound_nicknames_and_glued_nicknames(warehouse_env: str, tmp_path: Path):
    ids = resolve(
        tmp_path,
        [
            # a family's phone: the shop knows Roberto and his wife; WhatsApp "Robertinho"
            ["p1", "shop", "rob.lima@gmail.com", "11974125836", "", "Roberto", "Lima"],
            ["p2", "shop", "carla.lima@gmail.com", "11974125836", "", "Carla", "Lima"],
            ["p3", "whatsapp", "", "11974125836", "", "Robertinho", ""],
            # an -inha on a name in -ia, beside her brother on the family's email
            ["j1", "shop", "familia.reis@gmail.com", "", "", "Márcia", "Reis"],
            ["j2", "whatsapp", "familia.reis@gmail.com", "", "", "Marcinha", ""],
            ["j3", "shop", "familia.reis@gmail.com", "", "", "Márcio", "Reis"],
            # two sisters on the house's phone: Malu is Maria Luiza, not Maria Clara
            ["m1", "shop", "malu.costa@gmail.com", "21974125836", "", "Maria Luiza", "Costa"],
            ["m2", "shop", "mclara@gmail.com", "21974125836", "", "Maria Clara", "Costa"],
            ["m3", "whatsapp", "", "21974125836", "", "Malu", "Costa"],
            # Cadu and Gracinha on their own emails, beside someone else on each
            ["c1", "crm", "ce.alves@gmail.com", "", "", "Carlos Eduardo", "Alves"],
            ["c2", "whatsapp", "ce.alves@gmail.com", "", "", "Cadu", ""],
            ["c3", "crm", "ce.alves@gmail.com", "", "", "Renata", "Alves"],
            ["g1", "shop", "mgracas@uol.com.br", "", "", "Maria das Graças", "Melo"],
            ["g2", "support", "mgracas@uol.com.br", "", "", "Gracinha", ""],
            ["g3", "shop", "mgracas@uol.com.br", "", "", "Otávio", "Melo"],
            # a help desk's user name gluing José's nickname to his surname
            ["z1", "shop", "familia.silva@gmail.com", "", "", "José", "Silva"],
            ["z2", "shop", "familia.silva@gmail.com", "", "", "Rita", "Silva"],
            ["z3", "support", "familia.silva@gmail.com", "", "", "zesilva_71", ""],
        ],
    )
    assert ids["p1"] == ids["p3"] != ids["p2"]
    assert ids["j1"] == ids["j2"] != ids["j3"]
    assert ids["m1"] == ids["m3"] != ids["m2"]
    assert ids["c1"] == ids["c2"] != ids["c3"]
    assert ids["g1"] == ids["g2"] != ids["g3"]
    assert ids["z1"] == ids["z3"] != ids["z2"]
