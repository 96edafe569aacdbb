"""The Shopify recent-buyers tag end to end: taps → warehouse → dbt → sync → the shop.

A world of 200 people is served by the sandbox; the commerce taps and tap-mailchimp
extract it into a fresh warehouse database, dbt builds ``sync_shopify__recent_buyers``
(with identity and the customer marts beneath it) and ``omnicanal sync`` runs the
``shopify__recent_buyers`` exposure over HTTP against the emulated shop. The shop must
then hold exactly the world's ground truth (``channels.shopify.truth``): the tag on
those accounts and no others, their metafield, every other tag untouched; a second run
sends nothing; an account that leaves the segment loses our tag and only our tag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from omnicanal.channels import IDENTITY_SOURCES_ENV, get_channel
from omnicanal.channels.shopify.truth import (
    LAST_ORDER_METAFIELD,
    RECENT_BUYER_TAG,
    expected_recent_buyers,
    tagged,
)
from omnicanal.channels.shopify.writes import split_tags

REPO_ROOT = Path(__file__).resolve().parents[3]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
#: The commerce platforms (fct_orders, beneath the sync model, reads all three) and
#: Mailchimp, whose unsubscribes the consent mart reads.
PLATFORMS = ("shopify", "square", "vtex", "mailchimp")
SEED = 20250601
AS_OF = datetime(2025, 6, 1, 15, 0, 0, tzinfo=UTC)
SYNC = "shopify__recent_buyers"
MODEL = "sync_shopify__recent_buyers"


@dataclass(frozen=True)
class Pipeline:
    url: str
    world: object
    sandbox: object
    workdir: Path

    def dbt(self, *args: str, window_days: int = 90) -> None:
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        env = {
            **os.environ,
            "OMNICANAL_PG_HOST": str(info.get("host", "127.0.0.1")),
            "OMNICANAL_PG_PORT": str(info.get("port", "5432")),
            "OMNICANAL_PG_USER": str(info.get("user", "postgres")),
            "OMNICANAL_PG_PASSWORD": str(info.get("password", "")),
            "OMNICANAL_PG_DBNAME": str(info["dbname"]),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            IDENTITY_SOURCES_ENV: json.dumps(
                [feed.as_var(name) for name in PLATFORMS for feed in get_channel(name).identity]
            ),
        }
        variables = {"as_of": AS_OF.isoformat(), "recent_buyers_window_days": window_days}
        command = [
            str(Path(sys.executable).with_name("dbt")),
            *args,
            "--vars",
            json.dumps(variables),
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(self.workdir / "target"),
            "--log-path",
            str(self.workdir / "logs"),
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def pipeline(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    from omnicanal.config import WarehouseURL
    from omnicanal.extract import run_extract
    from omnicanal.sandbox import SandboxServer, generate_world
    from omnicanal.settings import get_settings

    admin = WarehouseURL.parse(pg_admin_url)
    dbname = f"omnicanal_shopify_sync_{uuid.uuid4().hex[:10]}"
    url = WarehouseURL(admin.host, admin.port, admin.user, admin.password, dbname).url()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    world = generate_world(200, SEED, as_of=AS_OF)  # its own: the sync writes to it
    try:
        with SandboxServer(world) as sandbox, pytest.MonkeyPatch.context() as patch:
            patch.setenv("OMNICANAL_WAREHOUSE_URL", url)
            patch.setenv("OMNICANAL_SANDBOX_PORT", str(sandbox.port))
            for name in PLATFORMS:
                run_extract(get_settings(), name, full_refresh=True)
            built = Pipeline(url, world, sandbox, tmp_path_factory.mktemp("shopify_sync"))
            # the models beneath the sync (and the consent mart), then the sync model's
            # own tests; the staging and identity tests belong to their own suites
            built.dbt(
                "build",
                "--select",
                f"+{MODEL}",
                "+customer_consent",
                "--indirect-selection",
                "empty",
            )
            built.dbt("test", "--select", MODEL)
            yield built
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname))
            )


def _tags(store) -> dict[int, list[str]]:
    return {c["id"]: split_tags([c.get("tags") or ""]) for c in store.customers}


def _metafields(emulator) -> dict[str, dict[str, str]]:
    return {
        f"gid://shopify/Customer/{owner}": {
            f"{ns}.{key}": m["value"] for (ns, key), m in held.items()
        }
        for owner, held in emulator.graph.metafields.items()
        if held
    }


def test_the_shop_holds_the_ground_truth_and_a_leaver_loses_only_our_tag(pipeline):
    from omnicanal.activation.engine import run_sync
    from omnicanal.settings import get_settings

    emulator = pipeline.sandbox.app.state.emulators["shopify"]
    store = emulator.store
    before = _tags(store)
    expected = expected_recent_buyers(pipeline.world)
    assert len(expected) > 10
    assert any(before[int(g.rsplit("/", 1)[1])] for g in expected), "no tagged buyer to keep"

    first = run_sync(get_settings(), SYNC)
    assert (first.inserted, first.failed, first.pending) == (len(expected), 0, 0), first
    assert tagged(store) == set(expected)
    assert _metafields(emulator) == expected
    after = _tags(store)
    for customer_id, tags in before.items():
        ours = [RECENT_BUYER_TAG] if f"gid://shopify/Customer/{customer_id}" in expected else []
        assert after[customer_id] == tags + ours, (customer_id, tags, after[customer_id])

    # nothing changed: nothing is sent
    writes = emulator.writes.tag_writes, emulator.writes.metafield_writes
    second = run_sync(get_settings(), SYNC)
    assert second.sent == 0 and second.unchanged == len(expected)
    assert (emulator.writes.tag_writes, emulator.writes.metafield_writes) == writes

    # a shorter window: the accounts that leave lose our tag, and only our tag
    pipeline.dbt("run", "--select", MODEL, window_days=30)
    narrower = expected_recent_buyers(pipeline.world, window_days=30)
    leavers = set(expected) - set(narrower)
    assert leavers and set(narrower) < set(expected)
    third = run_sync(get_settings(), SYNC)
    assert (third.removed, third.inserted, third.failed) == (len(leavers), 0, 0), third
    assert tagged(store) == set(narrower)
    final = _tags(store)
    for customer_id, tags in before.items():
        ours = [RECENT_BUYER_TAG] if f"gid://shopify/Customer/{customer_id}" in narrower else []
        assert final[customer_id] == tags + ours, (customer_id, tags, final[customer_id])
    for leaver in leavers:
        # the metafield stays: a removal takes away the membership, not what we recorded
        assert _metafields(emulator)[leaver] == expected[leaver]
    assert LAST_ORDER_METAFIELD in next(iter(_metafields(emulator).values()))
