"""Bulk operations: ``bulkOperationRunQuery`` runs a query over a whole connection in the
background and leaves the result as a JSONL file, the way Shopify does.

- concurrency per app and shop depends on the API version: since 2026-01 up to five
  bulk operations run at once (a sixth gets a ``LIMIT_REACHED`` user error); before,
  one at a time (a second gets ``OPERATION_IN_PROGRESS``). Either way no operation is
  created;
- the query must be valid against the schema and hold one to five connections, nested
  at most two deep, none of them inside a list field (``refunds { refundLineItems }``
  is refused: "Queries that contain a connection field within a list field are not
  currently supported."); connections need no ``first`` (every node is exported);
- status goes CREATED → RUNNING → COMPLETED after ``delay`` seconds (the emulator's
  ``bulk_delay``); ``bulkOperationCancel`` turns a running one CANCELING → CANCELED;
- the JSONL holds one object per line: each root node, and each node of a nested
  connection as a line of its own with ``__parentId`` (its parent's id); nested objects
  that are not connections stay inline. With ``groupObjects: true`` children follow
  their parent; without (the default since 2026-01) the file promises no order, and
  the sandbox writes every root first and the children after them, so a client that
  relied on grouping finds out here rather than in production;
- ``url`` points at the file on the sandbox itself (null when nothing matched),
  ``objectCount``/``rootObjectCount``/``fileSize`` are counted as Shopify counts them.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse, Response
from graphql import (
    FieldNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    NameNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
)
from graphql.execution.values import get_argument_values

from omnicanal.channels.shopify import graphql as admin_graphql
from omnicanal.channels.shopify.graph import Context, gid, parse_gid

if TYPE_CHECKING:
    from omnicanal.channels.shopify.emulation import ShopifyEmulator

MAX_CONNECTIONS = 5
MAX_NESTING = 2
#: Bulk operations an app may run at once per shop, from API version 2026-01 on.
CONCURRENT_OPERATIONS = 5
CONCURRENCY_SINCE = "2026-01"
RUNNING_STATUSES = ("CREATED", "RUNNING", "CANCELING")
_FIRST_ID = 4_100_000_000_000


@dataclass
class BulkOperation:
    id: int
    token: str
    query: str
    created_at: datetime
    group_objects: bool = False
    status: str = "CREATED"
    error_code: str | None = None
    completed_at: datetime | None = None
    object_count: int = 0
    root_object_count: int = 0
    body: bytes | None = None
    url: str | None = None
    cancel_requested: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    def node(self) -> dict[str, Any]:
        return {
            "__typename": "BulkOperation",
            "id": gid("BulkOperation", self.id),
            "status": self.status,
            "type": "QUERY",
            "errorCode": self.error_code,
            "objectCount": self.object_count,
            "rootObjectCount": self.root_object_count,
            "fileSize": len(self.body) if self.body and self.status == "COMPLETED" else None,
            "url": self.url if self.status == "COMPLETED" else None,
            "partialDataUrl": None,
            "query": self.query,
            "createdAt": _stamp(self.created_at),
            "completedAt": _stamp(self.completed_at),
        }


def _stamp(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _user_error(message: str, code: str | None = None, field: list[str] | None = None) -> dict:
    return {"field": field, "message": message, "code": code}


class BulkOperations:
    """The shop's bulk operations: start, poll, cancel, and serve their results."""

    def __init__(self, emulator: ShopifyEmulator, *, delay: float = 1.0) -> None:
        self.emulator = emulator
        self.delay = delay
        self._operations: dict[int, BulkOperation] = {}
        self._next_id = _FIRST_ID
        self._lock = threading.Lock()

    # GraphQL side ---------------------------------------------------------------------

    def node(self, operation_id: int) -> dict[str, Any] | None:
        operation = self._operations.get(operation_id)
        return operation.node() if operation else None

    def current(self, token: str, kind: str = "QUERY") -> dict[str, Any] | None:
        """The token's most recent bulk query (``currentBulkOperation``)."""
        if kind != "QUERY":
            return None
        mine = [op for op in self._operations.values() if op.token == token]
        return max(mine, key=lambda op: op.id).node() if mine else None

    @staticmethod
    def concurrency(version: str) -> int:
        """How many bulk operations an app may run at once under API ``version``."""
        if version == "unstable" or version >= CONCURRENCY_SINCE:
            return CONCURRENT_OPERATIONS
        return 1

    def run(self, context: Context, query: str, *, group_objects: bool = False) -> dict:
        """``bulkOperationRunQuery``: validate ``query`` and start it in the background."""
        problem = self._check(query)
        if problem:
            return {"bulkOperation": None, "userErrors": [problem]}
        limit = self.concurrency(context.version)
        with self._lock:
            running = [
                op
                for op in self._operations.values()
                if op.token == context.token and op.status in RUNNING_STATUSES
            ]
            if len(running) >= limit:
                if limit == 1:
                    busy = gid("BulkOperation", running[0].id)
                    message = (
                        "A bulk query operation for this app and shop is already in progress: "
                        f"{busy}."
                    )
                    error = _user_error(message, "OPERATION_IN_PROGRESS")
                else:
                    message = (
                        f"A maximum of {limit} bulk operations can run at the same time for "
                        "this app and shop. Wait for one to finish before starting another."
                    )
                    error = _user_error(message, "LIMIT_REACHED")
                return {"bulkOperation": None, "userErrors": [error]}
            self._next_id += 1
            operation = BulkOperation(
                id=self._next_id,
                token=context.token,
                query=query,
                created_at=datetime.now(UTC).replace(microsecond=0),
                group_objects=group_objects,
            )
            self._operations[operation.id] = operation
        snapshot = operation.node()
        worker_context = Context(
            graph=context.graph,
            read_all_orders=context.read_all_orders,
            bulk=True,
            base_url=context.base_url,
            bulk_operations=self,
            token=context.token,
            version=context.version,
        )
        threading.Thread(
            target=self._work,
            args=(operation, worker_context),
            name=f"shopify-bulk-{operation.id}",
            daemon=True,
        ).start()
        return {"bulkOperation": snapshot, "userErrors": []}

    def cancel(self, context: Context, operation_gid: str) -> dict[str, Any]:
        """``bulkOperationCancel``: stop a running operation; finished ones cannot be."""
        parsed = parse_gid(operation_gid)
        operation = self._operations.get(parsed[1]) if parsed else None
        if operation is None or operation.token != context.token:
            return {
                "bulkOperation": None,
                "userErrors": [_user_error("Bulk operation does not exist", field=["id"])],
            }
        with self._lock:
            if operation.status not in ("CREATED", "RUNNING"):
                message = (
                    f"A bulk operation cannot be canceled when it is {operation.status.lower()}"
                )
                return {
                    "bulkOperation": operation.node(),
                    "userErrors": [{"field": None, "message": message}],
                }
            operation.cancel_requested = True
            operation.status = "CANCELING"
        return {"bulkOperation": operation.node(), "userErrors": []}

    # the background run ----------------------------------------------------------------

    def _work(self, operation: BulkOperation, context: Context) -> None:
        started = time.monotonic()
        try:
            time.sleep(min(self.delay / 4, 0.05))
            with self._lock:
                if operation.status == "CREATED":
                    operation.status = "RUNNING"
            lines = self._export(operation.query, context, grouped=operation.group_objects)
            body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
            remaining = self.delay - (time.monotonic() - started)
            while remaining > 0 and not operation.cancel_requested:
                time.sleep(min(remaining, 0.05))
                remaining = self.delay - (time.monotonic() - started)
            with self._lock:
                operation.object_count = len(lines)
                operation.root_object_count = sum(1 for x in lines if "__parentId" not in x)
                if operation.cancel_requested:
                    operation.status = "CANCELED"
                    return
                operation.body = body.encode("utf-8")
                if lines:
                    operation.url = f"{context.base_url}/_sandbox/shopify/bulk/{operation.id}.jsonl"
                operation.status = "COMPLETED"
                operation.completed_at = datetime.now(UTC).replace(microsecond=0)
        except Exception:  # noqa: BLE001 - a failed run is reported as Shopify reports it
            with self._lock:
                operation.status = "FAILED"
                operation.error_code = "INTERNAL_SERVER_ERROR"
        finally:
            operation.done.set()

    def wait(self, operation_gid: str, timeout: float = 10.0) -> dict[str, Any] | None:
        """Block until the operation ends (for tests); its node."""
        parsed = parse_gid(operation_gid)
        operation = self._operations.get(parsed[1]) if parsed else None
        if operation is None:
            return None
        operation.done.wait(timeout)
        return operation.node()

    def _check(self, query: str) -> dict[str, Any] | None:
        """Shopify's bulk-query rules, as a user error, or None when the query may run."""
        prepared = admin_graphql.prepare(query, None, None)
        if isinstance(prepared, list):
            return _user_error(
                f"Invalid bulk query: {prepared[0]['message']}", "INVALID", ["query"]
            )
        if prepared.operation.operation != OperationType.QUERY:
            return _user_error("Bulk mutations are not supported here; pass a query", "INVALID")
        schema = admin_graphql.admin_schema()
        depths, in_list = _connection_depths(
            prepared.cost, schema.query_type, prepared.operation.selection_set
        )
        if in_list:
            return _user_error(
                "Queries that contain a connection field within a list field are not "
                "currently supported.",
                "INVALID",
                ["query"],
            )
        if not depths:
            return _user_error(
                "Invalid bulk query: Bulk queries must contain at least one connection.",
                "INVALID",
                ["query"],
            )
        if len(depths) > MAX_CONNECTIONS:
            return _user_error(
                f"Invalid bulk query: Queries that contain more than {MAX_CONNECTIONS} "
                "connections are not allowed.",
                "INVALID",
                ["query"],
            )
        if max(depths) > MAX_NESTING:
            return _user_error(
                f"Invalid bulk query: Bulk queries cannot contain connections with a nesting "
                f"depth greater than {MAX_NESTING}.",
                "INVALID",
                ["query"],
            )
        return None

    def _export(
        self, query: str, context: Context, *, grouped: bool = True
    ) -> list[dict[str, Any]]:
        prepared = admin_graphql.prepare(query, None, None)
        assert not isinstance(prepared, list)
        schema = admin_graphql.admin_schema()
        _ensure_ids(prepared.cost, schema.query_type, prepared.operation.selection_set)
        data = BulkExecutor(prepared, context).run()
        lines: list[dict[str, Any]] = []
        for value in (data or {}).values():
            if isinstance(value, dict):
                for node in _connection_nodes(value):
                    _flatten(node, None, lines)
        if not grouped:  # ungrouped: no promise of order; roots first shows it
            lines = [x for x in lines if "__parentId" not in x] + [
                x for x in lines if "__parentId" in x
            ]
        return lines

    # HTTP side -------------------------------------------------------------------------

    async def download(self, operation_id: int) -> Response:
        """The JSONL result, as the signed URL of a completed operation serves it."""
        operation = self._operations.get(operation_id)
        if operation is None or operation.body is None:
            return JSONResponse({"errors": "Not Found"}, status_code=404)
        return Response(operation.body, media_type="application/jsonl")


