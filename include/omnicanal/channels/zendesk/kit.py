"""Zendesk's case for the destination test kit (omnicanal.activation.testkit).

Rows are people keyed by email with a name (used when the destination creates the
user) and one custom user field, ``omnicanal_segment``; what the emulation holds is the
users carrying the destination's default tag, with their name and that field.
"""

from __future__ import annotations

from dataclasses import replace

from omnicanal.activation.destination import Row
from omnicanal.activation.testkit import DestinationCase
from omnicanal.channels.zendesk.destination import DEFAULT_TAG

FIRST = ["Ana", "João", "Maria", "José", "Luíza", "Pedro"]
LAST = ["Souza", "Silva", "da Conceição", "Pereira", "Gonçalves", "Abreu"]


def _row(email: str, name: str) -> Row:
    return Row(email, {"email": email, "name": name, "omnicanal_segment": "kit"})


def row(n: int) -> Row:
    first, last = FIRST[n % len(FIRST)], LAST[n // len(FIRST) % len(LAST)]
    return _row(f"cliente.{n}@lojaexemplo.com.br", f"{first} {last}")


def _held(emulator) -> dict[str, dict]:
    return {
        email: {
            "email": email,
            "name": user["name"],
            "omnicanal_segment": (user.get("user_fields") or {}).get("omnicanal_segment"),
        }
        for email, user in emulator.writes.tagged(DEFAULT_TAG).items()
    }


def destination_case() -> DestinationCase:
    return DestinationCase(
        row=row,
        change=lambda row: replace(row, payload={**row.payload, "omnicanal_segment": "vip"}),
        refused=_row("not-an-email", "Sem Email"),
        env=lambda url: {"OMNICANAL_ZENDESK_API_URL": url},
        bad_credentials={"OMNICANAL_ZENDESK_API_TOKEN": "zd-wrong-token"},
        credential_setting="OMNICANAL_ZENDESK_API_TOKEN",
        held=_held,
    )
