"""The GraphQL Admin API engine: schema, calculated query cost, throttle and errors.

A real GraphQL executor (graphql-core) runs queries against :file:`schema.graphql`,
so parsing, validation, variables, fragments, aliases and ``__typename`` behave as a
GraphQL server does. Around it, what makes it Shopify's:

- **calculated query cost**: scalars and enums cost 0, objects 1, a connection
  2 + ``first``/``last`` × the cost of one node (``edges``/``pageInfo`` themselves
  are free), ``nodes(ids:)`` each id × the cost of one object, a mutation 10. The
  requested cost is computed before running; the actual cost after, from what came
  back (an empty page costs 2);
- a query whose requested cost exceeds 1000 is refused with ``MAX_COST_EXCEEDED``;
- a **cost bucket per token** (Standard plan: 2000 points, restoring 100 a second):
  a query needs its requested cost available, pays it, and is refunded the difference
  with the actual cost; otherwise the answer is ``THROTTLED``, at HTTP 200;
- mutations: bulk operations, and the customer writes of :mod:`.writes` (``tagsAdd``,
  ``tagsRemove``, ``metafieldsSet``);
- ``extensions.cost`` with ``requestedQueryCost``, ``actualQueryCost`` and
  ``throttleStatus`` on every answer;
- validation errors worded as Shopify's graphql-ruby words them, with its codes
  (``undefinedField``, ``argumentNotAccepted``, ``missingRequiredArguments``…).
"""

from __future__ import annotations

import copy
import math
import re
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    build_schema,
    execute,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    parse,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values

from omnicanal.channels.shopify.graph import (
    CHECKOUT_FIELDS,
    CUSTOMER_FIELDS,
    LOCATION_FIELDS,
    ORDER_FIELDS,
    PRODUCT_FIELDS,
    VARIANT_FIELDS,
    Context,
    connection,
    parse_gid,
    sort_key,
)
from omnicanal.channels.shopify.search import matcher, warnings
from omnicanal.sandbox.throttle import Clock

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")
MAX_QUERY_COST = 1000
MUTATION_COST = 10
#: The Standard plan's bucket and restore rate (Advanced 4000/200, Plus 20000/1000).
DEFAULT_MAXIMUM_AVAILABLE = 2000.0
DEFAULT_RESTORE_RATE = 100.0
RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"


# -- the schema ------------------------------------------------------------------------


def _decimal(value: Any) -> str:
    """Shopify's Decimal: the shortest exact form, at least one decimal ("10.0", "59.9")."""
    number = Decimal(str(value)).normalize()
    text = format(number, "f")
    return text if "." in text else f"{text}.0"


def _money(value: Any) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.01")))


@lru_cache(maxsize=1)
def admin_schema() -> GraphQLSchema:
    """The served schema, with Shopify's scalar serialisations and the root resolvers."""
    schema = build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))
    scalars: dict[str, Callable[[Any], Any]] = {
        "Decimal": _decimal,
        "Money": _money,
        "UnsignedInt64": lambda v: str(int(v)),
        "DateTime": str,
        "URL": str,
    }
    for name, serialize in scalars.items():
        schema.type_map[name].serialize = serialize  # type: ignore[union-attr]
    _bind_roots(schema)
    return schema


def _ctx(info: Any) -> Context:
    return info.context


def _root_connection(
    resource: str,
    records: Callable[[Context], list[dict[str, Any]]],
    fields: dict,
    build: str,
    default_sort: str,
    visible: Callable[[Context, dict[str, Any]], bool] | None = None,
) -> Callable[..., Any]:
    """A root connection over the store list ``records`` returns, filtered by ``query``
    and by what the token may see (``visible``), paged in ``sortKey`` order."""

    def resolve(_root: Any, info: Any, **args: Any) -> dict[str, Any]:
        context = _ctx(info)
        query = args.pop("query", None)
        sort = args.pop("sortKey", default_sort)
        for ignored in ("savedSearchId", "includeLegacy", "includeInactive"):
            args.pop(ignored, None)
        wanted = matcher(query, fields)
        _note_search(info, query, fields)
        graph = context.graph
        rows, keys = graph.filtered_records(
            resource,
            sort,
            records(context),
            (query, visible, graph.visibility_scope(context)),
            lambda r: (visible is None or visible(context, r)) and wanted(r),
        )
        builder = getattr(graph, build)
        return connection(
            info, (), sort_key(resource, sort), builder, sorted_rows=rows, sorted_keys=keys, **args
        )

    return resolve


