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

Three more, measured with ``python -X importtime`` and the CPU time of ``tap-square
--about`` (2026-11-30, after the above), go the same ways:

- **chardet** is marked absent too: requests imports it (when installed) to guess the
  encoding of a body whose ``Content-Type`` names none, and otherwise uses
  charset_normalizer, which it imports anyway. The taps decode JSON bodies, which
  never need that guess, so only the library that makes it changes.
- **joblib** (the SDK's ``Target`` drains sinks in parallel with ``Parallel``,
  ``delayed`` and ``parallel_config``) imports multiprocessing and loky even without
  numpy. During the import ``joblib`` is :class:`DeferredJoblib`, whose three names
  import the real joblib when called; afterwards ``joblib`` imports as usual.
- **asyncio** is imported by backoff (the SDK's retry decorator) for its coroutine
  retries (``asyncio.sleep``), which a tap never runs: during the import it is a
  :class:`DeferredModule`, whose first attribute asked imports the real asyncio
  (``importlib.util.LazyLoader`` cannot do this on Python 3.11: ``import`` itself
  reads the module's ``__spec__``, which loads it).

And one of singer-sdk's own modules: ``singer_sdk.helpers.jsonpath`` imports
jsonpath-ng (and its PLY parser) at import, about 40 ms of CPU of each start, for
``extract_jsonpath``, which ``RESTStream`` and ``JSONPathPaginator`` call and the taps'
streams mostly do not (omnicanal_tapkit's ``records_at`` reads their records). During
the import that module is :class:`DeferredJsonPath`, whose ``extract_jsonpath`` imports
the real module when first called; afterwards it imports as usual.

And the cyclic garbage collector, which was about a tenth of tap-square's CPU
(``perf``: ``gc_collect_main``, ``visit_decref``, ``visit_reachable``): the import makes
some 40,000 objects that live as long as the process (modules, classes, functions), and
each collection the import's own allocations set off, and every full collection during
the sync, walked them again. The collector is paused during the import and what it made
is then frozen (``gc.freeze``: kept out of every later collection, as the objects of a
forked server's parent are); collection then runs as usual on what the sync makes, so
cyclic garbage of the sync (a failed request's traceback) is still collected. A
2000-people extract: 1.085 -> 1.005 s of CPU (medians of 6, alternating, load 8).

Only the console scripts (``tap-<name>``, ``python -m tap_<name>``) start this way;
importing a tap in a test or a DAG changes nothing.

This module imports nothing from singer-sdk, so it runs before it.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
import types
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Iterator

#: Optional imports of singer-sdk's dependencies that a tap never uses (see above).
UNUSED_BY_TAPS: tuple[str, ...] = ("numpy", "psutil", "isoduration", "chardet")
#: Imported at start-up by a module that uses them (if ever) later: see above.
DEFERRED_FOR_TAPS: tuple[str, ...] = ("asyncio",)


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


def _deferred(module: str, name: str) -> t.Callable[..., t.Any]:
    def call(*args: t.Any, **kwargs: t.Any) -> t.Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"``{module}.{name}``, imported when first called."
    return call


class DeferredJoblib(types.ModuleType):
    """Stands for ``joblib`` in what is imported at start-up: its ``Parallel``,
    ``delayed`` and ``parallel_config`` import the real joblib when called."""

    def __init__(self) -> None:
        super().__init__("joblib", "joblib, imported when first used (omnicanal_tapkit)")
        for name in ("Parallel", "delayed", "parallel_config"):
            setattr(self, name, _deferred("joblib", name))


@contextlib.contextmanager
def joblib_deferred() -> Iterator[None]:
    """While inside, ``from joblib import Parallel, delayed, parallel_config`` gives
    :class:`DeferredJoblib`'s stand-ins; afterwards ``import joblib`` is the real one."""
    if "joblib" in sys.modules:  # already paid for
        yield
        return
    stand_in = sys.modules["joblib"] = DeferredJoblib()
    try:
        yield
    finally:
        if sys.modules.get("joblib") is stand_in:
            del sys.modules["joblib"]


#: singer-sdk's JSONPath helpers: imported by ``RESTStream`` (see above).
JSONPATH_MODULE = "singer_sdk.helpers.jsonpath"


class DeferredJsonPath(types.ModuleType):
    """Stands for ``singer_sdk.helpers.jsonpath`` in what is imported at start-up: its
    ``extract_jsonpath`` imports the real module (and jsonpath-ng) when called."""

    def __init__(self) -> None:
        super().__init__(JSONPATH_MODULE, "imported when first used (omnicanal_tapkit)")
        self.extract_jsonpath = _deferred(JSONPATH_MODULE, "extract_jsonpath")


@contextlib.contextmanager
def jsonpath_deferred() -> Iterator[None]:
    """While inside, ``from singer_sdk.helpers.jsonpath import extract_jsonpath`` gives
    :class:`DeferredJsonPath`'s stand-in; afterwards the module imports as usual."""
    if JSONPATH_MODULE in sys.modules:  # already paid for
        yield
        return
    stand_in = sys.modules[JSONPATH_MODULE] = DeferredJsonPath()
    try:
        yield
    finally:
        if sys.modules.get(JSONPATH_MODULE) is stand_in:
            del sys.modules[JSONPATH_MODULE]


class DeferredModule(types.ModuleType):
    """Stands for a module in what is imported at start-up (``import asyncio``): the
    first attribute asked of it imports the real module and answers from it."""

    def __getattr__(self, name: str) -> t.Any:
        return getattr(importlib.import_module(self.__name__), name)


@contextlib.contextmanager
def deferred(names: t.Iterable[str]) -> Iterator[None]:
    """While inside, ``import name`` gives a :class:`DeferredModule` for each of
    ``names`` not imported yet; afterwards ``import name`` is the real module."""
    stand_ins = {
        name: DeferredModule(name, f"{name}, imported when first used (omnicanal_tapkit)")
        for name in names
        if name not in sys.modules
    }
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


@contextlib.contextmanager
def collector_paused_then_frozen() -> Iterator[None]:
    """While inside, no cyclic garbage collection; afterwards every object made so far
    is moved out of the collector's sight (``gc.freeze``) and collection resumes."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def run_tap_cli(module: str, tap_class: str) -> None:
    """Import ``module``'s ``tap_class`` without :data:`UNUSED_BY_TAPS`, with
    :data:`DEFERRED_FOR_TAPS`, upath's ``UPath``, joblib and singer-sdk's JSONPath helpers
    deferred and the garbage collector paused, then freeze what the import made and run
    the tap's CLI."""
    with (
        collector_paused_then_frozen(),
        absent(UNUSED_BY_TAPS),
        deferred(DEFERRED_FOR_TAPS),
        upath_deferred(),
        joblib_deferred(),
        jsonpath_deferred(),
    ):
        tap = getattr(importlib.import_module(module), tap_class)
    sys.exit(tap.cli())
