"""What a record looks like when it leaves the tap: GraphQL's fields, in snake_case.

Shopify's GraphQL nodes are turned into Singer records by a few fixed rules, so a
reader of the Admin API reference can predict every column:

- every field keeps its GraphQL name, converted to snake_case (``displayFinancialStatus``
  → ``display_financial_status``, ``countryCodeV2`` → ``country_code_v2``), because
  loaders and SQL handle lower-case names without quoting;
- the record's own ``id`` is the numeric id (the tail of the global id, the id the
  Shopify admin shows and the REST API used), and ``admin_graphql_api_id`` keeps the
  global id (``gid://shopify/Order/450789469``); nested objects keep their global ids
  (``customer.id``, ``retail_location.id``);
- nested connections become lists of their nodes (``line_items: [...]``), whether the
  nodes came from a page query or from bulk JSONL lines;
- money stays as GraphQL sends it: a MoneyBag ``{shop_money: {amount, currency_code},
  presentment_money: {...}}`` with decimal strings; ``UnsignedInt64`` counts
  (``number_of_orders``) become integers;
- timestamps are ISO 8601 in UTC (``+00:00``), so bookmarks compare as strings.

The schemas below list what the queries in :mod:`tap_shopify.queries` select; nested
objects accept extra properties so a newer API version loses nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import typing as t

from singer_sdk import typing as th

if t.TYPE_CHECKING:
    from omnicanal_tapkit.conform import SchemaConformer

GID_PATTERN = re.compile(r"^gid://shopify/[A-Za-z]+/(\d+)(?:\?.*)?$")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@functools.lru_cache(maxsize=4096)
def snake_case(name: str) -> str:
    """``displayFinancialStatus`` → ``display_financial_status``; ``__typename`` → ``typename``.

    Cached: a sync converts the same few hundred field names on every node (930,000
    conversions for 5,910 bulk records in ``bench/extract``).
    """
    if name == "__typename":
        return "typename"
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def numeric_id(gid: t.Any) -> int | None:
    """``gid://shopify/Customer/207119551`` → ``207119551``; anything else → None."""
    if isinstance(gid, str) and (match := GID_PATTERN.match(gid)):
        return int(match.group(1))
    return None


def to_utc(value: t.Any) -> t.Any:
    """An ISO 8601 timestamp re-expressed in UTC (same instant); other values unchanged."""
    if not isinstance(value, str) or len(value) < 19 or value[10:11] != "T":
        return value
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).isoformat()


class _SnakeNames(dict[str, str]):
    """GraphQL field name -> :func:`snake_case` name: a dict lookup per key (the
    conversion runs once per name), cheaper than a call to the cached function."""

    #: True once two field names have become the same name: an object holding both
    #: would lose one in ``to_record``, which :func:`conformed_record` leaves to it.
    ambiguous = False

    def __missing__(self, name: str) -> str:
        value = self[name] = snake_case(name)
        owners = self.__dict__.setdefault("owners", {})
        if owners.setdefault(value, name) != name:
            self.ambiguous = True
        return value


#: Distinct timestamps held at most; beyond, the cache starts again (a bulk file of
#: orders repeats many: 37,971 timestamps, 18,189 distinct, in 5,910 records).
UTC_CACHE_SIZE = 65_536


class _UtcTimestamps(dict[str, str]):
    """Timestamp-like string -> :func:`to_utc` of it, computed once per distinct value."""

    def __missing__(self, value: str) -> str:
        if len(self) >= UTC_CACHE_SIZE:
            self.clear()
        converted = self[value] = to_utc(value)
        return converted


_NAMES = _SnakeNames()
_UTC = _UtcTimestamps()


def _snake(value: t.Any) -> t.Any:
    if isinstance(value, dict):
        return _snake_dict(value)
    if isinstance(value, list):
        return [_snake_dict(item) if type(item) is dict else _snake(item) for item in value]
    return to_utc(value)


