"""Realistic dirt for the identifiers a store keeps, applied to canonical values.

Each function takes the generator's ``random.Random`` and a clean value and returns
what a real Brazilian store database tends to hold instead: emails typed with
capitals and stray spaces, phones in every local habit (including the pre-2016
eight-digit mobiles without the ninth digit), names in shouting case or without
accents, CPFs with or without punctuation. The identity models are tested against
exactly this.
"""

from __future__ import annotations

import random
import unicodedata

from omnicanal.sandbox.cpf import format_cpf


def strip_accents(text: str) -> str:
    """Drop diacritics ("Conceição" → "Conceicao"), as ASCII-only forms and people do."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _title_email(email: str) -> str:
    local, _, domain = email.partition("@")
    parts = local.split(".")
    return ".".join(p[:1].upper() + p[1:] for p in parts) + "@" + domain.capitalize()


def email_variants(email: str) -> list[str]:
    """All the dirty spellings ``noisy_email`` may return for a canonical email."""
    titled = _title_email(email)
    return [
        titled,
        email.upper(),
        f"  {titled} ",
        f" {email}",
        f"{email}  ",
        email.split("@")[0] + "@" + email.split("@")[1].upper(),
    ]


def noisy_email(rng: random.Random, email: str, dirty_share: float = 0.3) -> str:
    """Return ``email`` as stored, dirty (case, surrounding spaces) ``dirty_share`` of times."""
    if rng.random() >= dirty_share:
        return email
    return rng.choice(email_variants(email))


def different_email_spelling(rng: random.Random, email: str, taken: str) -> str:
    """A dirty spelling of ``email`` that differs from ``taken`` as a string.

    Duplicate store accounts exist precisely because the second sign-up typed the
    address differently, so the two raw values must never be equal.
    """
    choices = [v for v in email_variants(email) if v != taken]
    return rng.choice(choices)


def _split_mobile(e164: str) -> tuple[str, str]:
    """Split "+55DDD9NNNNNNNN" into the DDD and the nine-digit subscriber number."""
    national = e164.removeprefix("+55")
    return national[:2], national[2:]


def phone_formats(e164: str) -> dict[str, str]:
    """The local ways of writing one mobile number, keyed by a short format name."""
    ddd, number = _split_mobile(e164)
    eight = number[1:]  # the number before the ninth digit was added (2012–2016)
    return {
        "e164": e164,
        "national_masked": f"({ddd}) {number[:5]}-{number[5:]}",
        "no_ninth_digit": f"{ddd} {eight[:4]}-{eight[4:]}",
        "no_ninth_digit_masked": f"({ddd}) {eight[:4]}-{eight[4:]}",
        "international_spaced": f"+55 {ddd} {number[:5]} {number[5:]}",
        "trunk_prefix": f"0{ddd}{number}",
        "digits": f"{ddd}{number}",
    }


def whatsapp_wa_id(rng: random.Random, e164: str) -> str:
    """The person's WhatsApp ``wa_id``: the number's digits without "+". An account made
    before the ninth digit was added to Brazilian mobiles keeps the old 12 digits."""
    ddd, number = _split_mobile(e164)
    return f"55{ddd}{number[1:] if rng.random() < 0.3 else number}"


_PHONE_WEIGHTS: dict[str, int] = {
    "e164": 30,
    "national_masked": 20,
    "no_ninth_digit": 10,
    "no_ninth_digit_masked": 5,
    "international_spaced": 10,
    "trunk_prefix": 8,
    "digits": 10,
    "missing": 7,
}


def noisy_phone(rng: random.Random, e164: str, missing: bool = True) -> str | None:
    """Return the phone as a store would hold it, or None when it was never given."""
    weights = {k: w for k, w in _PHONE_WEIGHTS.items() if missing or k != "missing"}
    kind = rng.choices(list(weights), weights=list(weights.values()))[0]
    if kind == "missing":
        return None
    return phone_formats(e164)[kind]


def noisy_name_case(rng: random.Random, name: str) -> str:
    """Return ``name`` in the case a hurried clerk or a phone keyboard leaves it."""
    return rng.choice([name.upper(), name.lower(), name.upper(), name])


def name_typo(rng: random.Random, name: str) -> str:
    """Return ``name`` with one common slip: lost accents, swapped or dropped letter."""
    if strip_accents(name) != name and rng.random() < 0.6:
        return strip_accents(name)
    if len(name) < 4:
        return name.upper()
    i = rng.randrange(1, len(name) - 2)
    if rng.random() < 0.5:
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    return name[:i] + name[i + 1 :]


def noisy_cpf(rng: random.Random, cpf: str) -> str | None:
    """Return a CPF as typed into an address's company field, or None when left blank."""
    kind = rng.choices(["formatted", "digits", "spaced", "missing"], weights=[40, 25, 5, 30])[0]
    if kind == "formatted":
        return format_cpf(cpf)
    if kind == "digits":
        return cpf
    if kind == "spaced":
        return f" {format_cpf(cpf)} "
    return None
