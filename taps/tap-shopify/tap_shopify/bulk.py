"""Bulk operations: one query run by Shopify in the background, read back as JSONL.

For a full or large extract this beats paging by far: no cursor round-trips, no cost
budget spent per page. The life of one operation:

1. ``bulkOperationRunQuery(query:, groupObjects: false)`` starts it (since 2026-01
   ungrouped output is the default and the fast path; we ask for it explicitly);
2. ``node(id:) { ... on BulkOperation { status … } }`` is polled until the status is
   final: COMPLETED, or FAILED / CANCELED / EXPIRED with an ``errorCode``;
3. the result ``url`` (absent when nothing matched) is a signed link to a JSONL file:
   one line per root node, and one line per node of a nested connection carrying
   ``__parentId``, the id of the node it belongs under.

Ungrouped output promises no order between a child line and its parent, so
:func:`reassemble` spools the file to disk, indexes where every child line starts,
and then rebuilds each root record with its children, holding one record in memory
at a time plus the index of offsets.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import typing as t
from collections import defaultdict

import msgspec

from tap_shopify.errors import ShopifyAuthError, ShopifyBulkOperationError

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterator

    from tap_shopify.graphql import ShopifyGraphQL
    from tap_shopify.queries import Resource

RUN_MUTATION = (
    "mutation RunBulkQuery($query: String!) { "
    "bulkOperationRunQuery(query: $query, groupObjects: false) { "
    "bulkOperation { id status } userErrors { field message code } } }"
)
POLL_QUERY = (
    "query BulkOperationStatus($id: ID!) { node(id: $id) { ... on BulkOperation { "
    "id status errorCode objectCount rootObjectCount fileSize url partialDataUrl "
    "createdAt completedAt } } }"
)
FINAL_STATUSES = {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"}
#: userErrors codes meaning "too many bulk queries running": wait, then start again.
BUSY_CODES = {"OPERATION_IN_PROGRESS", "LIMIT_REACHED"}
PARENT_KEY = "__parentId"
FIRST_POLL_SECONDS = 0.5
POLL_GROWTH = 1.5
TYPENAME_KEY = "__typename"


class BulkOperationRunner:
    """Runs one resource's bulk query to completion and yields its reassembled records."""

    def __init__(
        self,
        client: ShopifyGraphQL,
        logger: logging.Logger,
        *,
        poll_interval: float,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.logger = logger
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.sleep = sleep
        self.clock = clock

    def records(
        self, resource: Resource, search: str | None, *, stream: str
    ) -> Iterator[dict[str, t.Any]]:
        operation = self.run(resource.bulk_query(search), stream=stream)
        url = operation.get("url")
        count = operation.get("rootObjectCount") or operation.get("objectCount")
        self.logger.info(
            "stream '%s': bulk operation %s completed with %s object(s)",
            stream,
            operation.get("id"),
            count,
        )
        if not url:
            return
        response = self.client.download(url, stream=stream)
        with response, tempfile.TemporaryFile() as spool:
            for chunk in response.iter_content(chunk_size=1 << 20):
                spool.write(chunk)
            spool.seek(0)
            yield from reassemble(spool, resource, stream=stream)

    def run(self, query: str, *, stream: str) -> dict[str, t.Any]:
        """Start the bulk query and wait for it; return the final BulkOperation."""
        operation = self._start(query, stream=stream)
        deadline = self.clock() + self.timeout
        # Small exports finish in about a second, large ones take minutes: poll soon,
        # then less and less often, up to poll_interval.
        interval = min(FIRST_POLL_SECONDS, self.poll_interval)
        while operation.get("status") not in FINAL_STATUSES:
            if self.clock() >= deadline:
                msg = (
                    f"stream '{stream}': bulk operation {operation.get('id')} still "
                    f"{operation.get('status')} after {self.timeout:g} s — raise "
                    "`bulk_timeout`, or cancel it with bulkOperationCancel"
                )
                raise ShopifyBulkOperationError(msg)
            self.sleep(interval)
            interval = min(interval * POLL_GROWTH, self.poll_interval)
            data = self.client.execute(POLL_QUERY, {"id": operation["id"]}, stream=stream)
            operation = data.get("node") or {}
            if not operation:
                msg = f"stream '{stream}': Shopify no longer knows the bulk operation"
                raise ShopifyBulkOperationError(msg)
        status = operation["status"]
        if status == "COMPLETED":
            return operation
        code = operation.get("errorCode")
        if code == "ACCESS_DENIED":
            msg = (
                f"stream '{stream}': the bulk operation was denied access (ACCESS_DENIED) — "
                "the app lacks an access scope this stream needs"
            )
            raise ShopifyAuthError(msg)
        partial = " (a partial result exists)" if operation.get("partialDataUrl") else ""
        msg = (
            f"stream '{stream}': bulk operation {operation.get('id')} ended {status}"
            f"{f' with {code}' if code else ''}{partial} — run the sync again; a TIMEOUT "
            "means the query is too large for one operation (set a later `start_date`)"
        )
        raise ShopifyBulkOperationError(msg)

    def _start(self, query: str, *, stream: str) -> dict[str, t.Any]:
        attempts = 0
        while True:
            data = self.client.execute(RUN_MUTATION, {"query": query}, stream=stream)
            payload = data.get("bulkOperationRunQuery") or {}
            errors = payload.get("userErrors") or []
            operation = payload.get("bulkOperation")
            if not errors and operation:
                self.logger.info(
                    "stream '%s': started bulk operation %s", stream, operation.get("id")
                )
                return operation
            codes = {error.get("code") for error in errors if isinstance(error, dict)}
            attempts += 1
            if codes & BUSY_CODES and attempts <= self.client.max_retries:
                wait = self.poll_interval * attempts
                self.logger.warning(
                    "stream '%s': Shopify is running too many bulk operations for this app "
                    "(%s); starting ours in %.0f s",
                    stream,
                    ", ".join(sorted(c for c in codes if c)),
                    wait,
                )
                self.sleep(wait)
                continue
            messages = "; ".join(
                str(error.get("message")) + (f" [{error.get('code')}]" if error.get("code") else "")
                for error in errors
                if isinstance(error, dict)
            )
            msg = (
                f"stream '{stream}': Shopify refused to start the bulk operation: "
                f"{messages or 'no operation returned'}"
            )
            raise ShopifyBulkOperationError(msg)


_PARENT = re.compile(rb'"__parentId"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _parent_id(raw: bytes) -> str | None:
    """The ``__parentId`` of a bulk result line, found without parsing the line.

    Shopify writes it as the line's last key; inside a string value every quote is
    escaped, so the unescaped ``"__parentId":`` is the key. The line itself is parsed
    once, when its record is rebuilt.
    """
    at = raw.rfind(b'"__parentId"')
    if at < 0:
        return None
    found = _PARENT.match(raw, at)
    if found is None:
        return None
    value = found.group(1)
    return json.loads(b'"' + value + b'"') if b"\\" in value else value.decode()


#: Bulk lines decoded by msgspec: the same objects as ``json.loads``, in half the time.
_decode = msgspec.json.Decoder().decode


def reassemble(
    lines: t.IO[bytes], resource: Resource, *, stream: str = ""
) -> Iterator[dict[str, t.Any]]:
    """Rebuild root records from a bulk JSONL file, children under their connection field.

    ``lines`` must be seekable (a spooled file). A child line is recognised by its
    ``__parentId``, and which connection it belongs to by its ``__typename``. Child
    lists keep the order of the file. The streams nest connections one level deep
    (Shopify allows two), so every child points at a root line.
    """
    children: dict[str, list[tuple[int, int]]] = defaultdict(list)
    roots: list[tuple[int, int]] = []
    offset = lines.tell()
    for number, raw in enumerate(iter(lines.readline, b""), start=1):
        if raw.strip():
            parent = _parent_id(raw)
            if parent is None:
                roots.append((offset, number))
            else:
                children[parent].append((offset, number))
        offset = lines.tell()

    def read(at: tuple[int, int]) -> dict[str, t.Any]:
        lines.seek(at[0])
        msg = f"stream '{stream}': line {at[1]} of the bulk result is not a JSON object"
        line = lines.readline()
        try:
            node = _decode(line)
        except msgspec.DecodeError:
            try:  # what msgspec refuses and json takes (a number out of range: inf)
                node = json.loads(line)
            except ValueError as exc:
                raise ShopifyBulkOperationError(msg) from exc
        if not isinstance(node, dict):
            raise ShopifyBulkOperationError(msg)
        return node

    def attach(node: dict[str, t.Any]) -> dict[str, t.Any]:
        for connection in resource.connections:
            node.setdefault(connection.field, [])
        for at in children.pop(node.get("id"), []):
            child = read(at)
            child.pop(PARENT_KEY, None)
            connection = resource.connection_for(child.get(TYPENAME_KEY))
            if connection is None:
                msg = (
                    f"stream '{stream}': a bulk result line of type "
                    f"{child.get(TYPENAME_KEY)!r} fits no connection of {resource.root}"
                )
                raise ShopifyBulkOperationError(msg)
            if not connection.keep_typename:
                child.pop(TYPENAME_KEY, None)
            node.setdefault(connection.field, []).append(child)
        return node

    for at in roots:
        yield attach(read(at))
    if children:
        orphans = sum(len(offsets) for offsets in children.values())
        msg = (
            f"stream '{stream}': {orphans} bulk result line(s) point at a parent that is "
            "not in the file"
        )
        raise ShopifyBulkOperationError(msg)
