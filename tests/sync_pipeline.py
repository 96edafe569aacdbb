"""One pipeline for the reverse-ETL end-to-end tests: a world served by the sandbox,
extracted by the real taps into a fresh warehouse database, every sync model built by
dbt once, and then each sync test runs its own ``run_sync`` against its own emulated
destination.

Building it takes minutes (extract, identity, the customer marts); each sync test used
to build its own. The world is the tests' own copy (the syncs write to its
destinations, so never the read-only session ``world``); each destination's emulator,
its sync model and its ledger rows belong to one test file, so the tests do not see
each other's writes. A test that needs another state of the warehouse than "as built"
changes only its own sync model (e.g. rebuilds it with a shorter window).

The WhatsApp emulation posts to a webhook receiver of the pipeline's own (statuses of
the messages the abandoned-checkout sync sends), started with the sandbox, as the demo
does. The environment the pipeline runs in (warehouse URL, sandbox and receiver ports,
a private home) is set only while it is built, and again by the ``sync_pipeline``
fixture around each test that uses it: it does not leak into other tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from omnicanal.channels import IDENTITY_SOURCES_ENV, get_channel

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
PEOPLE = 200
SEED = 20250601
AS_OF = datetime(2025, 6, 1, 15, 0, 0, tzinfo=UTC)
#: Extracted and fed to identity: the commerce platforms (fct_orders, dim_customers),
#: Mailchimp (email consent) and Zendesk (its help-desk users, the Zendesk sync's rows).
PLATFORMS = ("shopify", "square", "vtex", "mailchimp", "zendesk")
#: The sync models the end-to-end tests push.
SYNC_MODELS = (
    "sync_shopify__recent_buyers",
    "sync_square__recent_store_buyers",
    "sync_whatsapp__abandoned_checkout",
    "sync_meta_ads__lapsed_customers",
    "sync_hubspot__recent_buyers",
    "sync_hubspot__customer_attributes",
    "sync_zendesk__recent_buyers",
)


@dataclass(frozen=True)
class SyncPipeline:
    """A built warehouse database, the sandbox over its world, and the environment
    (``env``) that points omnicanal's settings at both."""

    url: str
    world: object
    sandbox: object
    workdir: Path
    env: Mapping[str, str] = field(default_factory=dict)

    def rows(self, query: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(query, params or None).fetchall()

    def dbt(self, *args: str, **variables: object) -> str:
        """Run dbt on this database as the pipeline does (``as_of`` the world's, plus
        ``variables``); its output."""
        return run_dbt(
            self.url,
            self.workdir,
            PLATFORMS,
            *args,
            variables={"as_of": AS_OF.isoformat(), **variables},
        )


def run_dbt(
    url: str,
    workdir: Path,
    platforms: tuple[str, ...],
    *args: str,
    variables: Mapping[str, object] | None = None,
    timeout: float = 900,
) -> str:
    """dbt ``args`` on the database at ``url``, identity fed by ``platforms``."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    env = {
        **os.environ,
        "OMNICANAL_PG_HOST": str(info.get("host", "127.0.0.1")),
        "OMNICANAL_PG_PORT": str(info.get("port", "5432")),
        "OMNICANAL_PG_USER": str(info.get("user", "postgres")),
        "OMNICANAL_PG_PASSWORD": str(info.get("password", "")),
        "OMNICANAL_PG_DBNAME": str(info["dbname"]),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        IDENTITY_SOURCES_ENV: json.dumps(
            [feed.as_var(name) for name in platforms for feed in get_channel(name).identity]
        ),
    }
    command = [
        str(Path(sys.executable).with_name("dbt")),
        *args,
        *(["--vars", json.dumps(dict(variables))] if variables else []),
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(workdir / "target"),
        "--log-path",
        str(workdir / "logs"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    return done.stdout


@contextmanager
def sync_pipeline(pg_admin_url: str, workdir: Path) -> Iterator[SyncPipeline]:
    """The world extracted into a new database with every sync model built and tested;
    the database is dropped, the sandbox and the receiver stopped, at the end."""
    from omnicanal.channels import sources
    from omnicanal.config import WarehouseURL
    from omnicanal.demo import start_webhooks
    from omnicanal.extract import run_extract
    from omnicanal.sandbox import SandboxServer, generate_world
    from omnicanal.settings import get_settings

    admin = WarehouseURL.parse(pg_admin_url)
    dbname = f"omnicanal_syncs_{uuid.uuid4().hex[:10]}"
    url = WarehouseURL(admin.host, admin.port, admin.user, admin.password, dbname).url()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    world = generate_world(PEOPLE, SEED, as_of=AS_OF)  # its own: the syncs write to it
    with socket.socket() as free:  # the receiver's port, which the emulations post to
        free.bind(("127.0.0.1", 0))
        webhooks_port = free.getsockname()[1]
    env = {
        "OMNICANAL_WAREHOUSE_URL": url,
        # the receiver's store and the syncs' files, apart from other tests'
        "OMNICANAL_HOME": str(workdir / "home"),
        "OMNICANAL_WEBHOOKS_PORT": str(webhooks_port),
    }
    try:
        with ExitStack() as stack:
            with pytest.MonkeyPatch.context() as patch:
                for name, value in env.items():
                    patch.setenv(name, value)
                settings = get_settings()
                options = {
                    c.name: c.emulation.options_from_settings(settings)
                    for c in sources()
                    if c.source.delivery == "webhook" and c.emulation
                }
                sandbox = stack.enter_context(SandboxServer(world, **options))
                env |= {
                    "OMNICANAL_SANDBOX_PORT": str(sandbox.port),
                    "OMNICANAL_HUBSPOT_API_URL": sandbox.url,
                    "OMNICANAL_ZENDESK_API_URL": sandbox.url,
                }
                for name, value in env.items():
                    patch.setenv(name, value)
                start_webhooks(get_settings(), sandbox, stack)  # the receiver, the backlog
                for name in PLATFORMS:
                    run_extract(get_settings(), name, full_refresh=True)
                built = SyncPipeline(url, world, sandbox, workdir, dict(env))
                # the sync models, the consent mart the engine gates with, what they are
                # built from and the data tests on them; then the sync models' unit tests
                selected = [f"+{model}" for model in SYNC_MODELS]
                built.dbt(
                    "build",
                    "--select",
                    *selected,
                    "+customer_consent",
                    "resource_type:seed",
                    "--exclude",
                    "test_type:unit",  # other models' unit tests read channels not extracted
                    "--indirect-selection",
                    "cautious",  # not the tests of models that are not built here
                )
                built.dbt("test", "--select", *SYNC_MODELS, "--resource-type", "unit_test")
            yield built
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname))
            )


# ---------------------------------------------------------- the consent tests' steps


def build_consent(url: str, workdir: Path, platforms: tuple[str, ...]) -> None:
    """The pipeline's dbt step for consent, in one dbt build: the mart, what it is built
    from, and the mart's own tests (staging and identity have tests of their own)."""
    run_dbt(
        url,
        workdir,
        platforms,
        "build",
        "--select",
        "+customer_consent",
        "path:models/marts/customer/_customer__consent.yml",
        "--indirect-selection",
        "empty",
    )


def make_shoppers_sync_model(url: str) -> None:
    """``activation.sync_test_shoppers``: everyone with an email on a Shopify account,
    with their customer_id."""
    with psycopg.connect(url) as conn:
        conn.execute("create schema if not exists activation")
        conn.execute("drop table if exists activation.sync_test_shoppers")
        conn.execute(
            """create table activation.sync_test_shoppers as
               select distinct on (c.email_normalized) c.email_normalized as email,
                   r.customer_id
               from staging.stg_shopify__customers c
               join intermediate.int_identity__record_customers r
                   on r.record_key = 'shopify:' || c.shopify_customer_id
               where c.email_normalized is not null and not c.is_deleted
               order by c.email_normalized, r.customer_id"""
        )


def rows(url: str, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params or None).fetchall()
