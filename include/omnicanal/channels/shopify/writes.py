"""What the GraphQL Admin API lets an app write to customers: tags and metafields.

The emulation of the three mutations omnicanal's Shopify destination sends, with
Shopify's rules:

- ``tagsAdd(id:, tags:)`` / ``tagsRemove(id:, tags:)`` take a resource's global id and
  a list of tags, each of which may itself be a comma-separated list
  (``"vip, recent"``); tags are trimmed, kept once, and the others on the customer are
  left alone. A customer holds at most 250 tags of at most 255 characters each. An id
  of no customer answers ``node: null`` with a user error on ``id``; an id that is not a
  global id at all is a top-level GraphQL error, as on Shopify. Each write bumps the
  customer's ``updatedAt``, so incremental extracts see it;
- ``metafieldsSet(metafields:)`` sets at most 25 metafields a call and is atomic: one
  invalid input and nothing is written, every problem reported as a
  ``MetafieldsSetUserError`` (``code``, ``field`` path, ``elementIndex``). Namespaces
  are 3–255 characters, keys 2–64, both letters, digits, ``-`` and ``_``; a namespace
  left out is the app's reserved one (``$app``); the type is required for a new
  metafield and cannot change on an existing one; the value must parse as the type.
  ``compareDigest`` (the SHA-256 of the value held) makes the write conditional.

Metafields are held in :attr:`ShopGraph.metafields` and read back through
``Customer.metafield``/``Customer.metafields``. With a ``state_path`` what the writes
changed (the tags of the customers they touched, the metafields) is kept in a JSON
file and put back when the sandbox starts again, as a real shop remembers it.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from graphql import GraphQLError

from omnicanal.channels.shopify.graph import parse_gid, utc
from omnicanal.sandbox.state_file import StateFile

if TYPE_CHECKING:
    from omnicanal.channels.shopify.emulation import ShopifyEmulator

MAX_TAGS = 250
MAX_TAG_LENGTH = 255
MAX_METAFIELDS_PER_SET = 25
APP_NAMESPACE = "$app"
_HANDLE = re.compile(r"^[A-Za-z0-9_-]+$")
_INT_LIMIT = 9_007_199_254_740_991
_FIRST_METAFIELD_ID = 31_000_000_000


def split_tags(tags: list[str]) -> list[str]:
    """Shopify's reading of a ``tags`` argument: each entry may be a comma-separated list."""
    found: list[str] = []
    for entry in tags:
        for tag in entry.split(","):
            tag = tag.strip()
            if tag and tag not in found:
                found.append(tag)
    return found


def compare_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _valid_value(kind: str, value: str) -> str | None:
    """None if ``value`` is a valid ``kind``; else Shopify's complaint."""
    if kind == "single_line_text_field":
        return "Value can't contain a line break." if "\n" in value or "\r" in value else None
    if kind == "multi_line_text_field":
        return None
    if kind == "number_integer":
        if not re.fullmatch(r"-?\d+", value.strip()) or abs(int(value)) > _INT_LIMIT:
            return "Value must be an integer."
        return None
    if kind == "number_decimal":
        try:
            number = Decimal(value)
        except InvalidOperation:
            return "Value must be a decimal."
        return None if number.is_finite() else "Value must be a decimal."
    if kind == "boolean":
        return None if value in ("true", "false") else "Value must be true or false."
    if kind == "date":
        bad = "Value must be in YYYY-MM-DD format."
        try:
            date.fromisoformat(value)
        except ValueError:
            return bad
        return None if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else bad
    if kind == "date_time":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return "Value must be in YYYY-MM-DDTHH:MM:SS format."
        return None
    if kind == "json":
        try:
            json.loads(value)
        except ValueError:
            return "Value must be valid JSON."
        return None
    if kind == "url":
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https", "mailto", "sms", "tel") and bool(
            parts.netloc or parts.path
        )
        return None if ok else "Value must be a URL with an http, https, mailto, sms or tel scheme."
    if kind == "color":
        ok = re.fullmatch(r"#[0-9A-Fa-f]{6}", value) is not None
        return None if ok else "Value must be a hex color code."
    raise AssertionError(kind)  # pragma: no cover - TYPES lists the kinds above


TYPES = (
    "boolean",
    "color",
    "date",
    "date_time",
    "json",
    "multi_line_text_field",
    "number_decimal",
    "number_integer",
    "single_line_text_field",
    "url",
)


