"""A tap's command line, started without the libraries no tap uses.

A tap is a short process: ``bench/extract`` times it wall to wall, start-up included,
and Airflow starts one per extract. ``import singer_sdk`` imports its ``Target`` class
in every plugin, and with it joblib, which imports numpy (to memory-map arrays between
worker processes) and psutil (to kill worker trees) when they are installed;
jsonschema imports isoduration (and arrow, dateutil) to check the ``duration`` format.
A tap runs no joblib workers and no setting of ours has that format, yet those three
were a third of ``tap-square``'s import time (about 0.25 s of CPU of each start).

Each of them is optional where it is imported (``try: import numpy except
ImportError``), so :func:`run_tap_cli` imports the tap with them marked absent
(``sys.modules[name] = None``, which makes ``import name`` raise ``ImportError``),
then removes the marks: later imports in the process find them as usual.

One more library is needed, but only later, if at all: singer-sdk's BATCH messages
(off unless a ``batch_config`` asks for them) build paths with ``upath.UPath``, and
``from upath import UPath`` at import loads fsspec with asyncio, a fifth of the
import time, although upath itself defers that to the first use. During the import
``upath.UPath`` is :class:`DeferredUPath`, which makes a real ``UPath`` (importing
fsspec then) whenever it is called; afterwards ``upath`` is as it was.

Only the console scripts (``tap-<name>``, ``python -m tap_<name>``) start this way;
importing a tap in a test or a DAG changes nothing.

This module imports nothing from singer-sdk, so it runs before it.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Iterator

#: Optional imports of singer-sdk's dependencies that a tap never uses (see above).
UNUSED_BY_TAPS: tuple[str, ...] = ("numpy", "psutil", "isoduration")


@contextlib.contextmanager
def absent(names: t.Iterable[str]) -> Iterator[None]:
    """While inside, ``import name`` raises ``ImportError`` for each of ``names`` not
    imported yet; afterwards they import as usual."""
    marked = [name for name in names if name not in sys.modules]
    for name in marked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in marked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


class DeferredUPath:
    """Stands for ``upath.UPath`` in what is imported at start-up: calling it makes a
    real ``UPath`` (and imports fsspec then)."""

    def __new__(cls, *args: t.Any, **kwargs: t.Any) -> t.Any:
        from upath.core import UPath  # noqa: PLC0415 - the point is to import it late

        return UPath(*args, **kwargs)


@contextlib.contextmanager
def upath_deferred() -> Iterator[None]:
    """While inside, ``from upath import UPath`` gives :class:`DeferredUPath`."""
    if "upath.core" in sys.modules:  # already paid for
        yield
        return
    import upath  # noqa: PLC0415 - light: it defers upath.core itself

    if "UPath" in vars(upath):
        yield
        return
    upath.UPath = DeferredUPath  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        if vars(upath).get("UPath") is DeferredUPath:
            del upath.UPath


def run_tap_cli(module: str, tap_class: str) -> None:
    """Import ``module``'s ``tap_class`` without :data:`UNUSED_BY_TAPS` and with upath's
    ``UPath`` deferred, then run its CLI."""
    with absent(UNUSED_BY_TAPS), upath_deferred():
        tap = getattr(importlib.import_module(module), tap_class)
    sys.exit(tap.cli())
