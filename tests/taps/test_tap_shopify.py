"""tap-shopify against the Shopify emulator of the omnicanal sandbox, over real HTTP.

One ``SandboxServer`` (a 60-person world) serves the whole module. The SDK's standard
tap tests run against it with a small page size so cursor pagination is exercised;
the behaviour tests below check what the pipeline relies on: every record exactly
once across pages, incremental state, retries on 429/5xx, pacing by the call-limit
header, and clear failures for a bad token, a bad config and a server that is down.
Some runs go through the ``tap-shopify`` executable, as the pipeline calls it.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from omnicanal.channels.shopify import SANDBOX_ACCESS_TOKEN as DEFAULT_SHOPIFY_TOKEN
from omnicanal.channels.shopify.emulation import DEFAULT_LEAK_RATE, ShopifyEmulator
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import World, generate_world
from tap_shopify.errors import ShopifyRetriesExhaustedError
from tap_shopify.tap import TapShopify

PEOPLE = 60
SEED = 20241001
AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TAP_EXECUTABLE = Path(sys.executable).with_name("tap-shopify")
# Generous bucket for the module; the pacing test narrows it on purpose.
ROOMY_BUCKET = {"bucket_size": 10_000, "leak_rate": 1_000.0}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# get_tap_test_class needs the config (hence the URL) when the class is built, at
# import; the server itself starts in the module fixture below, on that port.
SANDBOX_PORT = _free_port()
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
BASE_CONFIG: dict[str, Any] = {"api_url": SANDBOX_URL, "access_token": DEFAULT_SHOPIFY_TOKEN}


@pytest.fixture(scope="module", autouse=True)
def sandbox() -> Iterator[SandboxServer]:
    """The sandbox serving a fresh world on ``SANDBOX_PORT`` for this module."""
    world = generate_world(PEOPLE, seed=SEED, as_of=AS_OF)
    with SandboxServer(world, port=SANDBOX_PORT) as server:
        server.app.state.shopify.set_rate_limit(**ROOMY_BUCKET)
        yield server


@pytest.fixture
def shopify(sandbox: SandboxServer) -> Iterator[ShopifyEmulator]:
    """The Shopify emulator, with no fault left queued after the test."""
    emulator: ShopifyEmulator = sandbox.app.state.shopify
    yield emulator
    emulator.faults.clear()
    emulator.set_rate_limit(**ROOMY_BUCKET)


@pytest.fixture
def world(sandbox: SandboxServer) -> World:
    return sandbox.app.state.world


# --- the SDK's standard tests ---------------------------------------------------------

# All standard tests run; none is skipped. page_size=20 makes the sync page through
# 3 customer and 6 order pages (48 customers, 114 orders in this world).
TestTapShopifyStandard = get_tap_test_class(
    TapShopify,
    config={**BASE_CONFIG, "page_size": 20},
    suite_config=SuiteConfig(max_records_limit=None),
)


# --- helpers ---------------------------------------------------------------------------


class SyncResult:
    """What one tap run wrote: records per stream, and the last STATE."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages
        self.records: dict[str, list[dict[str, Any]]] = {"customers": [], "orders": []}
        self.state: dict[str, Any] = {}
        for message in messages:
            if message["type"] == "RECORD":
                self.records.setdefault(message["stream"], []).append(message["record"])
            elif message["type"] == "STATE":
                self.state = message["value"]

    def ids(self, stream: str) -> list[int]:
        return [record["id"] for record in self.records[stream]]

    def versions(self, stream: str) -> set[tuple[int, str]]:
        return {(record["id"], record["updated_at"]) for record in self.records[stream]}

    def bookmark(self, stream: str) -> str:
        return self.state["bookmarks"][stream]["replication_key_value"]


def sync(config: dict[str, Any], state: dict[str, Any] | None = None) -> SyncResult:
    """Run the tap in this process and parse the Singer messages it printed."""
    out = io.StringIO()
    with redirect_stdout(out):
        TapShopify(config={**BASE_CONFIG, **config}, state=state).sync_all()
    return SyncResult([json.loads(line) for line in out.getvalue().splitlines() if line])


