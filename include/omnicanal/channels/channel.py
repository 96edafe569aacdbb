"""What a channel is: everything one platform brings, declared in one place.

A :class:`Channel` is the unit of change. Its package under ``omnicanal.channels``
declares, where the platform has them, its settings, its source (the Singer tap and
its streams, polled or fed by webhooks), its sandbox emulation and slice of the
synthetic world, its reverse-ETL destination and how its staging models feed identity
resolution. The registry (``omnicanal.channels.CHANNELS``) lists the packages; the
extract, the sandbox app, the DAGs, the sync engine and the docs are built from it, and
a contract test checks each channel is complete.

Declarations stay light: heavy parts (FastAPI routers, HTTP clients) are built by the
factories given here, which import their modules only when called, so the registry can
be read while a DAG file is parsed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from omnicanal.config import Setting, Settings, whole_number

if TYPE_CHECKING:
    from omnicanal.activation.destination import Destination
    from omnicanal.activation.testkit import DestinationCase
    from omnicanal.sandbox.people import Person
    from omnicanal.sandbox.world import World


def max_retries_setting(name: str, title: str) -> Setting:
    """``OMNICANAL_<NAME>_MAX_RETRIES``: how many times the tap retries a failed request."""
    return Setting(
        f"OMNICANAL_{name.upper()}_MAX_RETRIES",
        "max_retries",
        f"Retries of a failed {title} request (5xx, 429, network) before the extract fails. "
        "Default: 5.",
        5,
        whole_number(0),
    )


@dataclass(frozen=True)
class Source:
    """How records leave the platform: a Singer tap and the streams it emits.

    ``delivery`` is ``poll`` for a tap that calls the platform's API on a schedule and
    ``webhook`` for one that reads events the platform pushed to our receiver;
    ``schedule`` is when its extract DAG runs.
    ``tap_config`` turns the settings into the tap's ``--config`` (secrets included: the
    extract writes it to a private file, never to a log).
    """

    tap: str
    streams: tuple[str, ...]
    tap_config: Callable[[Settings], dict[str, Any]]
    delivery: Literal["poll", "webhook"] = "poll"
    #: When the extract DAG runs (a cron expression or preset; None: only on demand).
    schedule: str | None = "@hourly"


class WorldSlice(Protocol):
    """What one platform holds about the world's people, with the truth of whose it is."""

    def to_dict(self) -> dict[str, Any]: ...

    def describe(self) -> str:
        """A short count of what it holds, e.g. "120 Shopify customers, 340 orders"."""
        ...


@dataclass(frozen=True)
class Emulation:
    """The platform's API in the sandbox, over the channel's slice of the world.

    ``build(world, options)`` returns an emulator with a FastAPI ``router``; ``options``
    are its keyword arguments, from ``options_from_settings`` (credentials the taps and
    destinations will present) overridden by the caller's. ``world_slice(rng, people,
    as_of, earlier)`` generates what the platform holds about the people (None: it
    starts empty, like an audience that syncs fill); ``earlier`` maps the channels before
    it in the registry to their slices, so a shop's till can take back an online order;
    ``load_slice`` reads it back from a world file. ``probe`` is a path under the
    emulation that answers a GET with the sandbox's default credentials, for the
    contract test.
    """

    build: Callable[[World, dict[str, Any]], Any]
    options_from_settings: Callable[[Settings], dict[str, Any]]
    probe: tuple[str, dict[str, str]]
    world_slice: (
        Callable[[random.Random, list[Person], datetime, Mapping[str, WorldSlice]], WorldSlice]
        | None
    ) = None
    load_slice: Callable[[dict[str, Any]], WorldSlice] | None = None


@dataclass(frozen=True)
class IdentityFeed:
    """How one staging model feeds identity resolution (the dbt var ``identity_sources``).

    ``columns`` maps identity fields (email, email_sha256, phone, wa_id, cpf, first_name,
    last_name, full_name, birth_date, city, state, postcode, address,
    accepts_email_marketing, created_at, updated_at) to the model's columns; ``ids``
    maps platform id types and ``handles`` social networks to columns. ``where`` keeps
    only the rows that describe someone (e.g. orders placed from an account): a row
    that is nobody's would become a customer of its own.
    """

    model: str
    record_id: str
    columns: Mapping[str, str]
    ids: Mapping[str, str] = field(default_factory=dict)
    handles: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None
    where: str | None = None

    def as_var(self, channel: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "model": self.model,
            "source": self.source or channel,
            "record_id": self.record_id,
            "columns": dict(self.columns),
        }
        if self.ids:
            entry["ids"] = dict(self.ids)
        if self.handles:
            entry["handles"] = dict(self.handles)
        if self.where:
            entry["where"] = self.where
        return entry


@dataclass(frozen=True)
class SyncTruth:
    """What one sync left at its destination's emulation, against the world's ground
    truth (computed in plain Python from the world, never from the warehouse): each
    ``held`` and ``expected`` key is one person or record as the destination knows them
    (an email, a platform id, a hash). The demo summary prints them side by side."""

    sync: str
    #: What is compared, e.g. "members of the Mailchimp audience omnicanal-demo".
    what: str
    held: frozenset[str]
    expected: frozenset[str]

    @property
    def both(self) -> int:
        return len(self.held & self.expected)


@dataclass(frozen=True)
class Channel:
    """One platform: see the module docstring. ``name`` is its folder and prefix."""

    name: str
    title: str
    settings: tuple[Setting, ...]
    source: Source | None = None
    emulation: Emulation | None = None
    destination: Callable[[Settings, dict[str, Any]], Destination] | None = None
    #: The destination's case for the shared test kit (omnicanal.activation.testkit).
    destination_case: Callable[[], DestinationCase] | None = None
    #: ``(world, emulator) -> [SyncTruth]``: what the channel's syncs left in its
    #: emulation against the world's ground truth, for the demo summary.
    sync_truths: Callable[[World, Any], list[SyncTruth]] | None = None
    identity: tuple[IdentityFeed, ...] = ()

    @property
    def raw_schema(self) -> str:
        """Where the loader lands the source's streams: ``raw_<name>``."""
        return f"raw_{self.name}"

    @property
    def staging_dir(self) -> str:
        """The channel's staging folder, relative to the dbt project."""
        return f"models/staging/{self.name}"

    def raw_tables(self) -> list[str]:
        """``raw_<name>.<stream>`` for each stream: one Airflow Asset each."""
        if self.source is None:
            return []
        return [f"{self.raw_schema}.{stream}" for stream in self.source.streams]
