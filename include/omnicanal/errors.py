"""Errors that tell the user what is wrong and what to do about it.

The CLI prints these without a traceback; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class OmnicanalError(Exception):
    """An error the user can act on; its message says what to do."""


class ConfigError(OmnicanalError):
    """A setting is missing or malformed; the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"setting {setting} {problem}")


class WarehouseError(OmnicanalError):
    """The warehouse cannot be reached or started."""


class ExtractError(OmnicanalError):
    """A tap or the loader failed; the message carries their last words."""


class SyncError(OmnicanalError):
    """A reverse-ETL sync could not run (unknown sync, destination refused, …)."""
