"""The VTEX data this tap reads: orders (OMS) and customers (Master Data CL).

``orders``: ``GET /api/oms/pvt/orders`` filtered by ``f_creationDate`` windows (see
``paging.DateWindowPaginator``: the list refuses pages beyond 30, so windows that hold
more are split), then ``GET /api/oms/pvt/orders/{orderId}`` for each listed order: the
list has neither items, addresses, the shopper's profile nor ``lastChange``. Incremental
on ``lastChange``: the list cannot filter on it, so a later sync re-walks orders
created from ``order_lookback_days`` before the bookmark and emits those whose
``lastChange`` reached the bookmark. Orders that change later than that after their
creation are picked up by a full refresh. The bookmark is saved when the walk ends (orders
come by creation date, not by ``lastChange``); meanwhile the state keeps ``walked_to``,
the end of the last window read whole, so an interrupted walk resumes after it.

``customers``: the ``CL`` data entity of Master Data v2, sorted by ``updatedIn``: a
full sync scrolls it (no 10,000 document ceiling, up to 1,000 a page, filtered with
``_where=updatedIn between … AND …`` from a ``start_date``); an incremental sync (a
bookmark in the state) searches the documents updated since the bookmark, 100 a page,
moving the ``updatedIn`` lower bound page by page (``paging.KeysetSearchPaginator``),
which holds no scroll open and cannot skip a document updated mid-walk. Incremental on
``updatedIn`` and resumable from any checkpoint either way.
"""

from __future__ import annotations

import typing as t
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from singer_sdk import StreamSchema

from omnicanal_tapkit import RetiresMissingOnFullSync
from tap_vtex.client import SCHEMAS_DIR, VtexStream, vtex_message
from tap_vtex.errors import VtexError, VtexScrollExpiredError
from tap_vtex.paging import (
    MAX_LIST_PAGES,
    DateWindowPaginator,
    KeysetSearchPaginator,
    ScrollPaginator,
    SearchPage,
    Window,
    vtex_ms,
    window_overflows,
)

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context
    from singer_sdk.streams.rest import HTTPRequest, PageContext

#: The orders stream's state key for the end of the last creation-date window read whole.
WALKED_TO = "walked_to"

#: The CL fields the tap asks for (``_fields``); ``_all`` would drag in every custom field.
CUSTOMER_FIELDS = (
    "id",
    "userId",
    "email",
    "firstName",
    "lastName",
    "document",
    "documentType",
    "phone",
    "homePhone",
    "birthDate",
    "gender",
    "isCorporate",
    "isNewsletterOptIn",
    "localeDefault",
    "approved",
    "createdIn",
    "updatedIn",
    "lastInteractionIn",
    "accountId",
    "accountName",
    "dataEntityId",
)


