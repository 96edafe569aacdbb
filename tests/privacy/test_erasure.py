"""``omnicanal privacy erase`` end to end, on the sync tests' pipeline of its own.

A world of 200 people is served by the sandbox, extracted by the real taps into a fresh
warehouse database, and dbt builds every sync model (identity, the customer marts and
the consent mart beneath them); the syncs then push their segments to the sandbox's
destinations. One person of the world's ground truth with records in at least three
sources, held by at least one destination, is erased by their email (upper-cased), CPF
(punctuated) and phone (written without the mobile ninth digit):

- a dry run counts and changes nothing (every table's rows as they were);
- the erasure deletes exactly the rows it reports, per table, and no other row;
- no column of any table carries the person's email, phone or CPF any more, nor
  does what the command printed;
- the next sync run removes them from every destination that held them, upsert syncs
  included (the Shopify shop loses our tag on their account), and ``privacy requests``
  says each was told and forgets the activation ledger's rows of them;
- a full-refresh extract of every platform (which serves them again) and a dbt run
  bring none of it back (the register counts what it dropped), and the other customers
  are as they were.

Plus the errors: a malformed email, phone or CPF names the option and what is wrong
(never the value), an identifier that matches nothing says so, and a shared one asks
for a more specific one.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sync_pipeline import PLATFORMS, SYNC_MODELS, SyncPipeline, sync_pipeline

from omnicanal.privacy.cli import register

SYNCS = tuple(model.removeprefix("sync_") for model in SYNC_MODELS)


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["privacy", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def pipeline(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncPipeline]:
    with sync_pipeline(pg_admin_url, tmp_path_factory.mktemp("privacy")) as built:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in built.env.items():
                patch.setenv(name, value)
            yield built


def _tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        """select table_schema, table_name from information_schema.tables
           where table_type = 'BASE TABLE'
             and table_schema not in ('pg_catalog', 'information_schema')
           order by 1, 2"""
    ).fetchall()


def _contents(url: str, skip: tuple[str, ...] = ()) -> dict[str, Counter]:
    """Every table's rows (as text), outside the schemas in ``skip``."""
    with psycopg.connect(url) as conn:
        return {
            f"{schema}.{table}": Counter(
                row[0]
                for row in conn.execute(
                    sql.SQL("select cast(t as text) from {} as t").format(
                        sql.Identifier(schema, table)
                    )
                )
            )
            for schema, table in _tables(conn)
            if schema not in skip
        }


def _carriers(url: str, email: str, phone: str, cpf: str, skip: tuple[str, ...] = ()) -> list:
    """(table, column, rows) of every column of every table whose text carries the email
    (any case), the phone's last eight digits (a separator allowed: 96568-7578) or the
    CPF (punctuated or not)."""
    last8 = phone[-8:]
    phone_re = f"{last8[:4]}[-. ]?{last8[4:]}"
    cpf_re = rf"{cpf[:3]}\.?{cpf[3:6]}\.?{cpf[6:9]}-?{cpf[9:]}"
    found = []
    with psycopg.connect(url) as conn:
        for schema, table in _tables(conn):
            if schema in skip:
                continue
            columns = conn.execute(
                """select column_name from information_schema.columns
                   where table_schema = %s and table_name = %s""",
                (schema, table),
            ).fetchall()
            for (column,) in columns:
                text = sql.SQL("cast({} as text)").format(sql.Identifier(column))
                count = conn.execute(
                    sql.SQL(
                        "select count(*) from {} where lower({text}) like %s"
                        " or {text} ~ %s or {text} ~ %s"
                    ).format(sql.Identifier(schema, table), text=text),
                    (f"%{email.lower()}%", phone_re, cpf_re),
                ).fetchone()[0]
                if count:
                    found.append((f"{schema}.{table}", column, count))
    return found


def _person(pipeline: SyncPipeline, removing: list[str]):
    """A person of the world's ground truth with records in three sources or more, all
    of whose customers are theirs alone and held by a destination of one of the
    ``removing`` syncs; with those customers."""
    world = pipeline.world
    sources: dict[str, set[str]] = {}
    keys: dict[str, set[str]] = {}
    for record in world.identity_records():
        sources.setdefault(record.person_id, set()).add(record.key.split(":")[0])
        keys.setdefault(record.person_id, set()).add(record.key)
    owner = {key: person for person, ks in keys.items() for key in ks}
    customers = pipeline.rows(
        "select record_key, customer_id from intermediate.int_identity__record_customers"
    )
    records_of: dict[str, set[str]] = {}
    for key, customer in customers:
        records_of.setdefault(customer, set()).add(key)
    held = {
        customer
        for (customer,) in pipeline.rows(
            """select distinct customer_id from omnicanal_activation.sync_ledger
               where present and sync_name = any(%s)""",
            removing,
        )
    }
    for person_id, found in sorted(sources.items(), key=lambda item: -len(item[1])):
        if len(found) < 3:
            continue
        theirs = {c for c, ks in records_of.items() if ks & keys[person_id]}
        alone = all(owner.get(k) == person_id for c in theirs for k in records_of[c])
        if theirs and alone and theirs & held:
            return world.person(person_id), sorted(theirs), sorted(found)
    raise AssertionError("no person in three sources held by a destination")