def _snake_dict(node: dict[str, t.Any]) -> dict[str, t.Any]:
    """``_snake`` of an object, its strings and numbers handled in place (a call per
    leaf was most of the conversion's cost: 930,000 leaves in 5,910 bulk records), names
    and timestamps looked up in dicts that convert each distinct one once, objects and
    lists of objects recursed into directly: ``to_record`` took 0.30 s of CPU in a bulk
    extract of those records, 0.28 s now (a replay of the same nodes, whose timestamps
    were all cached after the first pass, read 0.17 s)."""
    out: dict[str, t.Any] = {}
    names, utc = _NAMES, _UTC
    for key, value in node.items():
        kind = type(value)
        if kind is str:
            out[names[key]] = value if len(value) < 19 or value[10] != "T" else utc[value]
        elif kind in _LEAVES:
            out[names[key]] = value
        elif kind is dict:
            out[names[key]] = _snake_dict(value)
        elif kind is list:
            out[names[key]] = [
                _snake_dict(item) if type(item) is dict else _snake(item) for item in value
            ]
        else:
            out[names[key]] = _snake(value)
    return out


#: Values that are never timestamps, containers or strings: kept as they are.
_LEAVES = frozenset({int, float, bool, type(None)})


def to_record(node: dict[str, t.Any], integer_fields: t.Iterable[str] = ()) -> dict[str, t.Any]:
    """A GraphQL node (connections already lists) as a Singer record, by the rules above."""
    record = _snake(node)
    gid = record.get("id")
    record["admin_graphql_api_id"] = gid
    record["id"] = numeric_id(gid) if numeric_id(gid) is not None else gid
    for field in integer_fields:
        value = record.get(field)
        if isinstance(value, str) and value.isdigit():
            record[field] = int(value)
    return record


def conformed_record(
    node: dict[str, t.Any],
    conformer: SchemaConformer,
    integer_fields: t.Iterable[str] = (),
) -> tuple[dict[str, t.Any], list[str]]:
    """``conformer.conform(to_record(node, integer_fields))``, in one walk of the node.

    ``to_record`` builds a snake_case copy of every object and the stream's conformance
    (omnicanal-tapkit's :class:`~omnicanal_tapkit.conform.SchemaConformer`) then walks
    that copy and builds another: together most of the tap's own CPU per record (5,910
    records, about 223,000 objects, in a 2000-people extract). Here each object is
    renamed and conformed in the same pass, by the same rules, property by property.
    What the fused pass cannot mirror exactly takes the two passes: a schema without
    ``properties``, a node whose ``id`` is not a plain value or that carries its own
    ``adminGraphqlApiId``, and any record once two field names have been seen to
    become the same snake_case name (``_NAMES.ambiguous``: one object might hold both).
    Returns the record and the paths of the properties the schema does not know, as
    ``SchemaConformer.conform`` does.
    """
    if (
        _NAMES.ambiguous
        or conformer.properties_missing
        or type(node.get("id")) not in _CONFORM_PLAIN
        or "adminGraphqlApiId" in node
    ):
        return conformer.conform(to_record(node, integer_fields))
    dropped: list[str] = []
    out: dict[str, t.Any] = {}
    names, utc, plain = _NAMES, _UTC, conformer.plain
    gid: t.Any = None
    for key, value in node.items():
        name = names[key]
        if type(value) is str:
            if len(value) >= _TIMESTAMP_LENGTH and value[10] == "T":
                value = utc[value]  # noqa: PLW2901 - the copy to_record would hold
            if name in integer_fields and value.isdigit():
                value = int(value)  # noqa: PLW2901
        if name == "id":
            gid = value
            number = numeric_id(gid)
            value = number if number is not None else gid  # noqa: PLW2901
        if type(value) in _CONFORM_PLAIN and name in plain:
            out[name] = value  # most properties: no call
        else:
            _conform_into(out, name, value, conformer, dropped)
    _conform_into(out, "admin_graphql_api_id", gid, conformer, dropped)
    if names.ambiguous or "id" not in out and "id" not in dropped:
        return conformer.conform(to_record(node, integer_fields))
    return out, dropped


