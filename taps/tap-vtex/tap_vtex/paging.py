"""How the tap pages through VTEX: OMS list date windows and Master Data scrolls.

**OMS list.** ``GET /api/oms/pvt/orders`` serves at most 30 pages of at most 100 orders
for one filter; asking for page 31 is refused (``Max page exceed ( 30 ), refine
filter``). So the tap never pages a filter past what its first page's ``paging.pages``
says fits: :class:`DateWindowPaginator` walks ``f_creationDate`` windows in
chronological order and, when a window's first page reports more pages than the limit,
drops that page's records and splits the window in two halves, recursively, until every
window fits. Windows are whole milliseconds, inclusive at both ends, and adjacent windows
never overlap, so every order is read exactly once. Windows are finished oldest first, so
the end of the last finished window is a point up to which every order was handed on:
the stream keeps it in its state, and an interrupted walk resumes after it.

**Master Data scroll.** ``GET /api/dataentities/CL/scroll`` answers the first call with
an ``X-VTEX-MD-TOKEN`` header; later calls send only ``_token`` until a page comes back
empty. :class:`ScrollPaginator` carries the token and a page counter (the token itself
does not change between calls).

**Master Data search by keyset.** ``GET /api/dataentities/CL/search`` pages with the
``REST-Range`` header, 100 documents at a time and only within the first 10,000.
Offsets shift when a document is updated mid-walk (it moves to the end of an
``updatedIn`` sort), which would skip its neighbour, so :class:`KeysetSearchPaginator`
moves the ``updatedIn`` lower bound to the last value read instead and starts again at
offset 0: documents on that exact value are read twice (delivery is at-least-once, the
loader upserts), none is skipped, and the 10,000 ceiling never applies. Only when a
whole page shares one value does it step the offset.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from singer_sdk.pagination import BaseAPIPaginator

from tap_vtex.errors import VtexError

if t.TYPE_CHECKING:
    import requests

#: The OMS list serves at most this many pages for one filter.
MAX_LIST_PAGES = 30
MD_TOKEN_HEADER = "X-VTEX-MD-TOKEN"
_MS = timedelta(milliseconds=1)


def vtex_ms(moment: datetime) -> str:
    """A moment as the OMS filters write it: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def floor_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Window:
    """One page of one ``f_creationDate`` window: ``[start, end]``, both inclusive."""

    start: datetime
    end: datetime
    page: int = 1

    def filter_value(self, field: str = "creationDate") -> str:
        return f"{field}:[{vtex_ms(self.start)} TO {vtex_ms(self.end)}]"

    def halves(self) -> tuple[Window, Window]:
        """Two adjacent windows covering this one, split in the middle millisecond."""
        span_ms = (self.end - self.start) // _MS
        middle = self.start + _MS * (span_ms // 2)
        return Window(self.start, middle), Window(middle + _MS, self.end)

    @property
    def splittable(self) -> bool:
        return self.end > self.start


def list_paging(response: requests.Response) -> dict[str, int]:
    """The OMS list's ``paging`` object (total, pages, currentPage, perPage)."""
    paging = response.json().get("paging") or {}
    return {k: int(paging.get(k) or 0) for k in ("total", "pages", "currentPage", "perPage")}


def window_overflows(response: requests.Response, max_pages: int = MAX_LIST_PAGES) -> bool:
    """Whether a window's first page says the window holds more than ``max_pages`` pages."""
    paging = list_paging(response)
    return paging["currentPage"] <= 1 and paging["pages"] > max_pages


class DateWindowPaginator(BaseAPIPaginator[Window]):
    """Walk creation-date windows oldest first, splitting any that holds too many pages."""

    def __init__(
        self,
        start: datetime,
        end: datetime,
        max_pages: int = MAX_LIST_PAGES,
        on_window_read: Callable[[Window, bool], None] | None = None,
    ) -> None:
        """``on_window_read(window, last)`` is told of each window whose every page was
        handed on (``last``: the walk is over), oldest first."""
        first = Window(floor_ms(start), floor_ms(end))
        super().__init__(first)
        self.max_pages = max_pages
        self.on_window_read = on_window_read
        #: Windows still to read after the current one, the next one last.
        self._pending: list[Window] = []
        self.splits = 0

    def continue_if_empty(self, response: requests.Response) -> bool:
        """An empty or overflowing window is not the end: later windows may hold orders."""
        return True

    def get_next(self, response: requests.Response) -> Window | None:
        current = self.current_value
        paging = list_paging(response)
        if current.page == 1 and paging["pages"] > self.max_pages:
            if not current.splittable:
                msg = (
                    f"VTEX holds more than {self.max_pages * max(paging['perPage'], 1)} "
                    f"orders created in the single millisecond {vtex_ms(current.start)}; "
                    "the OMS list cannot page through them"
                )
                raise VtexError(msg)
            left, right = current.halves()
            self._pending.append(right)
            self.splits += 1
            return left
        if current.page < paging["pages"]:
            return Window(current.start, current.end, current.page + 1)
        if self.on_window_read is not None:
            self.on_window_read(current, not self._pending)
        if self._pending:
            return self._pending.pop()
        return None


class ScrollPaginator(BaseAPIPaginator[tuple[str, int] | None]):
    """Carry the Master Data scroll token; the page number keeps tokens distinct."""

    def __init__(self) -> None:
        super().__init__(None)

    def has_more(self, response: requests.Response) -> bool:
        return bool(response.json())

    def get_next(self, response: requests.Response) -> tuple[str, int] | None:
        token = response.headers.get(MD_TOKEN_HEADER)
        if token is None and self.current_value is not None:
            token = self.current_value[0]
        if not token:
            return None
        page = self.current_value[1] + 1 if self.current_value else 1
        return token, page


#: Documents per Master Data search request (``REST-Range``): VTEX's maximum.
SEARCH_PAGE_SIZE = 100


@dataclass(frozen=True)
class SearchPage:
    """One Master Data search request: documents with ``updatedIn >= lower``, from ``offset``."""

    lower: str
    offset: int = 0

    @property
    def rest_range(self) -> str:
        return f"resources={self.offset}-{self.offset + SEARCH_PAGE_SIZE}"


class KeysetSearchPaginator(BaseAPIPaginator[SearchPage]):
    """Walk ``updatedIn``-sorted search pages by moving the lower bound (see module doc)."""

    def __init__(self, lower: str, field: str = "updatedIn") -> None:
        super().__init__(SearchPage(lower))
        self.field = field

    def get_next(self, response: requests.Response) -> SearchPage | None:
        documents = response.json()
        if len(documents) < SEARCH_PAGE_SIZE:
            return None
        current = self.current_value
        last = documents[-1].get(self.field)
        if not last:
            return None
        if last == current.lower:  # a full page on one value: step past it by offset
            return SearchPage(current.lower, current.offset + len(documents))
        return SearchPage(last, 0)
