"""What marks a row as a person's (``omnicanal.privacy.footprint``): the tokens a row
carries, as the erasure finds them in plain text and the register in keyed hashes."""

from __future__ import annotations

from omnicanal.privacy.footprint import candidates, like_patterns, matches

PERSON = {
    "email:paulo.conceicao49@gmail.com",
    "phone:+5521965687578",
    "cpf:06008696018",
    "id:shopify:7000018391240",
    "id:hubspot:44001",
    "any:63f636f06f4c32fbec69cf1628296dc8",
}


def test_identifiers_are_found_in_any_shape_they_were_typed():
    rows = [
        {"customer": {"default_email_address": {"email_address": "PAULO.CONCEICAO49@GMAIL.COM"}}},
        {"note": "cliente pediu troca, contato paulo.conceicao49@gmail.com."},
        {"phone": "(21) 6568-7578"},  # the mobile written before the ninth digit
        {"from": "5521965687578"},  # a WhatsApp id
        {"document": "060.086.960-18"},
        {"customer": {"id": "gid://shopify/Customer/7000018391240"}},
        {"hs_object_id": 44001},  # HubSpot's contact id: a number under an id key
        {"customer_id": "63f636f06f4c32fbec69cf1628296dc8"},
    ]
    for row in rows:
        assert matches(row, "shopify" if "customer" in row else "hubspot", PERSON), row


def test_a_number_is_an_id_only_under_an_id_key_of_its_own_channel():
    assert not matches({"amount": 44001}, "hubspot", PERSON)
    assert not matches({"id": 44001}, "zendesk", PERSON)  # another platform's 44001
    assert matches({"id": 44001}, "hubspot", PERSON)
    assert not matches({"phone": "(21) 96568-7579"}, None, PERSON)
    assert not matches({"document": "060.086.960-19"}, None, PERSON)
    assert not matches({"email": "other@gmail.com", "name": "Paulo Conceição"}, None, PERSON)


def test_every_candidate_is_a_typed_token():
    tokens = set(candidates({"email": "A@B.com", "id": 7}, "vtex"))
    assert {"email:a@b.com", "id:vtex:7", "any:a@b.com"} <= tokens


def test_the_sql_prefilter_lets_every_shape_through():
    likes, regexes = like_patterns(PERSON)
    assert "%paulo.conceicao49@gmail.com%" in likes
    assert "%060%086%960%18%" in likes
    assert "6568[-. ]?7578" in regexes
    assert "%7000018391240%" in likes