def _note_search(info: Any, query: str | None, fields: dict) -> None:
    """Remember a search's warnings for ``extensions.search``, as Shopify reports them."""
    found = warnings(query, fields)
    if found:
        _ctx(info).extras.setdefault("search", []).append(
            {"path": list(info.path.as_list()), "query": query, "warnings": found}
        )


def _count(records: Callable[[Context], list[dict[str, Any]]], fields: dict) -> Callable:
    def resolve(_root: Any, info: Any, query: str | None = None, limit: int | None = 10000):
        wanted = matcher(query, fields)
        total = sum(1 for r in records(_ctx(info)) if wanted(r))
        if limit is not None and total > limit:
            return {"count": limit, "precision": "AT_LEAST"}
        return {"count": total, "precision": "EXACT"}

    return resolve


def _one(kind: str) -> Callable[..., Any]:
    def resolve(_root: Any, info: Any, id: str | None = None) -> Any:  # noqa: A002
        context = _ctx(info)
        if id is None:
            return None
        parsed = parse_gid(id)
        if parsed is None or parsed[0] != kind:
            raise GraphQLError(f"Invalid global id '{id}'")
        return context.graph.lookup(context, id)

    return resolve


def _variants(context: Context) -> list[dict[str, Any]]:
    return [v for p in context.graph.store.products for v in p["variants"]]


def _bind_roots(schema: GraphQLSchema) -> None:
    query = schema.query_type
    assert query is not None
    fields = query.fields

    def customers(c: Context) -> list[dict[str, Any]]:
        return c.graph.store.customers

    def orders(c: Context) -> list[dict[str, Any]]:
        return c.graph.store.orders

    def visible_orders(c: Context) -> list[dict[str, Any]]:
        return c.graph.orders(c)

    def order_visible(c: Context, order: dict[str, Any]) -> bool:
        return c.graph.order_visible(c, order)

    def checkouts(c: Context) -> list[dict[str, Any]]:
        return c.graph.store.abandoned_checkouts

    def abandoned(c: Context) -> list[dict[str, Any]]:
        return [a for a in c.graph.store.abandoned_checkouts if not a.get("completed_at")]

    def still_abandoned(c: Context, checkout: dict[str, Any]) -> bool:
        return not checkout.get("completed_at")

    def products(c: Context) -> list[dict[str, Any]]:
        return c.graph.store.products

    def locations(c: Context) -> list[dict[str, Any]]:
        return c.graph.store.locations

    fields["shop"].resolve = lambda _r, info: _ctx(info).graph.shop()
    fields["currentAppInstallation"].resolve = lambda _r, info: _ctx(info).graph.installation(
        _ctx(info)
    )
    fields["node"].resolve = lambda _r, info, id: _ctx(info).graph.lookup(_ctx(info), id)
    fields["nodes"].resolve = lambda _r, info, ids: [
        _ctx(info).graph.lookup(_ctx(info), i) for i in ids
    ]
    fields["customer"].resolve = _one("Customer")
    fields["customers"].resolve = _root_connection(
        "customers", customers, CUSTOMER_FIELDS, "customer", "ID"
    )
    fields["customersCount"].resolve = _count(customers, CUSTOMER_FIELDS)
    fields["order"].resolve = _one("Order")
    fields["orders"].resolve = _root_connection(
        "orders", orders, ORDER_FIELDS, "order", "PROCESSED_AT", order_visible
    )
    fields["ordersCount"].resolve = _count(visible_orders, ORDER_FIELDS)
    fields["abandonedCheckouts"].resolve = _root_connection(
        "abandoned_checkouts", checkouts, CHECKOUT_FIELDS, "checkout", "ID", still_abandoned
    )
    fields["abandonedCheckoutsCount"].resolve = _count(abandoned, CHECKOUT_FIELDS)
    fields["product"].resolve = _one("Product")
    fields["products"].resolve = _root_connection(
        "products", products, PRODUCT_FIELDS, "product", "ID"
    )
    fields["productVariant"].resolve = _one("ProductVariant")
    fields["productVariants"].resolve = _root_connection(
        "variants", _variants, VARIANT_FIELDS, "variant", "ID"
    )
    fields["location"].resolve = _location
    fields["locations"].resolve = _locations(locations)
    fields["currentBulkOperation"].resolve = lambda _r, info, type="QUERY": (  # noqa: A006
        _ctx(info).bulk_operations.current(_ctx(info).token, type)
        if _ctx(info).bulk_operations is not None
        else None
    )
    mutation = schema.mutation_type
    assert mutation is not None

    def run_query(_r: Any, info: Any, query: str, groupObjects: bool = False) -> Any:
        context = _ctx(info)
        return context.bulk_operations.run(context, query, group_objects=groupObjects)

    def cancel(_r: Any, info: Any, id: str) -> Any:  # noqa: A002
        context = _ctx(info)
        return context.bulk_operations.cancel(context, id)

    mutation.fields["bulkOperationRunQuery"].resolve = run_query
    mutation.fields["bulkOperationCancel"].resolve = cancel

    def tags_add(_r: Any, info: Any, id: str, tags: list[str]) -> Any:  # noqa: A002
        return _writes(info, "tagsAdd").tags_add(id, tags)

    def tags_remove(_r: Any, info: Any, id: str, tags: list[str]) -> Any:  # noqa: A002
        return _writes(info, "tagsRemove").tags_remove(id, tags)

    def metafields_set(_r: Any, info: Any, metafields: list[dict[str, Any]]) -> Any:
        return _writes(info, "metafieldsSet").metafields_set(metafields)

    mutation.fields["tagsAdd"].resolve = tags_add
    mutation.fields["tagsRemove"].resolve = tags_remove
    mutation.fields["metafieldsSet"].resolve = metafields_set