def _copy(value: t.Any) -> t.Any:
    """What ``to_record`` holds for a value whose strings are converted already."""
    kind = type(value)
    if kind is dict:
        return _snake_dict(value)
    if kind is list:
        return _snake(value)
    return value


def _conform_into(
    out: dict[str, t.Any],
    name: str,
    value: t.Any,
    conformer: SchemaConformer,
    dropped: list[str],
) -> None:
    """A top-level property (renamed, its string converted) as ``SchemaConformer.conform``
    treats it in the record ``to_record`` would have built."""
    kind = type(value)
    if kind in _CONFORM_PLAIN and name in conformer.plain:
        out[name] = value
        return
    plan = conformer.fields.get(name)
    if plan is None:
        if conformer.keep_unknown:
            out[name] = _copy(value)
        else:
            dropped.append(name)
        return
    obj, items, primitive, _ = plan
    if items is not None and kind is list:
        out[name] = _conformed_list(value, items, name, dropped)
    elif obj is not None and kind is dict:
        out[name] = _conformed_dict(value, obj, name, dropped)
    else:
        out[name] = primitive(_copy(value))


def _conformed_dict(
    node: dict[str, t.Any], conformer: SchemaConformer, path: str, dropped: list[str]
) -> dict[str, t.Any]:
    """``conformer.conform(_snake_dict(node), path)``, in one walk (see conformed_record)."""
    if conformer.properties_missing:
        out, more = conformer.conform(_snake_dict(node), path)
        dropped += more
        return out
    out: dict[str, t.Any] = {}
    fields, plain, keep_unknown = conformer.fields, conformer.plain, conformer.keep_unknown
    names, utc = _NAMES, _UTC
    for key, value in node.items():
        name = names[key]
        kind = type(value)
        if kind is str:
            if len(value) >= _TIMESTAMP_LENGTH and value[10] == "T":
                value = utc[value]  # noqa: PLW2901 - the copy to_record would hold
            if name in plain:
                out[name] = value
                continue
        elif kind in _CONFORM_PLAIN and name in plain:
            out[name] = value
            continue
        plan = fields.get(name)
        if plan is None:
            if keep_unknown:
                out[name] = _copy(value)
            else:
                dropped.append(f"{path}.{name}")
            continue
        obj, items, primitive, _ = plan
        if items is not None and kind is list:
            out[name] = _conformed_list(value, items, f"{path}.{name}", dropped)
        elif obj is not None and kind is dict:
            out[name] = _conformed_dict(value, obj, f"{path}.{name}", dropped)
        else:
            out[name] = primitive(_copy(value))
    return out


def _conformed_list(
    values: list[t.Any], items: tuple[t.Any, t.Any], where: str, dropped: list[str]
) -> list[t.Any]:
    """``SchemaConformer._conform_list`` over the snake_case copy of ``values``."""
    obj, primitive = items
    plain = not primitive.only_boolean
    out = []
    for value in values:
        if type(value) is dict:
            if obj is not None:
                out.append(_conformed_dict(value, obj, where, dropped))
            else:
                out.append(primitive(_snake_dict(value)))
            continue
        copied = _snake(value)
        out.append(copied if plain and type(copied) in _CONFORM_PLAIN else primitive(copied))
    return out


#: What ``SchemaConformer`` passes through unchanged for a property not boolean-only.
_CONFORM_PLAIN = frozenset({str, int, bool, type(None)})
#: Shortest string ``to_record`` reads as a timestamp (``YYYY-MM-DDTHH:MM:SS``).
_TIMESTAMP_LENGTH = 19


# --- schemas ------------------------------------------------------------------------

