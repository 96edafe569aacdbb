"""Which Admin API versions Shopify serves on a given day, and what an old one gets.

Shopify releases a stable version at the start of each quarter (``YYYY-01``, ``-04``,
``-07``, ``-10``, at 17:00 UTC) and supports each for twelve months, so four stable
versions are live at any time, plus the next quarter's release candidate and
``unstable``. A request for a version that is not (or no longer) supported is served
by the oldest supported stable version, and every response says in
``X-Shopify-API-Version`` which version answered: that is how a client pinned to an
old version finds out. The sandbox computes the list from the real calendar (not the
world's ``as_of``): versions are about Shopify's servers, not about the shop's data.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

VERSION_HEADER = "X-Shopify-API-Version"
_RELEASE = re.compile(r"^(\d{4})-(01|04|07|10)$")
_RELEASE_HOUR_UTC = 17
SUPPORT_MONTHS = 12


def _release_moment(year: int, month: int) -> datetime:
    return datetime(year, month, 1, _RELEASE_HOUR_UTC, tzinfo=UTC)


def _quarter_start(moment: datetime) -> tuple[int, int]:
    """The (year, month) of the newest stable release out at ``moment``."""
    year, month = moment.year, (moment.month - 1) // 3 * 3 + 1
    if moment < _release_moment(year, month):
        month -= 3
        if month < 1:
            year, month = year - 1, 10
    return year, month


def _shift(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def supported_versions(now: datetime | None = None) -> tuple[str, ...]:
    """The stable versions supported at ``now`` (default: the current time), oldest first.

    >>> supported_versions(datetime(2026, 11, 29, tzinfo=UTC))
    ('2026-01', '2026-04', '2026-07', '2026-10')
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    year, month = _quarter_start(moment)
    versions = []
    for back in range(SUPPORT_MONTHS - 3, -1, -3):
        y, m = _shift(year, month, -back)
        versions.append(f"{y:04d}-{m:02d}")
    return tuple(versions)


def release_candidate(now: datetime | None = None) -> str:
    """Next quarter's version, already served as a release candidate."""
    year, month = _quarter_start((now or datetime.now(UTC)).astimezone(UTC))
    y, m = _shift(year, month, 3)
    return f"{y:04d}-{m:02d}"


def served_version(requested: str, now: datetime | None = None) -> str | None:
    """The version that answers a request for ``requested``.

    A supported stable version, the release candidate and ``unstable`` answer as
    themselves; any other date-shaped version (``1999-01``, a retired ``2024-10``, a
    far-future ``2099-01``) falls forward to the oldest supported stable version. A
    value that is not a version at all is None: the path does not exist.
    """
    stable = supported_versions(now)
    if requested in stable or requested == "unstable" or requested == release_candidate(now):
        return requested
    if re.fullmatch(r"\d{4}-\d{2}", requested):
        return stable[0]
    return None
