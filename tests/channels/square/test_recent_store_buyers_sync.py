"""The Square recent-store-buyers group end to end: taps → warehouse → dbt → sync → Square.

A world of 200 people is served by the sandbox; the commerce taps and tap-mailchimp
extract it into a fresh warehouse database, dbt builds
``sync_square__recent_store_buyers`` (with identity, the customer marts and the consent
mart beneath it) and ``omnicanal sync`` runs the ``square__recent_store_buyers``
exposure over HTTP against the emulated seller. The seller must then hold exactly the
world's ground truth (``channels.square.truth``): those profiles in the group, no
others, each with its custom attribute; a group the merchant made (with Square's own
SDK) keeps its members; a second run sends nothing; a profile that leaves the segment
leaves our group and only our group.
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
from square import Square

from omnicanal.channels import IDENTITY_SOURCES_ENV, get_channel
from omnicanal.channels.square import SANDBOX_ACCESS_TOKEN
from omnicanal.channels.square.truth import (
    LAST_SALE_ATTRIBUTE,
    RECENT_STORE_BUYERS_GROUP,
    expected_recent_store_buyers,
    group_members,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
#: The commerce platforms (fct_orders and dim_customers read all three) and Mailchimp,
#: whose unsubscribes the consent mart reads.
PLATFORMS = ("shopify", "square", "vtex", "mailchimp")
SEED = 20250601
AS_OF = datetime(2025, 6, 1, 15, 0, 0, tzinfo=UTC)
SYNC = "square__recent_store_buyers"
MODEL = "sync_square__recent_store_buyers"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:square")


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
        variables = {"as_of": AS_OF.isoformat(), "recent_store_buyers_window_days": window_days}
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
    dbname = f"omnicanal_square_sync_{uuid.uuid4().hex[:10]}"
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
            built = Pipeline(url, world, sandbox, tmp_path_factory.mktemp("square_sync"))
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


def _attributes(emulator, members: set[str]) -> dict[str, dict[str, str]]:
    return {
        customer_id: {
            key: attribute["value"]
            for key, attribute in (emulator.writes.attributes.get(customer_id) or {}).items()
        }
        for customer_id in members
    }


def test_the_till_sees_the_ground_truth_and_a_leaver_leaves_only_our_group(pipeline):
    from omnicanal.activation.engine import run_sync
    from omnicanal.settings import get_settings

    emulator = pipeline.sandbox.app.state.emulators["square"]
    expected = expected_recent_store_buyers(pipeline.world)
    assert len(expected) > 10

    # the merchant's own group, made with Square's SDK, holding some of the same people
    sdk = Square(token=SANDBOX_ACCESS_TOKEN, base_url=pipeline.sandbox.url)
    vip = sdk.customers.groups.create(group={"name": "Clientes VIP"}).group
    regulars = sorted(expected)[::3]
    for customer_id in regulars:
        sdk.customers.groups.add(customer_id=customer_id, group_id=vip.id)

    first = run_sync(get_settings(), SYNC)
    assert (first.inserted, first.failed, first.pending) == (len(expected), 0, 0), first
    assert group_members(emulator) == set(expected)
    assert _attributes(emulator, set(expected)) == expected
    ours = emulator.writes.group_named(RECENT_STORE_BUYERS_GROUP)
    profile = sdk.customers.get(customer_id=regulars[0]).customer
    assert set(profile.group_ids) == {vip.id, ours["id"]}

    # nothing changed: nothing is sent
    writes = emulator.writes.membership_writes, emulator.writes.attribute_writes
    second = run_sync(get_settings(), SYNC)
    assert second.sent == 0 and second.unchanged == len(expected)
    assert (emulator.writes.membership_writes, emulator.writes.attribute_writes) == writes

    # a shorter window: the profiles that leave go out of our group, and only ours
    pipeline.dbt("run", "--select", MODEL, window_days=30)
    narrower = expected_recent_store_buyers(pipeline.world, window_days=30)
    leavers = set(expected) - set(narrower)
    assert leavers and set(narrower) < set(expected)
    third = run_sync(get_settings(), SYNC)
    assert (third.removed, third.inserted, third.failed) == (len(leavers), 0, 0), third
    assert group_members(emulator) == set(narrower)
    assert emulator.writes.members(vip.id) == set(regulars)
    assert leavers & set(regulars), "no leaver in the merchant's group to keep"
    for leaver in leavers:
        # the attribute stays: a removal takes away the membership, not what we recorded
        assert _attributes(emulator, {leaver})[leaver] == expected[leaver]
    assert LAST_SALE_ATTRIBUTE in next(iter(expected.values()))