S = th.StringType
DT = th.DateTimeType
B = th.BooleanType
I = th.IntegerType  # noqa: E741 - short aliases keep the schemas readable


def obj(*properties: th.Property) -> th.ObjectType:
    """A nested object that may carry properties the schema does not list."""
    return th.ObjectType(*properties, additional_properties=True)


def ref() -> th.ObjectType:
    """A reference to another node: its global id."""
    return obj(th.Property("id", S))


MONEY = obj(th.Property("amount", S), th.Property("currency_code", S))
CUSTOMER_REF = obj(
    th.Property("id", S),
    th.Property("default_email_address", obj(th.Property("email_address", S))),
)
MONEY_BAG = obj(th.Property("shop_money", MONEY), th.Property("presentment_money", MONEY))
ADDRESS = obj(
    *(
        th.Property(name, S)
        for name in (
            "id",
            "first_name",
            "last_name",
            "name",
            "company",
            "address1",
            "address2",
            "city",
            "province",
            "province_code",
            "zip",
            "country",
            "country_code_v2",
            "country_code",
            "phone",
        )
    )
)


def _base(*properties: th.Property) -> th.PropertiesList:
    return th.PropertiesList(
        th.Property("id", I, required=True, description="Numeric Shopify id."),
        th.Property(
            "admin_graphql_api_id",
            S,
            description="Global id, e.g. gid://shopify/Order/450789469.",
        ),
        *properties,
    )


CUSTOMER_SCHEMA = _base(
    th.Property("first_name", S),
    th.Property("last_name", S),
    th.Property("display_name", S),
    th.Property("note", S),
    th.Property("tags", th.ArrayType(S)),
    th.Property("state", S, description="ENABLED, DISABLED, INVITED or DECLINED."),
    th.Property("verified_email", B),
    th.Property("tax_exempt", B),
    th.Property("locale", S),
    th.Property("created_at", DT),
    th.Property("updated_at", DT, required=True),
    th.Property("number_of_orders", I),
    th.Property("amount_spent", MONEY),
    th.Property(
        "default_email_address",
        obj(
            th.Property("email_address", S),
            th.Property("marketing_state", S),
            th.Property("marketing_opt_in_level", S),
            th.Property("marketing_updated_at", DT),
        ),
        description="Email and its marketing consent (state, opt-in level, when it changed).",
    ),
    th.Property(
        "default_phone_number",
        obj(
            th.Property("phone_number", S),
            th.Property("marketing_state", S),
            th.Property("marketing_opt_in_level", S),
            th.Property("marketing_updated_at", DT),
            th.Property("marketing_collected_from", S),
        ),
        description="Phone and its SMS marketing consent.",
    ),
    th.Property("default_address", ADDRESS),
    th.Property("addresses", th.ArrayType(ADDRESS)),
).to_dict()

LINE_ITEM = obj(
    th.Property("id", S),
    th.Property("name", S),
    th.Property("title", S),
    th.Property("variant_title", S),
    th.Property("sku", S),
    th.Property("vendor", S),
    th.Property("quantity", I),
    th.Property("current_quantity", I),
    th.Property("requires_shipping", B),
    th.Property("taxable", B),
    th.Property("original_unit_price_set", MONEY_BAG),
    th.Property("discounted_total_set", MONEY_BAG, description="After line discounts."),
    th.Property("variant", ref()),
    th.Property("product", ref()),
)

