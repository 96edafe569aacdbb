"""Shared sandbox fixtures: one fixed world, and servers over it.

The world has a fixed ``as_of`` so every assertion is reproducible; servers bind
port 0 so parallel runs never collide.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from omnicanal.sandbox import SandboxServer, World, generate_world

AS_OF = datetime(2025, 6, 1, 15, 0, 0, tzinfo=UTC)
SEED = 20250601


@pytest.fixture(scope="session")
def world() -> World:
    """200 people, read-only: tests that mutate records use ``fresh_server``."""
    return generate_world(200, SEED, as_of=AS_OF)


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[SandboxServer]:
    """A sandbox over the shared world; tests on it must not change records."""
    with SandboxServer(world) as running:
        yield running


@pytest.fixture
def fresh_server() -> Iterator[SandboxServer]:
    """A sandbox over its own copy of the world, for tests that mutate or throttle."""
    with SandboxServer(generate_world(200, SEED, as_of=AS_OF)) as running:
        yield running
