"""Each commerce tap documents its streams and settings in its README (issue 10: "documented
streams and settings"): a row per setting the tap declares (the SDK's own settings are
``--about``'s to list) and a row per stream it discovers, so a retailer adopting the tap
reads what it extracts and how to configure it without running it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from omnicanal.channels import CHANNELS
from tap_shopify.tap import TapShopify
from tap_square.tap import TapSquare
from tap_vtex.tap import TapVtex

TAPS = Path(__file__).resolve().parents[2] / "taps"
ROW = re.compile(r"^\|\s*`([a-z_]+)`\s*\|", re.MULTILINE)


@pytest.mark.parametrize("tap", [TapShopify, TapSquare, TapVtex], ids=lambda tap: tap.name)
def test_readme_has_a_row_for_every_setting_and_stream(tap) -> None:
    readme = (TAPS / tap.name / "README.md").read_text()
    rows = set(ROW.findall(readme))
    # the SDK adds its own settings to the class's schema once a tap is made
    builtin: dict = {"type": "object", "properties": {}}
    tap.append_builtin_config(builtin)
    settings = set(tap.config_jsonschema["properties"]) - set(builtin["properties"])
    assert len(settings) > 5
    assert settings - rows == set(), f"{tap.name}/README.md lacks a row for these settings"
    (channel,) = [c for c in CHANNELS.values() if c.source and c.source.tap == tap.name]
    streams = set(channel.source.streams)
    assert streams - rows == set(), f"{tap.name}/README.md lacks a row for these streams"
