"""What marks a row as one person's: the tokens an erasure looks for, and the walk
that finds them in any row (a raw record, a staging row, a mart row) as JSON.

A row is the person's when one of its values is one of their tokens:

- ``email:<normalised>``: an email anywhere in a value, normalised as activation does
  (:func:`omnicanal.activation.hashing.normalize_email`), free text included;
- ``phone:<E.164>``: a value that is only a phone number, normalised by the project's
  Brazilian rules (``+55``, the trunk and carrier prefixes, the mobile ninth digit);
- ``cpf:<11 digits>``: a value that is only a CPF, with or without punctuation;
- ``any:<lower-cased value>``: a value equal to a customer_id, an identity record_key,
  the SHA-256 of an email or a social handle, whatever its column;
- ``id:<channel>:<id>``: a platform id (a Shopify customer, a VTEX profile, a Zendesk
  ticket) under a column or key named like an id (``id``, ``*_id``, ``*Id``), in that
  channel's tables only (raw_<channel>, stg_<channel>__*), also as the tail of a
  GraphQL gid (``gid://shopify/Customer/7000018391240``). A bare number is an id only
  where the row says so: a price of 44001 is not HubSpot contact 44001.

The same walk serves the erasure (tokens in plain text, in memory for one command)
and the erasure register (the tokens' keyed hashes, :mod:`.register`): what one finds,
the other blocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from omnicanal.activation.hashing import normalize_email, normalize_phone

_EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
#: a value that is nothing but a phone number: digits, spaces, + ( ) - .
_PHONE_ONLY = re.compile(r"^\+?[\d\s().\-]{8,22}$")
#: a value that is nothing but a CPF: 11 digits, maybe as 123.456.789-09
_CPF_ONLY = re.compile(r"^\d{3}\.?\d{3}\.?\d{3}[-.\s]?\d{2}$")
_ID_KEY = re.compile(r"(^|_)id$|[a-z]Id$|ID$|(^|_)(username|handle)$")
_NON_DIGIT = re.compile(r"\D")


def phone_token(value: str) -> str | None:
    """``phone:+5521965687578`` for a Brazilian (or +country) number, else None."""
    digits = normalize_phone(value)
    return f"phone:+{digits}" if digits else None


def email_token(value: str) -> str | None:
    email = normalize_email(value)
    return f"email:{email}" if email else None


def id_key(key: str | None) -> bool:
    """Whether a column or JSON key names an id (``id``, ``customer_id``, ``orderId``)."""
    return bool(key) and bool(_ID_KEY.search(key))


def _scalars(value: Any, key: str | None = None) -> Iterator[tuple[str | None, str]]:
    """(key, text) of every scalar in a JSON value; numbers as written, no bools."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _scalars(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _scalars(v, key)
    elif isinstance(value, str):
        yield key, value
    elif isinstance(value, int) and not isinstance(value, bool):
        yield key, str(value)


def candidates(row: Any, channel: str | None) -> Iterator[str]:
    """Every token a row could carry (see the module docstring), for matching."""
    for key, text in _scalars(row):
        if len(text) > 2:
            yield f"any:{text.lower()}"
        if "@" in text:
            for found in _EMAIL_IN_TEXT.findall(text):
                token = email_token(found)
                if token:
                    yield token
        if _PHONE_ONLY.match(text):
            token = phone_token(text)
            if token:
                yield token
        if _CPF_ONLY.match(text):
            yield f"cpf:{_NON_DIGIT.sub('', text)}"
        if channel and id_key(key):
            yield f"id:{channel}:{text}"
            if "/" in text:
                yield f"id:{channel}:{text.rsplit('/', 1)[1]}"


def matches(row: Any, channel: str | None, tokens: set[str]) -> bool:
    """Whether ``row`` carries one of ``tokens``."""
    return any(token in tokens for token in candidates(row, channel))


def like_patterns(tokens: Iterable[str]) -> tuple[list[str], list[str]]:
    """A cheap SQL prefilter for rows that may carry ``tokens``: LIKE patterns for the
    lower-cased text of the row as JSON, and regular expressions for phones (their last
    eight digits, a separator allowed in the middle: 96568-7578, 6568 7578)."""
    likes: set[str] = set()
    regexes: set[str] = set()
    for token in tokens:
        kind, _, value = token.partition(":")
        if kind == "id":
            value = value.split(":", 1)[1]
        if kind == "phone":
            last8 = value[-8:]
            regexes.add(f"{last8[:4]}[-. ]?{last8[4:]}")
            continue
        if kind == "cpf":
            likes.add(f"%{value[:3]}%{value[3:6]}%{value[6:9]}%{value[9:]}%")
            continue
        escaped = value.lower().replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        likes.add(f"%{escaped}%")
    return sorted(likes), sorted(regexes)
