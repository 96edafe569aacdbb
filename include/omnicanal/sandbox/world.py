"""One coherent synthetic world: people, the records their channels hold, and the truth.

``generate_world`` draws the people and, for every channel whose emulation has a
slice of the world, what that platform holds about them, from one seed, so the demo,
the tests and a bug report all see the same world. Each slice keeps its ground truth
(which record belongs to which person) next to the noisy records; the ``World``
answers what a correct pipeline must produce, e.g. ``expected_recent_buyers`` for the
Mailchimp "recent buyers" segment.

Each channel draws from its own random stream derived from the seed, so adding a
channel does not reshuffle the people or the other channels of a seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from omnicanal.channels import CHANNELS, get_channel
from omnicanal.sandbox.cpf import cpf_is_valid, format_cpf
from omnicanal.sandbox.linkage import IdentityRecord, record_groups
from omnicanal.sandbox.people import Person, generate_people

__all__ = ["Person", "World", "cpf_is_valid", "format_cpf", "generate_world"]

WORLD_FORMAT_VERSION = 2


@dataclass
class World:
    """The people, each channel's slice of the world, and which record is whose.

    ``slices`` maps a channel name to what ``Emulation.world_slice`` generated for it,
    e.g. ``world.slices["shopify"]`` (a ``ShopifyStore``: customers and orders in the
    Admin API's JSON shape, and the person each customer account belongs to).
    """

    as_of: datetime
    seed: int
    people: list[Person]
    slices: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def people_by_id(self) -> dict[str, Person]:
        return {p.person_id: p for p in self.people}

    def person(self, person_id: str) -> Person:
        """The person with ``person_id``; KeyError if the world has none."""
        return self.people_by_id[person_id]

    def email_marketing_consenters(self) -> set[str]:
        """The people who accept email marketing *and* whom a record the platforms still
        serve says so of. Consent the pipeline cannot see is no consent: someone whose
        only record of it was a deleted account is marketed to nowhere. The slices that
        state consent say whose records do (``email_consent_people``); read each time,
        as the emulators delete and create records."""
        on_record: set[str] = set()
        for piece in self.slices.values():
            if hasattr(piece, "email_consent_people"):
                on_record |= piece.email_consent_people()
        return {pid for pid in on_record if self.person(pid).accepts_email_marketing}

    def identity_records(self) -> list[IdentityRecord]:
        """Every record the platforms serve that identity resolution reads, with whose it
        is and the identifiers it links on (each slice's ``identity_records``); read each
        time, as the emulators delete and create records."""
        records: list[IdentityRecord] = []
        for piece in self.slices.values():
            if hasattr(piece, "identity_records"):
                records.extend(piece.identity_records())
        return records

    def record_groups(self) -> dict[str, str]:
        """record key → its group: the person's records a correct pipeline can tie to it
        (joined by shared identifiers, never across people; ``omnicanal.sandbox.linkage``).
        A record in no group (a name-only till profile among them) is a group of its own."""
        return record_groups(self.identity_records())

    def consenting_groups(self, groups: dict[str, str] | None = None) -> set[str]:
        """The groups (``record_groups``) of people who accept marketing in which a record
        states that consent: what a pipeline can know of a record's owner. Consent stated
        on a record nothing ties to this one is, for this one, no consent."""
        records = self.identity_records()
        groups = record_groups(records) if groups is None else groups
        return {
            groups[r.key]
            for r in records
            if r.consents and self.person(r.person_id).accepts_email_marketing
        }

    def expected_recent_buyers(self, window_days: int = 90) -> dict[str, dict[str, str]]:
        """Ground truth of the Mailchimp "recent buyers" segment.

        People with at least one non-cancelled Shopify order created in the
        ``window_days`` before ``as_of`` who accept email marketing, keyed by their
        canonical (lower-case) email, with their canonical first and last name. Read
        from the current orders, so it follows mutations made through the emulator;
        consent and names always come from the ``Person``.
        """
        cutoff = self.as_of - timedelta(days=window_days)
        buyers: dict[str, dict[str, str]] = {}
        store = self.slices["shopify"]
        for order in store.orders:
            if order.get("cancelled_at"):
                continue
            created = datetime.fromisoformat(order["created_at"])
            if not cutoff <= created <= self.as_of:
                continue
            person_id = store.customer_person.get((order.get("customer") or {}).get("id"))
            if person_id is None:
                continue
            person = self.person(person_id)
            if person.accepts_email_marketing:
                buyers[person.email] = {
                    "first_name": person.first_name,
                    "last_name": person.last_name,
                }
        return dict(sorted(buyers.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": WORLD_FORMAT_VERSION,
            "seed": self.seed,
            "as_of": self.as_of.isoformat(),
            "people": [p.to_dict() for p in self.people],
            "slices": {name: piece.to_dict() for name, piece in self.slices.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> World:
        version = data.get("format_version")
        if version != WORLD_FORMAT_VERSION:
            raise ValueError(
                f"world file has format_version {version!r}, this omnicanal reads "
                f"{WORLD_FORMAT_VERSION}; regenerate it with `omnicanal sandbox world`"
            )
        slices = {}
        for name, piece in data["slices"].items():
            emulation = get_channel(name).emulation
            if emulation is None or emulation.load_slice is None:
                raise ValueError(f"world file has a {name!r} slice no channel reads")
            slices[name] = emulation.load_slice(piece)
        return cls(
            as_of=datetime.fromisoformat(data["as_of"]),
            seed=data["seed"],
            people=[Person.from_dict(p) for p in data["people"]],
            slices=slices,
        )

    def to_json(self, path: str | Path) -> None:
        """Write the world to ``path`` (UTF-8 JSON, accents kept readable)."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | Path) -> World:
        """Read a world written by ``to_json``."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _as_of(as_of: datetime | None) -> datetime:
    if as_of is None:
        return datetime.now(UTC).replace(microsecond=0)
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware, e.g. datetime(..., tzinfo=UTC)")
    return as_of.astimezone(UTC).replace(microsecond=0)


def generate_world(people: int, seed: int, as_of: datetime | None = None) -> World:
    """Generate a world of ``people`` people, the same one for the same seed and ``as_of``.

    ``as_of`` is the world's "now" (default: the current UTC second); every timestamp
    lies before it, so a fixed ``as_of`` makes the whole world reproducible.
    """
    if people < 1:
        raise ValueError(f"a world needs at least one person, got people={people}")
    moment = _as_of(as_of)
    population = generate_people(random.Random(f"{seed}:people"), people, moment)
    slices: dict[str, Any] = {}
    for name, channel in CHANNELS.items():
        if channel.emulation and channel.emulation.world_slice:
            rng = random.Random(f"{seed}:{name}")
            slices[name] = channel.emulation.world_slice(rng, population, moment, dict(slices))
    return World(as_of=moment, seed=seed, people=population, slices=slices)
