"""Erase one person from the warehouse (LGPD art. 18, IV and VI).

1. **Who**: the request's identifiers, normalised as identity normalises them, find the
   person's identity records (``int_identity__records``: the email, its SHA-256, the
   phone or WhatsApp number in E.164, the CPF), their customer(s) in
   ``int_identity__record_customers``, and then every record of those customers in every
   source. Several customers for one request (a shared phone) are refused unless the
   caller says they are all the person's.
2. **Their tokens** (:mod:`.footprint`): the request's own values, every email, phone,
   CPF, platform id, social handle and record key of those records, the customer ids.
3. **Where**: every table of the warehouse (raw_*, staging, intermediate, marts,
   activation, any other schema but omnicanal's own bookkeeping) is read for rows that
   carry a token; in raw tables a second pass also takes the rows that name one of the
   first pass's records by id (the replies of an agent to the person's ticket).
4. **Erase**: those rows are deleted, all in one transaction with the register entry
   (:mod:`.register`), so analysts and syncs see the person gone at once, and the next
   sync run sends every destination the removal (rows that leave a sync model are
   removed from its destination). The register keeps the tokens' keyed hashes only, and
   each later extract drops what a platform serves again of the person.

Cost: one read of every table (a LIKE prefilter over each row's text, the JSON walk
only for the rows that pass): 5 s for a 60-people world, 178 s for a 10k-people
warehouse of 1.1 GB on a loaded machine (dry run, nice 19, load 9-11). With ``--yes``
every table is locked against writes (readers go on) for that time, so no load, dbt
rebuild or sync can change a row between its read and its delete: run it between
pipeline runs.

Every sync takes the person back on its next run: audience and mirror syncs because
their rows left the model, syncs in ``upsert`` mode (which otherwise keep what leaves
their model) because the engine reads ``erasure_customers``
(``omnicanal.activation.engine._departed``). ``privacy requests`` shows a destination
as pending until its sync has run.

The activation ledger (``omnicanal_activation``) is not touched here: it is how the next
sync knows what to remove. ``omnicanal privacy requests`` shows, per request, which
destinations still hold the person and forgets the ledger rows of those that were told.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from omnicanal.activation.hashing import normalize_email, normalize_phone
from omnicanal.errors import OmnicanalError
from omnicanal.privacy import register
from omnicanal.privacy.footprint import candidates, like_patterns
from omnicanal.sandbox.cpf import cpf_is_valid

#: schemas that are omnicanal's bookkeeping, never the person's data
BOOKKEEPING = ("omnicanal_activation", register.SCHEMA, "omnicanal_meta")
_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NON_DIGIT = re.compile(r"\D")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$")


class ErasureError(OmnicanalError):
    """A request that cannot be carried out as given; the message says why."""


@dataclass(frozen=True)
class Request:
    """Who to erase, as the data subject named themselves (one or more of each)."""

    emails: Sequence[str] = ()
    phones: Sequence[str] = ()
    cpfs: Sequence[str] = ()
    customer_ids: Sequence[str] = ()
    record_ids: Sequence[str] = ()
    request_id: str | None = None
    #: erase every customer the identifiers find, even several (a shared phone)
    all_matching: bool = False

    def tokens(self) -> dict[str, list[str]]:
        """Option -> the tokens of its values; a malformed value is an error naming the
        option and what is wrong with it (never the value: it is personal data)."""
        found: dict[str, list[str]] = {}
        for n, value in enumerate(self.emails, 1):
            email = normalize_email(value)
            if not email or not _EMAIL_SHAPE.match(email):
                raise ErasureError(f"--email (value {n}): not an email address (name@domain)")
            found.setdefault("--email", []).append(f"email:{email}")
        for n, value in enumerate(self.phones, 1):
            digits = normalize_phone(value)
            if not digits:
                raise ErasureError(
                    f"--phone (value {n}): not a phone number; give the area code (DDD) "
                    "and the number, e.g. +55 11 98765-4321"
                )
            found.setdefault("--phone", []).append(f"phone:+{digits}")
        for n, value in enumerate(self.cpfs, 1):
            digits = _NON_DIGIT.sub("", value)
            if len(digits) != 11:
                raise ErasureError(
                    f"--cpf (value {n}): a CPF has 11 digits, this one has {len(digits)}"
                )
            if not cpf_is_valid(digits):
                raise ErasureError(f"--cpf (value {n}): its check digits are wrong")
            found.setdefault("--cpf", []).append(f"cpf:{digits}")
        return found


@dataclass
class Plan:
    """What an erasure deletes (or, dry, would): counts only, no personal data."""

    request_id: str
    dry_run: bool
    identifiers: dict[str, int]
    customers: list[str]
    records: int
    tables: dict[str, int] = field(default_factory=dict)
    destinations: dict[str, int] = field(default_factory=dict)
    #: identity records per source (source -> count)
    sources: dict[str, int] = field(default_factory=dict)
    #: the options whose values found no identity record, e.g. "--email (value 1)"
    unmatched: list[str] = field(default_factory=list)
    #: the person's emails, phones and CPFs other customers' records carry too (kept)
    shared: int = 0

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def as_dict(self) -> dict:
        return {
            "request_id": self.request_id,
            "dry_run": self.dry_run,
            "identifiers": self.identifiers,
            "customers": len(self.customers),
            "records": self.records,
            "sources": self.sources,
            "rows": self.rows,
            "tables": self.tables,
            "destinations": self.destinations,
            "unmatched": self.unmatched,
            "shared": self.shared,
        }


def _channel_of_table(schema: str, table: str) -> str | None:
    """The channel whose rows a table holds: raw_<channel>, stg_/base_<channel>__*."""
    if schema.startswith("raw_"):
        return schema[4:]
    match = re.match(r"^(?:stg|base)_([a-z0-9]+)__", table)
    return match.group(1) if match else None


def _channel_of_source(source: str, channels: Sequence[str]) -> str | None:
    """The channel of an identity source or platform id type (shopify_orders, vtex_user)."""
    for name in sorted(channels, key=len, reverse=True):
        if source == name or source.startswith(name + "_"):
            return name
    return None


def _customers(conn, schema: str, request: Request, tokens: dict[str, list[str]]):
    """customer_id -> the options that found it; and the options that found nothing."""
    from omnicanal.identity.explain import _customer_of

    t = sql.Identifier
    found: dict[str, set[str]] = {}
    unmatched: list[str] = []
    for option, values in tokens.items():
        for n, token in enumerate(values, 1):
            kind, _, value = token.partition(":")
            if kind == "email":
                where = sql.SQL("r.email = %(v)s or r.email_sha256 = %(sha)s")
            elif kind == "phone":
                where = sql.SQL("r.phone_e164 = %(v)s or r.wa_id_e164 = %(v)s")
            else:
                where = sql.SQL("r.cpf = %(v)s")
            rows = conn.execute(
                sql.SQL(
                    "select distinct c.customer_id from {} r join {} c using (record_key) where {}"
                ).format(
                    t(schema, "int_identity__records"),
                    t(schema, "int_identity__record_customers"),
                    where,
                ),
                {"v": value, "sha": hashlib.sha256(value.encode()).hexdigest()},
            ).fetchall()
            if not rows:
                unmatched.append(f"{option} (value {n})")
            for (customer,) in rows:
                found.setdefault(customer, set()).add(option)
    for option, keys in (
        ("--customer-id", request.customer_ids),
        ("--record-id", request.record_ids),
    ):
        for n, key in enumerate(keys, 1):
            try:
                customer = _customer_of(conn, schema, key)
            except OmnicanalError as error:
                if "several sources" in str(error):
                    raise ErasureError(f"{option} (value {n}): {error}") from None
                unmatched.append(f"{option} (value {n})")
                continue
            found.setdefault(customer, set()).add(option)
    return found, unmatched


def _person_tokens(conn, schema: str, customers: list[str], channels: Sequence[str]):
    """Every token of the customers' identity records; and their record count per source."""
    tokens: set[str] = {f"any:{c.lower()}" for c in customers}
    per_source: dict[str, int] = {}
    rows = conn.execute(
        sql.SQL(
            """select r.record_key, r.source, r.source_record_id, r.email, r.email_sha256,
                      r.phone_e164, r.wa_id_e164, r.phone_raw, r.cpf, r.platform_ids,
                      r.social_handles
               from {} c join {} r using (record_key)
               where c.customer_id = any(%s)"""
        ).format(
            sql.Identifier(schema, "int_identity__record_customers"),
            sql.Identifier(schema, "int_identity__records"),
        ),
        (customers,),
    ).fetchall()
    for key, source, record_id, email, sha, phone, wa_id, phone_raw, cpf, ids, handles in rows:
        per_source[source] = per_source.get(source, 0) + 1
        tokens.add(f"any:{key.lower()}")
        channel = _channel_of_source(source, channels)
        if channel and record_id:
            tokens.add(f"id:{channel}:{record_id}")
        if email:
            tokens.add(f"email:{email}")
            tokens.add(f"any:{hashlib.sha256(email.encode()).hexdigest()}")
        if sha:
            tokens.add(f"any:{sha.lower()}")
        for number in (phone, wa_id):
            if number:
                tokens.add(f"phone:{number}")
        if phone_raw:
            digits = normalize_phone(phone_raw)
            if digits:
                tokens.add(f"phone:+{digits}")
        if cpf:
            tokens.add(f"cpf:{cpf}")
        for id_type, value in (ids or {}).items():
            channel = _channel_of_source(id_type, channels)
            if channel and value:
                tokens.add(f"id:{channel}:{value}")
        for network, handle in (handles or {}).items():
            channel = _channel_of_source(network, channels)
            if handle and channel:
                tokens.add(f"id:{channel}:{handle}")
    return tokens, per_source, len(rows)


