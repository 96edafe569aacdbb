"""Reading Meta Graph API answers: its error envelope and its throttling headers.

Every Meta product (Instagram, WhatsApp Cloud API, Pages, Marketing) answers through the
Graph API, so every tap that reads one sees the same things:

- errors as ``{"error": {"message", "type", "code", "error_subcode", "is_transient",
  "fbtrace_id"}}``, mostly with HTTP 400 whatever the cause: the code says what
  happened. 190 (and 102) is the access token (subcode 463: expired, 460: password
  changed, 467: logged out…), 104 a missing token; 4, 17, 32, 613 and the business
  use-case codes (80001–80014) are rate limits, to be retried later; 10 and 200–299 are
  permissions; ``is_transient`` and code 1/2 mean "retry";
- usage headers on every answer: ``X-App-Usage`` (``{"call_count", "total_cputime",
  "total_time"}``, percentages of the app's hourly budget), ``X-Business-Use-Case-Usage``
  (per business object id, a list of such figures per use case, plus
  ``estimated_time_to_regain_access`` in minutes) and ``X-Ad-Account-Usage``. A client
  that keeps going past 100 % is refused until the window moves, so a careful one slows
  down as the figures near 100.
"""

from __future__ import annotations

import json
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    import requests

#: Access-token failures: the token is invalid, expired or revoked (190), or the session
#: is (102); the cure is a new token, never a retry.
TOKEN_CODES = frozenset({102, 190})
MISSING_TOKEN_CODE = 104
#: Throttling: app (4), user (17), Page (32), API-specific (613) and business use case.
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80001, 80015)})
#: Permission errors: (#10) and (#200)–(#299).
PERMISSION_CODES = frozenset({10, *range(200, 300)})
#: "An unknown error occurred" / "Service temporarily unavailable": retry.
TRANSIENT_CODES = frozenset({1, 2})

_USAGE_FIELDS = ("call_count", "total_cputime", "total_time", "acc_id_util_pct")


def graph_error(response: requests.Response) -> dict[str, t.Any]:
    """The ``error`` object of a Graph answer, or ``{}`` when the body has none."""
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def describe_graph_error(response: requests.Response) -> str:
    """``code 190/463 OAuthException: <message>``, or the reason phrase."""
    error = graph_error(response)
    if not error:
        return response.reason or ""
    code = str(error.get("code", "?"))
    if error.get("error_subcode") is not None:
        code += f"/{error['error_subcode']}"
    return f"code {code} {error.get('type', '')}: {error.get('message', '')}".replace("  ", " ")


def is_retriable_graph_error(response: requests.Response) -> bool:
    """Rate limits, transient errors and 5xx/429 are worth another try later."""
    if response.status_code == 429 or response.status_code >= 500:
        return True
    error = graph_error(response)
    return bool(
        error
        and (
            error.get("code") in RATE_LIMIT_CODES
            or error.get("code") in TRANSIENT_CODES
            or error.get("is_transient") is True
        )
    )


def _figures(value: t.Any) -> t.Iterator[dict[str, t.Any]]:
    if isinstance(value, dict):
        if any(name in value for name in _USAGE_FIELDS):
            yield value
        else:
            for inner in value.values():
                yield from _figures(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _figures(inner)


def _header_json(headers: Mapping[str, str], name: str) -> t.Any:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


USAGE_HEADERS = ("X-App-Usage", "X-Business-Use-Case-Usage", "X-Ad-Account-Usage")


def usage_percent(headers: Mapping[str, str]) -> float | None:
    """The highest share of any budget the usage headers report (0–100), or None."""
    highest: float | None = None
    for name in USAGE_HEADERS:
        for figures in _figures(_header_json(headers, name)):
            for field in _USAGE_FIELDS:
                value = figures.get(field)
                if isinstance(value, int | float) and (highest is None or value > highest):
                    highest = float(value)
    return highest


def regain_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds until a throttled budget is usable again (``estimated_time_to_regain_access``
    is in minutes), or None when no header says."""
    longest: float | None = None
    for name in USAGE_HEADERS:
        for figures in _figures(_header_json(headers, name)):
            minutes = figures.get("estimated_time_to_regain_access")
            if isinstance(minutes, int | float) and (longest is None or minutes * 60 > longest):
                longest = float(minutes) * 60
    return longest
