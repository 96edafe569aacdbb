"""What the tap tests share: a free port for a sandbox built at import, and a tap run
through its executable, as the pipeline runs it."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any


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
