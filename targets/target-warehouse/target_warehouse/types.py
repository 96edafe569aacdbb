"""From a Singer (JSON) schema to Postgres column types and a compiled record validator.

Column types (see the README for the table): integer → bigint, number → numeric,
boolean → boolean, string → text (date-time → timestamptz, date → date, time → time),
object/array → jsonb; a property with several types gets the narrowest type that holds
them all (integer+number → numeric, scalars with string → text, anything else → jsonb).

Records are validated with msgspec against a Struct built from the schema: one C call
per record that checks JSON types, required properties and key properties. Values are
not converted in Python; Postgres casts them, and a value it cannot cast (a bad date, an
integer out of range) is found by the sink and quarantined.
"""

from __future__ import annotations

import typing as t

import msgspec

BIGINT = "bigint"
NUMERIC = "numeric"
BOOLEAN = "boolean"
TEXT = "text"
JSONB = "jsonb"
DATE = "date"
TIME = "time"
TIMESTAMPTZ = "timestamptz"

# What each type may be widened to, narrowest first. Never narrowed, never dropped.
WIDER: dict[str, tuple[str, ...]] = {
    "smallint": (BIGINT, NUMERIC, TEXT, JSONB),
    "integer": (BIGINT, NUMERIC, TEXT, JSONB),
    BIGINT: (NUMERIC, TEXT, JSONB),
    "double precision": (NUMERIC, TEXT, JSONB),
    "real": (NUMERIC, TEXT, JSONB),
    NUMERIC: (TEXT, JSONB),
    BOOLEAN: (TEXT, JSONB),
    DATE: (TIMESTAMPTZ, TEXT, JSONB),
    "timestamp": (TIMESTAMPTZ, TEXT, JSONB),
    TIMESTAMPTZ: (TEXT, JSONB),
    TIME: (TEXT, JSONB),
    "character varying": (TEXT, JSONB),
    "json": (JSONB,),
    TEXT: (JSONB,),
    JSONB: (),
}

# format_type() spellings → ours
CANONICAL = {
    "timestamp with time zone": TIMESTAMPTZ,
    "timestamp without time zone": "timestamp",
    "time without time zone": TIME,
}


def canonical(pg_type: str) -> str:
    """Our name for a type as ``format_type()`` prints it (varchar(10) → character varying)."""
    base = pg_type.split("(")[0].strip()
    if base.endswith("[]"):
        return pg_type
    return CANONICAL.get(base, base)


def widest(existing: str, wanted: str) -> str:
    """The type a column must have to hold both what it holds and what is coming."""
    existing = canonical(existing)
    if existing == wanted:
        return existing
    if wanted in WIDER.get(existing, ()):
        return wanted
    if existing in WIDER.get(wanted, ()):
        return existing
    if existing not in WIDER:  # a type we did not create (e.g. an array): keep it
        return existing
    return JSONB if JSONB in (existing, wanted) or wanted == JSONB else TEXT


def _json_types(schema: dict) -> tuple[set[str], bool]:
    """The JSON types a property schema allows (without null), and whether it has a
    sub-schema (anyOf/oneOf/allOf) we did not fully understand."""
    types: set[str] = set()
    unknown = False
    declared = schema.get("type")
    if isinstance(declared, str):
        types.add(declared)
    elif isinstance(declared, list):
        types.update(x for x in declared if isinstance(x, str))
    for combinator in ("anyOf", "oneOf"):
        for sub in schema.get(combinator) or ():
            if isinstance(sub, dict):
                sub_types, sub_unknown = _json_types(sub)
                types |= sub_types
                unknown |= sub_unknown or not sub_types
    if "allOf" in schema:
        unknown = True
    if not declared and "properties" in schema:
        types.add("object")
    types.discard("null")
    return types, unknown


def _string_format(schema: dict) -> str | None:
    if schema.get("format"):
        return schema["format"]
    for combinator in ("anyOf", "oneOf"):
        for sub in schema.get(combinator) or ():
            if isinstance(sub, dict) and sub.get("format") and "string" in str(sub.get("type")):
                return sub["format"]
    return None


def column_type(schema: dict) -> str:
    """Postgres column type for one property's JSON schema."""
    types, unknown = _json_types(schema)
    if unknown or not types:
        return JSONB
    if types == {"integer"}:
        return BIGINT
    if types <= {"integer", "number"}:
        return NUMERIC
    if types == {"boolean"}:
        return BOOLEAN
    if types == {"string"}:
        fmt = _string_format(schema)
        return {"date-time": TIMESTAMPTZ, "date": DATE, "time": TIME}.get(fmt or "", TEXT)
    if types & {"object", "array"}:
        return JSONB
    if "string" in types:
        return TEXT
    return JSONB


_PY_TYPES: dict[str, t.Any] = {
    "integer": int,
    "number": int | float,
    "boolean": bool,
    "string": str,
    "object": dict,
    "array": list,
}


def validation_type(schema: dict, *, nullable: bool = True) -> t.Any:
    """A msgspec type that accepts exactly the JSON types the schema allows."""
    types, unknown = _json_types(schema)
    declared = schema.get("type")
    null_ok = nullable and (
        not declared or declared == "null" or (isinstance(declared, list) and "null" in declared)
    )
    if unknown or not types or "any" in types:
        return t.Any
    if not nullable:
        null_ok = False
    elif schema.get("anyOf") or schema.get("oneOf"):
        null_ok = True
    # msgspec unions allow one type per JSON kind; int | float counts as numbers
    pieces: list[t.Any] = []
    if "number" in types:
        pieces.append(int | float)
    elif "integer" in types:
        pieces.append(int)
    for name in ("boolean", "string", "object", "array"):
        if name in types:
            pieces.append(_PY_TYPES[name])
    if not pieces:
        return t.Any
    result = pieces[0]
    for piece in pieces[1:]:
        result = result | piece
    if null_ok:
        result = result | None
    return result


def record_struct(
    stream: str, properties: dict, required: t.Iterable[str], key_properties: t.Iterable[str]
) -> tuple[type[msgspec.Struct], list[str]]:
    """A msgspec Struct validating a stream's records (unknown properties are allowed),
    and the names of its fields holding the key properties (in key order)."""
    keys = set(key_properties)
    must = set(required) | keys
    fields: list[tuple] = []
    rename: dict[str, str] = {}
    # required fields first: msgspec wants those without defaults before the others
    ordered = sorted(properties.items(), key=lambda kv: kv[0] not in must)
    for index, (name, prop) in enumerate(ordered):
        if not _renamable(name):
            continue  # msgspec cannot name it; Postgres' cast still checks its value
        field_name = f"f{index}"
        rename[field_name] = name
        kind = validation_type(prop if isinstance(prop, dict) else {}, nullable=name not in keys)
        if name in must:
            fields.append((field_name, kind))
        else:
            fields.append((field_name, kind, None))
    for key in sorted(k for k in keys - set(properties) if _renamable(k)):
        # a key property the schema forgot
        field_name = f"f{len(fields)}"
        rename[field_name] = key
        fields.insert(0, (field_name, t.Any))
    struct = msgspec.defstruct(f"Record_{abs(hash(stream))}", fields, rename=rename)
    by_name = {v: k for k, v in rename.items()}
    key_fields = [by_name[k] for k in key_properties if k in by_name]
    return struct, key_fields


def _renamable(name: str) -> bool:
    return not any(c in name for c in '\\"') and not any(ord(c) < 32 for c in name)