ACCESS_SCOPES_DOC = "https://shopify.dev/api/usage/access-scopes"


def _writes(info: Any, field: str) -> Any:
    """The customer writes, if the token's app was granted ``write_customers``."""
    writes = _ctx(info).writes
    if writes is None:
        required = "`write_customers` access scope."
        raise GraphQLError(
            f"Access denied for {field} field. Required access: {required}",
            extensions={
                "code": "ACCESS_DENIED",
                "documentation": ACCESS_SCOPES_DOC,
                "requiredAccess": required,
            },
        )
    return writes


def _location(_root: Any, info: Any, id: str | None = None) -> Any:  # noqa: A002
    context = _ctx(info)
    if id is None:  # the shop's primary location
        primary = next(iter(context.graph.store.locations), None)
        return context.graph.location(primary) if primary else None
    return _one("Location")(_root, info, id)


def _locations(records: Callable[[Context], list[dict[str, Any]]]) -> Callable[..., Any]:
    every = _root_connection("locations", records, LOCATION_FIELDS, "location", "NAME")
    active = _root_connection(
        "locations",
        records,
        LOCATION_FIELDS,
        "location",
        "NAME",
        lambda _c, location: bool(location.get("active")),
    )

    def resolve(_root: Any, info: Any, **args: Any) -> Any:
        chosen = every if args.get("includeInactive", False) else active
        return chosen(_root, info, **args)

    return resolve


# -- query cost --------------------------------------------------------------------------


def _is_connection(named: GraphQLNamedType) -> bool:
    return named.name.endswith("Connection")