class BulkExecutor:
    """Runs a validated bulk query over the graph's objects, without graphql-core's
    per-field bookkeeping: an export touches every field of every record, and the
    executor's overhead (tens of microseconds a field) would make a 100k-order export
    take minutes. It resolves, serialises and shapes results exactly as the executor
    does for a valid query (a test compares the two); errors end the operation.
    """

    def __init__(self, prepared: admin_graphql.Prepared, context: Context) -> None:
        self.schema = admin_graphql.admin_schema()
        self.prepared = prepared
        self.context = context
        self._plans: dict[tuple[str, int], list[tuple]] = {}
        self._kinds: dict[int, tuple[str, Any]] = {}

    def run(self) -> dict[str, Any]:
        root = self.schema.query_type
        assert root is not None
        return self._select(root, None, self.prepared.operation.selection_set)

    def _plan(self, parent: GraphQLObjectType, selection_set: SelectionSetNode) -> list[tuple]:
        """(response key, field name, definition, arguments, node) for each selected field."""
        key = (parent.name, id(selection_set))
        plan = self._plans.get(key)
        if plan is None:
            plan, seen = [], set()
            for node in self.prepared.cost._fields(parent.name, selection_set):
                name = node.name.value
                out = node.alias.value if node.alias else name
                if out in seen:
                    continue
                seen.add(out)
                if name == "__typename":
                    plan.append((out, name, None, None, None))
                    continue
                field_def = parent.fields[name]
                arguments = get_argument_values(field_def, node, self.prepared.variables)
                plan.append((out, name, field_def, arguments, node))
            self._plans[key] = plan
        return plan

    def _select(
        self, parent: GraphQLObjectType, source: Any, selection_set: SelectionSetNode
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for out, name, field_def, arguments, node in self._plan(parent, selection_set):
            if field_def is None:
                result[out] = parent.name
                continue
            if source is None:
                value = field_def.resolve(None, _Info(self.context, name), **arguments)
            else:
                value = source.get(name)
                if callable(value):
                    value = value(_Info(self.context, name), **arguments)
            result[out] = None if value is None else self._complete(field_def.type, value, node)
        return result

    def _kind(self, type_: Any) -> tuple[str, Any]:
        kind = self._kinds.get(id(type_))
        if kind is None:
            inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
            if isinstance(inner, GraphQLList):
                kind = ("list", inner.of_type)
            elif is_leaf_type(inner):
                kind = ("leaf", inner.serialize)
            elif is_abstract_type(inner):
                kind = ("abstract", None)
            else:
                kind = ("object", inner)
            self._kinds[id(type_)] = kind
        return kind

    def _complete(self, type_: Any, value: Any, node: FieldNode) -> Any:
        kind, detail = self._kind(type_)
        if kind == "leaf":
            return detail(value)
        if kind == "list":
            return [None if item is None else self._complete(detail, item, node) for item in value]
        concrete = self.schema.get_type(value["__typename"]) if kind == "abstract" else detail
        assert node.selection_set is not None
        return self._select(concrete, value, node.selection_set)


@dataclass(frozen=True)
class _Info:
    """What the graph's resolvers read from graphql-core's ResolveInfo."""

    context: Context
    field_name: str


def _connection_nodes(value: dict[str, Any]) -> list[dict[str, Any]]:
    if "edges" in value:
        return [e["node"] for e in value["edges"] if e and e.get("node") is not None]
    return [n for n in value.get("nodes") or [] if n is not None]


def _is_connection_value(value: Any) -> bool:
    return isinstance(value, dict) and (
        ("edges" in value and isinstance(value["edges"], list))
        or ("nodes" in value and isinstance(value["nodes"], list))
    )


def _flatten(node: dict[str, Any], parent_id: str | None, lines: list[dict[str, Any]]) -> None:
    """Emit ``node`` (nested connections taken out) then, after it, each child node."""
    own = {k: v for k, v in node.items() if not _is_connection_value(v)}
    if parent_id is not None:
        own["__parentId"] = parent_id
    lines.append(own)
    for value in node.values():
        if _is_connection_value(value):
            for child in _connection_nodes(value):
                _flatten(child, node.get("id"), lines)


def _connection_depths(
    cost: Any, parent: Any, selection_set: SelectionSetNode
) -> tuple[list[int], bool]:
    """The nesting depth of every connection the selection holds (1 = top level), and
    whether one sits inside a list field (a list of objects that is not a connection)."""
    found: list[int] = []
    in_list = False

    def walk(named: Any, selections: SelectionSetNode | None, depth: int, listed: bool) -> None:
        nonlocal in_list
        if selections is None:
            return
        for concrete in cost._concrete_types(named):
            for node in cost._fields(concrete.name, selections):
                field_def = cost._field_def(concrete, node.name.value)
                if field_def is None:
                    continue
                target = get_named_type(field_def.type)
                if is_leaf_type(target):
                    continue
                if target.name.endswith("Connection"):
                    found.append(depth + 1)
                    in_list = in_list or listed
                    # a connection's own ``edges``/``nodes`` lists are not list fields
                    walk(target, node.selection_set, depth + 1, False)
                elif named.name.endswith(("Connection", "Edge")):
                    walk(target, node.selection_set, depth, listed)
                else:
                    walk(target, node.selection_set, depth, listed or _is_list(field_def.type))

    walk(parent, selection_set, 0, False)
    return found, in_list


def _is_list(type_: Any) -> bool:
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    return isinstance(inner, GraphQLList)


def _ensure_ids(cost: Any, parent: Any, selection_set: SelectionSetNode) -> None:
    """Select ``id`` on every node that has a nested connection, for ``__parentId``."""

    def has_connection(named: Any, selections: SelectionSetNode | None) -> bool:
        if selections is None:
            return False
        for concrete in cost._concrete_types(named):
            for node in cost._fields(concrete.name, selections):
                field_def = cost._field_def(concrete, node.name.value)
                if field_def and get_named_type(field_def.type).name.endswith("Connection"):
                    return True
        return False

    def walk(named: Any, selections: SelectionSetNode | None, is_node: bool) -> None:
        if selections is None:
            return
        if is_node and has_connection(named, selections):
            names = {s.name.value for s in selections.selections if isinstance(s, FieldNode)}
            if "id" not in names and hasattr(named, "fields") and "id" in named.fields:
                selections.selections = (
                    *selections.selections,
                    FieldNode(name=NameNode(value="id"), arguments=(), directives=()),
                )
        for concrete in cost._concrete_types(named):
            for node in cost._fields(concrete.name, selections):
                field_def = cost._field_def(concrete, node.name.value)
                if field_def is None:
                    continue
                target = get_named_type(field_def.type)
                if is_leaf_type(target):
                    continue
                child_is_node = node.name.value in ("node", "nodes") and named.name.endswith(
                    ("Connection", "Edge")
                )
                walk(target, node.selection_set, child_is_node)

    walk(parent, selection_set, False)
