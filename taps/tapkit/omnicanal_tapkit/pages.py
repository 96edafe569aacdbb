"""A page's JSON body and the records in it, read without the SDK's slow paths.

singer-sdk's ``RESTStream.parse_response`` decodes a page with
``response.json(parse_float=Decimal)`` (simplejson, when installed) and finds its records
with ``extract_jsonpath(records_jsonpath, body)``. Both are general and both cost more
than a tap's pages need:

- the first ``extract_jsonpath`` call for each expression builds jsonpath-ng's PLY parser
  tables before it parses anything (a few tens of milliseconds of each start of
  tap-square, which compiles six expressions for 28 requests); a tap's records paths are
  all ``$[*]`` or ``$.<key>[*]``, a list at the root or under one key;
- msgspec decodes the same JSON into the same objects in about half the time.

:func:`records_at` reads those two forms directly, as the SDK's ``[*]`` rule reads them
(a list's items; nothing for a missing key or a null), and hands anything else to
``extract_jsonpath`` itself, so an unusual expression or body gets the SDK's answer,
warnings included. :func:`json_body` decodes with msgspec and falls back to requests'
own decoding for what msgspec refuses (``NaN``, a body that is not JSON), whose error
is then the one the SDK would have raised.
"""

from __future__ import annotations

import decimal
import re
import typing as t

import msgspec

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    import requests

#: ``$[*]`` or ``$.<key>[*]``: the records are the list at the root or under one key.
_PLAIN_WILDCARD = re.compile(r"\$(?:\.([A-Za-z_][A-Za-z0-9_]*))?\[\*\]")

_decode_exact = msgspec.json.Decoder(float_hook=decimal.Decimal).decode
_decode = msgspec.json.Decoder().decode


def records_at(expression: str, body: t.Any) -> Iterable[t.Any]:
    """What ``singer_sdk.helpers.jsonpath.extract_jsonpath(expression, body)`` yields.

    ``$[*]`` and ``$.<key>[*]`` over a list, a missing key or a null are read here; every
    other expression or shape is the SDK's to read.
    """
    plain = _PLAIN_WILDCARD.fullmatch(expression.strip())
    if plain is not None:
        key = plain.group(1)
        if key is None:
            found = body
        elif isinstance(body, dict):
            found = body.get(key)
        else:
            found = ...
        if isinstance(found, list):
            return found
        if found is None:
            return ()
    from singer_sdk.helpers.jsonpath import extract_jsonpath  # noqa: PLC0415 - rare

    return extract_jsonpath(expression, body)


def json_body(response: requests.Response, *, exact_decimals: bool = False) -> t.Any:
    """``response.json()`` (``parse_float=Decimal`` with ``exact_decimals``), by msgspec."""
    try:
        return (_decode_exact if exact_decimals else _decode)(response.content)
    except msgspec.DecodeError:
        if exact_decimals:
            return response.json(parse_float=decimal.Decimal)
        return response.json()
