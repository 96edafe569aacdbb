"""Postgres identifiers for any stream or property name.

Every identifier is quoted when used, so quotes, spaces, upper case, semicolons and
reserved words are all safe as they are. Postgres silently truncates identifiers to 63
bytes, which could make two long names collide, so a longer name is cut and suffixed
with a short hash of the whole name: deterministic, unique in practice, and still
readable.
"""

from __future__ import annotations

import hashlib

MAX_IDENTIFIER_BYTES = 63


def pg_identifier(name: str) -> str:
    """The column or table name Postgres will store for ``name`` (to be quoted)."""
    clean = name.replace("\x00", "_")
    encoded = clean.encode("utf-8")
    if len(encoded) <= MAX_IDENTIFIER_BYTES:
        return clean
    digest = hashlib.sha1(encoded).hexdigest()[:8]
    head = encoded[: MAX_IDENTIFIER_BYTES - 9].decode("utf-8", "ignore")
    return f"{head}_{digest}"