class CostCalculator:
    """Shopify's calculated query cost of one operation, requested and actual."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any],
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.variables = variables
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    # selection walking ---------------------------------------------------------------

    def _fields(
        self, type_name: str | None, selection_set: SelectionSetNode | None
    ) -> list[FieldNode]:
        """Fields selected for an object of ``type_name`` (None: every fragment applies)."""
        found: list[FieldNode] = []
        if selection_set is None:
            return found
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                found.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if self._applies(condition.name.value if condition else None, type_name):
                    found.extend(self._fields(type_name, selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment and self._applies(fragment.type_condition.name.value, type_name):
                    found.extend(self._fields(type_name, fragment.selection_set))
        return found

    def _applies(self, condition: str | None, type_name: str | None) -> bool:
        if condition is None or type_name is None or condition == type_name:
            return True
        abstract = self.schema.get_type(condition)
        concrete = self.schema.get_type(type_name)
        if abstract is not None and is_abstract_type(abstract) and concrete is not None:
            return self.schema.is_sub_type(abstract, concrete)  # type: ignore[arg-type]
        return False

    def _field_def(self, parent: GraphQLNamedType, name: str) -> GraphQLField | None:
        fields = getattr(parent, "fields", None)
        return fields.get(name) if fields else None

    def _concrete_types(self, named: GraphQLNamedType) -> list[GraphQLObjectType]:
        if is_abstract_type(named):
            return list(self.schema.get_possible_types(named))  # type: ignore[arg-type]
        return [named]  # type: ignore[list-item]

    # requested ---------------------------------------------------------------------------

    def requested(self) -> int:
        if self.operation.operation == OperationType.MUTATION:
            return MUTATION_COST * len(self._fields(None, self.operation.selection_set))
        root = self.schema.query_type
        assert root is not None
        return self._selection_cost(root, self.operation.selection_set)

    def _selection_cost(self, named: GraphQLNamedType, selection_set: SelectionSetNode) -> int:
        best = 0
        for concrete in self._concrete_types(named):
            total = 0
            for node in self._fields(concrete.name, selection_set):
                field_def = self._field_def(concrete, node.name.value)
                if field_def is not None:
                    total += self._field_cost(field_def, node)
            best = max(best, total)
        return best

    def _field_cost(self, field_def: GraphQLField, node: FieldNode) -> int:
        named = get_named_type(field_def.type)
        if is_leaf_type(named) or node.selection_set is None:
            return 0
        if _is_connection(named):
            args = get_argument_values(field_def, node, self.variables)
            size = args.get("first") or args.get("last") or 0
            return 2 + size * self._per_item(named, node.selection_set)
        if node.name.value == "nodes" and "ids" in field_def.args:
            # ``nodes(ids:)`` costs each object it asks for
            ids = get_argument_values(field_def, node, self.variables).get("ids") or []
            return len(ids) * (1 + self._selection_cost(named, node.selection_set))
        return 1 + self._selection_cost(named, node.selection_set)

    def _per_item(self, connection: GraphQLNamedType, selection_set: SelectionSetNode) -> int:
        """The cost of one node of a connection: ``edges { node }`` and ``nodes`` each."""
        total = 0
        for node in self._fields(connection.name, selection_set):
            field_def = self._field_def(connection, node.name.value)
            if field_def is None or node.selection_set is None:
                continue
            if node.name.value == "nodes":
                total += 1 + self._selection_cost(
                    get_named_type(field_def.type), node.selection_set
                )
            elif node.name.value == "edges":
                edge = get_named_type(field_def.type)
                for inner in self._fields(edge.name, node.selection_set):
                    inner_def = self._field_def(edge, inner.name.value)
                    if inner.name.value == "node" and inner_def and inner.selection_set:
                        total += 1 + self._selection_cost(
                            get_named_type(inner_def.type), inner.selection_set
                        )
        return total

    # actual ------------------------------------------------------------------------------

    def actual(self, data: dict[str, Any] | None) -> int:
        if self.operation.operation == OperationType.MUTATION:
            return self.requested()
        if data is None:
            return 0
        root = self.schema.query_type
        assert root is not None
        return self._actual_selection(root, self.operation.selection_set, data)

    def _actual_selection(
        self, named: GraphQLNamedType, selection_set: SelectionSetNode, data: dict[str, Any]
    ) -> int:
        type_name = data.get("__typename") if isinstance(data, dict) else None
        candidates = [self.schema.get_type(type_name)] if type_name else self._concrete_types(named)
        best = 0
        for concrete in candidates:
            if concrete is None:
                continue
            total = 0
            for node in self._fields(concrete.name, selection_set):
                field_def = self._field_def(concrete, node.name.value)
                key = node.alias.value if node.alias else node.name.value
                if field_def is None or key not in data:
                    continue
                total += self._actual_field(field_def, node, data[key])
            best = max(best, total)
        return best

    def _actual_field(self, field_def: GraphQLField, node: FieldNode, value: Any) -> int:
        named = get_named_type(field_def.type)
        if is_leaf_type(named) or node.selection_set is None or value is None:
            return 0
        if _is_connection(named):
            total = 2
            for inner in self._fields(named.name, node.selection_set):
                key = inner.alias.value if inner.alias else inner.name.value
                inner_def = self._field_def(named, inner.name.value)
                items = value.get(key) if isinstance(value, dict) else None
                if not items or inner_def is None or inner.selection_set is None:
                    continue
                if inner.name.value == "nodes":
                    node_type = get_named_type(inner_def.type)
                    total += sum(
                        1 + self._actual_selection(node_type, inner.selection_set, item)
                        for item in items
                        if item is not None
                    )
                elif inner.name.value == "edges":
                    edge_type = get_named_type(inner_def.type)
                    for edge_field in self._fields(edge_type.name, inner.selection_set):
                        edge_def = self._field_def(edge_type, edge_field.name.value)
                        edge_key = (
                            edge_field.alias.value if edge_field.alias else edge_field.name.value
                        )
                        if edge_field.name.value != "node" or edge_def is None:
                            continue
                        node_type = get_named_type(edge_def.type)
                        for edge in items:
                            child = (edge or {}).get(edge_key)
                            if child is not None and edge_field.selection_set is not None:
                                total += 1 + self._actual_selection(
                                    node_type, edge_field.selection_set, child
                                )
            return total
        if isinstance(value, list):
            costs = [
                self._actual_selection(named, node.selection_set, v)
                for v in value
                if isinstance(v, dict)
            ]
            if node.name.value == "nodes" and "ids" in field_def.args:
                return sum(1 + c for c in costs)
            return 1 + max(costs, default=0)
        return 1 + self._actual_selection(named, node.selection_set, value)


# -- the throttle ----------------------------------------------------------------------------


class CostBucket:
    """Points available to one token: spent by queries, restored at a steady rate."""

    def __init__(self, maximum: float, restore_rate: float, clock: Clock = time.monotonic) -> None:
        self.maximum = maximum
        self.restore_rate = restore_rate
        self._clock = clock
        self._available = maximum
        self._at = clock()
        self._lock = threading.Lock()

    def _restore(self) -> None:
        now = self._clock()
        self._available = min(self.maximum, self._available + (now - self._at) * self.restore_rate)
        self._at = now

    def try_spend(self, cost: float) -> bool:
        with self._lock:
            self._restore()
            if cost > self._available:
                return False
            self._available -= cost
            return True

    def refund(self, points: float) -> None:
        with self._lock:
            self._restore()
            self._available = min(self.maximum, self._available + max(points, 0))

    @property
    def available(self) -> int:
        with self._lock:
            self._restore()
            return math.floor(self._available + 1e-9)

    def status(self) -> dict[str, Any]:
        return {
            "maximumAvailable": float(self.maximum),
            "currentlyAvailable": self.available,
            "restoreRate": float(self.restore_rate),
        }


# -- errors ------------------------------------------------------------------------------------

_UNDEFINED_FIELD = re.compile(r"^Cannot query field '(\w+)' on type '(\w+)'\.")
_UNKNOWN_ARGUMENT = re.compile(r"^Unknown argument '(\w+)' on field '(\w+)\.(\w+)'\.")
_MISSING_ARGUMENT = re.compile(r"^Field '(\w+)' argument '(\w+)' of type '[^']+' is required")
_NO_SELECTION = re.compile(r"^Field '(\w+)' of type '([^']+)' must have a selection of subfields")
_LEAF_SELECTION = re.compile(r"^Field '(\w+)' must not have a selection since type '([^']+)'")


_TOKEN_NAMES = {
    "!": "BANG",
    "$": "VAR_SIGN",
    "&": "AMP",
    "(": "LPAREN",
    ")": "RPAREN",
    "...": "ELLIPSIS",
    ":": "COLON",
    "=": "EQUALS",
    "@": "DIR_SIGN",
    "[": "LBRACKET",
    "]": "RBRACKET",
    "{": "LCURLY",
    "|": "PIPE",
    "}": "RCURLY",
}


def _parse_error(error: GraphQLError) -> str:
    """graphql-ruby's words for a syntax error: 'Parse error on ")" (RPAREN) at [1, 28]'."""
    if "<EOF>" in error.message or not error.source or not error.positions:
        return "Unexpected end of document"
    body, position = error.source.body, error.positions[0]
    line, column = error.locations[0].line, error.locations[0].column
    rest = body[position:]
    if rest.startswith("..."):
        text, kind = "...", "ELLIPSIS"
    elif rest[:1] in _TOKEN_NAMES:
        text, kind = rest[:1], _TOKEN_NAMES[rest[:1]]
    elif match := re.match(r"-?\d+\.\d+(?:[eE][+-]?\d+)?", rest):
        text, kind = match.group(), "FLOAT"
    elif match := re.match(r"-?\d+", rest):
        text, kind = match.group(), "INT"
    elif match := re.match(r'"(?:[^"\\]|\\.)*"', rest):
        text, kind = match.group()[1:-1], "STRING"
    elif match := re.match(r"[_A-Za-z][_0-9A-Za-z]*", rest):
        text = match.group()
        keywords = {"query", "mutation", "subscription", "fragment", "on", "true", "false"}
        kind = text.upper() if text in keywords else "IDENTIFIER"
    else:
        text, kind = rest[:1], "UNKNOWN_CHAR"
    return f'Parse error on "{text}" ({kind}) at [{line}, {column}]'


