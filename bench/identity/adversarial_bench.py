"""Ours and tuned Splink on the adversarial file (adversarial.py), in one run.

Ours is the whole ``omnicanal identity resolve`` (sandbox_bench.resolve, the same path
as the sandbox bench); Splink (splink_anchor.py) reads the records our models
normalised. Both are scored pairwise against the people who wrote the records; Splink
at each threshold of a sweep, with its best F1 and its best recall at precision
>= .999. Also the exact-identifier baseline (any shared normalised email, phone or CPF
links, no guard) and our errors sorted as issue 13 sorts them:

- missed pairs (same person, two customers): sharing a normalised email, phone or CPF
  (a guard blocked the person's own identifier; of them, those where a record holds a
  fake CPF), one record with no valid identifier, identifiers that differ;
- false pairs (two people, one customer): sharing a fake CPF or a cashier's CPF, a phone
  (the household's landline, a borrowed mobile, a recycled number, the store's phone),
  an email (a couple's, a placeholder), or no identifier at all (fuzzy pairs); each
  wrongly merged cluster's false pairs go to the first of these causes it shows.
"""

from __future__ import annotations

import itertools
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import adversarial
import pandas as pd
import sandbox_bench
import splink_anchor

IDENTIFIERS = ("email", "phone_e164", "cpf")


