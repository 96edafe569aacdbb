"""Mailchimp's case for the destination test kit (omnicanal.activation.testkit)."""

from __future__ import annotations

from dataclasses import replace

from omnicanal.activation.destination import Row
from omnicanal.activation.testkit import DestinationCase
from omnicanal.channels.mailchimp import DEFAULT_LIST_ID

FIRST = ["Ana", "João", "Maria", "José", "Luíza", "Pedro"]
LAST = ["Souza", "Silva", "da Conceição", "Pereira", "Gonçalves", "Abreu"]


def _row(email: str, first: str, last: str) -> Row:
    return Row(email, {"email_address": email, "FNAME": first, "LNAME": last})


def row(n: int) -> Row:
    first, last = FIRST[n % len(FIRST)], LAST[n // len(FIRST) % len(LAST)]
    return _row(f"cliente.{n}@exemplo.com.br", first, last)


def _held(emulator) -> dict[str, dict]:
    return {
        member["email_address"]: {
            "email_address": member["email_address"],
            **member["merge_fields"],
        }
        for member in emulator.members(DEFAULT_LIST_ID, status="subscribed")
    }


def destination_case() -> DestinationCase:
    return DestinationCase(
        row=row,
        change=lambda row: replace(row, payload={**row.payload, "LNAME": "Oliveira"}),
        # Mailchimp refuses well-formed addresses that look fake, with its reason
        refused=_row("teste@teste.com", "Sem", "Email"),
        env=lambda url: {"OMNICANAL_MAILCHIMP_API_URL": f"{url}/3.0"},
        bad_credentials={"OMNICANAL_MAILCHIMP_API_KEY": "wrong-key-us1"},
        credential_setting="OMNICANAL_MAILCHIMP_API_KEY",
        held=_held,
    )
