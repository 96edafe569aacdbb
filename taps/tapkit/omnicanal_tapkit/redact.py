"""Keeping credentials out of what a tap logs and raises.

Platforms put credentials in headers (``Authorization: Bearer``, Shopify's
``X-Shopify-Access-Token``, VTEX's ``X-VTEX-API-AppKey``/``AppToken``) and sometimes in
query strings (signed download links, cursors). A message names an endpoint by its URL
without the query, and whatever text still comes from elsewhere (an exception, a
server's body) has the request's secrets replaced before anyone sees it.
"""

from __future__ import annotations

import re
import typing as t
from urllib.parse import parse_qsl, urlsplit, urlunsplit

if t.TYPE_CHECKING:
    import requests

#: Header or query parameter names whose values are credentials (or as good as).
SECRET_NAME = re.compile(r"auth|token|key|secret|passw|sig|cookie|session", re.IGNORECASE)
#: Shorter values are not worth scrubbing (and would mangle ordinary words).
_MIN_SECRET_LENGTH = 6
MASK = "***"


def url_without_query(url: str | None) -> str:
    """The URL without query or fragment: enough to name an endpoint, nothing secret."""
    parts = urlsplit(url or "")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def request_secrets(request: requests.PreparedRequest | requests.Request | None) -> set[str]:
    """The credential values a request carries, in its headers or its query string.

    ``Authorization: Bearer abc`` yields both the whole value and ``abc``, so neither
    form can leak.
    """
    if request is None:
        return set()
    values: set[str] = set()
    for name, value in (getattr(request, "headers", None) or {}).items():
        if SECRET_NAME.search(str(name)) and isinstance(value, str):
            values.add(value)
            values.update(value.split()[1:])
    for name, value in parse_qsl(urlsplit(getattr(request, "url", None) or "").query):
        if SECRET_NAME.search(name):
            values.add(value)
    return {value for value in values if len(value) >= _MIN_SECRET_LENGTH}


def redact(text: str, secrets: t.Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***`` (longest first, so none is half-masked)."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def scrub(text: str, request: requests.PreparedRequest | requests.Request | None) -> str:
    """``text`` safe to log: the request's URL without its query, its credentials masked."""
    url = getattr(request, "url", None)
    if url:
        text = text.replace(url, url_without_query(url))
    return redact(text, request_secrets(request))
