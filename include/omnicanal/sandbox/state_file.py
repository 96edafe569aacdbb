"""A write-behind JSON state file for an emulated destination's account.

An emulated destination (HubSpot's contacts and lists, Zendesk's tagged users, Shopify's
tags and metafields, Square's groups) keeps what the syncs wrote in a state file, so a
sandbox restart finds the account as the syncs left it, as a real one would. A sync
writes in runs of batches, so the file is written at most once a second: at once when
the last save is older than that, otherwise by a timer a second later. The file is
replaced atomically (written beside, then renamed).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class StateFile:
    """``snapshot()`` is what to save, read under ``lock`` (the emulator's data lock,
    re-entrant: writers call :meth:`changed` while holding it). ``path`` None keeps
    nothing."""

    def __init__(
        self,
        path: str | Path | None,
        snapshot: Callable[[], dict[str, Any]],
        lock: threading.RLock,
    ) -> None:
        self.path = Path(path) if path else None
        self._snapshot = snapshot
        self._lock = lock
        self._state_lock = threading.Lock()
        self._saved_at = 0.0
        self._timer: threading.Timer | None = None

    def read(self) -> dict[str, Any] | None:
        """What the file holds, or None when there is none."""
        if self.path is None or not self.path.exists():
            return None
        return json.loads(self.path.read_text())

    def changed(self) -> None:
        """Save now, or within a second when a save just happened (a run of batches)."""
        if self.path is None:
            return
        with self._state_lock:
            if time.monotonic() - self._saved_at >= 1.0:
                self._save()
            elif self._timer is None:
                self._timer = threading.Timer(1.0, self._deferred_save)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Save what a deferred save still holds (tests, shutdown)."""
        if self.path is None:
            return
        with self._lock, self._state_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._save()

    def _deferred_save(self) -> None:
        with self._lock, self._state_lock:
            self._timer = None
            self._save()

    def _save(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._snapshot()))
        os.replace(tmp, self.path)
        self._saved_at = time.monotonic()
