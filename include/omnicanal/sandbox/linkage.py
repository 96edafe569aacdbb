"""Which of a person's records a correct pipeline can tie together, from the world alone.

A truth that asks "does this person consent?" counts what no pipeline can know when the
record in question shares nothing with the record that states the consent: a till
profile holding a name only is somebody's, but nothing says whose. The truths ask
instead about the record's *group*: the person's own records connected to it by shared
identifiers, as identity resolution's deterministic stage connects them:

- the normalised email (trimmed, lower-cased);
- the phone as identity normalises it (E.164 digits, the mobile's ninth digit put back,
  so ``551166717620`` from WhatsApp is ``5511966717620``): activation's normaliser;
- the CPF's eleven digits, check digits verified;
- platform ids and handles that tie two records of one platform (an order to its
  account, a Square return to the Shopify order it took back).

Only a person's own records are joined: a correct pipeline never merges two people.
Names and birth dates (identity's fuzzy stage) join nothing here: on the demo's world
the fuzzy stage links no pair (``int_identity__fuzzy_pairs`` is empty), and a full name
alone is what identity rightly refuses (on the adversarial file such pairs are one person
1,129 times in 30,760).

Each world slice that serves identity-bearing records says which, for whom, with their
identifiers (``identity_records``); ``World.record_groups`` joins them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from omnicanal.activation.hashing import normalize_email, normalize_phone
from omnicanal.sandbox.cpf import cpf_is_valid

#: One identifier: (type, normalised value), e.g. ("email", "ana@x.com").
Identifier = tuple[str, str]

_NON_DIGIT = re.compile(r"\D")


@dataclass(frozen=True)
class IdentityRecord:
    """One record a platform serves about a person, as identity resolution reads it.

    ``key`` is identity's record_key (``<source>:<id>``); ``identifiers`` the values it
    links on; ``consents`` whether it states a marketing consent (an opt-in: a Shopify
    account subscribed to email or SMS, a subscribed Mailchimp member, a Square profile
    with an email not unsubscribed, a VTEX profile opted in to the newsletter)."""

    key: str
    person_id: str
    identifiers: frozenset[Identifier]
    consents: bool = False


def email_id(value: object) -> Identifier | None:
    """The email as identity links it, or None when there is none."""
    email = normalize_email(value) if isinstance(value, str) else None
    return ("email", email) if email else None


def phone_id(value: object) -> Identifier | None:
    """The phone as identity links it (a WhatsApp ``wa_id`` too), or None."""
    phone = normalize_phone(value) if isinstance(value, str) else None
    return ("phone", phone) if phone else None


def cpf_id(value: object) -> Identifier | None:
    """A CPF written anywhere in ``value`` (a note, a reference, a masked document): its
    eleven digits when they are the only digits and pass the check, else None."""
    if not isinstance(value, str):
        return None
    digits = _NON_DIGIT.sub("", value)
    return ("cpf", digits) if len(digits) == 11 and cpf_is_valid(digits) else None


def platform_id(kind: str, value: object) -> Identifier | None:
    """A platform id (``shopify_customer``, ``vtex_user`` ...) as text, or None."""
    if value is None or str(value).strip() == "":
        return None
    return (kind, str(value).strip())


def identity_record(
    key: str, person_id: str, identifiers: Iterable[Identifier | None], consents: bool = False
) -> IdentityRecord:
    """An :class:`IdentityRecord` keeping only the identifiers that are there."""
    return IdentityRecord(
        key, person_id, frozenset(i for i in identifiers if i is not None), consents
    )


def record_groups(records: Iterable[IdentityRecord]) -> dict[str, str]:
    """record key → its group's id (the smallest key in it): each person's records
    joined wherever two of them share an identifier (union-find per person)."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        root = key
        while parent[root] != root:
            root = parent[root]
        while parent[key] != root:
            parent[key], key = root, parent[key]
        return root

    holder: dict[tuple[str, Identifier], str] = {}
    for record in records:
        parent.setdefault(record.key, record.key)
        for identifier in record.identifiers:
            other = holder.setdefault((record.person_id, identifier), record.key)
            a, b = find(record.key), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {key: find(key) for key in parent}
