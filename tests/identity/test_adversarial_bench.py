"""The adversarial bench's scoring aids: the exact-identifier baselines and the sorting of
our errors by kind, on records made by hand (no warehouse, no Splink)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "identity"))

import adversarial_bench  # noqa: E402
import splink_anchor  # noqa: E402

FAKE = "12345678909"


def _records(rows: list[dict]) -> pd.DataFrame:
    base = {
        "email": None,
        "phone_e164": None,
        "cpf": None,
        "first_name": None,
        "family_name": None,
        "birth_date_key": None,
        "postcode_key": None,
        "city_key": None,
        "tags": [],
    }
    return pd.DataFrame([{**base, **row} for row in rows]).astype(object)


def test_exact_identifiers_with_and_without_the_surname_guard() -> None:
    records = _records(
        [
            {"phone_e164": "+5511", "family_name": "silva"},
            {"phone_e164": "+5511", "family_name": "silva", "email": "a@x"},
            {"phone_e164": "+5511", "family_name": "souza"},  # the household's phone
            {"email": "a@x", "family_name": None},  # no name: joins the value's family
        ]
    )
    loose = adversarial_bench.exact_identifier_clusters(records, surname_guard=False)
    assert loose.nunique() == 1
    guarded = adversarial_bench.exact_identifier_clusters(records, surname_guard=True)
    assert guarded[0] == guarded[1] == guarded[3] != guarded[2]


def test_errors_sorted_by_kind() -> None:
    records = _records(
        [
            # P1: own phone, split by us
            {"person_id": "P1", "customer_id": "C1", "phone_e164": "+551", "first_name": "ana"},
            {"person_id": "P1", "customer_id": "C2", "phone_e164": "+551", "first_name": "bia"},
            # P2: a record with only a fake CPF, another with an email
            {"person_id": "P2", "customer_id": "C3", "cpf": FAKE},
            {"person_id": "P2", "customer_id": "C4", "email": "z@x", "first_name": "ze"},
            # P3 and P4 merged by the household's landline; P5 and P6 by a fuzzy pair
            {"person_id": "P3", "customer_id": "C5", "phone_e164": "+552", "tags": []},
            {
                "person_id": "P4",
                "customer_id": "C5",
                "phone_e164": "+552",
                "tags": ["household_landline"],
            },
            {"person_id": "P5", "customer_id": "C6", "first_name": "maria"},
            {"person_id": "P6", "customer_id": "C6", "first_name": "maria"},
        ]  # fmt: skip
    )
    errors = adversarial_bench.error_kinds(records, {FAKE})
    assert errors["missed_pairs"] == {
        "own_identifier_blocked:phone_e164": 1,
        "no_valid_identifier_on_a_side (only a fake CPF)": 1,
    }
    assert errors["false_pairs"] == {
        "shared_phone:household": 1,
        "no_shared_identifier (fuzzy pairs)": 1,
    }
    assert (
        errors["missed_pairs_without_a_shared_identifier_by_what_else_agrees"][
            "no_valid_identifier_on_a_side (only a fake CPF): nothing in common"
        ]
        == 1
    )


def test_splink_gets_one_box_names_split_and_the_family_name() -> None:
    frame = pd.DataFrame(
        [
            {
                "first_name_key": None,
                "last_name_key": None,
                "full_name_key": "maria eduarda dos santos filho",
            },
            {
                "first_name_key": "jose carlos",
                "last_name_key": "da silva",
                "full_name_key": "jose carlos da silva",
            },
        ]  # fmt: skip
    ).reindex(columns=splink_anchor.COLUMNS)
    prepared = splink_anchor.prepare(frame)
    assert list(prepared["first_name_key"]) == ["maria", "jose"]
    assert list(prepared["family_name"]) == ["santos", "silva"]