def test_bad_identifiers_name_the_option_and_never_the_value(pipeline, capsys):
    from omnicanal.errors import OmnicanalError

    cases = [
        (["--email", "maria.silva@"], "--email (value 1): not an email address"),
        (["--phone", "41234"], "--phone (value 1): not a phone number"),
        (["--cpf", "123.456.789-0"], "--cpf (value 1): a CPF has 11 digits, this one has 10"),
        (["--cpf", "123.456.789-00"], "--cpf (value 1): its check digits are wrong"),
        (["--email", "a@b.co", "--email", "x@"], "--email (value 2): not an email address"),
        ([], "name the person"),
        (["--email", "nobody.at.all@example.com"], "nothing matches --email (value 1)"),
        (["--customer-id", "no-such-customer"], "nothing matches --customer-id (value 1)"),
    ]
    for argv, message in cases:
        with pytest.raises(OmnicanalError) as raised:
            _cli("erase", *argv)
        assert message in str(raised.value)
        for value in argv:
            if not value.startswith("--"):
                assert value not in str(raised.value)
    # a phone two customers share asks for a more specific identifier
    shared = pipeline.rows(
        """select r.phone_e164 from intermediate.int_identity__records r
           join intermediate.int_identity__record_customers c using (record_key)
           where r.phone_e164 is not null
           group by 1 having count(distinct c.customer_id) > 1 limit 1"""
    )
    if shared:
        with pytest.raises(OmnicanalError, match="find 2 customers|--all-matching"):
            _cli("erase", "--phone", shared[0][0])
    assert capsys.readouterr().out == ""