def _shared(conn, schema: str, customers: list[str], tokens: set[str]) -> set[str]:
    """The email, phone and CPF tokens that records of other customers carry too (a
    household's landline, a family's email): they are not the person's alone, so they
    find no row; the person's own rows are found by their other tokens."""
    values = {kind: [] for kind in ("email", "phone", "cpf")}
    for token in tokens:
        kind, _, value = token.partition(":")
        if kind in values:
            values[kind].append(value)
    rows = conn.execute(
        sql.SQL(
            """select r.email, r.phone_e164, r.wa_id_e164, r.cpf
               from {} r join {} c using (record_key)
               where c.customer_id <> all(%(customers)s)
                 and (r.email = any(%(email)s) or r.phone_e164 = any(%(phone)s)
                      or r.wa_id_e164 = any(%(phone)s) or r.cpf = any(%(cpf)s))"""
        ).format(
            sql.Identifier(schema, "int_identity__records"),
            sql.Identifier(schema, "int_identity__record_customers"),
        ),
        {"customers": customers, **values},
    ).fetchall()
    shared = set()
    for email, phone, wa_id, cpf in rows:
        shared |= {f"email:{email}", f"phone:{phone}", f"phone:{wa_id}", f"cpf:{cpf}"}
    return shared & tokens


def _tables(conn) -> list[tuple[str, str]]:
    """Every base table outside Postgres's and omnicanal's bookkeeping schemas."""
    return conn.execute(
        """select table_schema, table_name from information_schema.tables
           where table_type = 'BASE TABLE'
             and table_schema not in ('pg_catalog', 'information_schema')
             and table_schema not like 'pg\\_%%'
             and table_schema <> all(%s)
           order by 1, 2""",
        (list(BOOKKEEPING),),
    ).fetchall()


