"""A record the platform deletes: soft-deleted in raw by a full refresh, out of identity.

Per commerce channel: a customer is deleted through the emulator (over HTTP, as the
platform's own delete would), an incremental extract does not notice (the platform's
list just stops showing it), a full-refresh extract does: the tap stamps the full sync
with a table version and activates it, and the loader sets ``_sdc_deleted_at`` on the
row the sync no longer found instead of dropping it. Staging keeps the row with
``is_deleted``, and identity resolution (the channel's IdentityFeed ``where``) no
longer counts it. Customers the world deleted before ``as_of`` never reach raw at all.
Shopify also deletes products: the same soft delete, flagged in ``stg_shopify__products``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from omnicanal.channels import CHANNELS
from omnicanal.extract import run_extract
from omnicanal.sandbox import SandboxServer, generate_world
from omnicanal.settings import get_settings

OMNICANAL = str(Path(sys.executable).with_name("omnicanal"))
AS_OF = datetime(2025, 6, 1, 15, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    channel: str
    #: The emulator's list of live customer records, and the world's deleted ones.
    records: Callable[[Any], list[dict[str, Any]]]
    #: Which record to delete (Shopify deletes only customers without orders).
    deletable: Callable[[dict[str, Any]], bool]
    delete_path: str
    stg_model: str
    stg_id: str
    people: int = 60


CASES = [
    Case(
        "shopify",
        lambda world: world.slices["shopify"].customers,
        lambda c: not c["orders_count"],
        "/_sandbox/shopify/customers/{id}/delete",
        "stg_shopify__customers",
        "shopify_customer_id",
    ),
    Case(
        "square",
        lambda world: world.slices["square"].customers,
        lambda c: True,
        "/_sandbox/square/customers/{id}/delete",
        "stg_square__customers",
        "square_customer_id",
        people=120,
    ),
    Case(
        "vtex",
        lambda world: world.slices["vtex"].profiles,
        lambda c: True,
        "/_sandbox/vtex/profiles/{id}/delete",
        "stg_vtex__customers",
        "vtex_profile_id",
    ),
]


def _plain(record_id: Any) -> str:
    """An id as staging writes it (Shopify's raw ids may be GraphQL gids)."""
    return str(record_id).rsplit("/", 1)[-1]


def _check_deleted_product(url: str, world: Any, warehouse: str, settings: Any) -> None:
    """Shopify deletes products too (orders keep their lines): the same soft delete."""
    product = world.slices["shopify"].products[0]
    assert httpx.post(f"{url}/_sandbox/shopify/products/{product['id']}/delete").status_code == 200
    run_extract(settings, "shopify", full_refresh=True)
    products = dict(rows(warehouse, "select id::text, _sdc_deleted_at from raw_shopify.products"))
    assert products[_plain(product["id"])] is not None
    assert sum(at is not None for at in products.values()) == 1
    assert len(products) == len(world.slices["shopify"].products) + 1


def rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def dbt(*args: str) -> None:
    built = subprocess.run(
        [OMNICANAL, "dbt", *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-2000:]


def build_staging_and_identity(case: Case) -> None:
    """Staging, then identity's records fed by this channel's customers alone (and the
    identity seeds they read, loaded first), in one dbt call: models and seeds, no tests."""
    feeds = [feed.as_var(case.channel) for feed in CHANNELS[case.channel].identity]
    customers_feed = next(f for f in feeds if f["model"] == case.stg_model)
    dbt(
        "build",
        "--select",
        f"path:seeds/identity staging.{case.channel}"
        " int_identity__record_changes int_identity__records",
        "--exclude-resource-type",
        "test",
        "unit_test",
        "--vars",
        json.dumps({"identity_sources": [customers_feed]}),
    )


@pytest.mark.parametrize("case", CASES, ids=[c.channel for c in CASES])
def test_a_deleted_customer_is_soft_deleted_and_leaves_identity(
    case: Case, warehouse_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = generate_world(case.people, 20250601, as_of=AS_OF)
    options = {"shopify": {"bulk_delay": 0.05}} if case.channel == "shopify" else {}
    with SandboxServer(world, **options) as server:
        monkeypatch.setenv(f"OMNICANAL_{case.channel.upper()}_API_URL", server.url)
        settings = get_settings()
        live = case.records(world)
        deleted_before = {_plain(e["id"]) for e in world.slices[case.channel].deleted}
        run_extract(settings, case.channel)
        raw = f"raw_{case.channel}.customers"
        loaded = {
            _plain(r[0]): r[1]
            for r in rows(warehouse_env, f"select id, _sdc_deleted_at from {raw}")
        }
        assert set(loaded) == {_plain(c["id"]) for c in live}
        assert not deleted_before & set(loaded)  # deleted before as_of: never served
        assert set(loaded.values()) == {None}
        build_staging_and_identity(case)  # before the deletion: later builds are incremental

        victim = next(c for c in live if case.deletable(c))
        answer = httpx.post(server.url + case.delete_path.format(id=victim["id"]))
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == victim["id"]
        assert victim["id"] in {e["id"] for e in world.slices[case.channel].deleted}
        gone = _plain(victim["id"])

        # an incremental sync cannot see a deletion: the row stays as it was
        run_extract(settings, case.channel)
        retired = f"select count(*) from {raw} where _sdc_deleted_at is not null"
        assert rows(warehouse_env, retired) == [(0,)]

        report = run_extract(settings, case.channel, full_refresh=True)
        after = {
            _plain(r[0]): r[1]
            for r in rows(warehouse_env, f"select id, _sdc_deleted_at from {raw}")
        }
        assert report.rows["customers"] == len(loaded)  # kept, not lost
        assert after[gone] is not None
        assert all(at is None for key, at in after.items() if key != gone)
        if case.channel == "shopify":
            _check_deleted_product(server.url, world, warehouse_env, settings)

    # the incremental build after the full refresh sees the deletion: the loader's soft
    # delete stamps the row's batch, so staging reads it again
    build_staging_and_identity(case)
    staged = dict(
        rows(warehouse_env, f"select {case.stg_id}::text, is_deleted from staging.{case.stg_model}")
    )
    assert staged[gone] is True and sum(staged.values()) == 1
    assert len(staged) == len(loaded)
    schema = rows(
        warehouse_env,
        "select table_schema from information_schema.tables"
        " where table_name = 'int_identity__records'",
    )[0][0]
    keys = {
        r[0] for r in rows(warehouse_env, f"select record_key from {schema}.int_identity__records")
    }
    assert f"{case.channel}:{gone}" not in keys
    assert len(keys) == len(loaded) - 1
    if case.channel == "shopify":
        flagged = rows(
            warehouse_env,
            "select count(*) filter (where is_deleted) from staging.stg_shopify__products",
        )
        assert flagged == [(1,)]


# --- what each emulation serves once a record is deleted (no warehouse: fast) -----------


@pytest.fixture(scope="module")
def small() -> Any:
    with SandboxServer(generate_world(60, 7, as_of=AS_OF)) as server:
        yield server


def test_shopify_deletes_only_customers_without_orders_and_forgets_them(small) -> None:
    from omnicanal.channels.shopify import SANDBOX_ACCESS_TOKEN
    from omnicanal.channels.shopify.versions import supported_versions

    store = small.app.state.world.slices["shopify"]
    buyer = next(c for c in store.customers if c["orders_count"])
    refused = httpx.post(f"{small.url}/_sandbox/shopify/customers/{buyer['id']}/delete")
    assert refused.status_code == 422 and "orders" in refused.json()["errors"]
    assert buyer in store.customers

    victim = next(c for c in store.customers if not c["orders_count"])
    assert httpx.post(f"{small.url}/_sandbox/shopify/customers/{victim['id']}/delete").is_success
    gid = f"gid://shopify/Customer/{victim['id']}"
    query = "query($id: ID!) { customer(id: $id) { id } nodes(ids: [$id]) { id } "
    query += "customers(first: 250) { nodes { id } } }"
    answer = httpx.post(
        f"{small.url}/admin/api/{supported_versions()[-1]}/graphql.json",
        json={"query": query, "variables": {"id": gid}},
        headers={"X-Shopify-Access-Token": SANDBOX_ACCESS_TOKEN},
    ).json()["data"]
    assert answer["customer"] is None and answer["nodes"] == [None]
    assert gid not in {n["id"] for n in answer["customers"]["nodes"]}
    again = httpx.post(f"{small.url}/_sandbox/shopify/customers/{victim['id']}/delete")
    assert again.status_code == 404


def test_square_forgets_a_deleted_customer_and_keeps_the_orders(small) -> None:
    from omnicanal.channels.square import SANDBOX_ACCESS_TOKEN

    shop = small.app.state.world.slices["square"]
    ordered = {o.get("customer_id") for o in shop.orders}
    victim = next(c for c in shop.customers if c["id"] in ordered)
    orders_before = len(shop.orders)
    assert httpx.post(f"{small.url}/_sandbox/square/customers/{victim['id']}/delete").is_success
    auth = {"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}"}
    retrieved = httpx.get(f"{small.url}/v2/customers/{victim['id']}", headers=auth)
    assert retrieved.status_code == 404
    assert retrieved.json()["errors"][0]["code"] == "NOT_FOUND"
    listed = httpx.get(f"{small.url}/v2/customers", params={"limit": 100}, headers=auth).json()
    searched = httpx.post(
        f"{small.url}/v2/customers/search", json={"limit": 100}, headers=auth
    ).json()
    for page in (listed, searched):
        assert victim["id"] not in {c["id"] for c in page.get("customers", [])}
    assert len(shop.orders) == orders_before
    assert any(o.get("customer_id") == victim["id"] for o in shop.orders)


def test_vtex_master_data_forgets_a_deleted_profile(small) -> None:
    from omnicanal.channels.vtex import SANDBOX_APP_KEY, SANDBOX_APP_TOKEN

    store = small.app.state.world.slices["vtex"]
    victim = store.profiles[0]
    total = len(store.profiles)
    assert httpx.post(f"{small.url}/_sandbox/vtex/profiles/{victim['id']}/delete").is_success
    auth = {"X-VTEX-API-AppKey": SANDBOX_APP_KEY, "X-VTEX-API-AppToken": SANDBOX_APP_TOKEN}
    params = {"_fields": "id", "_size": 1000}
    scrolled = httpx.get(f"{small.url}/api/dataentities/CL/scroll", params=params, headers=auth)
    searched = httpx.get(
        f"{small.url}/api/dataentities/CL/search",
        params={"_fields": "id", "_where": f"id={victim['id']}"},
        headers=auth,
    )
    assert scrolled.headers["REST-Content-Total"] == str(total - 1)
    assert victim["id"] not in {p["id"] for p in scrolled.json()}
    assert searched.status_code == 200 and searched.json() == []
    # the orders still point at the profile's userId
    assert any(o["clientProfileData"]["userProfileId"] == victim["userId"] for o in store.orders)


# --- a full sync killed before its ACTIVATE_VERSION, and full syncs on a schedule -------


def _tap_lines(tap: str, config: Path, state: dict | None, tmp: Path) -> list[str]:
    cmd = [str(Path(sys.executable).with_name(tap)), "--config", str(config)]
    if state is not None:
        (tmp / "state.json").write_text(json.dumps(state))
        cmd += ["--state", str(tmp / "state.json")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def _load(lines: list[str], loader_config: Path) -> None:
    target = str(Path(sys.executable).with_name("target-warehouse"))
    done = subprocess.run(
        [target, "--config", str(loader_config)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _activations(lines: list[str], stream: str) -> list[int]:
    messages = [json.loads(line) for line in lines]
    return [
        m["version"]
        for m in messages
        if m.get("type") == "ACTIVATE_VERSION" and m.get("stream") == stream
    ]


def test_a_full_sync_killed_before_activating_is_redone_and_full_syncs_recur(
    warehouse_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The SDK commits a full sync's last bookmark before the tap can send
    ACTIVATE_VERSION: a run killed right there must not leave the next runs incremental
    for ever (deletions never retired). And a stream with a bookmark still syncs in full
    once ``full_sync_every_days`` have passed, so deletions are noticed unasked."""
    from omnicanal.extract import _loader_config, read_state

    world = generate_world(80, 11, as_of=AS_OF)
    with SandboxServer(world) as server:
        monkeypatch.setenv("OMNICANAL_SQUARE_API_URL", server.url)
        settings = get_settings()
        channel = CHANNELS["square"]
        config = tmp_path / "tap.json"
        config.write_text(json.dumps(channel.source.tap_config(settings)))
        loader = tmp_path / "loader.json"
        loader.write_text(json.dumps(_loader_config(settings, channel)))

        # run 1: a full sync, killed after its last STATE, before ACTIVATE_VERSION
        lines = _tap_lines("tap-square", config, None, tmp_path)
        (first,) = _activations(lines, "customers")
        cut = next(
            i for i, line in enumerate(lines) if json.loads(line).get("type") == "ACTIVATE_VERSION"
        )
        _load(lines[:cut], loader)
        state = read_state(settings, "square")
        customers_state = state["bookmarks"]["customers"]
        assert customers_state["replication_key_value"]  # the bookmark is saved ...
        assert customers_state["full_sync_pending"] == first  # ... but not activated

        victim = world.slices["square"].customers[0]
        gone = httpx.post(f"{server.url}/_sandbox/square/customers/{victim['id']}/delete")
        assert gone.status_code == 200, gone.text

        # run 2: the cut full sync is redone from the start, then activated, even where
        # full syncs are otherwise only run on a full refresh
        never = tmp_path / "tap-no-schedule.json"
        never.write_text(
            json.dumps(channel.source.tap_config(settings) | {"full_sync_every_days": 0})
        )
        lines = _tap_lines("tap-square", never, state, tmp_path)
        (second,) = _activations(lines, "customers")
        assert second > first
        _load(lines, loader)
        retired = rows(
            warehouse_env, "select id from raw_square.customers where _sdc_deleted_at is not null"
        )
        assert retired == [(victim["id"],)]
        state = read_state(settings, "square")
        customers_state = state["bookmarks"]["customers"]
        assert "full_sync_pending" not in customers_state
        assert customers_state["last_full_sync"] == second

        # run 3: incremental (no full sync is due): nothing activated, nothing retired
        lines = _tap_lines("tap-square", config, state, tmp_path)
        assert _activations(lines, "customers") == []
        _load(lines, loader)
        assert (
            len(rows(warehouse_env, "select 1 from raw_square.customers"))
            == len(world.slices["square"].customers) + 1
        )

        # run 4: eight days after the last full sync, the weekly one is due again
        state = read_state(settings, "square")
        state["bookmarks"]["customers"]["last_full_sync"] = second - 8 * 86_400_000
        lines = _tap_lines("tap-square", config, state, tmp_path)
        assert len(_activations(lines, "customers")) == 1
        # ... unless the setting says full syncs only happen on a full refresh
        assert _activations(_tap_lines("tap-square", never, state, tmp_path), "customers") == []
        # a bookmark saved before full syncs were recorded: one full sync, to start with
        del state["bookmarks"]["customers"]["last_full_sync"]
        lines = _tap_lines("tap-square", config, state, tmp_path)
        assert len(_activations(lines, "customers")) == 1
