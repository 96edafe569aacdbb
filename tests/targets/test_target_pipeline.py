"""The pipeline's way: ``tap-shopify | target-warehouse`` against the sandbox, twice.

Two processes joined by a pipe, configured as ``omnicanal.extract`` configures the
loader; the second run starts from the state the first one printed, as the pipeline
does, and must leave exactly one row per customer and order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from omnicanal.channels.shopify import SANDBOX_ACCESS_TOKEN as DEFAULT_SHOPIFY_TOKEN
from omnicanal.config import WarehouseURL
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import generate_world

BIN = Path(sys.executable).parent


def _run(tmp: Path, tap_config: dict, loader_config: dict, state: dict | None) -> list[dict]:
    (tmp / "tap.json").write_text(json.dumps(tap_config))
    (tmp / "loader.json").write_text(json.dumps(loader_config))
    tap_cmd = [str(BIN / "tap-shopify"), "--config", str(tmp / "tap.json")]
    if state:
        (tmp / "state.json").write_text(json.dumps(state))
        tap_cmd += ["--state", str(tmp / "state.json")]
    tap = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    loader = subprocess.run(
        [str(BIN / "target-warehouse"), "--config", str(tmp / "loader.json")],
        stdin=tap.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    tap.stdout.close()
    assert tap.wait() == 0
    assert loader.returncode == 0, loader.stderr[-2000:]
    return [json.loads(line) for line in loader.stdout.splitlines() if line.strip()]


def test_tap_shopify_into_target_warehouse(fresh_db, sql, tmp_path: Path):
    world = generate_world(40, seed=7, as_of=datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    url = WarehouseURL.parse(fresh_db)
    loader_config = {  # what omnicanal.extract passes its loader
        "host": url.host,
        "port": url.port,
        "user": url.user,
        "password": url.password,
        "database": url.dbname,
        "default_target_schema": "raw_shopify",
        "add_record_metadata": True,
        "activate_version": True,
        "hard_delete": False,
        "use_copy": True,
    }
    with SandboxServer(world) as server:
        tap_config = {"api_url": server.url, "access_token": DEFAULT_SHOPIFY_TOKEN}
        states = _run(tmp_path, tap_config, loader_config, None)
        assert states, "the target printed no STATE"
        first = sql("select count(*), count(distinct id) from raw_shopify.orders")
        assert first == [(len(world.slices["shopify"].orders), len(world.slices["shopify"].orders))]
        customers = sql("select count(*) from raw_shopify.customers")
        assert customers == [(len(world.slices["shopify"].customers),)]
        # incremental rerun from the printed state: nothing duplicated
        _run(tmp_path, tap_config, loader_config, states[-1])
    assert sql("select count(*), count(distinct id) from raw_shopify.orders") == first
    assert sql("select count(*) from raw_shopify._quarantine") == [(0,)]
    types = dict(
        sql(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw_shopify' and table_name = 'orders'"
        )
    )
    assert types["id"] == "bigint" and types["line_items"] == "jsonb"
    assert types["updated_at"] == "timestamp with time zone"
