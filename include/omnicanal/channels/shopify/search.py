"""Shopify's search syntax, as the ``query:`` argument of the Admin API's connections takes it.

``updated_at:>='2026-01-01T00:00:00Z' status:open -tag:vip``: space-separated terms
are ANDed, ``OR`` between terms makes alternatives, ``-`` or ``NOT`` negates, a term
is ``field:value`` with an optional comparator (``:>``, ``:>=``, ``:<``, ``:<=``), a
value may be quoted, ``*`` at its end matches a prefix, and a bare word searches the
resource's default text (name, email). A filter field the resource does not have is
ignored, and reported as Shopify reports it, in ``extensions.search`` warnings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from omnicanal.channels.shopify.world import SHOP_TZ

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>AND|OR)(?=\s|$)
      | (?P<neg>-|NOT\s+)?
        (?:(?P<field>[A-Za-z_][A-Za-z0-9_]*):(?P<cmp><=|>=|<|>|=)?)?
        (?P<value>'[^']*'|"[^"]*"|[^\s]+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Term:
    negate: bool
    field: str | None
    comparator: str
    value: str


Kind = str  # "time", "id", "text", "number", "tags", "bool", or a custom predicate
Getter = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Field:
    """A searchable field: how to read it from a record and how to compare it."""

    kind: Kind
    get: Getter


def parse(query: str | None) -> list[list[Term]]:
    """The alternatives (ORed) of ANDed terms in ``query``; [] matches everything."""
    if not query or not query.strip():
        return []
    alternatives: list[list[Term]] = [[]]
    position = 0
    while position < len(query):
        match = _TOKEN.match(query, position)
        if match is None or match.end() == position:
            break
        position = match.end()
        if match.group("op") == "OR":
            alternatives.append([])
            continue
        if match.group("op") == "AND" or match.group("value") is None:
            continue
        value = match.group("value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        alternatives[-1].append(
            Term(
                negate=bool(match.group("neg")),
                field=(match.group("field") or "").lower() or None,
                comparator=match.group("cmp") or "=",
                value=value,
            )
        )
    return [terms for terms in alternatives if terms]


@lru_cache(maxsize=1_000_000)
def parse_moment(value: str) -> float | None:
    """Epoch seconds of an ISO-8601 date or date-time; a zone-less value is shop time.

    Memoised: a filter compares the same record timestamps on every page."""
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SHOP_TZ)
    return moment.timestamp()


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return parse_moment(str(value))


def _legacy_id(value: str) -> int | None:
    tail = value.rsplit("/", 1)[-1].split("?", 1)[0]
    return int(tail) if tail.isdigit() else None


def _compare(left: Any, comparator: str, right: Any) -> bool:
    if left is None or right is None:
        return False
    if comparator == ">":
        return left > right
    if comparator == ">=":
        return left >= right
    if comparator == "<":
        return left < right
    if comparator == "<=":
        return left <= right
    return left == right


def _term_matches(record: dict[str, Any], term: Term, fields: Mapping[str, Field]) -> bool:
    if term.field is None:
        text = term.value.lower().rstrip("*")
        default = fields.get("default")
        haystack = " ".join(str(v or "") for v in (default.get(record) if default else []))
        return text in haystack.lower()
    spec = fields.get(term.field)
    if spec is None:
        return True  # unknown filter: ignored
    actual = spec.get(record)
    if spec.kind == "time":
        return _compare(_epoch(actual), term.comparator, parse_moment(term.value))
    if spec.kind == "id":
        return _compare(actual, term.comparator, _legacy_id(term.value))
    if spec.kind == "number":
        try:
            wanted = float(term.value)
        except ValueError:
            return False
        return _compare(None if actual is None else float(actual), term.comparator, wanted)
    if spec.kind == "bool":
        return bool(actual) == (term.value.lower() == "true")
    if spec.kind == "tags":
        tags = [t.lower() for t in actual or []]
        return term.value.lower() in tags
    wanted = term.value.lower()
    values = actual if isinstance(actual, list | tuple | set) else [actual]
    for candidate in values:
        text = "" if candidate is None else str(candidate).lower()
        if wanted.endswith("*"):
            if text.startswith(wanted[:-1]):
                return True
        elif text == wanted:
            return True
    return False


def warnings(query: str | None, fields: Mapping[str, Field]) -> list[dict[str, str]]:
    """Shopify's search warnings: one per filter field the resource does not have."""
    unknown = []
    for terms in parse(query):
        for term in terms:
            if term.field and term.field not in fields and term.field not in unknown:
                unknown.append(term.field)
    return [{"field": f, "message": "Invalid search field for this query."} for f in unknown]


def matcher(query: str | None, fields: Mapping[str, Field]) -> Callable[[dict[str, Any]], bool]:
    """A predicate over records for ``query`` with the resource's searchable ``fields``."""
    alternatives = parse(query)
    if not alternatives:
        return lambda record: True

    def matches(record: dict[str, Any]) -> bool:
        return any(
            all(_term_matches(record, t, fields) != t.negate for t in terms)
            for terms in alternatives
        )

    return matches