def run_executable(
    tmp_path: Path, config: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run ``tap-shopify --config <file> …`` as the pipeline does."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    return subprocess.run(
        [str(TAP_EXECUTABLE), "--config", str(config_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def utc(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp).astimezone(UTC)


# --- behaviour -------------------------------------------------------------------------


def test_every_record_arrives_exactly_once_across_pages(
    tmp_path: Path, world: World, shopify: ShopifyEmulator
) -> None:
    """Through the executable, 7 records a page: all of the world, no duplicates."""
    requests_before = shopify.request_count
    result = run_executable(tmp_path, {**BASE_CONFIG, "page_size": 7})
    assert result.returncode == 0, result.stderr
    synced = SyncResult([json.loads(line) for line in result.stdout.splitlines() if line])

    for stream, expected in (
        ("customers", world.slices["shopify"].customers),
        ("orders", world.slices["shopify"].orders),
    ):
        ids = synced.ids(stream)
        duplicates = [i for i, n in Counter(ids).items() if n > 1]
        assert not duplicates, f"{stream}: ids emitted more than once: {duplicates}"
        assert set(ids) == {record["id"] for record in expected}, stream

    pages = -(-len(world.slices["shopify"].customers) // 7) + -(
        -len(world.slices["shopify"].orders) // 7
    )
    assert shopify.request_count - requests_before >= pages
    # Cancelled orders only come with status=any; the world has some.
    assert any(order["cancelled_at"] for order in synced.records["orders"])


def test_records_are_sorted_and_bookmark_is_the_latest_update(world: World) -> None:
    result = sync({"page_size": 25})
    for stream, expected in (
        ("customers", world.slices["shopify"].customers),
        ("orders", world.slices["shopify"].orders),
    ):
        stamps = [utc(record["updated_at"]) for record in result.records[stream]]
        assert stamps == sorted(stamps), f"{stream} not in updated_at order"
        # Normalised to UTC, same instant as Shopify's shop-time value.
        assert all(r["updated_at"].endswith("+00:00") for r in result.records[stream])
        latest = max(utc(record["updated_at"]) for record in expected)
        assert utc(result.bookmark(stream)) == latest
        assert "progress_markers" not in result.state["bookmarks"][stream]


def test_incremental_sync_gets_only_what_changed(shopify: ShopifyEmulator) -> None:
    """Second run: nothing new. After one customer changes: just that customer."""
    first = sync({"page_size": 25})
    assert len(first.records["customers"]) > 1

    second = sync({"page_size": 25}, state=first.state)
    for stream in ("customers", "orders"):
        # updated_at_min is inclusive: only the record(s) on the bookmark come back,
        # versions already delivered (at-least-once, loaders upsert on id).
        assert second.versions(stream) <= first.versions(stream), stream
        assert all(r["updated_at"] == first.bookmark(stream) for r in second.records[stream])
    assert second.state["bookmarks"] == first.state["bookmarks"]

    changed_id = first.records["customers"][0]["id"]
    shopify.touch_customer(changed_id, note="Prefere contato por WhatsApp")

    third = sync({"page_size": 25}, state=second.state)
    new_customers = third.versions("customers") - first.versions("customers")
    assert [customer_id for customer_id, _ in new_customers] == [changed_id]
    changed = next(r for r in third.records["customers"] if r["id"] == changed_id)
    assert changed["note"] == "Prefere contato por WhatsApp"
    assert third.bookmark("customers") == changed["updated_at"]
    assert third.versions("orders") <= first.versions("orders")


def test_start_date_limits_the_first_sync(world: World) -> None:
    stamps = sorted(utc(order["updated_at"]) for order in world.slices["shopify"].orders)
    start = stamps[len(stamps) // 2]
    result = sync({"start_date": start.isoformat()})
    expected = {o["id"] for o in world.slices["shopify"].orders if utc(o["updated_at"]) >= start}
    assert set(result.ids("orders")) == expected
    assert 0 < len(expected) < len(world.slices["shopify"].orders)


def test_429_and_5xx_are_retried_and_the_sync_completes(
    world: World, shopify: ShopifyEmulator
) -> None:
    shopify.fail_next(1, status=429)  # answered with Retry-After: 1.0
    shopify.fail_next(1, status=503)
    started = time.monotonic()
    result = sync({"page_size": 25})
    assert time.monotonic() - started >= 1.0, "Retry-After was not honoured"
    assert shopify.faults.pending == 0
    assert set(result.ids("customers")) == {c["id"] for c in world.slices["shopify"].customers}
    assert set(result.ids("orders")) == {o["id"] for o in world.slices["shopify"].orders}


def test_retries_have_a_limit(shopify: ShopifyEmulator) -> None:
    shopify.fail_next(3, status=500)
    with pytest.raises(ShopifyRetriesExhaustedError, match=r"HTTP 500 .*2 attempt"):
        sync({"max_retries": 1})


def test_call_limit_header_paces_requests_before_the_bucket_overflows(
    world: World, shopify: ShopifyEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """With a 5-call bucket and no retries allowed, any 429 would end the sync."""
    shopify.set_rate_limit(bucket_size=5, leak_rate=DEFAULT_LEAK_RATE)
    with caplog.at_level(logging.INFO):
        result = sync({"page_size": 20, "max_retries": 0})
    assert set(result.ids("orders")) == {o["id"] for o in world.slices["shopify"].orders}
    assert "pausing" in caplog.text


def test_bad_token_fails_with_a_clear_message_and_no_secret(tmp_path: Path) -> None:
    wrong_token = "shpat_wrong_0123456789abcdef"
    result = run_executable(tmp_path, {**BASE_CONFIG, "access_token": wrong_token})
    assert result.returncode != 0
    assert (
        "Shopify rejected the access token (HTTP 401) — check the `access_token` setting"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert wrong_token not in result.stderr + result.stdout
    assert "wrong_0123456789" not in result.stderr + result.stdout


def test_server_down_fails_with_a_clear_message_naming_the_url(tmp_path: Path) -> None:
    down_url = f"http://127.0.0.1:{_free_port()}"
    result = run_executable(tmp_path, {**BASE_CONFIG, "api_url": down_url, "max_retries": 0})
    assert result.returncode != 0
    assert f"Could not connect to Shopify at {down_url}/admin/api/2024-10/" in result.stderr
    assert "connection refused" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"page_size": 251}, "page_size"),
        ({"page_size": 0}, "page_size"),
        ({"api_url": None}, "api_url"),
        ({"api_url": "127.0.0.1:8787"}, "api_url"),
        ({"api_version": "2024-11"}, "api_version"),
        ({"api_url": None, "shop": "not a shop!"}, "shop"),
        ({"access_token": None}, "access_token"),
    ],
)
def test_bad_config_is_rejected_naming_the_setting(config: dict[str, Any], setting: str) -> None:
    merged = {k: v for k, v in {**BASE_CONFIG, **config}.items() if v is not None}
    with pytest.raises(ConfigValidationError) as raised:
        TapShopify(config=merged)
    assert any(setting in error for error in raised.value.errors), raised.value.errors


def test_bad_config_fails_at_start_up_from_the_command_line(tmp_path: Path) -> None:
    result = run_executable(tmp_path, {**BASE_CONFIG, "page_size": 1000})
    assert result.returncode == 1
    assert "config['page_size']" in result.stderr
    assert DEFAULT_SHOPIFY_TOKEN not in result.stderr + result.stdout
    assert not result.stdout.strip()


def test_about_markdown_describes_every_setting() -> None:
    result = subprocess.run(
        [str(TAP_EXECUTABLE), "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for name, schema in TapShopify.config_jsonschema["properties"].items():
        assert schema.get("description"), f"setting {name} has no description"
        assert f"| {name} |" in result.stdout
    assert TapShopify.config_jsonschema["properties"]["access_token"].get("secret") is True