def _primary_key(conn, schema: str, table: str) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            """select a.attname from pg_index i
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
               where i.indrelid = %s::regclass and i.indisprimary""",
            (sql.Identifier(schema, table).as_string(conn),),
        ).fetchall()
    ]


def _matching_rows(conn, schema: str, table: str, tokens: set[str], channel: str | None):
    """ctid and row (as JSON) of the rows of one table that carry a token."""
    likes, regexes = like_patterns(
        t for t in tokens if not t.startswith("id:") or t.split(":")[1] == channel
    )
    # the row's own text for the prefilter (half the time of its JSON's at 10k people);
    # the JSON, with its keys, only for the rows that pass
    text = sql.SQL("cast(t as text)")
    rows = conn.execute(
        sql.SQL(
            "select ctid, to_jsonb(t) from {} as t"
            " where lower({text}) like any(%s) or {text} ~ any(%s)"
        ).format(sql.Identifier(schema, table), text=text),
        (likes, regexes),
    ).fetchall()
    return [(ctid, row) for ctid, row in rows if any(c in tokens for c in candidates(row, channel))]


def _destinations(conn, customers: list[str]) -> dict[str, int]:
    """sync name -> rows its destination holds (the ledger says) of these customers."""
    if not register.exists(conn, register.LEDGER):
        return {}
    return dict(
        conn.execute(
            f"""select sync_name, count(*)::int from {register.LEDGER}
               where customer_id = any(%s) and present group by 1 order by 1""",
            (customers,),
        ).fetchall()
    )