ORDER_SCHEMA = _base(
    th.Property("name", S, description='Order name shown to the customer, e.g. "#1001".'),
    th.Property("number", I, description="Order number, unique per shop (1001…)."),
    th.Property("email", S),
    th.Property("phone", S),
    th.Property("created_at", DT),
    th.Property("updated_at", DT, required=True),
    th.Property("processed_at", DT),
    th.Property("cancelled_at", DT),
    th.Property("cancel_reason", S),
    th.Property("closed_at", DT),
    th.Property("closed", B),
    th.Property("confirmed", B),
    th.Property("test", B),
    th.Property("tags", th.ArrayType(S)),
    th.Property("note", S),
    th.Property("display_financial_status", S),
    th.Property("display_fulfillment_status", S),
    th.Property("source_name", S, description="web, pos, shopify_draft_order, an app id…"),
    th.Property("source_identifier", S),
    th.Property(
        "channel_information",
        obj(
            th.Property("channel_id", S),
            th.Property("app", obj(th.Property("id", S), th.Property("title", S))),
            th.Property(
                "channel_definition",
                obj(
                    th.Property("handle", S),
                    th.Property("channel_name", S),
                    th.Property("sub_channel_name", S),
                ),
            ),
        ),
    ),
    th.Property(
        "retail_location",
        obj(th.Property("id", S), th.Property("name", S)),
        description="The shop (POS location) where a retail order was placed.",
    ),
    th.Property("currency_code", S),
    th.Property("presentment_currency_code", S),
    th.Property("taxes_included", B),
    th.Property("discount_codes", th.ArrayType(S)),
    *(
        th.Property(name, MONEY_BAG)
        for name in (
            "subtotal_price_set",
            "total_discounts_set",
            "total_tax_set",
            "total_shipping_price_set",
            "total_price_set",
            "total_refunded_set",
            "current_total_price_set",
        )
    ),
    th.Property(
        "customer", CUSTOMER_REF, description="The ordering account (global id, email), if any."
    ),
    th.Property("billing_address", ADDRESS),
    th.Property("shipping_address", ADDRESS),
    th.Property(
        "shipping_line",
        obj(
            th.Property("title", S),
            th.Property("code", S),
            th.Property("source", S),
            th.Property("delivery_category", S),
        ),
    ),
    th.Property(
        "fulfillments",
        th.ArrayType(
            obj(
                th.Property("id", S),
                th.Property("name", S),
                th.Property("status", S),
                th.Property("display_status", S),
                th.Property("created_at", DT),
                th.Property("updated_at", DT),
                th.Property("delivered_at", DT),
                th.Property("location", obj(th.Property("id", S), th.Property("name", S))),
                th.Property(
                    "tracking_info",
                    th.ArrayType(
                        obj(
                            th.Property("company", S),
                            th.Property("number", S),
                            th.Property("url", S),
                        )
                    ),
                ),
            )
        ),
    ),
    th.Property(
        "refunds",
        th.ArrayType(
            obj(
                th.Property("id", S),
                th.Property("created_at", DT),
                th.Property("updated_at", DT),
                th.Property("note", S),
                th.Property("total_refunded_set", MONEY_BAG),
                th.Property(
                    "refund_line_items",
                    th.ArrayType(
                        obj(
                            th.Property("id", S),
                            th.Property("quantity", I),
                            th.Property(
                                "restock_type", S, description="RETURN, CANCEL, NO_RESTOCK, …"
                            ),
                            th.Property("restocked", B),
                            th.Property(
                                "location",
                                obj(th.Property("id", S), th.Property("name", S)),
                                description=(
                                    "Where the items went back into stock: a shop when "
                                    "brought back there, the warehouse a parcel returned "
                                    "to; null when nothing was restocked."
                                ),
                            ),
                            th.Property("line_item", ref()),
                        )
                    ),
                ),
            )
        ),
    ),
    th.Property("line_items", th.ArrayType(LINE_ITEM)),
    th.Property(
        "discount_applications",
        th.ArrayType(
            obj(
                th.Property("typename", S, description="DiscountCodeApplication, …"),
                th.Property("index", I),
                th.Property("allocation_method", S),
                th.Property("target_selection", S),
                th.Property("target_type", S),
                th.Property(
                    "value",
                    obj(
                        th.Property("amount", S),
                        th.Property("currency_code", S),
                        th.Property("percentage", th.NumberType),
                    ),
                ),
                th.Property("code", S),
                th.Property("title", S),
                th.Property("description", S),
            )
        ),
    ),
    th.Property(
        "fulfillment_orders",
        th.ArrayType(
            obj(
                th.Property("id", S),
                th.Property("status", S),
                th.Property("request_status", S),
                th.Property("created_at", DT),
                th.Property("updated_at", DT),
                th.Property(
                    "delivery_method",
                    obj(th.Property("method_type", S)),
                    description="SHIPPING, PICK_UP, LOCAL, RETAIL, NONE…",
                ),
                th.Property(
                    "assigned_location",
                    obj(th.Property("name", S), th.Property("location", ref())),
                    description="Where it is fulfilled: the pickup shop for PICK_UP.",
                ),
            )
        ),
    ),
    th.Property(
        "returns",
        th.ArrayType(
            obj(
                th.Property("id", S),
                th.Property("name", S),
                th.Property("status", S),
                th.Property("total_quantity", I),
                th.Property("created_at", DT),
                th.Property("closed_at", DT),
            )
        ),
    ),
).to_dict()

