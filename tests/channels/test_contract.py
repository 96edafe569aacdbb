"""The channel contract: every channel in the registry is complete and consistent.

Parametrised over ``CHANNELS``; a channel added to the registry is checked here
without a line of its own, and a half-added one fails:

- its tap is installed and ``--about`` describes every setting, including each one
  omnicanal passes it;
- its emulation is mounted in the sandbox app and answers over HTTP;
- its staging sources match what its tap emits, and its identity feeds name real
  columns of its own staging models;
- every setting it declares is named after it and documented (README included);
- its destination, if any, passes the shared destination test kit against its
  emulation.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from omnicanal.activation.definitions import load_definitions
from omnicanal.activation.testkit import check_destination
from omnicanal.channels import CHANNELS
from omnicanal.channels.channel import Channel
from omnicanal.sandbox import SandboxServer
from omnicanal.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
DBT = ROOT / "dbt_project"
CHANNELS_DIR = ROOT / "include" / "omnicanal" / "channels"
BIN = Path(sys.executable).parent
#: What every Singer loader adds to a raw table, whichever stream it came from.
LOADER_COLUMNS_PREFIX = "_sdc_"


def _each(channels: list[Channel]):
    return pytest.mark.parametrize("channel", channels, ids=[c.name for c in channels])


channels = _each(list(CHANNELS.values()))
with_source = _each([c for c in CHANNELS.values() if c.source])
with_emulation = _each([c for c in CHANNELS.values() if c.emulation])
with_destination = _each([c for c in CHANNELS.values() if c.destination])


def _yml(folder: Path) -> list[dict]:
    return [yaml.safe_load(p.read_text()) or {} for p in sorted(folder.glob("*.yml"))]


def _tap(channel: Channel, *args: str) -> dict:
    result = subprocess.run(
        [str(BIN / channel.source.tap), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_every_channel_has_an_emulation():
    """Demo and tests run against the sandbox: a channel without one cannot be tested."""
    assert [c.name for c in CHANNELS.values() if c.emulation is None] == []


def test_every_channel_package_is_registered():
    packages = {p.parent.name for p in CHANNELS_DIR.glob("*/__init__.py")}
    assert packages == set(CHANNELS), "a channel package is missing from CHANNELS (or vice versa)"
    for name, channel in CHANNELS.items():
        assert channel.name == name


def test_every_tap_staging_folder_and_sync_belongs_to_a_channel():
    # taps/tap-<platform>/ are the taps; taps/tapkit is the library they share.
    taps = {p.name for p in (ROOT / "taps").glob("tap-*") if (p / "pyproject.toml").exists()}
    assert taps <= {c.source.tap for c in CHANNELS.values() if c.source}
    staging = {p.name for p in (DBT / "models" / "staging").iterdir() if p.is_dir()}
    assert staging <= {c.name for c in CHANNELS.values() if c.source}
    for definition in load_definitions(DBT).values():
        channel = CHANNELS.get(definition.destination)
        assert channel and channel.destination, f"{definition.name} goes to no destination"


@with_source
def test_tap_is_installed_and_about_describes_every_setting(channel, tmp_path):
    about = _tap(channel, "--about", "--format=json")
    properties = about["settings"]["properties"]
    undocumented = [name for name, spec in properties.items() if not spec.get("description")]
    assert not undocumented, f"{channel.source.tap} --about lacks a description of {undocumented}"
    passed = channel.source.tap_config(get_settings({"OMNICANAL_HOME": str(tmp_path)}))
    assert set(passed) <= set(properties), set(passed) - set(properties)
    assert set(about["settings"].get("required", [])) <= set(passed)


@with_source
def test_staging_sources_match_what_the_tap_emits(channel, tmp_path):
    config = tmp_path / "tap.json"
    passed = channel.source.tap_config(get_settings({"OMNICANAL_HOME": str(tmp_path)}))
    config.write_text(json.dumps(passed))
    catalog = _tap(channel, "--config", str(config), "--discover")
    emitted = {s["tap_stream_id"]: set(s["schema"]["properties"]) for s in catalog["streams"]}
    assert set(emitted) == set(channel.source.streams)

    folder = DBT / channel.staging_dir
    assert folder.is_dir(), f"{channel.name} has no staging folder {channel.staging_dir}"
    declared = [
        source
        for doc in _yml(folder)
        for source in doc.get("sources", [])
        if source.get("schema") == channel.raw_schema
    ]
    assert len(declared) == 1, f"one dbt source must read {channel.raw_schema}"
    tables = {t["name"]: t for t in declared[0]["tables"]}
    assert set(tables) == set(channel.source.streams)
    for stream, table in tables.items():
        columns = {c["name"] for c in table.get("columns", [])}
        unknown = {c for c in columns - emitted[stream] if not c.startswith(LOADER_COLUMNS_PREFIX)}
        assert not unknown, f"{stream}: the sources yml documents columns the tap never emits"


@channels
def test_identity_feeds_name_columns_of_the_channels_staging_models(channel):
    """A feed reads the channel's staging, or an intermediate model that checks what one
    platform's staging alone cannot (a till's reference to an online order)."""
    models = {
        model["name"]: {c["name"] for c in model.get("columns", [])}
        for folder in (DBT / channel.staging_dir, DBT / "models" / "intermediate" / "customer")
        for doc in _yml(folder)
        for model in doc.get("models", [])
    }
    for feed in channel.identity:
        assert feed.model in models, f"{feed.model} is not a staging model of {channel.name}"
        used = {feed.record_id, *feed.columns.values(), *feed.ids.values(), *feed.handles.values()}
        assert used <= models[feed.model], used - models[feed.model]


@channels
def test_every_setting_is_named_after_the_channel_and_documented(channel):
    readme = (ROOT / "README.md").read_text()
    prefix = f"OMNICANAL_{channel.name.upper()}_"
    for setting in channel.settings:
        assert setting.env.startswith(prefix), setting.env
        assert setting.doc.endswith(".") and len(setting.doc) > 20, setting.env
        assert ("(secret)" in setting.doc) == setting.secret, setting.env
        assert f"| `{setting.env}` | {setting.doc} |" in readme, f"README lacks {setting.env}"


@with_emulation
def test_emulation_is_mounted_and_answers(channel, world):
    path, headers = channel.emulation.probe
    with SandboxServer(world) as sandbox:
        assert channel.name in sandbox.app.state.emulators
        response = httpx.get(f"{sandbox.url}{path}", headers=headers, timeout=10)
        assert response.status_code == 200, response.text[:500]
        unauthorised = httpx.get(f"{sandbox.url}{path}", timeout=10)
        assert unauthorised.status_code in (401, 403) or _graph_oauth_error(unauthorised)


def _graph_oauth_error(response: httpx.Response) -> bool:
    """Meta's Graph API refuses a missing or bad token with HTTP 400 and an OAuthException
    (code 104 or 190), not 401."""
    error = response.json().get("error", {}) if response.status_code == 400 else {}
    return error.get("type") == "OAuthException" and error.get("code") in (104, 190)


@with_destination
def test_destination_passes_the_test_kit(channel, world, tmp_path):
    assert channel.destination_case, f"{channel.name} declares no case for the test kit"
    assert channel.emulation, f"{channel.name}'s destination has no emulation to test against"
    # a destination writes into its emulation's records (tags, groups): on a copy, so the
    # session's read-only world stays as generated for the tests after this one
    with SandboxServer(copy.deepcopy(world)) as sandbox:
        check_destination(
            channel,
            channel.destination_case(),
            sandbox.url,
            sandbox.app.state.emulators[channel.name],
            {"OMNICANAL_HOME": str(tmp_path)},
        )
