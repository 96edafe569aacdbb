"""``omnicanal identity resolve`` on rows written as a CSV file, read back as
record id -> customer id: the command line as a user runs it, for the identity tests."""

from __future__ import annotations

import csv
from pathlib import Path

from omnicanal.cli import main

HEADER = ["record_id", "source", "email", "phone", "cpf", "first_name", "last_name"]


def resolve(tmp_path: Path, rows: list[list[str]], header: list[str] = HEADER) -> dict[str, str]:
    src = tmp_path / "in.csv"
    with src.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    out = tmp_path / "out.csv"
    assert main(["identity", "resolve", str(src), "-o", str(out)]) == 0
    with out.open() as handle:
        return {row["record_id"]: row["customer_id"] for row in csv.DictReader(handle)}
