"""The identity tests' database: one per worker, emptied before each test.

Each test runs ``omnicanal identity resolve`` (a dbt build of the identity models) on a
database of its own state. dbt re-parses the whole project (about 800 nodes, 7-15 s)
whenever the profile changes, and the profile holds the database's name, so a new
database per test paid that parse in every test. Here every test of a worker gets the
same database, dropped back to empty before the test (not after: a failed test's tables
stay to look at), and dbt's partial parse under the worker's home carries over.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql


@pytest.fixture(scope="session")
def identity_db(pg_admin_url: str) -> Iterator[str]:
    from omnicanal.config import WarehouseURL

    name = f"omnicanal_identity_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    admin = WarehouseURL.parse(pg_admin_url)
    yield WarehouseURL(admin.host, admin.port, admin.user, admin.password, name).url()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        drop = sql.SQL("drop database if exists {} with (force)")
        conn.execute(drop.format(sql.Identifier(name)))


@pytest.fixture
def fresh_db(identity_db: str) -> str:
    """The worker's identity database with nothing in it: every schema a test, dbt or
    the resolver made is dropped, and ``public`` made again as Postgres makes it."""
    with psycopg.connect(identity_db, autocommit=True) as conn:
        schemas = conn.execute(
            "select nspname from pg_namespace where nspname <> 'information_schema'"
            " and nspname not like 'pg\\_%'"
        ).fetchall()
        for (schema,) in schemas:
            conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(schema)))
        conn.execute("create schema public")
        conn.execute("grant all on schema public to public")
        left = conn.execute(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema'"
        ).fetchone()[0]
    assert left == 0, f"{left} relations survived emptying {identity_db}"
    return identity_db
