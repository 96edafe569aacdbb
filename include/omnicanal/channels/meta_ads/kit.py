"""Meta Ads' case for the destination test kit (omnicanal.activation.testkit).

The emulated audience holds hashes, so :func:`_held` reads it back in the rows' own
fields by hashing the kit's rows (and their changed versions) the way the destination
does and matching each stored row to the one whose values it holds: a stored row that
matches no kit row's values exactly (a wrong hash, a stale phone) shows as hashes and
fails the kit's comparison.
"""

from __future__ import annotations

from dataclasses import replace

from omnicanal.activation.destination import Row
from omnicanal.activation.testkit import DestinationCase
from omnicanal.channels.meta_ads import SANDBOX_AUDIENCE_ID
from omnicanal.channels.meta_ads.destination import FIELDS, hashed_row

FIRST = ["Ana", "João", "Maria", "José", "Luíza", "Pedro"]
LAST = ["Souza", "Silva", "da Conceição", "Pereira", "Gonçalves", "Abreu"]
CITIES = [("São Paulo", "SP"), ("Rio de Janeiro", "RJ"), ("Belo Horizonte", "MG")]
#: How many kit rows :func:`_held` can recognise (the kit asks for batch size + 5).
KNOWN_ROWS = 10_010


def row(n: int) -> Row:
    first, last = FIRST[n % len(FIRST)], LAST[n // len(FIRST) % len(LAST)]
    city, state = CITIES[n % len(CITIES)]
    email = f"Cliente.{n}@Exemplo.com.br "
    return Row(
        f"cliente.{n}@exemplo.com.br",
        {
            "EMAIL": email,
            "PHONE": f"(11) 9{n % 10000:04d}-{n // 10000 % 10000:04d}",
            "FN": first,
            "LN": last,
            "CT": city,
            "ST": state,
            "ZIP": f"0{n % 10000:04d}-000",
            "COUNTRY": "BR",
        },
    )


def change(row: Row) -> Row:
    return replace(row, payload={**row.payload, "LN": "Oliveira", "PHONE": "+55 21 98888-7777"})


REFUSED = Row(
    "sem-contato", {"EMAIL": "not-an-email", "PHONE": "123", "FN": "Sem", "LN": "Contato"}
)


def _held(emulator) -> dict[str, dict]:
    known: dict[str, list[Row]] = {}
    for n in range(KNOWN_ROWS):
        original = row(n)
        for candidate in (original, change(original)):
            email = hashed_row(candidate.payload, ["EMAIL"])["EMAIL"]
            known.setdefault(email, []).append(candidate)
    held: dict[str, dict] = {}
    for stored in emulator.users(SANDBOX_AUDIENCE_ID):
        candidates = known.get(stored.get("EMAIL", ""), [])
        for candidate in candidates:
            fields = [f for f in candidate.payload if f in FIELDS]
            if {k: v for k, v in hashed_row(candidate.payload, fields).items() if v} == stored:
                held[candidate.key] = dict(candidate.payload)
                break
        else:
            held[candidates[0].key if candidates else str(stored)] = dict(stored)
    return held


def destination_case() -> DestinationCase:
    return DestinationCase(
        row=row,
        change=change,
        refused=REFUSED,
        env=lambda url: {"OMNICANAL_META_ADS_API_URL": url, "OMNICANAL_META_ADS_RATE_LIMIT": "100"},
        bad_credentials={"OMNICANAL_META_ADS_ACCESS_TOKEN": "EAAG-wrong-token"},
        credential_setting="OMNICANAL_META_ADS_ACCESS_TOKEN",
        held=_held,
    )
