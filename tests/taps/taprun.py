"""What the tap tests share: a free port for a sandbox built at import, a tap run
through its executable, as the pipeline runs it, and singer-sdk's own conformance to
compare tapkit's compiled one with."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from singer_sdk.helpers.conform import TypeConformanceLevel

from omnicanal_tapkit import ConformedRecords


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_tap(
    executable: Path, tmp_path: Path, config: dict[str, Any], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``<tap> --config <file> …``, with ``config`` written to a file under ``tmp_path``."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    return subprocess.run(
        [str(executable), "--config", str(config_file), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def sdk_conformance() -> Iterator[None]:
    """While inside, the streams built on tapkit's ``ConformedRecords`` leave conformance
    to singer-sdk (``RECURSIVE``, the SDK's default): the records the compiled
    conformance must match."""
    saved = ConformedRecords.TYPE_CONFORMANCE_LEVEL, ConformedRecords.conform_record
    ConformedRecords.TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.RECURSIVE
    ConformedRecords.conform_record = lambda self, record: record  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConformedRecords.TYPE_CONFORMANCE_LEVEL, ConformedRecords.conform_record = saved


def timeless_state(state: Any) -> Any:
    """``state`` without what records when a sync ran (tapkit's ``last_full_sync``)."""
    if isinstance(state, dict):
        return {k: timeless_state(v) for k, v in state.items() if k != "last_full_sync"}
    if isinstance(state, list):
        return [timeless_state(v) for v in state]
    return state


def assert_conformed_as_the_sdk_would(tap: Any, sync: Callable[[], Any]) -> None:
    """Every stream of ``tap`` conforms its records with tapkit's compiled conformance,
    and ``sync()`` (a run of the tap: ``.records`` per stream, ``.state``) writes the
    records and state that singer-sdk's own recursive conformance writes."""
    assert tap.streams
    assert all(isinstance(stream, ConformedRecords) for stream in tap.streams.values())
    ours = sync()
    with sdk_conformance():
        theirs = sync()
    assert sum(map(len, ours.records.values())) > 0
    assert ours.records == theirs.records
    assert timeless_state(ours.state) == timeless_state(theirs.state)
