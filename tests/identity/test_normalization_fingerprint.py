"""Records stored under an older normalisation are normalised again by the next run,
without --full-refresh: each record keeps the fingerprint of the code it was normalised
under (macro identity_normalization_fingerprint: the records model, the normalisation
macros as they render, the seeds it reads), and int_identity__record_changes lists a
record whose fingerprint is not the current one as changed."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import psycopg

from omnicanal.identity.resolve import resolve_file
from omnicanal.settings import get_settings

HEADER = ["record_id", "source", "email", "first_name", "last_name"]
#: one person's Gmail address typed two ways: one mailbox under Gmail's rules (dots and
#: "+tag" ignored), two addresses without them
ROWS = [
    ["a", "shop", "Ana.Souza@gmail.com", "", ""],
    ["b", "crm", "anasouza+loja@gmail.com", "", ""],
    ["c", "crm", "rui.campos@example.com", "Rui", "Campos"],
]
PROVIDER_RULES = {"identity_email_provider_rules": True}


def run(tmp_path: Path, schema: str = "identity_cli", extra_vars: dict | None = None) -> None:
    src = tmp_path / "in.csv"
    with src.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(ROWS)
    resolve_file(get_settings(), src, None, schema=schema, extra_vars=extra_vars)


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def customers(url: str, schema: str = "identity_cli") -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for key, customer in query(
        url, f"select record_key, customer_id from {schema}.int_identity__record_customers"
    ):
        groups.setdefault(customer, set()).add(key)
    return {frozenset(group) for group in groups.values()}


def records(url: str, schema: str = "identity_cli") -> list[tuple]:
    """The normalised records, every column but the record number (it is numbered by
    arrival in an incremental run) and the run's bookkeeping."""
    rows = query(
        url,
        "select to_jsonb(r) - 'record_num' - 'normalization_fingerprint'"
        f" from {schema}.int_identity__records as r order by record_key",
    )
    return [json.dumps(row, sort_keys=True) for (row,) in rows]


def test_a_changed_normalisation_normalises_every_record_again(
    warehouse_env: str, tmp_path: Path
) -> None:
    run(tmp_path)
    assert frozenset({"shop:a"}) in customers(warehouse_env)
    # a rerun under the same code finds nothing to do
    run(tmp_path)
    assert query(warehouse_env, "select * from identity_cli.int_identity__record_changes") == []

    # the email macro renders other SQL (Gmail's rules on): every record is changed,
    # normalised again, and Ana's two addresses are one customer
    run(tmp_path, extra_vars=PROVIDER_RULES)
    changes = query(
        warehouse_env, "select record_key, change from identity_cli.int_identity__record_changes"
    )
    assert sorted(changes) == [("crm:b", "changed"), ("crm:c", "changed"), ("shop:a", "changed")]
    assert frozenset({"shop:a", "crm:b"}) in customers(warehouse_env)
    emails = query(warehouse_env, "select distinct email from identity_cli.int_identity__records")
    assert ("anasouza@gmail.com",) in emails
    assert len(query(
        warehouse_env,
        "select distinct normalization_fingerprint from identity_cli.int_identity__records",
    )) == 1  # fmt: skip

    # and the result is the full run's under that code
    run(tmp_path, schema="identity_cli_full", extra_vars=PROVIDER_RULES)
    assert records(warehouse_env) == records(warehouse_env, "identity_cli_full")
    assert customers(warehouse_env) == customers(warehouse_env, "identity_cli_full")

    # a rerun under it changes nothing again
    run(tmp_path, extra_vars=PROVIDER_RULES)
    assert query(warehouse_env, "select * from identity_cli.int_identity__record_changes") == []


def test_records_from_before_the_fingerprint_are_normalised_again(
    warehouse_env: str, tmp_path: Path
) -> None:
    """A warehouse built before records kept their fingerprint (no such column), with a
    normalised value that today's code would not give: the next run normalises every
    record and keeps the fingerprint with each."""
    run(tmp_path)
    with psycopg.connect(warehouse_env) as conn:
        conn.execute("alter table identity_cli.int_identity__records drop column"
                     " normalization_fingerprint")  # fmt: skip
        conn.execute("update identity_cli.int_identity__records set email = 'stale@example.com'"
                     " where record_key = 'crm:c'")  # fmt: skip
    run(tmp_path)
    changes = query(
        warehouse_env, "select change, count(*) from identity_cli.int_identity__record_changes"
        " group by change",
    )  # fmt: skip
    assert changes == [("changed", 3)]
    assert query(
        warehouse_env,
        "select email from identity_cli.int_identity__records where record_key = 'crm:c'",
    ) == [("rui.campos@example.com",)]
    assert query(
        warehouse_env,
        "select count(*) from identity_cli.int_identity__records"
        " where normalization_fingerprint is null",
    ) == [(0,)]


PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
#: the macros int_identity__records calls that normalise nothing: hooks, the raw fields
#: (their changes change the raw fingerprint), the fingerprint itself
NOT_NORMALISING = {
    "identity_blocking_indexes", "identity_delete_changed", "identity_normalization_fingerprint",
    "identity_removed_terms_pre_hook", "identity_source_records", "identity_term_indexes",
    "identity_vacuum_analyze",
}  # fmt: skip


def test_every_macro_the_records_model_normalises_with_is_fingerprinted() -> None:
    """A macro int_identity__records starts calling for a normalised column must be in
    identity_normalization_macros(), or a change to it would go unnoticed."""
    defined = {
        match.group(1)
        for path in PROJECT.glob("macros/**/*.sql")
        for match in re.finditer(r"\{%-?\s*macro\s+(\w+)\s*\(", path.read_text())
    }
    model = (PROJECT / "models/intermediate/identity/int_identity__records.sql").read_text()
    jinja = " ".join(re.findall(r"\{\{.*?\}\}|\{%.*?%\}", model, flags=re.DOTALL))
    called = set(re.findall(r"\b(\w+)\s*\(", jinja)) & defined
    listing = (PROJECT / "macros/identity/identity_incremental.sql").read_text()
    body = listing.split("macro identity_normalization_macros()", 1)[1].split("endmacro", 1)[0]
    fingerprinted = set(re.findall(r"'(\w+)'", body))
    assert {"identity_email", "normalize_phone", "normalize_name_key"} <= called
    assert called - NOT_NORMALISING - fingerprinted == set()
    assert fingerprinted <= defined
