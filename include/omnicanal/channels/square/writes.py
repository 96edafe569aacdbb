"""What a Square application writes to the seller's customers: groups and custom attributes.

The emulation of the Customer Groups API and the customer part of the Customers API
that omnicanal's Square destination uses, with Square's rules and error bodies:

- ``GET /v2/customers/groups`` (``limit`` 1–50, default 50, ``cursor``),
  ``POST /v2/customers/groups`` (``group.name`` required, at most 255 characters;
  ``idempotency_key`` answers a repeated request with the group it made),
  ``GET``/``PUT``/``DELETE /v2/customers/groups/{group_id}`` (a deleted group leaves
  every profile). Square-Version 2020-04-22 or later, as Square requires;
- ``PUT``/``DELETE /v2/customers/{customer_id}/groups/{group_id}``: add a profile to a
  group or take it out (``{}``; the profile's ``group_ids``, ``updated_at`` and
  ``version`` change when its membership does), 404 ``NOT_FOUND`` for an unknown
  profile or group;
- customer custom attributes: ``POST``/``GET /v2/customers/custom-attribute-definitions``
  (``key`` 1–60 of letters, digits, ``.``, ``_``, ``-``; a schema ``$ref`` of Square's
  String, Number, Boolean or Email), ``POST /v2/customers/custom-attributes/bulk-upsert``
  (1 to 25 upserts a call, each answered alone, by its id, with the attribute or its
  errors) and ``GET /v2/customers/{customer_id}/custom-attributes``.

The handlers raise :class:`SquareError`; the emulator renders it as Square's body.
With a ``state_path`` the groups, memberships, definitions and attributes are kept in a
JSON file and put back when the sandbox starts again, as the seller's account keeps them.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request

from omnicanal.channels.square.world import square_timestamp
from omnicanal.sandbox.state_file import StateFile

if TYPE_CHECKING:
    from omnicanal.channels.square.emulation import SquareEmulator

#: The first Square-Version that serves the Customer Groups API.
GROUPS_VERSION = "2020-04-22"
MAX_GROUP_NAME = 255
MAX_GROUPS_PAGE = 50
MAX_BULK_UPSERTS = 25
MAX_ATTRIBUTE_KEY = 60
SCHEMA_BASE = "https://developer-production-s.squarecdn.com/schemas/v1/common.json#squareup.common."
SCHEMAS = ("String", "Number", "Boolean", "Email")
_KEY = re.compile(r"^[A-Za-z0-9._-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _id(seed: str) -> str:
    """A Square-looking id (26 upper-case letters and digits), stable for ``seed``."""
    digest = hashlib.sha256(seed.encode()).hexdigest().upper()
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(alphabet[int(digest[i : i + 2], 16) % 32] for i in range(0, 52, 2))


class CustomerWrites:
    """The emulated seller's customer groups and custom attributes."""

    def __init__(self, emulator: SquareEmulator, state_path: str | Path | None = None) -> None:
        self.emulator = emulator
        self.groups: dict[str, dict[str, Any]] = {}
        self.definitions: dict[str, dict[str, Any]] = {}
        #: customer id -> key -> custom attribute
        self.attributes: dict[str, dict[str, dict[str, Any]]] = {}
        self._idempotency: dict[str, str] = {}
        #: membership changes and attribute writes, for tests counting what a sync sent
        self.membership_writes = 0
        self.attribute_writes = 0
        self.state_path = Path(state_path) if state_path else None
        self._state = StateFile(self.state_path, self._state_data, emulator._lock)
        if self.state_path and self.state_path.exists():
            self._load_state()

    # -- state --------------------------------------------------------------------------

    def _load_state(self) -> None:
        data = json.loads(self.state_path.read_text())
        self.groups = data.get("groups") or {}
        self.definitions = data.get("definitions") or {}
        self._idempotency = data.get("idempotency") or {}
        customers = self.emulator.shop.customers
        known = {c["id"] for c in customers}
        self.attributes = {k: v for k, v in (data.get("attributes") or {}).items() if k in known}
        memberships = data.get("memberships") or {}
        for index, customer in enumerate(customers):
            held = memberships.get(customer["id"])
            if held:
                # as the account held the profile after the writes: no new version
                kept = [g for g in held["group_ids"] if g in self.groups]
                customers[index] = {
                    **customer,
                    "group_ids": kept,
                    "version": held["version"],
                    "updated_at": held["updated_at"],
                }

    def flush(self) -> None:
        """Save what a deferred save still holds (tests, shutdown)."""
        self._state.flush()

    def _state_data(self) -> dict[str, Any]:
        """What the state file keeps."""
        return {
            "groups": self.groups,
            "definitions": self.definitions,
            "idempotency": self._idempotency,
            "attributes": self.attributes,
            "memberships": {
                c["id"]: {
                    "group_ids": c["group_ids"],
                    "version": c.get("version"),
                    "updated_at": c["updated_at"],
                }
                for c in self.emulator.shop.customers
                if "group_ids" in c
            },
        }

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _error(*args: Any, **kwargs: Any) -> Exception:
        from omnicanal.channels.square.emulation import SquareError

        return SquareError(*args, **kwargs)

    def _now(self) -> str:
        return square_timestamp(datetime.now(UTC))

    def _customer(self, customer_id: str) -> dict[str, Any]:
        for customer in self.emulator.shop.customers:
            if customer["id"] == customer_id:
                return customer
        raise self._error(
            404, "NOT_FOUND", f"Customer with ID `{customer_id}` not found.", field="customer_id"
        )

    def _group(self, group_id: str) -> dict[str, Any]:
        group = self.groups.get(group_id)
        if group is None:
            raise self._error(
                404,
                "NOT_FOUND",
                f"Customer group with ID `{group_id}` not found.",
                field="group_id",
            )
        return group

    def _check_version(self, request: Request) -> None:
        from omnicanal.channels.square.emulation import _invalid

        asked = (request.headers.get("Square-Version") or "").strip()
        if asked and asked < GROUPS_VERSION:
            raise _invalid(
                "API_VERSION_INCOMPATIBLE",
                f"The Customer Groups API requires Square-Version {GROUPS_VERSION} or later.",
            )

    def _name(self, body: dict[str, Any]) -> str:
        from omnicanal.channels.square.emulation import _invalid, _object

        group = _object(body.get("group"), "group")
        if not group:
            raise _invalid("MISSING_REQUIRED_PARAMETER", "Field must be set", "group")
        name = group.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("MISSING_REQUIRED_PARAMETER", "Field must be set", "group.name")
        if len(name) > MAX_GROUP_NAME:
            raise _invalid(
                "VALUE_TOO_LONG",
                f"Field must not be longer than {MAX_GROUP_NAME} characters.",
                "group.name",
            )
        return name

    # -- Customer Groups API -------------------------------------------------------------

    def list_groups(self, request: Request, body: Any) -> dict[str, Any]:
        from omnicanal.channels.square.emulation import _body_page, _bounded, _page

        self._check_version(request)
        params = request.query_params
        limit = _bounded(params.get("limit", MAX_GROUPS_PAGE), "limit", 1, MAX_GROUPS_PAGE)
        page, _ = _page(
            list(self.groups.values()),
            lambda g: (g["created_at"], g["id"]),
            False,
            limit,
            "customer_groups",
            {},
            params.get("cursor"),
        )
        return _body_page("groups", page)

    def create_group(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        self._check_version(request)
        name = self._name(body)
        key = body.get("idempotency_key")
        if key and key in self._idempotency:
            return {"group": self.groups[self._idempotency[key]]}
        now = self._now()
        group_id = _id(f"group:{len(self.groups)}:{name}:{now}")
        self.groups[group_id] = {"id": group_id, "name": name, "created_at": now, "updated_at": now}
        if key:
            self._idempotency[key] = group_id
        self._state.changed()
        return {"group": self.groups[group_id]}

    def get_group(self, request: Request, body: Any) -> dict[str, Any]:
        self._check_version(request)
        return {"group": self._group(request.path_params["group_id"])}

    def update_group(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        self._check_version(request)
        group = self._group(request.path_params["group_id"])
        group.update(name=self._name(body), updated_at=self._now())
        self._state.changed()
        return {"group": group}

    def delete_group(self, request: Request, body: Any) -> dict[str, Any]:
        self._check_version(request)
        group_id = request.path_params["group_id"]
        self._group(group_id)
        del self.groups[group_id]
        for customer in list(self.emulator.shop.customers):
            if group_id in (customer.get("group_ids") or []):
                self._set_groups(customer, [g for g in customer["group_ids"] if g != group_id])
        self._state.changed()
        return {}

    # -- membership (Customers API) --------------------------------------------------------

    def _set_groups(self, customer: dict[str, Any], group_ids: list[str]) -> None:
        self.membership_writes += 1
        self.emulator.touch_customer(customer["id"], group_ids=group_ids)
        self._state.changed()

    def add_to_group(self, request: Request, body: Any) -> dict[str, Any]:
        self._check_version(request)
        customer = self._customer(request.path_params["customer_id"])
        group_id = request.path_params["group_id"]
        self._group(group_id)
        held = list(customer.get("group_ids") or [])
        if group_id not in held:
            self._set_groups(customer, [*held, group_id])
        return {}

    def remove_from_group(self, request: Request, body: Any) -> dict[str, Any]:
        self._check_version(request)
        customer = self._customer(request.path_params["customer_id"])
        group_id = request.path_params["group_id"]
        self._group(group_id)
        held = list(customer.get("group_ids") or [])
        if group_id in held:
            self._set_groups(customer, [g for g in held if g != group_id])
        return {}

    def members(self, group_id: str) -> set[str]:
        """The ids of the profiles in ``group_id`` now."""
        return {
            c["id"] for c in self.emulator.shop.customers if group_id in (c.get("group_ids") or [])
        }

    def group_named(self, name: str) -> dict[str, Any] | None:
        return next((g for g in self.groups.values() if g["name"] == name), None)

    # -- custom attributes ------------------------------------------------------------------

    def create_definition(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        from omnicanal.channels.square.emulation import _invalid, _object

        spec = _object(body.get("custom_attribute_definition"), "custom_attribute_definition")
        field = "custom_attribute_definition"
        key = spec.get("key")
        if not isinstance(key, str) or not key:
            raise _invalid("MISSING_REQUIRED_PARAMETER", "Field must be set", f"{field}.key")
        if len(key) > MAX_ATTRIBUTE_KEY or not _KEY.match(key):
            raise _invalid(
                "INVALID_VALUE",
                f"The key must be 1 to {MAX_ATTRIBUTE_KEY} letters, digits, '.', '_' or '-'.",
                f"{field}.key",
            )
        if key in self.definitions:
            raise self._error(
                409,
                "CONFLICT",
                f"A custom attribute definition with key `{key}` already exists.",
                field=f"{field}.key",
            )
        ref = (_object(spec.get("schema"), f"{field}.schema")).get("$ref", "")
        if not ref.startswith(SCHEMA_BASE) or ref[len(SCHEMA_BASE) :] not in SCHEMAS:
            raise _invalid(
                "INVALID_VALUE",
                f"The schema must reference one of Square's types, e.g. {SCHEMA_BASE}String.",
                f"{field}.schema",
            )
        visibility = spec.get("visibility", "VISIBILITY_HIDDEN")
        if visibility != "VISIBILITY_HIDDEN" and not spec.get("name"):
            raise _invalid(
                "MISSING_REQUIRED_PARAMETER",
                "A visible custom attribute definition must have a name.",
                f"{field}.name",
            )
        now = self._now()
        definition = {
            "key": key,
            "schema": {"$ref": ref},
            "name": spec.get("name"),
            "description": spec.get("description"),
            "visibility": visibility,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        self.definitions[key] = {k: v for k, v in definition.items() if v is not None}
        self._state.changed()
        return {"custom_attribute_definition": self.definitions[key]}

    def list_definitions(self, request: Request, body: Any) -> dict[str, Any]:
        from omnicanal.channels.square.emulation import _body_page, _bounded, _page

        params = request.query_params
        limit = _bounded(params.get("limit", 20), "limit", 1, 100)
        page, _ = _page(
            list(self.definitions.values()),
            lambda d: (d["created_at"], d["key"]),
            False,
            limit,
            "custom_attribute_definitions",
            {},
            params.get("cursor"),
        )
        return _body_page("custom_attribute_definitions", page)

    def list_attributes(self, request: Request, body: Any) -> dict[str, Any]:
        customer = self._customer(request.path_params["customer_id"])
        held = self.attributes.get(customer["id"]) or {}
        return {"custom_attributes": list(held.values())} if held else {}

    def bulk_upsert(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        from omnicanal.channels.square.emulation import SquareError, _invalid, _object

        values = _object(body.get("values"), "values")
        if not values:
            raise _invalid("MISSING_REQUIRED_PARAMETER", "Field must be set", "values")
        if len(values) > MAX_BULK_UPSERTS:
            raise _invalid(
                "TOO_MANY_MAP_ENTRIES",
                f"The values map may hold at most {MAX_BULK_UPSERTS} upserts.",
                "values",
            )
        answers: dict[str, Any] = {}
        for request_id, upsert in values.items():
            customer_id = (upsert or {}).get("customer_id") if isinstance(upsert, dict) else None
            try:
                answers[request_id] = {
                    "customer_id": customer_id,
                    "custom_attribute": self._upsert(request_id, upsert),
                }
            except SquareError as exc:
                error = {"category": exc.category, "code": exc.code, "detail": exc.detail}
                if exc.field:
                    error["field"] = exc.field
                answers[request_id] = {"customer_id": customer_id, "errors": [error]}
        self._state.changed()
        return {"values": answers}

    def _upsert(self, request_id: str, upsert: Any) -> dict[str, Any]:
        from omnicanal.channels.square.emulation import _invalid

        field = f"values.{request_id}"
        if not isinstance(upsert, dict) or not upsert.get("customer_id"):
            raise _invalid(
                "MISSING_REQUIRED_PARAMETER", "Field must be set", f"{field}.customer_id"
            )
        attribute = upsert.get("custom_attribute")
        if not isinstance(attribute, dict) or not attribute.get("key"):
            raise _invalid(
                "MISSING_REQUIRED_PARAMETER", "Field must be set", f"{field}.custom_attribute.key"
            )
        customer = self._customer(upsert["customer_id"])
        key = attribute["key"]
        definition = self.definitions.get(key)
        if definition is None:
            raise self._error(
                404,
                "NOT_FOUND",
                f"Custom attribute definition with key `{key}` not found.",
                field=f"{field}.custom_attribute.key",
            )
        value = attribute.get("value")
        kind = definition["schema"]["$ref"][len(SCHEMA_BASE) :]
        problem = _invalid_value(kind, value)
        if problem:
            raise _invalid("INVALID_VALUE", problem, f"{field}.custom_attribute.value")
        held = self.attributes.setdefault(customer["id"], {})
        current = held.get(key)
        now = self._now()
        if current is None or current["value"] != value:
            self.attribute_writes += 1
            held[key] = {
                "key": key,
                "value": value,
                "version": (current["version"] + 1) if current else 1,
                "visibility": definition["visibility"],
                "created_at": current["created_at"] if current else now,
                "updated_at": now,
            }
        return held[key]


def _invalid_value(kind: str, value: Any) -> str | None:
    if kind == "String":
        ok = isinstance(value, str) and len(value) <= 1000
        return None if ok else "The value must be a string of at most 1000 characters."
    if kind == "Email":
        ok = isinstance(value, str) and _EMAIL.match(value) is not None
        return None if ok else "The value must be an email address."
    if kind == "Boolean":
        return None if isinstance(value, bool) else "The value must be true or false."
    try:
        Decimal(str(value))
    except InvalidOperation:
        return 'The value must be a number, sent as a string (e.g. "12.5").'
    return None if isinstance(value, str) else "The value must be a number sent as a string."
