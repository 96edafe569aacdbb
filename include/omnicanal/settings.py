"""The settings object: the core settings composed with every channel's.

:mod:`omnicanal.config` declares the core settings and how any setting is read;
each channel package declares its own; this module puts them together. Call
:func:`get_settings` at run time (in a CLI verb or a task), never while a DAG file is
parsed: a malformed variable must fail the task that needs it, naming the variable,
not the import of every DAG.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from omnicanal.channels import CHANNELS
from omnicanal.config import CORE_SETTINGS, Setting, Settings, read_settings


def get_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read every setting from ``env`` (default: the process environment)."""
    return read_settings(
        dict(os.environ if env is None else env),
        {name: channel.settings for name, channel in CHANNELS.items()},
    )


def all_settings() -> Iterator[Setting]:
    """Every setting omnicanal reads: the core ones, then each channel's in order."""
    yield from CORE_SETTINGS
    for channel in CHANNELS.values():
        yield from channel.settings
