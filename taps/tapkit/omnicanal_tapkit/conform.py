"""Records conformed to their stream's schema by a function compiled once per schema.

singer-sdk conforms every record before writing it (``TYPE_CONFORMANCE_LEVEL``
``RECURSIVE``): properties the schema does not know are dropped (one warning per set of
names), a boolean-only property becomes ``value != 0``, NaN and infinite numbers become
null, and dates, times, durations and bytes become strings. It reads the schema anew at
every property of every record (``is_object_type``, ``is_uniform_list``, the boolean
test), which was the largest cost of a tap's records in ``bench/extract`` (0.9 s of a
3.7 s profile of tap-square for 3,316 records).

:class:`SchemaConformer` reads the schema once and keeps, for each property, what to do
with it; a record of JSON strings, integers and nulls then costs one dict lookup per
property. :class:`ConformedRecords` sets the stream's ``TYPE_CONFORMANCE_LEVEL`` to
``NONE`` (the SDK's public switch) and conforms the records its ``post_process`` returns
(the SDK's public hook, the last before the record is written), against
``effective_schema`` as the SDK does, so the messages are the SDK's, value for value
(``tests/taps/test_tapkit.py`` compares both on the same records, each tap's tests on
its whole sync).
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import logging
import math
import typing as t

from singer_sdk.helpers.conform import TypeConformanceLevel

from omnicanal_tapkit.selection import skip_walk_when_all_selected

if t.TYPE_CHECKING:
    from collections.abc import Callable

    from singer_sdk.helpers.types import Context

#: Values that a property not typed boolean-only keeps as they are: what JSON parses
#: into, bar numbers with a fraction (NaN) and containers.
_PLAIN = frozenset({str, int, bool, type(None)})
_EPOCH = dt.datetime.fromtimestamp(0, dt.UTC)


# --- the SDK's reading of a property schema, once per property -------------------------


def _is_object(schema: dict) -> bool:
    """``is_object_type``: ``object`` in ``type`` (or an ``anyOf`` entry that says it)."""
    if "anyOf" not in schema and "type" not in schema:
        return False
    kinds = schema.get("anyOf", [schema.get("type")])
    return any(kind is not None and ("object" in kind or kind == "object") for kind in kinds)


def _is_array(schema: dict) -> bool:
    """``is_array_type``; a schema without a type is no array (the SDK raises there)."""
    if not schema:
        return False
    if "anyOf" in schema:
        return any(_is_array(option) for option in schema["anyOf"])
    if "allOf" in schema:
        return all(_is_array(option) for option in schema["allOf"])
    return "type" in schema and schema["type"] is not None and "array" in schema["type"]


def _is_uniform_list(schema: dict) -> bool:
    """``is_uniform_list``: an array whose ``items`` is one schema."""
    return (
        _is_array(schema)
        and "items" in schema
        and "prefixItems" not in schema
        and isinstance(schema["items"], dict)
    )


def _may_be_boolean(schema: dict) -> bool:
    """``is_boolean_type``: boolean among the types (decides what bytes become)."""
    if "anyOf" not in schema and "type" not in schema:
        return False
    for option in schema.get("anyOf", [schema.get("type")]):
        kind = option.get("type", []) if isinstance(option, dict) else option
        if kind is not None and ("boolean" in kind or kind == "boolean"):
            return True
    return False


def _only_boolean(schema: dict) -> bool:
    """``_is_exclusive_boolean_type``: boolean, or boolean and null."""
    kind = schema.get("type")
    if kind is None:
        return False
    return kind in ("boolean", ["boolean"]) or set(kind) == {"boolean", "null"}


def _primitive(schema: dict) -> Callable[[t.Any], t.Any]:
    """What the SDK makes of a value that is neither a known object nor a list."""
    only_boolean = _only_boolean(schema)
    boolean_bytes = _may_be_boolean(schema)

    def conform(value: t.Any) -> t.Any:  # noqa: PLR0911 - one branch per type
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return value.isoformat("T", timespec="microseconds")
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, dt.timedelta):
            return (_EPOCH + value).isoformat()
        if isinstance(value, dt.time):
            return str(value)
        if isinstance(value, bytes):
            return value != b"\x00" if boolean_bytes else value.hex()
        if isinstance(value, (float, decimal.Decimal)):
            return None if math.isnan(value) or math.isinf(value) else value
        if only_boolean:
            return None if value is None else value != 0
        return value

    conform.only_boolean = only_boolean  # type: ignore[attr-defined]
    return conform


class SchemaConformer:
    """``conform(record)``: the record as singer-sdk's recursive conformance leaves it.

    Built once from an object schema with ``properties``. Returns new dicts and lists
    (like the SDK) and the paths of the properties it dropped.
    """

    def __init__(self, schema: dict) -> None:
        #: The SDK reads ``schema["properties"]`` only when a value reaches it.
        self.properties_missing = "properties" not in schema
        self.keep_unknown = bool(schema.get("additionalProperties"))
        #: name -> (conformer of an object value, of a list value, of anything else,
        #: whether a str/int/bool/None value passes unchanged)
        self.fields: dict[str, tuple[t.Any, t.Any, t.Any, bool]] = {
            name: self._plan(sub) for name, sub in schema.get("properties", {}).items()
        }
        #: The properties whose str, int, bool and None values pass unchanged.
        self.plain = frozenset(name for name, plan in self.fields.items() if plan[3])

    @staticmethod
    def _plan(sub: dict) -> tuple[t.Any, t.Any, t.Any, bool]:
        obj = SchemaConformer(sub) if _is_object(sub) and "properties" in sub else None
        items = None
        if _is_uniform_list(sub):
            item = sub["items"]
            items = (SchemaConformer(item) if _is_object(item) else None, _primitive(item))
        primitive = _primitive(sub)
        return obj, items, primitive, not primitive.only_boolean  # type: ignore[attr-defined]

    def conform(self, record: dict, path: str | None = None) -> tuple[dict, list[str]]:
        if self.properties_missing and record:
            raise KeyError("properties")  # as the SDK fails on such a schema
        out: dict[str, t.Any] = {}
        dropped: list[str] = []
        fields, plain_names = self.fields, self.plain
        for name, value in record.items():
            if type(value) in _PLAIN and name in plain_names:
                out[name] = value
                continue
            plan = fields.get(name)
            if plan is None:
                if self.keep_unknown:
                    out[name] = value
                else:
                    dropped.append(name if path is None else f"{path}.{name}")
                continue
            obj, items, primitive, _ = plan
            if items is not None and isinstance(value, list):
                where = name if path is None else f"{path}.{name}"
                out[name] = self._conform_list(value, items, where, dropped)
            elif obj is not None and isinstance(value, dict):
                conformed, more = obj.conform(value, name if path is None else f"{path}.{name}")
                out[name] = conformed
                dropped += more
            else:
                out[name] = primitive(value)
        return out, dropped

    @staticmethod
    def _conform_list(values: list, items: tuple, where: str, dropped: list[str]) -> list:
        obj, primitive = items
        plain = not primitive.only_boolean
        out = []
        for value in values:
            if plain and type(value) in _PLAIN:
                out.append(value)
            elif obj is not None and isinstance(value, dict):
                conformed, more = obj.conform(value, where)
                out.append(conformed)
                dropped += more
            else:
                out.append(primitive(value))
        return out


@functools.lru_cache(maxsize=64)
def _warn_dropped(stream: str, names: tuple[str, ...], logger: logging.Logger) -> None:
    logger.warning(
        "Properties %s were present in the '%s' stream but not found in catalog schema. Ignoring.",
        names,
        stream,
    )


def _conforming(post_process: Callable[..., dict | None]) -> Callable[..., dict | None]:
    """``post_process`` whose result is conformed when it is the outermost call: a
    stream's override usually ends in ``super().post_process(...)``, and its base's
    overrides are wrapped too; only the record the SDK receives is conformed, once."""

    @functools.wraps(post_process)
    def conformed(self: t.Any, row: dict, context: Context | None = None) -> dict | None:
        state = self.__dict__
        depth = state.get("_omnicanal_post_process_depth", 0)
        state["_omnicanal_post_process_depth"] = depth + 1
        try:
            record = post_process(self, row, context)
        finally:
            state["_omnicanal_post_process_depth"] = depth
        if depth or record is None:
            return record
        return self.conform_record(record)

    conformed.conforms = True  # type: ignore[attr-defined]
    return conformed


class ConformedRecords:
    """Stream mixin: records conformed by a :class:`SchemaConformer`, not the SDK's walk.

    Put it first in a base stream's bases (``class SquareStream(ConformedRecords,
    PlatformRetries, RESTStream)``). The SDK conforms a record after the stream's
    ``post_process`` (the record it writes, whatever ``get_records`` yielded: VTEX's
    post-processing replaces an order's list summary by its detail, WhatsApp's builds
    the record from the delivery's envelope), so the conformance is done there too: the
    ``post_process`` the SDK calls returns the conformed record. Every override of
    ``post_process`` in a subclass is wrapped so (``__init_subclass__``), and only the
    outermost call conforms, whether an override calls ``super().post_process`` or not.

    Defining such a stream also skips singer-sdk's per-record walk against the
    catalog's selection when it deselects nothing (:mod:`omnicanal_tapkit.selection`).
    """

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    if t.TYPE_CHECKING:
        name: str
        logger: logging.Logger
        effective_schema: dict

    def __init_subclass__(cls, **kwargs: t.Any) -> None:
        super().__init_subclass__(**kwargs)
        # the SDK's walk against the catalog's selection, about as long as this
        # conformance: skipped when nothing is deselected
        skip_walk_when_all_selected()
        own = cls.__dict__.get("post_process")
        if own is not None and not getattr(own, "conforms", False):
            cls.post_process = _conforming(own)  # type: ignore[method-assign]

    def conform_record(self, record: dict) -> dict:
        """``record`` as singer-sdk's ``RECURSIVE`` conformance would write it."""
        conformed, dropped = self.schema_conformer().conform(record)
        self.warn_dropped(dropped)
        return conformed

    def schema_conformer(self) -> SchemaConformer:
        """The conformer of the stream's ``effective_schema``, built once per schema."""
        schema = self.effective_schema
        cached = self.__dict__.get("_omnicanal_conformer")
        if cached is None or cached[0] is not schema:
            cached = self.__dict__["_omnicanal_conformer"] = (schema, SchemaConformer(schema))
        return cached[1]

    def warn_dropped(self, dropped: list[str]) -> None:
        """The SDK's warning for properties the schema does not know (once per set)."""
        if dropped:
            _warn_dropped(self.name, tuple(dropped), self.logger)

    @_conforming
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """The stream's post-processing (none by default), then the conformance."""
        return super().post_process(row, context)  # type: ignore[misc]
