"""One benchmark at a time on this machine: an exclusive lock every timed run holds.

Benchmarks share two cores; a timed run that overlaps another measures both.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

LOCK = "/tmp/omnicanal-bench.lock"


@contextmanager
def bench_lock() -> Iterator[None]:
    with open(LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
