"""Brazilian CPF numbers: check digits, validation and display format.

The CPF (Cadastro de Pessoas Físicas) is the tax id every Brazilian consumer gives at
checkout, so it is the strongest identifier a Brazilian store holds. Its last two
digits are mod-11 check digits; generating CPFs that pass the check lets the
warehouse's validation logic be tested against realistic data, and lets tests tell a
mangled CPF from a real one.
"""

from __future__ import annotations

import random
import re

_NON_DIGITS = re.compile(r"\D")


def cpf_check_digits(base9: str) -> str:
    """Return the two check digits for the first nine digits of a CPF.

    Standard algorithm: weights 10..2 over the nine digits give the first digit,
    weights 11..2 over the ten digits give the second; each digit is
    ``11 - (sum % 11)``, or 0 when that is 10 or 11.
    """
    if len(base9) != 9 or not base9.isdigit():
        raise ValueError(f"a CPF base has exactly nine digits, got {base9!r}")
    digits = [int(c) for c in base9]
    for _ in range(2):
        weight_start = len(digits) + 1
        total = sum(d * w for d, w in zip(digits, range(weight_start, 1, -1), strict=True))
        remainder = 11 - total % 11
        digits.append(0 if remainder >= 10 else remainder)
    return f"{digits[9]}{digits[10]}"


def cpf_is_valid(value: str | None) -> bool:
    """Whether ``value`` is a valid CPF, formatted ("123.456.789-09") or digits only.

    Punctuation is ignored; repeated-digit numbers such as 111.111.111-11 pass the
    mod-11 check but are rejected, as the Receita Federal does.
    """
    if not value:
        return False
    digits = _NON_DIGITS.sub("", value)
    if len(digits) != 11 or len(set(digits)) == 1:
        return False
    return cpf_check_digits(digits[:9]) == digits[9:]


def format_cpf(value: str) -> str:
    """Format an 11-digit CPF as ``NNN.NNN.NNN-NN`` (punctuation in the input is ignored)."""
    digits = _NON_DIGITS.sub("", value)
    if len(digits) != 11:
        raise ValueError(f"a CPF has 11 digits, got {value!r}")
    return f"{digits[:3]}.{digits[3:6]}.{digits[6:9]}-{digits[9:]}"


def random_cpf(rng: random.Random) -> str:
    """Draw a valid 11-digit CPF (digits only) from ``rng``."""
    while True:
        base = "".join(str(rng.randrange(10)) for _ in range(9))
        if len(set(base)) > 1:
            return base + cpf_check_digits(base)