def _parse(value: str) -> datetime:
    text = value.strip().replace("Z", "+00:00")
    head, dot, tail = text.partition(".")
    if dot:  # VTEX writes seven fractional digits; Python reads at most six
        digits = "".join(c for c in tail if c.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class OrdersStream(VtexStream):
    """OMS orders, detail included, walked by creation-date windows."""

    name = "orders"
    path = "/api/oms/pvt/orders"
    primary_keys: t.ClassVar[tuple[str, ...]] = ("orderId",)
    replication_key = "lastChange"
    #: Windows are walked by creation date, so ``lastChange`` arrives unordered: the
    #: bookmark is saved once the stream finishes; an interrupted sync resumes its walk
    #: after the state's ``walked_to`` (see ``walk_start``).
    is_sorted = False
    #: A STATE message every 100 orders (the SDK's default is 10,000): each order costs
    #: a detail request, so an interrupted walk would otherwise redo hours of them.
    STATE_MSG_FREQUENCY = 100
    records_jsonpath = "$.list[*]"
    required_resource = "OMS > List Orders and View order"
    schema = StreamSchema(SCHEMAS_DIR)

    @property
    def page_size(self) -> int:
        return int(self.config.get("page_size", 100))

    def _bookmark(self) -> datetime | None:
        value = self.stream_state.get("replication_key_value")
        return _parse(value) if isinstance(value, str) and value else None

    def walk_start(self, context: Context | None) -> datetime:
        """Where the creation-date walk starts: start_date, or the bookmark minus lookback;
        after ``walked_to`` when an interrupted walk left one in the state."""
        start = self._first_walk_start(context)
        walked = self.stream_state.get(WALKED_TO)
        if isinstance(walked, str) and walked:
            return max(start, _parse(walked) + timedelta(milliseconds=1))
        return start

    def _first_walk_start(self, context: Context | None) -> datetime:
        bookmark = self._bookmark()
        if bookmark is not None:
            lookback = bookmark - timedelta(days=int(self.config.get("order_lookback_days", 30)))
            if self.config.get("start_date"):
                return max(lookback, _parse(self.config["start_date"]))
            return lookback
        start = self.get_starting_timestamp(context)
        if start is None:
            return datetime.now(UTC) - timedelta(days=730)
        return start if start.tzinfo else start.replace(tzinfo=UTC)

    def get_replication_key_signpost(self, context: Context | None = None) -> t.Any:
        """A resumed walk keeps the signpost of the run that began it (the SDK's, written
        in the state at that run's start): the bookmark it ends with must not pass the
        moment the walk began, or an order of a window read before the interruption that
        changed since would be below the next run's bookmark, never read again."""
        begun = self.stream_state.get("replication_key_signpost")
        if self.stream_state.get(WALKED_TO) and begun:
            return begun
        return super().get_replication_key_signpost(context)

    def _window_read(self, window: Window, last: bool) -> None:
        """Every order created up to ``window.end`` was handed on: the next STATE says so,
        until the walk is over (then the bookmark takes over)."""
        if last:
            self.stream_state.pop(WALKED_TO, None)
        else:
            self.stream_state[WALKED_TO] = vtex_ms(window.end)

    def get_new_paginator(self) -> DateWindowPaginator:
        return DateWindowPaginator(
            self.walk_start(None),
            datetime.now(UTC) + timedelta(minutes=1),
            max_pages=int(self.config.get("max_list_pages", MAX_LIST_PAGES)),
            on_window_read=self._window_read,
        )

    def get_url_params(self, context: Context | None, next_page_token: Window | None) -> dict:
        window = next_page_token
        if window is None:  # the SDK asks once before the paginator's first value
            window = self.get_new_paginator().current_value
        return {
            "f_creationDate": window.filter_value(),
            "orderBy": "creationDate,asc",
            "page": window.page,
            "per_page": self.page_size,
        }

    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        """The listed orders, unless the window is too big and will be split instead."""
        if window_overflows(response, int(self.config.get("max_list_pages", MAX_LIST_PAGES))):
            return
        yield from super().parse_response(response)

    def validate_response(self, response: requests.Response) -> None:
        """A listed order whose detail is missing fails the run rather than being skipped:
        skipping it would let the bookmark move past an order never delivered."""
        if response.status_code == 404 and self.path + "/" in response.url:
            order_id = response.url.rsplit("/", 1)[-1]
            msg = (
                f"VTEX listed order {order_id} but has no detail for it (HTTP 404: "
                f"{vtex_message(response)}); the OMS list is an index that can lag — run "
                "the extract again"
            )
            raise VtexError(msg)
        super().validate_response(response)

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Replace the list summary by the order's detail; skip orders unchanged since
        the bookmark (the lookback re-reads them)."""
        detail = self.get_json(f"{self.path}/{quote(row['orderId'], safe='')}", context)
        bookmark = self._bookmark()
        if bookmark is not None and detail.get("lastChange"):
            if _parse(detail["lastChange"]) < bookmark:
                return None
        return detail


class CustomersStream(RetiresMissingOnFullSync, VtexStream):
    """Master Data v2 ``CL`` profiles: scrolled in full, searched by keyset incrementally."""

    name = "customers"
    path = "/api/dataentities/CL/scroll"
    search_path = "/api/dataentities/CL/search"
    primary_keys: t.ClassVar[tuple[str, ...]] = ("id",)
    replication_key = "updatedIn"
    #: Sorted by ``updatedIn`` either way: every checkpoint is a resumable bookmark.
    is_sorted = True
    records_jsonpath = "$[*]"
    required_resource = "Dynamic Storage > Read only documents"
    schema = StreamSchema(SCHEMAS_DIR)

    def _bookmark(self) -> str | None:
        value = self.stream_state.get("replication_key_value")
        return value if isinstance(value, str) and value else None

    def get_new_paginator(self) -> ScrollPaginator | KeysetSearchPaginator:
        bookmark = self._bookmark()
        if bookmark is not None:
            return KeysetSearchPaginator(vtex_ms(_parse(bookmark)))
        return ScrollPaginator()

    def _where(self, lower: datetime | str | None) -> dict[str, str]:
        if lower is None:
            return {}
        start = lower if isinstance(lower, str) else vtex_ms(lower)
        until = vtex_ms(datetime.now(UTC) + timedelta(days=1))
        return {"_where": f"updatedIn between {start} AND {until}"}

    def get_url_params(
        self, context: Context | None, next_page_token: tuple[str, int] | SearchPage | None
    ) -> dict:
        fields = {"_fields": ",".join(CUSTOMER_FIELDS), "_sort": "updatedIn ASC"}
        if isinstance(next_page_token, SearchPage):
            return {**fields, **self._where(next_page_token.lower)}
        if next_page_token is not None:
            return {"_token": next_page_token[0]}
        return {
            "_size": int(self.config.get("scroll_size", 1000)),
            **fields,
            **self._where(self.get_starting_timestamp(context)),
        }

    def get_http_request(self, *, page: PageContext) -> HTTPRequest:
        """Search pages go to ``/search`` with their ``REST-Range``; scroll pages as is."""
        request = super().get_http_request(page=page)
        if isinstance(page.next_page_token, SearchPage):
            request.url = f"{self.url_base}{self.search_path}"
            request.headers = {**request.headers, "REST-Range": page.next_page_token.rest_range}
        return request

    def validate_response(self, response: requests.Response) -> None:
        """An expired scroll token gets its own message: rerun, the bookmark resumes."""
        if response.status_code == 400 and "token" in vtex_message(response).lower():
            msg = (
                "VTEX Master Data forgot the scroll token (it expires after 20 idle "
                f"minutes): {vtex_message(response)} — run the extract again; it resumes "
                "from the last bookmark"
            )
            raise VtexScrollExpiredError(msg)
        super().validate_response(response)