def _node_paths(document: DocumentNode) -> dict[int, list[str]]:
    """graphql-ruby's static path of every field and argument node: ``["query", "shop"]``."""
    paths: dict[int, list[str]] = {}

    def walk(selection_set: SelectionSetNode | None, prefix: list[str]) -> None:
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                path = [*prefix, selection.name.value]
                paths[id(selection)] = path
                for argument in selection.arguments or ():
                    paths[id(argument)] = [*path, argument.name.value]
                walk(selection.selection_set, path)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                step = f"... on {condition.name.value}" if condition else "..."
                walk(selection.selection_set, [*prefix, step])
            elif isinstance(selection, FragmentSpreadNode):
                paths[id(selection)] = [*prefix, f"... {selection.name.value}"]

    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            head = definition.operation.value
            if definition.name:
                head = f"{head} {definition.name.value}"
            paths[id(definition)] = [head]
            walk(definition.selection_set, [head])
        elif isinstance(definition, FragmentDefinitionNode):
            head = f"fragment {definition.name.value}"
            paths[id(definition)] = [head]
            walk(definition.selection_set, [head])
    return paths


def format_error(error: GraphQLError, paths: dict[int, list[str]] | None = None) -> dict[str, Any]:
    """A GraphQL error as Shopify's graphql-ruby words it (message, locations, path, code).

    ``paths`` (from :func:`_node_paths`) gives a validation error graphql-ruby's static
    path of the offending node."""
    formatted: dict[str, Any] = dict(error.formatted)
    if paths is not None and error.nodes:
        static = paths.get(id(error.nodes[-1]))
        if static:
            formatted["path"] = static
    message = error.message
    extensions: dict[str, Any] | None = None
    if message.startswith("Syntax Error"):
        message = _parse_error(error)
    elif match := _UNDEFINED_FIELD.match(message):
        field, type_name = match.groups()
        message = f"Field '{field}' doesn't exist on type '{type_name}'"
        extensions = {"code": "undefinedField", "typeName": type_name, "fieldName": field}
    elif match := _UNKNOWN_ARGUMENT.match(message):
        argument, _type_name, field = match.groups()
        message = f"Field '{field}' doesn't accept argument '{argument}'"
        extensions = {
            "code": "argumentNotAccepted",
            "name": field,
            "typeName": "Field",
            "argumentName": argument,
        }
    elif match := _MISSING_ARGUMENT.match(message):
        field, argument = match.groups()
        message = f"Field '{field}' is missing required arguments: {argument}"
        extensions = {
            "code": "missingRequiredArguments",
            "className": "Field",
            "name": field,
            "arguments": argument,
        }
    elif match := _NO_SELECTION.match(message):
        field, type_name = match.groups()
        message = (
            f"Field must have selections (field '{field}' returns {type_name} but has no "
            f"selections. Did you mean '{field} {{ ... }}'?)"
        )
        extensions = {"code": "selectionMismatch", "nodeName": f"field '{field}'"}
    elif match := _LEAF_SELECTION.match(message):
        field, type_name = match.groups()
        message = (
            f"Selections can't be made on scalars (field '{field}' returns {type_name} but has "
            "selections [...])"
        )
        extensions = {"code": "selectionMismatch", "nodeName": f"field '{field}'"}
    formatted["message"] = message
    if extensions:
        formatted["extensions"] = extensions
    elif "extensions" in formatted and not formatted["extensions"]:
        del formatted["extensions"]
    return formatted


