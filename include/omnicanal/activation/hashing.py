"""PII normalised by the platforms' matching rules, then hashed with SHA-256.

A destination that wants hashed identifiers (``hashes = True``: Meta Custom
Audiences, for one) gets values normalised as the platform documents, so that the
hash it receives is the hash the platform computed from its own users' data:

- email: trimmed and lower-cased;
- phone: digits only with the country code, no leading zeros; Brazilian numbers
  (the default country, +55) also lose the trunk 0 and carrier code (``0 21 11 …``)
  and get back the mobile ninth digit an old record lacks (8-digit local numbers that
  start with 6-9);
- name: lower-cased letters only (accents kept, as UTF-8), no punctuation or spaces.

Each ``normalize_*`` returns None for a value that cannot be normalised (empty, too
few digits): such a value is left out, never hashed as garbage.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

BRAZIL = "55"
_NON_DIGIT = re.compile(r"\D")


def sha256_hex(value: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 bytes, unsalted, as the platforms expect."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalize_email(value: str | None) -> str | None:
    if value is None:
        return None
    email = value.strip().lower()
    return email if "@" in email else None


def _brazilian(national: str) -> str | None:
    """Area code + local number (10 or 11 digits, or 8 digits of an old mobile)."""
    if len(national) not in (10, 11) or national[0] == "0":
        return None
    area, local = national[:2], national[2:]
    if len(local) == 8 and local[0] in "6789":
        local = "9" + local  # mobile written before the ninth digit (2012-2016)
    return BRAZIL + area + local


def normalize_phone(value: str | None, default_country: str = BRAZIL) -> str | None:
    """Digits with the country code: ``(11) 8765-4321`` → ``5511987654321``."""
    if value is None:
        return None
    text = value.strip()
    digits = _NON_DIGIT.sub("", text)
    if not digits:
        return None
    if text.startswith("+") or text.startswith("00"):
        digits = digits.lstrip("0")
        if digits.startswith(BRAZIL) and len(digits) in (12, 13):
            return _brazilian(digits[2:])
        return digits if len(digits) >= 8 else None
    if default_country != BRAZIL:
        digits = digits.lstrip("0")
        return default_country + digits if len(digits) >= 6 else None
    if digits.startswith("0"):
        digits = digits[1:]
        if len(digits) in (12, 13):  # 0 + carrier code + area code + number
            digits = digits[2:]
        return _brazilian(digits)
    if digits.startswith(BRAZIL) and len(digits) in (12, 13):
        return _brazilian(digits[2:])
    return _brazilian(digits)


def normalize_name(value: str | None) -> str | None:
    if value is None:
        return None
    text = unicodedata.normalize("NFC", value).lower()
    name = "".join(ch for ch in text if unicodedata.category(ch).startswith("L"))
    return name or None


def hashed(normalized: str | None) -> str | None:
    """The SHA-256 of a normalised value, or None when there is nothing to send."""
    return None if normalized is None else sha256_hex(normalized)