def erase(
    conn: psycopg.Connection,
    request: Request,
    *,
    dry_run: bool = True,
    identity_schema: str = "intermediate",
) -> Plan:
    """Find and delete (or, ``dry_run``, count) the person's rows; see the module
    docstring. Commits the deletion and the register entry together, or nothing."""
    from omnicanal.channels import CHANNELS

    tokens = request.tokens()
    if not tokens and not request.customer_ids and not request.record_ids:
        raise ErasureError(
            "name the person: one or more of --email, --phone, --cpf, --customer-id, --record-id"
        )
    request_id = request.request_id or (
        f"lgpd-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
    )
    if not _REQUEST_ID.match(request_id):
        raise ErasureError("--request-id: letters, digits and . _ : - only, at most 80 characters")
    if not register.exists(conn, f"{identity_schema}.int_identity__record_customers"):
        raise ErasureError(
            f"no identity tables in schema {identity_schema}: build them first "
            "(omnicanal dbt build), or name their schema with --schema"
        )
    if (
        register.exists(conn, f"{register.SCHEMA}.erasure_requests")
        and conn.execute(
            f"select 1 from {register.SCHEMA}.erasure_requests where request_id = %s",
            (request_id,),
        ).fetchone()
    ):
        raise ErasureError(f"--request-id: request {request_id} is already in the register")

    found, unmatched = _customers(conn, identity_schema, request, tokens)
    customers = sorted(found)
    if len(customers) > 1 and not request.all_matching:
        raise ErasureError(
            f"the identifiers find {len(customers)} customers (a shared phone or email, or "
            "values of different people); name the person by a value only they have "
            "(--cpf, --customer-id), or pass --all-matching to erase them all"
        )
    channels = list(CHANNELS)
    person, per_source, records = _person_tokens(conn, identity_schema, customers, channels)
    person |= {token for values in tokens.values() for token in values}
    shared = _shared(conn, identity_schema, customers, person)
    person -= shared
    plan = Plan(
        request_id=request_id,
        dry_run=dry_run,
        identifiers={option: len(values) for option, values in tokens.items()}
        | {
            option: len(values)
            for option, values in (
                ("--customer-id", request.customer_ids),
                ("--record-id", request.record_ids),
            )
            if values
        },
        customers=customers,
        records=records,
        sources=dict(sorted(per_source.items())),
        unmatched=unmatched,
        shared=len(shared),
    )
    # first pass: rows with a token; second (raw only): rows naming those rows by id
    doomed: dict[tuple[str, str], set[str]] = {}
    own_ids: set[str] = set()
    tables = _tables(conn)
    if not dry_run:
        # no load, dbt rebuild or sync may change a row between its scan and its delete
        # (a row's ctid moves when it is updated); readers go on
        for schema, table in tables:
            conn.execute(
                sql.SQL("lock table {} in share row exclusive mode").format(
                    sql.Identifier(schema, table)
                )
            )
    for schema, table in tables:
        channel = _channel_of_table(schema, table)
        rows = _matching_rows(conn, schema, table, person, channel)
        if not rows:
            continue
        doomed[(schema, table)] = {ctid for ctid, _ in rows}
        key = _primary_key(conn, schema, table) if schema.startswith("raw_") else []
        if channel and len(key) == 1 and not table.startswith("_"):
            own_ids |= {f"id:{channel}:{row[key[0]]}" for _, row in rows if row.get(key[0])}
    own_ids -= person
    if own_ids:
        for schema, table in tables:
            channel = _channel_of_table(schema, table)
            if not schema.startswith("raw_"):
                continue
            rows = _matching_rows(conn, schema, table, own_ids, channel)
            if rows:
                doomed.setdefault((schema, table), set()).update(ctid for ctid, _ in rows)
    if not customers and not doomed:
        raise ErasureError(
            "nothing matches "
            + ", ".join(unmatched)
            + f": no identity record in {identity_schema} and no row anywhere carries it"
        )
    plan.tables = {f"{s}.{t}": len(ctids) for (s, t), ctids in sorted(doomed.items())}
    plan.destinations = _destinations(conn, customers)
    if dry_run:
        conn.rollback()
        return plan
    key = register.ensure(conn)
    conn.execute(
        f"""insert into {register.SCHEMA}.erasure_requests
            (request_id, identifiers, customers, rows_erased, tables, destinations)
            values (%s, %s, %s, %s, %s, %s)""",
        (
            request_id,
            register.json_dumps(plan.identifiers),
            len(customers),
            plan.rows,
            register.json_dumps(plan.tables),
            register.json_dumps(plan.destinations),
        ),
    )
    with conn.cursor() as cur:
        cur.executemany(
            f"insert into {register.SCHEMA}.erasure_tokens (token_hash, request_id)"
            " values (%s, %s) on conflict do nothing",
            [(register.token_hash(key, t), request_id) for t in sorted(person | own_ids)],
        )
        cur.executemany(
            f"insert into {register.SCHEMA}.erasure_customers (customer_id, request_id)"
            " values (%s, %s) on conflict do nothing",
            [(c, request_id) for c in customers],
        )
    for (schema, table), ctids in doomed.items():
        conn.execute(
            sql.SQL("delete from {} where ctid = any(%s::tid[])").format(
                sql.Identifier(schema, table)
            ),
            (sorted(ctids),),
        )
    register.mark_checked(conn, sorted({s for s, _ in tables if s.startswith("raw_")}))
    conn.commit()
    return plan