def max_cost_error(cost: int) -> dict[str, Any]:
    return {
        "message": (
            f"Query cost is {cost}, which exceeds the single query max cost limit "
            f"({MAX_QUERY_COST}).\n\nSee {RATE_LIMITS_DOC} for more information on how the\n"
            "cost of a query is calculated.\n\nTo query larger amounts of data with fewer "
            "limits, bulk operations should be used instead.\nSee "
            "https://shopify.dev/api/usage/bulk-operations/queries for usage details.\n"
        ),
        "extensions": {
            "code": "MAX_COST_EXCEEDED",
            "cost": cost,
            "maxCost": MAX_QUERY_COST,
            "documentation": RATE_LIMITS_DOC,
        },
    }


THROTTLED_ERROR = {
    "message": "Throttled",
    "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOC},
}


# -- running one request -------------------------------------------------------------------------


class Prepared:
    """A parsed, validated operation with its coerced variables and cost calculator."""

    def __init__(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any],
        cost: CostCalculator,
    ) -> None:
        self.document = document
        self.operation = operation
        self.variables = variables
        self.cost = cost


@lru_cache(maxsize=64)
def _checked(query: str) -> DocumentNode | tuple[dict[str, Any], ...]:
    """``query`` parsed and validated, or its formatted errors; kept per query text.

    A paging client sends the same document for every page, and parsing and
    validating it cost more than running it; both depend on the text alone (the
    schema is fixed), and execution does not change the document.
    """
    try:
        document = parse(query)
    except GraphQLError as error:
        return (format_error(error),)
    errors = validate(admin_schema(), document)
    if errors:
        paths = _node_paths(document)
        return tuple(format_error(e, paths) for e in errors)
    return document


