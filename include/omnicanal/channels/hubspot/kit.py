"""HubSpot's case for the destination test kit (omnicanal.activation.testkit).

The kit runs the default kind of sync, contact properties (mirror): rows are contacts
keyed by email with their names and a custom property, ``omnicanal_segment``, that the
destination creates on first use; a removal clears what the sync wrote.
"""

from __future__ import annotations

from dataclasses import replace

from omnicanal.activation.destination import Row
from omnicanal.activation.testkit import DestinationCase

FIRST = ["Ana", "João", "Maria", "José", "Luíza", "Pedro"]
LAST = ["Souza", "Silva", "da Conceição", "Pereira", "Gonçalves", "Abreu"]
FIELDS = ("email", "firstname", "lastname", "omnicanal_segment")


def _row(email: str, first: str, last: str) -> Row:
    return Row(
        email,
        {"email": email, "firstname": first, "lastname": last, "omnicanal_segment": "kit"},
    )


def row(n: int) -> Row:
    first, last = FIRST[n % len(FIRST)], LAST[n // len(FIRST) % len(LAST)]
    return _row(f"cliente.{n}@lojaexemplo.com.br", first, last)


def _held(emulator) -> dict[str, dict]:
    """Contacts that carry the kit's property: what the sync wrote and did not clear."""
    return {
        email: {name: properties.get(name) for name in FIELDS}
        for email, properties in emulator.writes.contacts().items()
        if properties.get("omnicanal_segment")
    }


def destination_case() -> DestinationCase:
    return DestinationCase(
        row=row,
        change=lambda row: replace(row, payload={**row.payload, "lastname": "Oliveira"}),
        refused=_row("not-an-email", "Sem", "Email"),
        env=lambda url: {"OMNICANAL_HUBSPOT_API_URL": url},
        bad_credentials={"OMNICANAL_HUBSPOT_ACCESS_TOKEN": "pat-na1-wrong-token"},
        credential_setting="OMNICANAL_HUBSPOT_ACCESS_TOKEN",
        held=_held,
    )
