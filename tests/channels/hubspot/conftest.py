"""The HubSpot tests' sandbox: the shared world, with search's per-second limit lifted
for the read-only tests that page through many searches (tests of the limit itself use
``fresh_server``)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def server(world):
    from omnicanal.sandbox import SandboxServer

    with SandboxServer(world, hubspot={"search_per_second": None}) as running:
        yield running
