"""The people of the synthetic world: who they really are, before any system dirties it.

A ``Person`` is the ground truth every source is generated from and every identity
test is checked against: canonical name spelling, one lower-case email, one E.164
mobile, one valid CPF, and whether they accept email marketing (and, derived from it,
marketing messages on their mobile).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from omnicanal.sandbox.brazil import (
    CITIES,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    PARTICLE_SURNAMES,
    STREETS,
    SURNAMES,
    City,
)
from omnicanal.sandbox.cpf import random_cpf
from omnicanal.sandbox.noise import strip_accents

EMAIL_MARKETING_SHARE = 0.7
#: Of those who accept email marketing, the share who also accept marketing messages to
#: their mobile (SMS and WhatsApp opt-in).
PHONE_MARKETING_SHARE = 0.6


@dataclass(frozen=True)
class Person:
    """One real person of the world, as their own documents would describe them."""

    person_id: str
    first_name: str
    last_name: str
    email: str  # canonical: lower-case, no spaces, unique in the world
    phone: str  # E.164: +55, two-digit DDD, nine-digit mobile starting with 9
    cpf: str  # eleven digits, valid check digits
    birth_date: date
    city: str
    state: str  # UF, e.g. "SP"
    postcode: str  # CEP, "NNNNN-NNN"
    address: str  # street and number, e.g. "Rua das Flores, 123"
    accepts_email_marketing: bool

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def accepts_phone_marketing(self) -> bool:
        """Whether they opted in to marketing messages on their mobile (SMS, WhatsApp).

        Only people who accept email marketing do (so no revocation elsewhere contradicts
        it). Derived from a hash of their CPF, not drawn from the world's random streams,
        so adding it changed no other figure of any seed; not stored in world files."""
        if not self.accepts_email_marketing:
            return False
        digest = hashlib.sha256(f"phone-marketing:{self.cpf}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < PHONE_MARKETING_SHARE

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["birth_date"] = self.birth_date.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Person:
        return cls(**{**data, "birth_date": date.fromisoformat(data["birth_date"])})


def _last_name(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.12:
        return rng.choice(PARTICLE_SURNAMES)
    if roll < 0.35:
        first, second = rng.sample(SURNAMES, 2)
        return f"{first} {second}"
    return rng.choice(SURNAMES)


def _email(rng: random.Random, first: str, last: str, birth_year: int, taken: set[str]) -> str:
    """Derive a personal address from the name, as people do, unique in the world."""
    given = strip_accents(first).lower()
    family = strip_accents(last.split()[-1]).lower()
    domains, weights = zip(*EMAIL_DOMAINS, strict=True)
    while True:
        number = rng.choice([str(rng.randint(1, 99)), str(birth_year)[-2:], str(birth_year)])
        pattern = rng.choice(["{g}.{f}{n}", "{g}{f}{n}", "{g}_{f}{n}", "{i}{f}{n}", "{g}.{f}.{n}"])
        local = pattern.format(g=given, f=family, i=given[0], n=number)
        email = f"{local}@{rng.choices(domains, weights=weights)[0]}"
        if email not in taken:
            taken.add(email)
            return email


def _mobile(rng: random.Random, ddd: str, taken: set[str]) -> str:
    while True:
        number = f"9{rng.randint(6, 9)}{rng.randrange(10**7):07d}"
        phone = f"+55{ddd}{number}"
        if phone not in taken:
            taken.add(phone)
            return phone


def _cep(rng: random.Random, city: City) -> str:
    """A CEP inside the city's range, written "NNNNN-NNN"."""
    return f"{rng.randint(city.cep_low, city.cep_high):05d}-{rng.randrange(1000):03d}"


def generate_people(rng: random.Random, count: int, as_of: datetime) -> list[Person]:
    """Draw ``count`` distinct people; emails, phones and CPFs are unique across them."""
    emails: set[str] = set()
    phones: set[str] = set()
    cpfs: set[str] = set()
    city_weights = [c.weight for c in CITIES]
    people: list[Person] = []
    for index in range(1, count + 1):
        first = rng.choice(FIRST_NAMES)
        last = _last_name(rng)
        birth = as_of.date() - timedelta(days=rng.randint(18 * 365, 75 * 365))
        city = rng.choices(CITIES, weights=city_weights)[0]
        cpf = random_cpf(rng)
        while cpf in cpfs:
            cpf = random_cpf(rng)
        cpfs.add(cpf)
        people.append(
            Person(
                person_id=f"P{index:06d}",
                first_name=first,
                last_name=last,
                email=_email(rng, first, last, birth.year, emails),
                phone=_mobile(rng, city.ddd, phones),
                cpf=cpf,
                birth_date=birth,
                city=city.name,
                state=city.uf,
                postcode=_cep(rng, city),
                address=f"{rng.choice(STREETS)}, {rng.randint(1, 3500)}",
                accepts_email_marketing=rng.random() < EMAIL_MARKETING_SHARE,
            )
        )
    return people