def exact_identifier_clusters(records: pd.DataFrame, surname_guard: bool) -> pd.Series:
    """Customer per record when shared normalised emails, phones and CPFs link; with
    ``surname_guard`` a value links only records whose family names agree (a record
    without one joins the value's most common family name)."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[a] = b

    families = list(records["family_name"]) if surname_guard else [None] * len(records)
    for column in IDENTIFIERS:
        holders: dict[str, list[int]] = defaultdict(list)
        for i, value in enumerate(records[column]):
            if value is not None and value == value:
                holders[value].append(i)
        for members in holders.values():
            groups: dict[str | None, list[int]] = defaultdict(list)
            for i in members:
                groups[families[i]].append(i)
            named = sorted((k for k in groups if k is not None), key=lambda k: -len(groups[k]))
            if named:
                groups[named[0]].extend(groups.pop(None, []))
            for group in groups.values():
                for i in group[1:]:
                    union(i, group[0])
    return pd.Series([find(i) for i in range(len(records))], index=records.index)


def _shared(a: dict, b: dict) -> list[str]:
    return [c for c in IDENTIFIERS if a[c] is not None and a[c] == b[c]]


def _has_identifier(record: dict, fakes: set[str]) -> bool:
    return any(record[c] is not None for c in IDENTIFIERS if c != "cpf") or (
        record["cpf"] is not None and record["cpf"] not in fakes
    )


def _fuzzy_evidence(a: dict, b: dict) -> str:
    """What else two records agree on: first name and family name, birth date,
    postcode, city (a missed pair with nothing in common is out of anyone's reach)."""

    def same(column: str) -> bool:
        return a[column] is not None and a[column] == b[column]

    name = "first+family name" if same("first_name") and same("family_name") else (
        "first name" if same("first_name") else "family name" if same("family_name") else ""
    )  # fmt: skip
    also = [c for c, col in (("birth date", "birth_date_key"), ("postcode", "postcode_key"),
                             ("city", "city_key")) if same(col)]  # fmt: skip
    parts = [p for p in (name, *also) if p]
    return " + ".join(parts) if parts else "nothing in common"


#: what merged two people, most telling first: a cluster's false pairs are counted under
#: the first cause any two of its records of different people show
CAUSES = (
    "fake_cpf",
    "cashier_cpf",
    "shared_phone:store",
    "shared_phone:recycled_number",
    "shared_phone:household",
    "shared_email:placeholder",
    "shared_email:household",
    "shared_phone:other",
    "shared_email:other",
    "shared_cpf:other",
)


def _pair_cause(a: dict, b: dict, fakes: set[str]) -> str | None:
    shared = _shared(a, b)
    tags = set(a["tags"]) | set(b["tags"])
    if "cpf" in shared and a["cpf"] in fakes:
        return "fake_cpf" if "fake_cpf" in tags else "cashier_cpf"
    if "phone_e164" in shared:
        if "store_phone" in tags:
            return "shared_phone:store"
        if "old_number" in tags:
            return "shared_phone:recycled_number"
        if tags & {"household_landline", "borrowed_mobile"}:
            return "shared_phone:household"
        return "shared_phone:other"
    if "email" in shared:
        if "junk_email" in tags:
            return "shared_email:placeholder"
        return "shared_email:household" if "household_email" in tags else "shared_email:other"
    return "shared_cpf:other" if shared else None


def _merge_cause(group: list[dict], fakes: set[str]) -> str:
    causes = {
        _pair_cause(a, b, fakes)
        for a, b in itertools.combinations(group, 2)
        if a["person_id"] != b["person_id"]
    }
    for cause in CAUSES:
        if cause in causes:
            return cause
    return "no_shared_identifier (fuzzy pairs)"


def error_kinds(records: pd.DataFrame, fakes: set[str], max_cluster: int = 400) -> dict:
    """Our missed and false pairs, counted by kind (see the module's docstring)."""
    rows = records.to_dict("records")
    missed: Counter = Counter()
    by_person: dict[str, list[dict]] = defaultdict(list)
    by_customer: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_person[row["person_id"]].append(row)
        by_customer[row["customer_id"]].append(row)
    evidence: Counter = Counter()
    for group in by_person.values():
        for a, b in itertools.combinations(group, 2):
            if a["customer_id"] == b["customer_id"]:
                continue
            shared = [c for c in _shared(a, b) if not (c == "cpf" and a["cpf"] in fakes)]
            fake_held = any(r["cpf"] in fakes for r in (a, b))
            if shared:
                kind = "own_identifier_blocked:" + "+".join(shared)
                if fake_held:
                    kind += " (a fake CPF on one side)"
            else:
                valid = [_has_identifier(r, fakes) for r in (a, b)]
                if not all(valid):
                    kind = "no_valid_identifier_on_a_side"
                    if any(r["cpf"] in fakes and not v for r, v in zip((a, b), valid, strict=True)):
                        kind += " (only a fake CPF)"
                else:
                    kind = "identifiers_differ"
                evidence[f"{kind}: {_fuzzy_evidence(a, b)}"] += 1
            missed[kind] += 1
    false: Counter = Counter()
    for group in by_customer.values():
        sizes = Counter(r["person_id"] for r in group)
        if len(sizes) < 2:
            continue
        n = len(group)
        pairs = n * (n - 1) // 2 - sum(s * (s - 1) // 2 for s in sizes.values())
        false[_merge_cause(group, fakes) if n <= max_cluster else "huge_cluster"] += pairs
    return {
        "missed_pairs": dict(missed.most_common()),
        "missed_pairs_without_a_shared_identifier_by_what_else_agrees": dict(
            evidence.most_common(12)
        ),
        "false_pairs": dict(false.most_common()),
    }


def run(settings, people: int, seed: int = 13, splink: bool = True) -> dict:
    from omnicanal.warehouse import connect

    data = adversarial.generate(people, seed=seed)
    schema = f"identity_bench_adversarial_{people}"
    with connect(settings) as conn:
        conn.execute(f'drop schema if exists "{schema}" cascade')
        conn.commit()
    rows = data.rows
    person_of = {f"{row[1]}:{row[0]}": person for person, row in rows}
    tags_of = {f"{row[1]}:{row[0]}": tags for (_, row), tags in zip(rows, data.tags, strict=True)}
    out: dict = {"people": len(data.people), "records": len(rows), "seed": seed}
    with tempfile.TemporaryDirectory(prefix="idbench-") as tmp:
        path = Path(tmp) / "adversarial.csv"
        adversarial.write_csv(rows, path)
        mapping, seconds, models, peak, report = sandbox_bench.resolve(
            settings, path, schema, len(rows)
        )
    customer_of = {f"{s}:{r}": c for s, r, c in mapping}
    records = splink_anchor.read_records(settings, schema)
    records["person_id"] = records["record_key"].map(person_of)
    records["customer_id"] = records["record_key"].map(customer_of)
    records["tags"] = records["record_key"].map(tags_of)
    records = records.astype(object).where(records.notna(), None)
    out["ours"] = {
        **sandbox_bench.pair_scores(records[["person_id", "customer_id"]]),
        "seconds": round(seconds, 2),
        "seconds_dbt": report["seconds_dbt"],
        "peak_memory_mb": round(peak / 2**20),
    }
    prepared = splink_anchor.prepare(records[splink_anchor.COLUMNS])
    records["first_name"] = prepared["first_name_key"]
    records["family_name"] = prepared["family_name"]
    for label, guard in (("no_guard", False), ("surname_guard", True)):
        exact = pd.DataFrame(
            {
                "person_id": records["person_id"],
                "customer_id": exact_identifier_clusters(records, surname_guard=guard),
            }
        )
        out[f"exact_identifiers_{label}"] = sandbox_bench.pair_scores(exact)
    fakes = {"".join(c for c in cpf if c.isdigit()) for cpf in data.fake_cpfs}
    out["ours_errors"] = error_kinds(records, fakes)
    if splink:
        per_threshold, splink_seconds, sessions = splink_anchor.run(records[splink_anchor.COLUMNS])
        out["splink"] = sandbox_bench.splink_scores(per_threshold, person_of, splink_seconds)
        out["splink"]["em_sessions"] = [list(rule) for rule in sessions]
        out["f1_ratio_ours_over_splink"] = round(out["ours"]["f1"] / out["splink"]["f1"], 4)
    return out
