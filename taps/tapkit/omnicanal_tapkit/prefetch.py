"""The next page asked for while the records of this one are processed.

singer-sdk's ``RESTStream.request_records`` sends a request, waits for the answer, hands
the page's records one by one down the sync (post-processing, conformance, the RECORD
message, state), and only then sends the request for the next page. The platform's time
to answer and the tap's time to process a page add up, page after page, although the
next page's request is known as soon as the page has arrived: its cursor is in the
page.

:class:`PrefetchedPages` keeps the SDK's loop and sends that request from a helper
thread as soon as the page has been parsed, then hands the page's records on while the
platform prepares the next one. There is never more than one request in flight per
stream, and the requests are the ones the SDK's loop sends, in the same order, built by
the same hooks (``_prepare_request``) in the tap's own thread; only the send (with its
retries and waits, ``request_decorator``) runs in the helper thread, and whatever it
raises is raised in the tap's thread when the next page is asked for, after every record
of the pages before it, as the SDK's loop would. The paginator advances before the
page's records are handed on instead of after: a paginator's failure (a cursor that
repeats) is raised once those records are out, as before.

A stream can use it when its next request does not depend on the records of the page
before it (a cursor or offset read from the page itself does not) and nothing else
uses its ``requests`` session while the records go down the sync. A stream that
overrides the deprecated ``prepare_request`` keeps the SDK's loop.
"""

from __future__ import annotations

import threading
import typing as t

from singer_sdk.pagination import SinglePagePaginator
from singer_sdk.streams.rest import _HTTPStream

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import requests
    from singer_sdk.helpers.types import Context


class PageRequest:
    """One request sent from a helper thread; :meth:`response` waits for its outcome."""

    def __init__(
        self,
        send: Callable[[requests.PreparedRequest, Context | None], requests.Response],
        prepared: requests.PreparedRequest,
        context: Context | None,
    ) -> None:
        self.prepared = prepared
        self._outcome: tuple[bool, t.Any] | None = None
        # a daemon: a sync that fails while a page is in flight exits without waiting
        # for the platform's answer
        self._thread = threading.Thread(
            target=self._send, args=(send, prepared, context), name="next-page", daemon=True
        )
        self._thread.start()

    def _send(
        self,
        send: Callable[[requests.PreparedRequest, Context | None], requests.Response],
        prepared: requests.PreparedRequest,
        context: Context | None,
    ) -> None:
        try:
            self._outcome = (True, send(prepared, context))
        except BaseException as exc:  # noqa: BLE001 - raised again in the tap's thread
            self._outcome = (False, exc)

    def response(self) -> requests.Response:
        """The answer, once it has come; what sending raised is raised here."""
        self._thread.join()
        assert self._outcome is not None
        ok, value = self._outcome
        if not ok:
            raise value
        return value


class PrefetchedPages:
    """Mixin for a singer-sdk ``RESTStream``: put it before ``RESTStream`` in the bases."""

    def request_records(self: t.Any, context: Context | None) -> Iterable[dict]:
        """The SDK's ``request_records``, each next page asked for before this one's
        records are handed on."""
        if type(self).prepare_request is not _HTTPStream.prepare_request:  # type: ignore[attr-defined]
            yield from super().request_records(context)  # type: ignore[misc]
            return
        paginator = self.get_new_paginator() or SinglePagePaginator()
        send = self.request_decorator(self._request)
        pages = 0

        def ask() -> PageRequest | None:
            if paginator.finished:
                return None
            return PageRequest(
                send, self._prepare_request(context=context, page=paginator), context
            )

        with self.get_http_request_counter() as request_counter:
            request_counter.with_context(context)
            pending = ask()
            while pending is not None:
                response = pending.response()
                request_counter.increment()
                self.update_sync_costs(pending.prepared, response, context)
                records = list(self.parse_response(response))
                if not records:
                    if paginator.continue_if_empty(response):
                        paginator.advance(response)
                        pending = ask()
                        continue
                    self.log(
                        "Pagination stopped after %d pages because no records were "
                        "found in the last response",
                        pages,
                    )
                    return
                failure: Exception | None = None
                try:
                    paginator.advance(response)
                    pending = ask()
                except Exception as exc:  # noqa: BLE001 - raised after this page's records
                    failure, pending = exc, None
                yield from records
                pages += 1
                if failure is not None:
                    raise failure
