"""Destinations a sync can write to, by the name used in ``meta.omnicanal_sync``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from omnicanal.config import Settings
from omnicanal.errors import SyncError


@dataclass(frozen=True)
class Row:
    """One record for a destination: its key and the destination's fields."""

    key: str
    payload: dict


@dataclass(frozen=True)
class Outcome:
    key: str
    ok: bool
    error: str | None = None


class Destination(Protocol):
    """What the sync engine needs from a destination.

    ``upsert`` and ``remove`` return one :class:`Outcome` per row: a row the
    destination refused is a failed outcome, not an exception; only a failure of the
    whole destination (bad credentials, unknown audience, unreachable) raises.
    """

    batch_size: int

    def check(self) -> None: ...

    def upsert(self, rows: list[Row]) -> list[Outcome]: ...

    def remove(self, rows: list[Row]) -> list[Outcome]: ...

    def close(self) -> None: ...


def get_destination(name: str, settings: Settings, options: dict | None = None) -> Destination:
    if name == "mailchimp":
        from omnicanal.activation.destinations.mailchimp import MailchimpDestination

        return MailchimpDestination.from_settings(settings, options or {})
    raise SyncError(f"unknown destination {name!r}; omnicanal knows: mailchimp")
