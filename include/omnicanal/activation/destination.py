"""What the sync engine needs from a destination, and how it finds one.

A destination is a class in its channel's package (``omnicanal.channels.<platform>``);
``meta.omnicanal_sync.destination`` in a sync exposure names the channel.
"""

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
    """The destination's answer for one row. ``ref`` is the platform's own id for what
    it made of the row (a WhatsApp message id, a Mailchimp batch operation id), kept in
    the ledger so later answers (delivery statuses) can be matched to the row."""

    key: str
    ok: bool
    error: str | None = None
    ref: str | None = None


class Destination(Protocol):
    """What the sync engine needs from a destination.

    ``upsert`` and ``remove`` return one :class:`Outcome` per row the destination
    answered: a row it refused is a failed outcome with the platform's reason (the
    engine dead-letters it), not an exception; a row it left out of its answer gets no
    outcome, and the engine leaves it pending and sends it again on the next run. Only
    a failure of the whole destination (bad credentials, unknown audience, unreachable)
    raises; the batches confirmed before it stay recorded.

    Optional attributes the engine reads with ``getattr`` (absent means the default):

    - ``consent_channel`` (``None``): the consent a person must have given for rows
      about them to be sent here (``"email"``, ``"whatsapp"``, ``"sms"``, ``"ads"``);
      the engine leaves out, and removes if present, everyone without it;
    - ``supports_remove`` (``True``): False for a destination whose writes cannot be
      taken back (a message sent); the engine then never calls ``remove`` and only
      marks departed keys in the ledger;
    - ``rate_limit`` (``None``): requests a second the destination is held to, for the
      run's report (the destination paces its own client with it);
    - ``requests_sent`` (``None``): HTTP requests made so far, retries included; without
      it the engine reads ``client.requests_sent`` (a :class:`RetryingClient`). The run
      row keeps the run's requests and the seconds spent in the destination's calls,
      so the achieved rate can be checked against ``rate_limit``;
    - ``stats()`` (``None``): a JSON-able dict of what the platform said of the run
      (Meta's ``num_received`` / ``num_invalid_entries``), called once at the end of
      each run and stored in ``sync_runs.destination_stats``.

    The ``options`` a destination is built with are the exposure's
    ``meta.omnicanal_sync`` entries the engine does not read itself (``list_id``,
    ``audience_id``, ``tag`` …) plus ``mode``, the sync's mode: in ``audience`` mode a
    removal takes away the membership (a tag, a list, a group), never the record.
    In ``message`` mode ``upsert`` sends each row once; the engine never sends a key
    twice (see :mod:`.definitions`).
    """

    batch_size: int

    def check(self) -> None: ...

    def upsert(self, rows: list[Row]) -> list[Outcome]: ...

    def remove(self, rows: list[Row]) -> list[Outcome]: ...

    def close(self) -> None: ...


def get_destination(name: str, settings: Settings, options: dict | None = None) -> Destination:
    """The destination of channel ``name``, configured from the settings and ``options``."""
    from omnicanal.channels import CHANNELS, destinations

    channel = CHANNELS.get(name)
    if channel is None or channel.destination is None:
        known = ", ".join(c.name for c in destinations())
        raise SyncError(f"unknown destination {name!r}; omnicanal knows: {known}")
    return channel.destination(settings, options or {})