def _error(code: str, message: str, index: int | None, *path: str) -> dict[str, Any]:
    field = ["metafields", str(index), *path] if index is not None else ["metafields"]
    return {"code": code, "message": message, "field": field, "elementIndex": index}


def _length(
    index: int, name: str, label: str, value: str, low: int, high: int
) -> dict[str, Any] | None:
    if len(value) < low:
        return _error(
            "TOO_SHORT", f"{label} is too short (minimum is {low} characters)", index, name
        )
    if len(value) > high:
        message = f"{label} is too long (maximum is {high} characters)"
        return _error("TOO_LONG", message, index, name)
    if not _HANDLE.match(value):
        return _error(
            "INVALID",
            f"{label} contains one or more invalid characters: use letters, digits, - and _",
            index,
            name,
        )
    return None


class CustomerWrites:
    """The emulated shop's customer writes (see the module docstring)."""

    def __init__(self, emulator: ShopifyEmulator, state_path: str | Path | None = None) -> None:
        self.emulator = emulator
        self.graph = emulator.graph
        self._next_metafield = _FIRST_METAFIELD_ID
        #: mutations that wrote something, for tests counting what a sync sent
        self.tag_writes = 0
        self.metafield_writes = 0
        #: customer id -> (tags, updated_at) as the writes left them
        self._written_tags: dict[int, tuple[str, str]] = {}
        self.state_path = Path(state_path) if state_path else None
        self._state = StateFile(self.state_path, self._state_data, emulator._lock)
        if self.state_path and self.state_path.exists():
            self._load_state()

    # -- state -----------------------------------------------------------------------------

    def _load_state(self) -> None:
        data = json.loads(self.state_path.read_text())
        for key, (tags, updated_at) in (data.get("tags") or {}).items():
            customer_id = int(key)
            if self.graph.customer_record(customer_id) is not None:
                at = datetime.fromisoformat(updated_at)
                self.emulator.touch_customer(customer_id, at=at, tags=tags)
                self._written_tags[customer_id] = (tags, updated_at)
        for key, held in (data.get("metafields") or {}).items():
            customer_id = int(key)
            if self.graph.customer_record(customer_id) is None:
                continue
            self.graph.metafields[customer_id] = {(m["namespace"], m["key"]): m for m in held}
            self._next_metafield = max([self._next_metafield, *(m["id"] for m in held)])
        self.graph.revision += 1

    def flush(self) -> None:
        """Save what a deferred save still holds (tests, shutdown)."""
        self._state.flush()

    def _state_data(self) -> dict[str, Any]:
        """What the state file keeps."""
        return {
            "tags": {str(k): list(v) for k, v in self._written_tags.items()},
            "metafields": {
                str(owner): list(held.values())
                for owner, held in self.graph.metafields.items()
                if held
            },
        }

    # -- tags --------------------------------------------------------------------------

    def _customer(self, global_id: str) -> dict[str, Any] | None:
        parsed = parse_gid(global_id)
        if parsed is None:
            raise GraphQLError(f"Invalid global id '{global_id}'")
        kind, legacy_id = parsed
        if kind != "Customer":
            return None
        return self.graph.customer_record(legacy_id)

    def _tags_payload(
        self, record: dict[str, Any] | None, errors: list[dict[str, Any]]
    ) -> dict[str, Any]:
        node = self.graph.customer(record) if record is not None and not errors else None
        return {"node": node, "userErrors": errors}

    def tags_add(self, global_id: str, tags: list[str]) -> dict[str, Any]:
        record = self._customer(global_id)
        if record is None:
            return self._tags_payload(None, [_not_found(global_id)])
        wanted = split_tags(tags)
        too_long = [t for t in wanted if len(t) > MAX_TAG_LENGTH]
        if too_long:
            message = f"Tags is too long (maximum is {MAX_TAG_LENGTH} characters)"
            return self._tags_payload(record, [{"field": ["tags"], "message": message}])
        held = split_tags([record.get("tags") or ""])
        added = [t for t in wanted if t not in held]
        if len(held) + len(added) > MAX_TAGS:
            message = f"Tags cannot be more than {MAX_TAGS}"
            return self._tags_payload(record, [{"field": ["tags"], "message": message}])
        if added:
            record = self._write_tags(record, held + added)
        return self._tags_payload(record, [])

    def tags_remove(self, global_id: str, tags: list[str]) -> dict[str, Any]:
        record = self._customer(global_id)
        if record is None:
            return self._tags_payload(None, [_not_found(global_id)])
        unwanted = set(split_tags(tags))
        held = split_tags([record.get("tags") or ""])
        kept = [t for t in held if t not in unwanted]
        if len(kept) != len(held):
            record = self._write_tags(record, kept)
        return self._tags_payload(record, [])

    def _write_tags(self, record: dict[str, Any], tags: list[str]) -> dict[str, Any]:
        self.tag_writes += 1
        updated = self.emulator.touch_customer(record["id"], tags=", ".join(tags))
        self._written_tags[record["id"]] = (updated["tags"], updated["updated_at"])
        self._state.changed()
        return updated

    # -- metafields --------------------------------------------------------------------

    def metafields_set(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        if len(inputs) > MAX_METAFIELDS_PER_SET:
            message = f"Exceeded the maximum metafields input limit of {MAX_METAFIELDS_PER_SET}."
            return {
                "metafields": [],
                "userErrors": [_error("LESS_THAN_OR_EQUAL_TO", message, None)],
            }
        errors: list[dict[str, Any]] = []
        planned: list[tuple[int, tuple[str, str], dict[str, Any]]] = []
        for index, item in enumerate(inputs):
            found = self._check(index, item)
            if isinstance(found, list):
                errors.extend(found)
            else:
                planned.append(found)
        if errors:
            return {"metafields": [], "userErrors": errors}
        now = utc(datetime.now(UTC).replace(microsecond=0).isoformat())
        written = []
        for owner, handle, values in planned:
            held = self.graph.metafields.setdefault(owner, {})
            current = held.get(handle)
            if current is None:
                self._next_metafield += 1
                current = {
                    "id": self._next_metafield,
                    "owner_id": owner,
                    "namespace": handle[0],
                    "key": handle[1],
                    "created_at": now,
                }
            if current.get("value") != values["value"] or current.get("type") != values["type"]:
                current = {**current, **values, "updated_at": now}
                current["compare_digest"] = compare_digest(values["value"])
                held[handle] = current
                self.metafield_writes += 1
            written.append(self.graph.metafield(current))
        self._state.changed()
        return {"metafields": written, "userErrors": []}

    def _check(
        self, index: int, item: dict[str, Any]
    ) -> list[dict[str, Any]] | tuple[int, tuple[str, str], dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        parsed = parse_gid(item["ownerId"])
        owner = None
        if parsed is not None and parsed[0] == "Customer":
            record = self.graph.customer_record(parsed[1])
            owner = record["id"] if record is not None else None
        if owner is None:
            errors.append(_error("INVALID", "Owner does not exist.", index, "ownerId"))
        namespace = item.get("namespace")
        namespace = APP_NAMESPACE if namespace is None else namespace
        if namespace != APP_NAMESPACE:
            problem = _length(index, "namespace", "Namespace", namespace, 3, 255)
            if problem:
                errors.append(problem)
        problem = _length(index, "key", "Key", item["key"], 2, 64)
        if problem:
            errors.append(problem)
        existing = (
            (self.graph.metafields.get(owner) or {}).get((namespace, item["key"]))
            if owner is not None
            else None
        )
        kind = item.get("type")
        if kind is None and existing is not None:
            kind = existing["type"]
        value = item["value"]
        if kind is None:
            errors.append(_error("BLANK", "Type can't be blank", index, "type"))
        elif kind not in TYPES:
            message = f"Type must be one of the following: {', '.join(TYPES)}."
            errors.append(_error("INVALID_TYPE", message, index, "type"))
        elif existing is not None and existing["type"] != kind:
            message = (
                f"Type '{kind}' must be consistent with the existing metafield's type "
                f"'{existing['type']}'."
            )
            errors.append(_error("INVALID_TYPE", message, index, "type"))
        elif value.strip() == "":
            errors.append(_error("BLANK", "Value can't be blank.", index, "value"))
        else:
            complaint = _valid_value(kind, value)
            if complaint:
                errors.append(_error("INVALID_VALUE", complaint, index, "value"))
        if "compareDigest" in item:  # null: only if no such metafield exists yet
            held = existing["compare_digest"] if existing is not None else None
            if item["compareDigest"] != held:
                message = (
                    "The resource has been updated since it was loaded. Try again with an "
                    "updated `compareDigest` value."
                )
                errors.append(_error("INVALID_COMPARE_DIGEST", message, index, "compareDigest"))
        if errors:
            return errors
        return owner, (namespace, item["key"]), {"type": kind, "value": value}


def _not_found(global_id: str) -> dict[str, Any]:
    kind = (parse_gid(global_id) or ("Resource", 0))[0]
    return {"field": ["id"], "message": f"{kind} does not exist"}