ABANDONED_CHECKOUT_SCHEMA = _base(
    th.Property("name", S),
    th.Property("abandoned_checkout_url", S),
    th.Property("created_at", DT),
    th.Property("updated_at", DT, required=True),
    th.Property("completed_at", DT),
    th.Property("note", S),
    th.Property("taxes_included", B),
    th.Property("discount_codes", th.ArrayType(S)),
    th.Property("customer", CUSTOMER_REF, description="The buyer's account (global id, email)."),
    th.Property("billing_address", ADDRESS),
    th.Property("shipping_address", ADDRESS),
    *(
        th.Property(name, MONEY_BAG)
        for name in (
            "subtotal_price_set",
            "total_discount_set",
            "total_tax_set",
            "total_line_items_price_set",
            "total_price_set",
        )
    ),
    th.Property(
        "line_items",
        th.ArrayType(
            obj(
                th.Property("id", S),
                th.Property("title", S),
                th.Property("variant_title", S),
                th.Property("sku", S),
                th.Property("quantity", I),
                th.Property("original_unit_price_set", MONEY_BAG),
                th.Property("discounted_total_price_set", MONEY_BAG),
                th.Property("variant", ref()),
                th.Property("product", ref()),
            )
        ),
    ),
).to_dict()

PRODUCT_SCHEMA = _base(
    th.Property("title", S),
    th.Property("handle", S),
    th.Property("status", S, description="ACTIVE, ARCHIVED, DRAFT or UNLISTED."),
    th.Property("vendor", S),
    th.Property("product_type", S),
    th.Property("tags", th.ArrayType(S)),
    th.Property("created_at", DT),
    th.Property("updated_at", DT, required=True),
    th.Property("published_at", DT),
    th.Property("total_inventory", I),
    th.Property(
        "variants",
        th.ArrayType(
            obj(
                th.Property("id", S),
                th.Property("title", S),
                th.Property("sku", S),
                th.Property("barcode", S),
                th.Property("price", S, description="Decimal string, shop currency."),
                th.Property("compare_at_price", S),
                th.Property("position", I),
                th.Property("inventory_quantity", I),
                th.Property("taxable", B),
                th.Property("created_at", DT),
                th.Property("updated_at", DT),
                th.Property(
                    "selected_options",
                    th.ArrayType(obj(th.Property("name", S), th.Property("value", S))),
                ),
            )
        ),
    ),
).to_dict()

LOCATION_SCHEMA = _base(
    th.Property("name", S),
    th.Property("is_active", B),
    th.Property("fulfills_online_orders", B),
    th.Property("has_active_inventory", B),
    th.Property("ships_inventory", B),
    th.Property("created_at", DT),
    th.Property("updated_at", DT, required=True),
    th.Property("deactivated_at", S),
    th.Property("address", ADDRESS),
).to_dict()
