"""What each stream asks Shopify's GraphQL Admin API for, and the query texts built from it.

A :class:`Resource` names a root connection (``orders``), the fields of its nodes, and
the nested connections (``lineItems``…) whose nodes become lists in the record. From
one description come the three query shapes the tap sends:

- a **page** query (``first``/``after``, ``query: "updated_at:>='…'"``, ``sortKey``),
  each nested connection capped at its own ``first`` with its ``pageInfo``;
- a **more** query that pages one nested connection of one node (``node(id:)``) when
  a page query found it had more than its cap;
- a **bulk** query for ``bulkOperationRunQuery``: no pagination arguments, nested
  nodes carry ``__typename`` so their JSONL lines (which only point at their parent
  through ``__parentId``) can be put back under the right field.

Shopify's bulk limits shape the descriptions: at most five connections per query and
nesting two deep; lists that are not connections (``fulfillments``, ``refunds``,
``addresses``) come inline in their parent's line and cost no connection. A
connection *inside* such a list (a refund's ``refundLineItems``) is refused in bulk
("Queries that contain a connection field within a list field are not currently
supported."): a :class:`ListField` describes it, page queries nest its first page,
and after a bulk operation the **items** query (``nodes(ids:)``) fetches it for the
list's items in batches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: Shopify refuses a single query whose requested cost exceeds this many points.
MAX_QUERY_COST = 1000
#: Largest ``first`` Shopify accepts on a connection.
MAX_PAGE_SIZE = 250

MONEY = "amount currencyCode"
MONEY_BAG = f"shopMoney {{ {MONEY} }} presentmentMoney {{ {MONEY} }}"
ADDRESS = (
    "id firstName lastName name company address1 address2 city province provinceCode "
    "zip country countryCodeV2 phone"
)


@dataclass(frozen=True)
class Connection:
    """A nested connection whose nodes become a list under ``field`` in the record."""

    field: str
    #: ``__typename`` values its nodes can have (several for an interface).
    node_types: tuple[str, ...]
    selection: str
    #: ``first`` in page queries; more are fetched with the *more* query when needed.
    page_size: int
    #: Keep ``__typename`` in the record (meaningful when the node is an interface).
    keep_typename: bool = False


@dataclass(frozen=True)
class ListField:
    """A list field of the root node (not a connection) whose items hold connections.

    ``refunds`` is a plain list of ``Refund`` objects, and each refund's line items are
    a connection: page queries select it inline; bulk queries cannot, so the items
    query asks for it by the items' global ids.
    """

    field: str
    #: The list items' type, for ``... on Refund`` in the item and items queries.
    item_type: str
    #: The items' own fields (without their connections).
    selection: str
    connections: tuple[Connection, ...]
    #: ``first`` on the list itself (Shopify caps such lists by an argument too).
    first: int = 20

    def item_cost(self) -> int:
        """Requested cost of one item with its connections' first pages."""
        return 1 + _object_count(self.selection) + self._connections_cost()

    def _connections_cost(self) -> int:
        return sum(
            2 + connection.page_size * (1 + _object_count(connection.selection))
            for connection in self.connections
        )

    def connections_selection(self, *, first: int | None = None) -> str:
        """The connections as page queries select them (``first`` overrides their caps)."""
        return " ".join(
            f"{c.field}(first: {first or c.page_size}) {{ pageInfo {{ hasNextPage endCursor }} "
            f"nodes {{ {c.selection} }} }}"
            for c in self.connections
        )

    def page_selection(self) -> str:
        return (
            f"{self.field}(first: {self.first}) {{ {self.selection} "
            f"{self.connections_selection()} }}"
        )

    def bulk_selection(self) -> str:
        return f"{self.field}(first: {self.first}) {{ {self.selection} }}"

    def items_query(self) -> str:
        """The connections' first pages for a batch of items, by global id (``$ids``)."""
        return (
            f"query {_operation_name(self.field)}Items($ids: [ID!]!) {{ "
            f"nodes(ids: $ids) {{ ... on {self.item_type} {{ id "
            f"{self.connections_selection()} }} }} }}"
        )

    def items_batch(self) -> int:
        """How many items one items query may ask for under the cost cap (and 250 ids)."""
        return max(1, min(MAX_PAGE_SIZE, MAX_QUERY_COST // self._id_cost()))

    def items_cost(self, count: int) -> int:
        """Requested cost of an items query for ``count`` ids: each id costs its object."""
        return count * self._id_cost()

    def _id_cost(self) -> int:
        return 1 + self._connections_cost()

    def more_query(self, connection: Connection) -> str:
        """The next page of one connection of one item (``node(id:)``)."""
        return (
            f"query {_operation_name(self.field)}More{_operation_name(connection.field)}"
            "($id: ID!, $after: String) { "
            f"node(id: $id) {{ ... on {self.item_type} {{ "
            f"{connection.field}(first: {MAX_PAGE_SIZE}, after: $after) {{ "
            "pageInfo { hasNextPage endCursor } "
            f"nodes {{ {connection.selection} }} }} }} }} }}"
        )

    def more_cost(self, connection: Connection) -> int:
        return 1 + 2 + MAX_PAGE_SIZE * (1 + _object_count(connection.selection))


@dataclass(frozen=True)
class Resource:
    """A root connection of the Admin API and how a stream reads it."""

    root: str
    node_type: str
    selection: str
    connections: tuple[Connection, ...] = ()
    #: List fields whose items hold connections (see :class:`ListField`).
    lists: tuple[ListField, ...] = ()
    #: ``sortKey`` for page and bulk queries; None where Shopify has no updated-at key.
    sort_key: str | None = "UPDATED_AT"
    #: Search field for the incremental filter; None: Shopify cannot filter on it, the stream does.
    filter_field: str | None = "updated_at"
    #: Extra root arguments, e.g. ``includeInactive: true``.
    extra_arguments: str = ""

    # --- costs ----------------------------------------------------------------------

    def node_cost(self) -> int:
        """Shopify's requested cost of one root node: objects 1, connections 2 + first × node."""
        cost = 1 + _object_count(self.selection)
        for connection in self.connections:
            cost += 2 + connection.page_size * (1 + _object_count(connection.selection))
        for listed in self.lists:
            cost += listed.item_cost()  # a list costs one item, as Shopify counts it
        return cost

    def page_size_for(self, wanted: int) -> int:
        """The largest ``first`` up to ``wanted`` whose requested cost stays under the cap."""
        affordable = (MAX_QUERY_COST - 2) // self.node_cost()
        return max(1, min(wanted, affordable, MAX_PAGE_SIZE))

    def page_cost(self, first: int) -> int:
        return 2 + first * self.node_cost()

    # --- query texts ----------------------------------------------------------------

    def _root_arguments(self, *, paged: bool, search: str | None) -> str:
        arguments = []
        if paged:
            arguments += ["first: $first", "after: $after"]
            if self.filter_field:
                arguments.append("query: $query")
        elif search:
            arguments.append(f"query: {json.dumps(search)}")
        if self.sort_key:
            arguments.append(f"sortKey: {self.sort_key}")
        if self.extra_arguments:
            arguments.append(self.extra_arguments)
        return ", ".join(arguments)

    def page_query(self) -> str:
        """The query for one page of root nodes; variables ``first``, ``after``, ``query``."""
        nested = " ".join(
            [
                *(listed.page_selection() for listed in self.lists),
                *(
                    f"{c.field}(first: {c.page_size}) {{ pageInfo {{ hasNextPage endCursor }} "
                    f"nodes {{ __typename {c.selection} }} }}"
                    for c in self.connections
                ),
            ]
        )
        variables = "$first: Int!, $after: String"
        if self.filter_field:
            variables += ", $query: String"
        return (
            f"query {_operation_name(self.root)}Page({variables}) {{ "
            f"{self.root}({self._root_arguments(paged=True, search=None)}) {{ "
            "pageInfo { hasNextPage endCursor } "
            f"nodes {{ {self.selection} {nested} }} }} }}"
        )

    def more_query(self, connection: Connection) -> str:
        """The query for the next page of one nested connection of one node."""
        return (
            f"query {_operation_name(self.root)}More{_operation_name(connection.field)}"
            "($id: ID!, $after: String) { "
            f"node(id: $id) {{ ... on {self.node_type} {{ "
            f"{connection.field}(first: {MAX_PAGE_SIZE}, after: $after) {{ "
            "pageInfo { hasNextPage endCursor } "
            f"nodes {{ __typename {connection.selection} }} }} }} }} }}"
        )

    def more_cost(self, connection: Connection) -> int:
        return 1 + 2 + MAX_PAGE_SIZE * (1 + _object_count(connection.selection))

    def bulk_query(self, search: str | None) -> str:
        """The query for ``bulkOperationRunQuery``: every node, nested ones as own lines."""
        nested = " ".join(
            [
                *(listed.bulk_selection() for listed in self.lists),
                *(
                    f"{c.field} {{ edges {{ node {{ __typename {c.selection} }} }} }}"
                    for c in self.connections
                ),
            ]
        )
        arguments = self._root_arguments(paged=False, search=search)
        root = f"{self.root}({arguments})" if arguments else self.root
        return f"{{ {root} {{ edges {{ node {{ {self.selection} {nested} }} }} }} }}"

    def connection_for(self, typename: str | None) -> Connection | None:
        for connection in self.connections:
            if typename in connection.node_types:
                return connection
        return None


def search_since(field: str, since: str) -> str:
    """Shopify search syntax for "updated at or after": ``updated_at:>='2024-01-01T00:00:00Z'``."""
    return f"{field}:>='{since}'"


def _object_count(selection: str) -> int:
    """Objects selected inside a selection set: each ``{`` opens one (fragments aside)."""
    return selection.count("{") - selection.count("... on")


def _operation_name(field: str) -> str:
    return field[:1].upper() + field[1:]


# --- the resources ------------------------------------------------------------------

CUSTOMERS = Resource(
    root="customers",
    node_type="Customer",
    selection=(
        "id firstName lastName displayName note tags state verifiedEmail taxExempt locale "
        "createdAt updatedAt numberOfOrders "
        f"amountSpent {{ {MONEY} }} "
        "defaultEmailAddress { emailAddress marketingState marketingOptInLevel "
        "marketingUpdatedAt } "
        "defaultPhoneNumber { phoneNumber marketingState marketingOptInLevel "
        "marketingUpdatedAt marketingCollectedFrom } "
        f"defaultAddress {{ {ADDRESS} }} "
        f"addresses {{ {ADDRESS} }}"
    ),
)

LINE_ITEMS = Connection(
    field="lineItems",
    node_types=("LineItem",),
    selection=(
        "id name title variantTitle sku vendor quantity currentQuantity requiresShipping "
        "taxable "
        f"originalUnitPriceSet {{ {MONEY_BAG} }} "
        f"discountedTotalSet {{ {MONEY_BAG} }} "
        "variant { id } product { id }"
    ),
    page_size=10,
)

DISCOUNT_APPLICATIONS = Connection(
    field="discountApplications",
    node_types=(
        "DiscountCodeApplication",
        "ManualDiscountApplication",
        "AutomaticDiscountApplication",
        "ScriptDiscountApplication",
    ),
    selection=(
        "index allocationMethod targetSelection targetType "
        f"value {{ ... on MoneyV2 {{ {MONEY} }} ... on PricingPercentageValue {{ percentage }} }} "
        "... on DiscountCodeApplication { code } "
        "... on ManualDiscountApplication { title description } "
        "... on AutomaticDiscountApplication { title } "
        "... on ScriptDiscountApplication { title }"
    ),
    page_size=5,
    keep_typename=True,
)

FULFILLMENT_ORDERS = Connection(
    field="fulfillmentOrders",
    node_types=("FulfillmentOrder",),
    selection=(
        "id status requestStatus createdAt updatedAt "
        "deliveryMethod { methodType } "
        "assignedLocation { name location { id } }"
    ),
    page_size=5,
)

REFUND_LINE_ITEMS = Connection(
    field="refundLineItems",
    node_types=("RefundLineItem",),
    # ``location``: where the items went back into stock (null when not restocked)
    selection="id quantity restockType restocked location { id name } lineItem { id }",
    page_size=5,
)

REFUNDS = ListField(
    field="refunds",
    item_type="Refund",
    selection=f"id createdAt updatedAt note totalRefundedSet {{ {MONEY_BAG} }}",
    connections=(REFUND_LINE_ITEMS,),
)

RETURNS = Connection(
    field="returns",
    node_types=("Return",),
    selection="id name status totalQuantity createdAt closedAt",
    page_size=5,
)

ORDERS = Resource(
    root="orders",
    node_type="Order",
    selection=(
        "id name number email phone createdAt updatedAt processedAt cancelledAt cancelReason "
        "closedAt closed confirmed test tags note "
        "displayFinancialStatus displayFulfillmentStatus "
        "sourceName sourceIdentifier "
        "channelInformation { channelId app { id title } "
        "channelDefinition { handle channelName subChannelName } } "
        "retailLocation { id name } "
        "currencyCode presentmentCurrencyCode taxesIncluded discountCodes "
        f"subtotalPriceSet {{ {MONEY_BAG} }} "
        f"totalDiscountsSet {{ {MONEY_BAG} }} "
        f"totalTaxSet {{ {MONEY_BAG} }} "
        f"totalShippingPriceSet {{ {MONEY_BAG} }} "
        f"totalPriceSet {{ {MONEY_BAG} }} "
        f"totalRefundedSet {{ {MONEY_BAG} }} "
        f"currentTotalPriceSet {{ {MONEY_BAG} }} "
        "customer { id defaultEmailAddress { emailAddress } } "
        f"billingAddress {{ {ADDRESS} }} "
        f"shippingAddress {{ {ADDRESS} }} "
        "shippingLine { title code source deliveryCategory } "
        "fulfillments(first: 20) { id name status displayStatus createdAt updatedAt "
        "deliveredAt location { id name } trackingInfo { company number url } }"
    ),
    connections=(LINE_ITEMS, DISCOUNT_APPLICATIONS, FULFILLMENT_ORDERS, RETURNS),
    lists=(REFUNDS,),
)

ABANDONED_CHECKOUTS = Resource(
    root="abandonedCheckouts",
    node_type="AbandonedCheckout",
    selection=(
        "id name abandonedCheckoutUrl createdAt updatedAt completedAt note taxesIncluded "
        "discountCodes "
        "customer { id defaultEmailAddress { emailAddress } } "
        f"billingAddress {{ {ADDRESS} }} "
        f"shippingAddress {{ {ADDRESS} }} "
        f"subtotalPriceSet {{ {MONEY_BAG} }} "
        f"totalDiscountSet {{ {MONEY_BAG} }} "
        f"totalTaxSet {{ {MONEY_BAG} }} "
        f"totalLineItemsPriceSet {{ {MONEY_BAG} }} "
        f"totalPriceSet {{ {MONEY_BAG} }}"
    ),
    connections=(
        Connection(
            field="lineItems",
            node_types=("AbandonedCheckoutLineItem",),
            selection=(
                "id title variantTitle sku quantity "
                f"originalUnitPriceSet {{ {MONEY_BAG} }} "
                f"discountedTotalPriceSet {{ {MONEY_BAG} }} "
                "variant { id } product { id }"
            ),
            page_size=10,
        ),
    ),
    # AbandonedCheckoutSortKeys has no UPDATED_AT: Shopify's default (ID) it is.
    sort_key=None,
)

PRODUCTS = Resource(
    root="products",
    node_type="Product",
    selection=(
        "id title handle status vendor productType tags createdAt updatedAt publishedAt "
        "totalInventory"
    ),
    connections=(
        Connection(
            field="variants",
            node_types=("ProductVariant",),
            selection=(
                "id title sku barcode price compareAtPrice position inventoryQuantity "
                "taxable createdAt updatedAt selectedOptions { name value }"
            ),
            page_size=20,
        ),
    ),
)

LOCATIONS = Resource(
    root="locations",
    node_type="Location",
    selection=(
        "id name isActive fulfillsOnlineOrders hasActiveInventory shipsInventory "
        "createdAt updatedAt deactivatedAt "
        "address { address1 address2 city province provinceCode zip country countryCode "
        "phone }"
    ),
    sort_key="NAME",
    # The locations query filters on created_at, not updated_at: the stream filters.
    filter_field=None,
    extra_arguments="includeInactive: true, includeLegacy: true",
)
