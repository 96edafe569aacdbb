"""Term frequencies in the fuzzy stage, end to end through ``omnicanal identity resolve``:
an exact agreement on a common value ("Maria", "Silva") weighs less than one on a rare
value ("Eliseu", "Quaresma") with the same agreement pattern, the waterfall shows the
frequency behind each weight, and an incremental run leaves the counts a full run on the
same records computes."""

from __future__ import annotations

import csv
from pathlib import Path

import psycopg

from omnicanal.cli import main

HEADER = ["record_id", "source", "first_name", "last_name", "birth_date", "city", "postcode",
          "address"]  # fmt: skip

FIRST = ["Bruno", "Carla", "Davi", "Eva", "Fábio", "Gil", "Hugo", "Iara", "Jonas", "Lia"]
LAST = ["Lima", "Costa", "Rocha", "Mendes", "Ramos", "Reis", "Melo", "Pires", "Dias", "Luz"]


def people() -> list[dict[str, str]]:
    """Sixty people with a record in each of two sources; every other one is a Maria and
    every third a Silva (different people: their birth dates differ)."""
    rows = []
    for i in range(60):
        first = "Maria" if i % 2 == 0 else FIRST[i % 10]
        last = "Silva" if i % 3 == 0 else LAST[(i * 7) % 10]
        for copy, source in enumerate(("shop", "pos")):
            rows.append(
                {
                    "record_id": f"p{i}-{copy}",
                    "source": source,
                    "first_name": first.upper() if copy else first,
                    "last_name": last,
                    "birth_date": f"19{40 + i % 60:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                    "city": "Curitiba",
                    "postcode": f"8{i:04d}-000",
                    "address": f"Rua {i}, {i * 7}",
                }
            )
    return rows


#: two pairs with one agreement pattern: first name, last name and birth date exact,
#: nothing else known; one on common names, one on rare ones
PAIRS = [
    {"record_id": "maria-web", "source": "shop", "first_name": "Maria", "last_name": "Silva",
     "birth_date": "1990-05-12"},
    {"record_id": "maria-till", "source": "pos", "first_name": "MARIA", "last_name": "SILVA",
     "birth_date": "12/05/1990"},
    {"record_id": "eliseu-web", "source": "shop", "first_name": "Eliseu",
     "last_name": "Quaresma", "birth_date": "1985-03-03"},
    {"record_id": "eliseu-till", "source": "pos", "first_name": "ELISEU",
     "last_name": "QUARESMA", "birth_date": "03/03/1985"},
]  # fmt: skip


def resolve_dicts(
    tmp_path: Path, rows: list[dict[str, str]], name: str, *options: str
) -> dict[str, str]:
    src, out = tmp_path / f"{name}.csv", tmp_path / f"{name}.out.csv"
    with src.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows([row.get(column, "") for column in HEADER] for row in rows)
    assert main(["identity", "resolve", str(src), "-o", str(out), *options]) == 0
    with out.open() as handle:
        return {row["record_id"]: row["customer_id"] for row in csv.DictReader(handle)}


def pair_rows(conn: psycopg.Connection, schema: str, a: str, b: str) -> dict:
    row = conn.execute(
        f"""
        select c.levels, c.term_frequencies, p.match_weight
        from {schema}.int_identity__fuzzy_candidates as c
        join {schema}.int_identity__records as ra on ra.record_num = c.record_num_a
        join {schema}.int_identity__records as rb on rb.record_num = c.record_num_b
        left join {schema}.int_identity__fuzzy_pairs as p
            on p.record_num_a = c.record_num_a and p.record_num_b = c.record_num_b
        where array[ra.record_key, rb.record_key] <@ array[%s, %s]
        """,
        (a, b),
    ).fetchone()
    assert row is not None, f"{a} / {b} is no candidate pair"
    return {"levels": row[0], "frequencies": row[1], "weight": row[2]}


def test_a_common_name_weighs_less_than_a_rare_one(warehouse_env: str, tmp_path) -> None:
    ids = resolve_dicts(tmp_path, [*PAIRS, *people()], "tf")
    assert ids["eliseu-web"] == ids["eliseu-till"]
    with psycopg.connect(warehouse_env) as conn:
        maria = pair_rows(conn, "identity_cli", "shop:maria-web", "pos:maria-till")
        eliseu = pair_rows(conn, "identity_cli", "shop:eliseu-web", "pos:eliseu-till")
        # one pattern, so one weight without term frequencies
        assert maria["levels"] == eliseu["levels"]
        assert maria["levels"][:3] == [4, 4, 4]
        # Maria: 62 of 124 records hold it; Eliseu: 2
        assert maria["frequencies"][0] > 10 * eliseu["frequencies"][0]
        assert eliseu["weight"] is not None
        assert maria["weight"] is None or maria["weight"] < eliseu["weight"] - 3
        # the waterfall shows each exact agreement's frequency, weights sum to the pair's
        waterfall = conn.execute(
            """
            select w.comparison, w.term_frequency, w.weight, w.match_weight
            from identity_cli.int_identity__fuzzy_pair_weights as w
            join identity_cli.int_identity__records as ra on ra.record_num = w.record_num_a
            join identity_cli.int_identity__records as rb on rb.record_num = w.record_num_b
            where array[ra.record_key, rb.record_key] <@ array['shop:eliseu-web', 'pos:eliseu-till']
            order by w.comparison_index
            """
        ).fetchall()
    by_comparison = {row[0]: row for row in waterfall}
    assert by_comparison["first_name"][1] == eliseu["frequencies"][0]
    assert by_comparison["city"][1] is None
    assert abs(sum(row[2] for row in waterfall) - waterfall[0][3]) < 1e-9


def term_counts(conn: psycopg.Connection, schema: str) -> set[tuple[str, str, int]]:
    return set(
        conn.execute(
            f"select term_column, term, records from {schema}.int_identity__term_frequencies"
            " where records > 0 or term = ''"
        ).fetchall()
    )


def test_incremental_term_counts_equal_a_full_run(warehouse_env: str, tmp_path) -> None:
    rows = [*PAIRS, *people()]
    resolve_dicts(tmp_path, rows, "first")
    # one Maria becomes Mariana (and moves), one Silva leaves, an Eliseu arrives
    changed = [dict(row) for row in rows if row["record_id"] != "p3-0"]
    for row in changed:
        if row["record_id"] == "p0-1":
            row.update(first_name="Mariana", city="Recife")
    changed.append(
        {"record_id": "eliseu-crm", "source": "crm", "first_name": "Eliseu",
         "last_name": "Quaresma", "city": "Curitiba"}
    )  # fmt: skip
    resolve_dicts(tmp_path, changed, "second")
    resolve_dicts(tmp_path, changed, "full", "--schema", "identity_cli_full")
    with psycopg.connect(warehouse_env) as conn:
        incremental = term_counts(conn, "identity_cli")
        full = term_counts(conn, "identity_cli_full")
    assert ("first_name_key", "eliseu", 3) in full
    assert ("first_name_key", "mariana", 1) in full
    assert incremental == full
