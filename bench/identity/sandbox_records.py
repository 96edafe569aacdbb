"""Identity records drawn from the sandbox's people, with ground truth.

People come from ``omnicanal.sandbox.people.generate_people`` (the world generator's
own people: Brazilian names with accents, unique emails, mobiles and valid CPFs). Each
person then leaves 1 to 6 records across the store's channels, the way the sandbox's
platforms hold them: every identifier goes through the sandbox's noise functions (case
and spaces in emails, every local phone habit including the missing ninth digit, CPFs
formatted or not, names shouting, accent-less or with a typo) and each channel keeps
only what it asks for. Two traps the guards must stop: walk-in sales typed with the
store's phone or a junk email. A person's records share evidence, as real accounts do:
each later record holds at least one identifier an earlier one held, or (about one in
fifteen) none at all but the name, birth date and address of the person's first
record, which only the fuzzy stage can link.
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime
from pathlib import Path

from omnicanal.identity.resolve import INPUT_COLUMNS
from omnicanal.sandbox.noise import (
    name_typo,
    noisy_cpf,
    noisy_email,
    noisy_name_case,
    noisy_phone,
    whatsapp_wa_id,
)
from omnicanal.sandbox.people import generate_people

#: The `omnicanal identity resolve` input columns the generator fills.
COLUMNS = [column for column in INPUT_COLUMNS if column not in ("full_name", "instagram")]

# channel: (share of records, chance it holds email, phone, cpf, birth date, address)
CHANNELS: dict[str, tuple[int, float, float, float, float, float]] = {
    "shopify": (35, 0.97, 0.8, 0.5, 0.3, 0.9),
    "crm": (20, 0.8, 0.8, 0.7, 0.6, 0.5),
    "pos": (20, 0.3, 0.6, 0.6, 0.1, 0.1),
    "whatsapp": (15, 0.05, 1.0, 0.02, 0.0, 0.0),
    "support": (10, 0.7, 0.5, 0.1, 0.0, 0.0),
}
STORE_PHONE = "(11) 99999-9999"
JUNK_EMAILS = ("teste@teste.com", "naotem@naotem.com")
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
RECORDS_PER_PERSON = (1, 2, 2, 3, 3, 3, 4, 4, 5, 6)  # mean 3.3


def generate(records: int, seed: int = 7) -> list[tuple[str, list[str | None]]]:
    """About ``records`` rows as (person_id, row in COLUMNS order)."""
    rng = random.Random(seed)
    # a margin of people, so the records never run out before ``records``
    people = generate_people(rng, max(1, round(records / 3.0)) + 1, AS_OF)
    names = list(CHANNELS)
    weights = [CHANNELS[n][0] for n in names]
    out: list[tuple[str, list[str | None]]] = []
    counter = 0
    for person in people:
        carried: set[str] = set()  # strong identifiers the person's earlier records hold
        for index in range(rng.choice(RECORDS_PER_PERSON)):
            if len(out) >= records:
                return out
            counter += 1
            source = rng.choices(names, weights=weights)[0]
            _, p_email, p_phone, p_cpf, p_birth, p_address = CHANNELS[source]
            bare = index > 0 and rng.random() < 0.07  # no strong identifier: fuzzy only
            email = noisy_email(rng, person.email) if rng.random() < p_email else None
            phone = (
                noisy_phone(rng, person.phone, missing=False) if rng.random() < p_phone else None
            )
            cpf = noisy_cpf(rng, person.cpf) if rng.random() < p_cpf else None
            if email is None and phone is None and cpf is None:
                # a channel keeps at least the contact it talks to the person through
                if source in ("whatsapp", "pos"):
                    phone = noisy_phone(rng, person.phone, missing=False)
                else:
                    email = noisy_email(rng, person.email)
            held = {k for k, v in (("email", email), ("phone", phone), ("cpf", cpf)) if v}
            if index > 0 and carried and not held & carried:
                # a person's records share evidence: a later account reuses an identifier
                kind = rng.choice(sorted(carried))
                if kind == "email":
                    email = noisy_email(rng, person.email)
                elif kind == "phone":
                    phone = noisy_phone(rng, person.phone, missing=False)
                else:
                    cpf = noisy_cpf(rng, person.cpf) or person.cpf
            carried |= {k for k, v in (("email", email), ("phone", phone), ("cpf", cpf)) if v}
            if source == "pos" and rng.random() < 0.03:
                phone = STORE_PHONE
            if source == "pos" and rng.random() < 0.03:
                email = rng.choice(JUNK_EMAILS)
            first, last = person.first_name, person.last_name
            if rng.random() < 0.1:
                first = name_typo(rng, first)
            if rng.random() < 0.1:
                last = name_typo(rng, last)
            birth = person.birth_date.isoformat() if rng.random() < p_birth else None
            address = person.address if rng.random() < p_address else None
            if index == 0:
                # the first account (the sign-up) holds the birth date and address a
                # later record without any identifier can be recognised by
                birth, address = person.birth_date.isoformat(), person.address
            if bare:
                email = phone = cpf = None
                birth, address = person.birth_date.isoformat(), person.address
            wa_id = None
            if source == "whatsapp" and phone:
                # WhatsApp knows the number itself, as its wa_id
                wa_id, phone = whatsapp_wa_id(rng, person.phone), None
            values = {
                "record_id": f"{source[:2]}{counter:08d}",
                "source": source,
                "email": email,
                "phone": phone,
                "wa_id": wa_id,
                "cpf": cpf,
                "first_name": noisy_name_case(rng, first),
                "last_name": noisy_name_case(rng, last),
                "birth_date": birth,
                "city": person.city if rng.random() < 0.8 else None,
                "postcode": person.postcode if address else None,
                "address": address,
            }
            row = [values[column] for column in COLUMNS]
            out.append((person.person_id, row))
    return out


def write_csv(rows: list[tuple[str, list[str | None]]], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(row for _, row in rows)
