"""The sandbox-based identity bench: its records generator keeps the promises the
bench's figures rest on, and its pairwise scores count pairs right without listing them."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "identity"))

import sandbox_bench  # noqa: E402
import sandbox_records  # noqa: E402


def test_generator_is_reproducible_and_sized() -> None:
    first = sandbox_records.generate(2000, seed=3)
    assert len(first) == 2000
    assert first == sandbox_records.generate(2000, seed=3)
    assert len({row[0] for _, row in first}) == 2000  # record ids unique


def test_every_record_shares_evidence_with_its_person() -> None:
    by_person: dict[str, list[dict]] = defaultdict(list)
    for person, row in sandbox_records.generate(3000, seed=5):
        by_person[person].append(dict(zip(sandbox_records.COLUMNS, row, strict=True)))
    bare = wa_ids = 0
    for rows in by_person.values():
        for row in rows:
            if row["source"] == "whatsapp" and row["wa_id"]:
                wa_ids += 1
                assert row["wa_id"].startswith("55") and len(row["wa_id"]) in (12, 13)
                assert row["phone"] is None
        for row in rows[1:]:
            if not any(row[kind] for kind in ("email", "phone", "wa_id", "cpf")):
                bare += 1
                # a record with no identifier repeats the first record's birth date and
                # address, so the fuzzy stage can find it
                assert row["birth_date"] == rows[0]["birth_date"]
                assert row["address"] == rows[0]["address"]
    assert bare > 0 and wa_ids > 0


def test_pair_scores_count_pairs() -> None:
    frame = pd.DataFrame(
        {"person_id": ["p", "p", "p", "q", "q"], "customer_id": ["a", "a", "b", "b", "c"]}
    )
    scores = sandbox_bench.pair_scores(frame)
    # true pairs: 3 (p) + 1 (q); predicted: 1 (a) + 1 (b); correct: the a pair
    assert scores["true_pairs"] == 4 and scores["predicted_pairs"] == 2
    assert scores["precision"] == 0.5 and scores["recall"] == 0.25
