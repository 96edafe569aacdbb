"""Normalisation before hashing: each rule changes the hash the platform matches on."""

from __future__ import annotations

import hashlib

import pytest

from omnicanal.activation.hashing import (
    hashed,
    normalize_email,
    normalize_name,
    normalize_phone,
    sha256_hex,
)


def test_sha256_is_lowercase_hex_of_utf8():
    assert sha256_hex("joão") == hashlib.sha256("joão".encode()).hexdigest()
    assert sha256_hex("a") == sha256_hex("a").lower() and len(sha256_hex("a")) == 64
    assert hashed(None) is None and hashed("x") == sha256_hex("x")


def test_email_trimmed_and_lower_cased():
    assert normalize_email("  Ana.Souza@Gmail.COM ") == "ana.souza@gmail.com"
    assert normalize_email("") is None and normalize_email(None) is None
    assert normalize_email("not an email") is None


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("(11) 98765-4321", "5511987654321"),
        ("+55 11 98765-4321", "5511987654321"),
        ("5511987654321", "5511987654321"),
        ("0055 11 98765 4321", "5511987654321"),
        ("011 98765-4321", "5511987654321"),  # trunk zero
        ("0 21 11 98765-4321", "5511987654321"),  # trunk zero + carrier code
        ("(11) 8765-4321", "5511987654321"),  # old mobile without the ninth digit
        ("11 6123-4567", "5511961234567"),
        ("(11) 3456-7890", "551134567890"),  # landline: no ninth digit
        ("+1 (415) 555-2671", "14155552671"),  # another country keeps its code
        ("1234", None),
        ("", None),
        (None, None),
    ],
)
def test_phone_digits_with_country_code(raw, normalized):
    assert normalize_phone(raw) == normalized


def test_phone_with_another_default_country():
    assert normalize_phone("0415 555 2671", default_country="1") == "14155552671"


def test_name_lower_case_letters_only():
    assert normalize_name(" Ana-Maria ") == "anamaria"
    assert normalize_name("D'Ávila") == "dávila"
    assert normalize_name("Jose\u0301") == normalize_name("José") == "josé"  # NFC
    assert normalize_name("..") is None and normalize_name(None) is None