def test_erasure_end_to_end(pipeline, capsys):
    from omnicanal.activation.definitions import load_definitions
    from omnicanal.activation.engine import run_sync
    from omnicanal.channels.shopify.truth import tagged
    from omnicanal.extract import run_extract
    from omnicanal.settings import get_settings

    url = pipeline.url
    for name in SYNCS:
        run_sync(get_settings(), name)
    definitions = load_definitions(get_settings().dbt_project_dir)
    removing = [name for name in SYNCS if definitions[name].mode != "upsert"]
    person, customers, sources = _person(pipeline, removing)
    assert len(sources) >= 3
    digits = person.phone.removeprefix("+55")
    old_phone = f"({digits[:2]}) {digits[3:7]}-{digits[7:]}"  # no ninth digit
    cpf = f"{person.cpf[:3]}.{person.cpf[3:6]}.{person.cpf[6:9]}-{person.cpf[9:]}"
    pii = (person.email, person.phone, person.cpf)
    before = _carriers(url, *pii)
    schemas = {table.split(".")[0] for table, _, _ in before}
    assert {"staging", "intermediate", "marts", "activation"} <= schemas, before
    assert len({s for s in schemas if s.startswith("raw_")}) >= 3, before
    argv = ["--email", person.email.upper(), "--cpf", cpf, "--phone", old_phone]
    if len(customers) > 1:
        argv.append("--all-matching")
    held = dict(
        pipeline.rows(
            """select sync_name, count(*)::int from omnicanal_activation.sync_ledger
               where customer_id = any(%s) and present group by 1""",
            customers,
        )
    )
    shopify_accounts = {
        f"gid://shopify/Customer/{record_id}"
        for (record_id,) in pipeline.rows(
            """select r.source_record_id from intermediate.int_identity__records r
               join intermediate.int_identity__record_customers c using (record_key)
               where c.customer_id = any(%s) and r.source = 'shopify'""",
            customers,
        )
    }
    store = pipeline.sandbox.app.state.emulators["shopify"].store

    # a dry run counts and changes nothing
    contents = _contents(url)
    others = _others(pipeline, customers)
    assert _cli("erase", *argv, "--json") == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] and dry["shared"] == 0 and dry["rows"] > 0
    assert _contents(url) == contents
    # a phone another customer's record carries too (a household's) finds no row of theirs
    other, phone = pipeline.rows(
        """select record_key, phone_e164 from intermediate.int_identity__records
           join intermediate.int_identity__record_customers using (record_key)
           where customer_id <> all(%s) order by record_key limit 1""",
        customers,
    )[0]
    (theirs,) = pipeline.rows(
        """select min(phone_e164) from intermediate.int_identity__records
           join intermediate.int_identity__record_customers using (record_key)
           where customer_id = any(%s)""",
        customers,
    )[0]
    assert theirs, "the person has no phone in identity"
    update = "update intermediate.int_identity__records set phone_e164 = %s where record_key = %s"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(update, (theirs, other))
        try:
            assert _cli("erase", "--email", person.email, "--json") == 0
        finally:
            conn.execute(update, (phone, other))
    assert json.loads(capsys.readouterr().out)["shared"] == 1
    assert _contents(url) == contents

    # the erasure deletes what it reports, and nothing else
    assert _cli("erase", *argv, "--yes", "--request-id", "DPO-2025-0042") == 0
    out = capsys.readouterr().out
    for value in (*pii, person.email.upper(), old_phone, cpf, *customers):
        assert value not in out
    reported = {
        table: int(count) for table, count in re.findall(r"^  (\S+\.\S+): (\d+)$", out, re.M)
    }
    assert re.search(rf"erased {sum(reported.values())} row\(s\) of {len(customers)} custom", out)
    after = _contents(url, skip=("omnicanal_privacy",))
    for table, rows in contents.items():
        if table.startswith("omnicanal_privacy"):
            continue
        gone = rows - after[table]
        assert not after[table] - rows, f"{table}: rows that were not there"
        assert sum(gone.values()) == reported.get(table, 0), table
    assert _carriers(url, *pii, skip=("omnicanal_activation",)) == []
    assert set(reported) >= {"marts.dim_customers", "intermediate.int_identity__records"}
    assert held, "the person was held by no destination"
    for sync, count in held.items():
        assert f"  {sync}: {count} row(s)" in out

    # the next sync run removes them from every destination, and the register says so
    assert shopify_accounts & tagged(store) or "shopify__recent_buyers" not in held
    # upsert syncs too, which otherwise keep what leaves their model (the engine's rule)
    assert any(definitions[name].mode == "upsert" for name in held), "no upsert sync held them"
    for name in SYNCS:
        result = run_sync(get_settings(), name)
        told = result.removed + result.departed
        assert (result.inserted, result.failed) == (0, 0), (name, result)
        assert told == held.get(name, 0), (name, result)
    assert not shopify_accounts & tagged(store)
    assert _cli("requests", "DPO-2025-0042") == 0
    status = capsys.readouterr().out
    for sync in held:
        assert f"destination {sync}: told (removed)" in status
    # the ledger forgot them
    remembered = pipeline.rows(
        """select distinct sync_name from omnicanal_activation.sync_ledger
           where customer_id = any(%s)""",
        customers,
    )
    assert remembered == []
    assert {table for table, _, _ in _carriers(url, *pii)} == set()

    # the platforms serve them again: nothing comes back
    for name in PLATFORMS:
        run_extract(get_settings(), name, full_refresh=True)
    blocked = pipeline.rows(
        "select table_name, sum(rows) from omnicanal_privacy.erasure_blocks group by 1"
    )
    assert {table.split(".")[0] for table, _ in blocked} >= {
        f"raw_{s}" for s in sources if f"raw_{s}" in {f"raw_{p}" for p in PLATFORMS}
    }
    pipeline.dbt("run", "--select", *(f"+{m}" for m in SYNC_MODELS), "+customer_consent")
    assert _carriers(url, *pii, skip=("omnicanal_activation",)) == []
    # and the other customers are as they were: their records, orders and consents (the
    # syncs' writes moved some accounts' updated_at, and survivorship may pick anew)
    assert _others(pipeline, customers) == others


def _others(pipeline: SyncPipeline, erased: list[str]) -> tuple[list, ...]:
    """Every other customer's records, orders and consents."""
    return (
        pipeline.rows(
            """select customer_id, record_keys, orders_count, lifetime_value
               from marts.dim_customers where customer_id <> all(%s) order by 1""",
            erased,
        ),
        pipeline.rows(
            """select order_key, customer_id, total_price from marts.fct_orders
               where customer_id is null or customer_id <> all(%s) order by 1""",
            erased,
        ),
        pipeline.rows(
            """select customer_id, channel, consents from marts.customer_consent
               where customer_id <> all(%s) order by 1, 2""",
            erased,
        ),
    )