def prepare(
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    *,
    reuse: bool = False,
) -> Prepared | list[dict[str, Any]]:
    """Parse, validate and bind variables; the formatted errors if any step fails.

    ``reuse`` takes the document from a cache kept per query text, for callers that
    do not change it (bulk operations add ``id`` selections to theirs).
    """
    schema = admin_schema()
    checked = _checked(query) if reuse else _checked.__wrapped__(query)
    if isinstance(checked, tuple):
        return copy.deepcopy(list(checked))
    document = checked
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        chosen = [o for o in operations if o.name and o.name.value == operation_name]
        if not chosen:
            return [{"message": f'No operation named "{operation_name}"'}]
        operation = chosen[0]
    elif len(operations) == 1:
        operation = operations[0]
    else:
        return [{"message": "An operation name is required"}]
    coerced = get_variable_values(schema, operation.variable_definitions or [], variables or {})
    if isinstance(coerced, list):
        return [format_error(e) for e in coerced]
    return Prepared(
        document, operation, coerced, CostCalculator(schema, document, operation, coerced)
    )


def run(prepared: Prepared, context: Context) -> tuple[dict[str, Any] | None, list[dict]]:
    """Execute a prepared operation; its data and formatted errors."""
    result = execute(
        admin_schema(),
        prepared.document,
        context_value=context,
        variable_values=prepared.variables,
        operation_name=prepared.operation.name.value if prepared.operation.name else None,
    )
    if hasattr(result, "__await__"):  # pragma: no cover - every resolver is synchronous
        raise RuntimeError("the Shopify emulation's resolvers must be synchronous")
    errors = [format_error(e) for e in result.errors or []]  # type: ignore[union-attr]
    return result.data, errors  # type: ignore[union-attr]
