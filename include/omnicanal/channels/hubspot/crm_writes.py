"""The write side of the HubSpot emulation: what a reverse-ETL destination calls.

Served by :class:`~omnicanal.channels.hubspot.emulation.HubSpotEmulator` on the same
router (same token, same rate limits, same error bodies) as the read side:

- contact batches, ``POST /crm/v3/objects/contacts/batch/{upsert,update,read}``: at most
  100 inputs (``read``: 100 too). ``upsert`` takes ``idProperty: email`` (the contact's
  unique property) and creates the contacts it does not find; ``update`` takes a record
  id or an ``idProperty``; ``read`` an ``idProperty``. Every property value is checked
  as HubSpot does: unknown names (``PROPERTY_DOESNT_EXIST``), read-only ones
  (``READ_ONLY_VALUE``), numbers, dates, booleans and enumeration options
  (``INVALID_INTEGER``/``INVALID_DATE``/``INVALID_OPTION``...), emails
  (``INVALID_EMAIL``, fake-looking addresses included). An empty string clears a value.
  Without multi-status, one bad input fails the whole batch with a 400
  ``VALIDATION_ERROR`` ("Property values were not valid: [...]") and nothing is written;
  with an ``objectWriteTraceId`` on every input (HubSpot's multi-status opt-in) the
  valid inputs are written and the answer is a 207 with one error per refused input,
  its ``context.objectWriteTraceId`` naming it;
- contact properties, ``GET/POST /crm/v3/properties/contacts`` and
  ``GET /crm/v3/properties/contacts/{name}``, and property groups,
  ``GET/POST /crm/v3/properties/contacts/groups``: names are lower-case
  ``[a-z][a-z0-9_]*``, ``type``/``fieldType`` must agree, the group must exist, a name
  taken is a 409 ``OBJECT_ALREADY_EXISTS``. The portal's own properties are
  HubSpot-defined and the system ones read-only;
- lists (v3, ILS), ``POST /crm/v3/lists``, ``GET /crm/v3/lists/{listId}``,
  ``GET /crm/v3/lists/object-type-id/{objectTypeId}/name/{listName}``,
  ``GET /crm/v3/lists/{listId}/memberships`` (``limit`` at most 250, ``after``), and
  ``PUT /crm/v3/lists/{listId}/memberships/{add,remove}`` with a JSON array of record ids
  (at most 100,000): only ``MANUAL`` and ``SNAPSHOT`` lists take memberships by API; ids
  of no contact come back in ``recordIdsMissing``.

What it holds is readable for tests: :meth:`CrmWrites.contacts`, :meth:`list_members`,
:attr:`properties`, :attr:`lists`, and the counters ``contacts_written`` and
``membership_changes``. With a ``state_path`` what was written (contacts, custom
properties and groups, lists and their members) is kept in a JSON file, saved within a
second of each write, and read back at start: a real portal remembers what a sync wrote
across our runs, and a sandbox restart must not fake a wiped destination.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from omnicanal.channels.hubspot.world import HubSpotPortal, hubspot_timestamp
from omnicanal.sandbox.state_file import StateFile

BATCH_MAX_INPUTS = 100
MEMBERSHIP_MAX_IDS = 100_000
MEMBERSHIPS_MAX_LIMIT = 250
CONTACTS_TYPE_ID = "0-1"
#: ``type`` -> the ``fieldType``s HubSpot allows with it.
FIELD_TYPES = {
    "string": {"text", "textarea", "file", "phonenumber", "html"},
    "number": {"number", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox"},
    "bool": {"booleancheckbox"},
}
LIST_PROCESSING_TYPES = {"MANUAL", "DYNAMIC", "SNAPSHOT"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
)
#: Domains HubSpot's email validation refuses as placeholders.
_FAKE_DOMAINS = {"example.com", "test.com", "email.com", "domain.com", "mailinator.com"}
#: Properties HubSpot computes: readable, never writable.
READ_ONLY = {
    "hs_object_id",
    "createdate",
    "lastmodifieddate",
    "hs_additional_emails",
    "hs_createdate",
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class WriteError(Exception):
    """An error HubSpot answers for a write: status, message, category, extras."""

    def __init__(
        self, status: int, message: str, category: str = "VALIDATION_ERROR", **extra: Any
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.category, self.extra = status, message, category, extra


@dataclass
class PropertyProblem:
    """One invalid property value, in HubSpot's validation-result shape."""

    name: str
    error: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "isValid": False,
            "message": self.message,
            "error": self.error,
            "name": self.name,
            "localizedErrorMessage": self.message,
        }


@dataclass
class HubSpotList:
    list_id: str
    name: str
    processing_type: str
    created_at: str
    updated_at: str
    members: dict[str, str] = field(default_factory=dict)  # record id -> added at
    version: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "listId": self.list_id,
            "listVersion": self.version,
            "name": self.name,
            "objectTypeId": CONTACTS_TYPE_ID,
            "processingType": self.processing_type,
            "processingStatus": "COMPLETE",
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "createdById": "omnicanal",
            "updatedById": "omnicanal",
            "size": len(self.members),
        }


def valid_email(value: str) -> bool:
    text = value.strip()
    if not _EMAIL.match(text):
        return False
    return text.rsplit("@", 1)[1].lower() not in _FAKE_DOMAINS


def _now() -> str:
    return hubspot_timestamp(datetime.now(UTC))


def _property(name: str, **spec: Any) -> dict[str, Any]:
    """A property definition as ``GET /crm/v3/properties/contacts`` answers it."""
    stamp = spec.pop("stamp", "2019-08-06T02:41:08.000Z")
    kind = spec.pop("type", "string")
    return {
        "name": name,
        "label": spec.pop("label", name.replace("_", " ").capitalize()),
        "type": kind,
        "fieldType": spec.pop("fieldType", "text"),
        "description": spec.pop("description", ""),
        "groupName": spec.pop("groupName", "contactinformation"),
        "options": spec.pop("options", []),
        "displayOrder": spec.pop("displayOrder", -1),
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": spec.pop("hasUniqueValue", False),
        "hidden": spec.pop("hidden", False),
        "hubspotDefined": spec.pop("hubspotDefined", True),
        "modificationMetadata": {
            "archivable": not spec.get("readOnly", False),
            "readOnlyDefinition": True,
            "readOnlyValue": spec.pop("readOnly", False),
        },
        "formField": spec.pop("formField", False),
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
        **spec,
    }


def _portal_properties(portal: HubSpotPortal) -> dict[str, dict[str, Any]]:
    """The portal's contact properties: every name its contacts carry, HubSpot-defined."""
    names: set[str] = {"email", "firstname", "lastname"}
    for record in portal.objects["contacts"]:
        names.update(record["properties"])
    defined: dict[str, dict[str, Any]] = {}
    for name in sorted(names):
        if name in ("createdate", "lastmodifieddate"):
            defined[name] = _property(
                name,
                type="datetime",
                fieldType="date",
                readOnly=True,
                groupName="contactinformation",
            )
        elif name in READ_ONLY:
            defined[name] = _property(
                name,
                type="number" if name == "hs_object_id" else "string",
                fieldType="number" if name == "hs_object_id" else "text",
                readOnly=True,
            )
        elif name == "email":
            defined[name] = _property(name, label="Email", hasUniqueValue=True, formField=True)
        elif name == "hs_email_optout":
            # HubSpot sets it when the contact unsubscribes from all email; the CRM API
            # cannot (the subscriptions API does)
            defined[name] = _property(
                name,
                label="Unsubscribed from all email",
                type="enumeration",
                fieldType="booleancheckbox",
                groupName="emailinformation",
                options=[
                    {"label": "True", "value": "true", "displayOrder": 0, "hidden": False},
                    {"label": "False", "value": "false", "displayOrder": 1, "hidden": False},
                ],
                readOnly=True,
            )
        else:
            defined[name] = _property(name)
    return defined


class CrmWrites:
    """Contacts' writes, properties, property groups and lists of one emulated portal."""

    def __init__(
        self,
        portal: HubSpotPortal,
        state_path: str | Path | None = None,
        lock: threading.RLock | None = None,
    ) -> None:
        self.portal = portal
        #: the emulator's lock: a deferred save reads what its handlers write
        self._lock = lock or threading.RLock()
        self.properties: dict[str, dict[str, Any]] = _portal_properties(portal)
        self.groups: dict[str, dict[str, Any]] = {
            "contactinformation": {
                "name": "contactinformation",
                "label": "Contact information",
                "displayOrder": 0,
                "archived": False,
            }
        }
        self.lists: dict[str, HubSpotList] = {}
        self._next_list_id = 1
        self.contacts_written = 0
        self.membership_changes = 0
        self._by_email: dict[str, int] | None = None
        #: (number of contacts, highest id) when last counted
        self._max_id: tuple[int, int] | None = None
        #: ids of the contacts written through the API (what the state file keeps)
        self._written: set[str] = set()
        self.state_path = Path(state_path) if state_path else None
        self._state = StateFile(self.state_path, self._state_data, self._lock)
        if self.state_path and self.state_path.exists():
            self._load_state()

    # -- the state file ---------------------------------------------------------------

    def _load_state(self) -> None:
        assert self.state_path is not None
        data = json.loads(self.state_path.read_text())
        self.properties.update(data.get("properties") or {})
        self.groups.update(data.get("groups") or {})
        for item in data.get("lists") or []:
            self.lists[item["list_id"]] = HubSpotList(**item)
        self._next_list_id = int(data.get("next_list_id") or self._next_list_id)
        records = self.portal.objects["contacts"]
        position = {r["id"]: i for i, r in enumerate(records)}
        for record in data.get("contacts") or []:
            if record["id"] in position:
                records[position[record["id"]]] = record
            else:
                records.append(record)
            self._written.add(record["id"])
        self._by_email = None

    def _state_data(self) -> dict[str, Any]:
        """What the state file keeps."""
        contacts = [r for r in self.portal.objects["contacts"] if r["id"] in self._written]
        return {
            "properties": {k: v for k, v in self.properties.items() if not v["hubspotDefined"]},
            "groups": {k: v for k, v in self.groups.items() if k != "contactinformation"},
            "lists": [asdict(found) for found in self.lists.values()],
            "next_list_id": self._next_list_id,
            "contacts": contacts,
        }

    def flush(self) -> None:
        """Save what a deferred save still holds (tests, shutdown)."""
        self._state.flush()

    # -- what it holds, for tests -----------------------------------------------------

    def contacts(self) -> dict[str, dict[str, Any]]:
        """Live contacts by lower-cased email: ``{email: properties}``."""
        records = self.portal.objects["contacts"]
        return {email: records[index]["properties"] for email, index in self._email_index().items()}

    def list_by_name(self, name: str) -> HubSpotList | None:
        return next((lst for lst in self.lists.values() if lst.name == name), None)

    def list_members(self, name: str) -> dict[str, dict[str, Any]]:
        """Members of the list called ``name``, ``{email: properties}``."""
        found = self.list_by_name(name)
        if found is None:
            return {}
        records = {r["id"]: r for r in self.portal.objects["contacts"] if not r.get("archived")}
        members = {}
        for record_id in found.members:
            record = records.get(record_id)
            if record is not None:
                email = str(record["properties"].get("email") or "").strip().lower()
                members[email or record_id] = record["properties"]
        return members

    def reset(self) -> None:
        """Forget the lists and custom properties written since start (the portal's
        contacts written stay: use a fresh world for a fresh portal)."""
        self.lists.clear()
        self.properties = {k: v for k, v in self.properties.items() if v["hubspotDefined"]}
        self.groups = {"contactinformation": self.groups["contactinformation"]}
        self.contacts_written = self.membership_changes = 0
        self._state.changed()

    # -- contacts ---------------------------------------------------------------------

    def _email_index(self) -> dict[str, int]:
        if self._by_email is None:
            index: dict[str, int] = {}
            for position, record in enumerate(self.portal.objects["contacts"]):
                email = str(record["properties"].get("email") or "").strip().lower()
                if email and not record.get("archived") and email not in index:
                    index[email] = position
            self._by_email = index
        return self._by_email

    def _find(self, id_property: str | None, value: Any) -> int | None:
        records = self.portal.objects["contacts"]
        text = str(value or "").strip()
        if id_property in (None, "", "hs_object_id"):
            for position, record in enumerate(records):
                if record["id"] == text and not record.get("archived"):
                    return position
            return None
        # email is the only unique property contacts have here
        position = self._email_index().get(text.lower())
        if position is not None and records[position].get("archived"):
            self._by_email = None
            return None
        return position

    def _check_value(self, name: str, value: Any) -> PropertyProblem | None:
        spec = self.properties.get(name)
        if spec is None:
            return PropertyProblem(
                name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'
            )
        if spec["modificationMetadata"]["readOnlyValue"]:
            return PropertyProblem(
                name,
                "READ_ONLY_VALUE",
                f'"{name}" is a read only property; its value cannot be set.',
            )
        if value is None or value == "":
            return None  # clears the value
        if isinstance(value, dict | list):
            return PropertyProblem(
                name, "INVALID_VALUE", f"{json.dumps(value)} is not a valid value for {name}."
            )
        text = str(value).lower() if isinstance(value, bool) else str(value)
        kind = spec["type"]
        if name == "email" and not valid_email(text):
            return PropertyProblem(name, "INVALID_EMAIL", f"Email address {text} is invalid")
        if kind == "number":
            try:
                float(text)
            except ValueError:
                return PropertyProblem(name, "INVALID_INTEGER", f"{text} was not a valid number.")
        elif kind in ("date", "datetime"):
            if not _valid_date(text, kind):
                return PropertyProblem(
                    name,
                    "INVALID_DATE",
                    f"{text} was not a valid {kind}: use epoch milliseconds"
                    + (" at midnight UTC" if kind == "date" else "")
                    + " or ISO 8601.",
                )
        elif kind == "bool":
            if text not in ("true", "false"):
                return PropertyProblem(name, "INVALID_BOOLEAN", f"{text} was not a valid boolean.")
        elif kind == "enumeration":
            allowed = {o["value"] for o in spec.get("options") or []}
            values = text.split(";") if spec["fieldType"] == "checkbox" else [text]
            bad = [v for v in values if v not in allowed]
            if bad:
                return PropertyProblem(
                    name,
                    "INVALID_OPTION",
                    f"{bad[0]} was not one of the allowed options: {sorted(allowed)}",
                )
        return None

    def _store_value(self, name: str, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        text = str(value)
        kind = self.properties[name]["type"]
        if kind == "date" and text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC).date().isoformat()
        return text

    def _validate_input(self, item: Any, *, upsert: bool, read: bool = False) -> list[dict]:
        """The problems of one batch input, as error-detail dicts (empty: valid)."""
        if not isinstance(item, dict):
            return [{"message": "Each input must be an object.", "code": "INVALID_INPUT"}]
        problems: list[dict] = []
        id_property = item.get("idProperty")
        if upsert and id_property != "email":
            problems.append(
                {
                    "message": f"idProperty {id_property!r} is not a unique property of "
                    "contacts; upsert contacts by email.",
                    "code": "INVALID_ID_PROPERTY",
                }
            )
        elif id_property not in (None, "", "email", "hs_object_id"):
            problems.append(
                {
                    "message": f"idProperty {id_property!r} is not a unique property of contacts.",
                    "code": "INVALID_ID_PROPERTY",
                }
            )
        if not str(item.get("id") or "").strip():
            problems.append({"message": "Each input needs an id.", "code": "MISSING_ID"})
        elif id_property == "email" and upsert and not valid_email(str(item["id"])):
            problems.append(
                {"message": f"Email address {item['id']} is invalid", "code": "INVALID_EMAIL"}
            )
        if read:
            return problems
        properties = item.get("properties")
        if not isinstance(properties, dict):
            problems.append({"message": "properties must be an object.", "code": "INVALID_INPUT"})
            return problems
        for name, value in properties.items():
            problem = self._check_value(name, value)
            if problem is not None:
                problems.append(
                    {
                        "message": problem.message,
                        "code": problem.error,
                        "context": {"propertyName": [name]},
                        "validation": problem.as_dict(),
                    }
                )
        return problems

    @staticmethod
    def _inputs(body: Any) -> list[Any]:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs:
            raise WriteError(
                400,
                "Invalid input JSON on line 1, column 2: Cannot build BatchInput, some of "
                "required attributes are not set [inputs]",
            )
        if len(inputs) > BATCH_MAX_INPUTS:
            raise WriteError(
                400,
                f"Batch input size limit exceeded: {len(inputs)} inputs were sent, at most "
                f"{BATCH_MAX_INPUTS} are allowed.",
            )
        return inputs

    def _answer(
        self, inputs: list[Any], results: list[dict], problems: dict[int, tuple[str, list[dict]]]
    ) -> tuple[int, dict[str, Any]]:
        started = _now()
        payload: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now(),
        }
        if problems:
            errors = []
            for position, (category, details) in sorted(problems.items()):
                trace = inputs[position].get("objectWriteTraceId")
                errors.append(
                    {
                        "status": "error",
                        "category": category,
                        "message": "; ".join(d["message"] for d in details),
                        "context": {"objectWriteTraceId": [str(trace)]},
                        "errors": [
                            {k: v for k, v in d.items() if k != "validation"} for d in details
                        ],
                    }
                )
            payload["numErrors"] = len(errors)
            payload["errors"] = errors
            return 207, payload
        return 200, payload

    def _check_batch(
        self, inputs: list[Any], *, upsert: bool, read: bool = False
    ) -> tuple[bool, dict[int, tuple[str, list[dict]]]]:
        """Validate every input; without multi-status, any problem fails the batch."""
        multi = all(
            isinstance(i, dict) and str(i.get("objectWriteTraceId") or "").strip() for i in inputs
        )
        if multi:
            traces = [str(i["objectWriteTraceId"]) for i in inputs]
            if len(set(traces)) != len(traces):
                raise WriteError(400, "objectWriteTraceId must be unique within a batch.")
        problems: dict[int, tuple[str, list[dict]]] = {}
        for position, item in enumerate(inputs):
            details = self._validate_input(item, upsert=upsert, read=read)
            if details:
                problems[position] = ("VALIDATION_ERROR", details)
        if problems and not multi:
            validations = [
                d.get("validation")
                or {"isValid": False, "message": d["message"], "error": d["code"], "name": ""}
                for _, details in problems.values()
                for d in details
            ]
            raise WriteError(
                400,
                "Property values were not valid: " + json.dumps(validations),
                errors=[
                    {k: v for k, v in d.items() if k != "validation"}
                    for _, details in problems.values()
                    for d in details
                ],
            )
        return multi, problems

    def _write(self, position: int | None, properties: dict[str, Any], email: str | None):
        """Create (``position`` None) or update a contact; return (record, created)."""
        records = self.portal.objects["contacts"]
        stamp = _now()
        values = {n: self._store_value(n, v) for n, v in properties.items()}
        if position is None:
            # the highest id so far, kept rather than recounted: a batch of creates in a
            # large portal stays linear
            if self._max_id is None or self._max_id[0] != len(records):
                self._max_id = (len(records), max((int(r["id"]) for r in records), default=1000))
            next_id = self._max_id[1] + 1
            props = {name: None for name in ("firstname", "lastname")}
            props.update({n: (v or None) for n, v in values.items()})
            if email:
                props["email"] = email.strip().lower()
            props |= {"createdate": stamp, "lastmodifieddate": stamp, "hs_object_id": str(next_id)}
            record = {
                "id": str(next_id),
                "properties": props,
                "createdAt": stamp,
                "updatedAt": stamp,
                "archived": False,
            }
            records.append(record)
            self._max_id = (len(records), next_id)
            if self._by_email is not None and props.get("email"):
                # the new contact joins the index (an email already held keeps its first)
                self._by_email.setdefault(props["email"], len(records) - 1)
            self._written.add(record["id"])
            return record, True
        record = records[position]
        props = {**record["properties"], **{n: (v or None) for n, v in values.items()}}
        props["lastmodifieddate"] = stamp
        updated = {**record, "properties": props, "updatedAt": stamp}
        records[position] = updated
        old_email = str(record["properties"].get("email") or "").strip().lower()
        if str(props.get("email") or "").strip().lower() != old_email:
            self._by_email = None  # the contact's email changed: reindex
        self._written.add(updated["id"])
        return updated, False

    @staticmethod
    def _shaped(record: dict[str, Any], names: list[str], created: bool | None, trace: Any):
        shaped = {
            "id": record["id"],
            "properties": {
                n: record["properties"].get(n)
                for n in dict.fromkeys([*names, "createdate", "lastmodifieddate", "hs_object_id"])
            },
            "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"],
            "archived": False,
        }
        if created is not None:
            shaped["new"] = created
        if trace:
            shaped["objectWriteTraceId"] = str(trace)
        return shaped

    def batch_upsert(self, body: Any) -> tuple[int, dict[str, Any]]:
        inputs = self._inputs(body)
        _, problems = self._check_batch(inputs, upsert=True)
        results = []
        for position, item in enumerate(inputs):
            if position in problems:
                continue
            email = str(item["id"]).strip()
            properties = dict(item["properties"])
            record, created = self._write(self._find("email", email), properties, email)
            self.contacts_written += 1
            results.append(
                self._shaped(record, list(properties), created, item.get("objectWriteTraceId"))
            )
        self._state.changed()
        return self._answer(inputs, results, problems)

    def batch_update(self, body: Any) -> tuple[int, dict[str, Any]]:
        inputs = self._inputs(body)
        multi, problems = self._check_batch(inputs, upsert=False)
        found: dict[int, int] = {}
        for position, item in enumerate(inputs):
            if position in problems:
                continue
            where = self._find(item.get("idProperty"), item.get("id"))
            if where is None:
                detail = {
                    "message": f"Object not found: {item.get('idProperty') or 'id'}="
                    f"{item.get('id')}",
                    "code": "OBJECT_NOT_FOUND",
                }
                if not multi:
                    raise WriteError(
                        404,
                        detail["message"],
                        "OBJECT_NOT_FOUND",
                        context={"ids": [str(item.get("id"))]},
                    )
                problems[position] = ("OBJECT_NOT_FOUND", [detail])
            else:
                found[position] = where
        results = []
        for position, where in found.items():
            item = inputs[position]
            record, _ = self._write(where, dict(item["properties"]), None)
            self.contacts_written += 1
            results.append(
                self._shaped(record, list(item["properties"]), None, item.get("objectWriteTraceId"))
            )
        self._state.changed()
        return self._answer(inputs, results, problems)

    def batch_read(self, body: Any) -> tuple[int, dict[str, Any]]:
        inputs = self._inputs(body)
        id_property = body.get("idProperty")
        names = [str(n) for n in body.get("properties") or []] or ["email", "firstname", "lastname"]
        records = self.portal.objects["contacts"]
        results, errors = [], []
        for item in inputs:
            value = (item or {}).get("id") if isinstance(item, dict) else None
            where = self._find(id_property, value)
            if where is None:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": "Could not get some CONTACT objects, they may be deleted or "
                        "not exist. Check that ids are valid.",
                        "context": {"ids": [str(value)]},
                    }
                )
                continue
            results.append(self._shaped(records[where], names, None, None))
        payload: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": _now(),
            "completedAt": _now(),
        }
        if errors:
            payload |= {"numErrors": len(errors), "errors": errors}
            return 207, payload
        return 200, payload

    # -- properties -------------------------------------------------------------------

    def property_list(self) -> dict[str, Any]:
        return {"results": list(self.properties.values())}

    def property_read(self, name: str) -> dict[str, Any]:
        spec = self.properties.get(name)
        if spec is None:
            raise WriteError(
                404, f"Unable to find property {name} for object type 0-1", "OBJECT_NOT_FOUND"
            )
        return spec

    def property_create(self, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            raise WriteError(400, "Invalid input JSON: expected a property definition.")
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
        ]
        if missing:
            raise WriteError(
                400,
                "Invalid input JSON on line 1: Cannot build PropertyCreate, some of required "
                f"attributes are not set {missing}",
            )
        name, kind, field_type = str(body["name"]), str(body["type"]), str(body["fieldType"])
        if not _NAME.match(name):
            raise WriteError(
                400,
                f"Property name {name!r} is invalid: use lower-case letters, digits and "
                "underscores, starting with a letter.",
                subCategory="PropertyValidationError.INVALID_PROPERTY_NAME",
            )
        if kind not in FIELD_TYPES:
            raise WriteError(400, f"Invalid property type {kind!r}.")
        if field_type not in FIELD_TYPES[kind]:
            raise WriteError(
                400,
                f"fieldType {field_type!r} is not valid for a property of type {kind!r}; "
                f"use one of {sorted(FIELD_TYPES[kind])}.",
            )
        if body["groupName"] not in self.groups:
            raise WriteError(
                400,
                f"Property group {body['groupName']!r} does not exist.",
                subCategory="PropertyValidationError.INVALID_GROUP_NAME",
            )
        if name in self.properties:
            raise WriteError(
                409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS"
            )
        options = body.get("options") or []
        if kind == "bool" and not options:
            options = [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ]
        spec = _property(
            name,
            label=str(body["label"]),
            type=kind,
            fieldType=field_type,
            description=str(body.get("description") or ""),
            groupName=str(body["groupName"]),
            options=options,
            displayOrder=int(body.get("displayOrder", -1)),
            hasUniqueValue=bool(body.get("hasUniqueValue", False)),
            hidden=bool(body.get("hidden", False)),
            formField=bool(body.get("formField", False)),
            hubspotDefined=False,
            stamp=_now(),
        )
        self.properties[name] = spec
        self._state.changed()
        return 201, spec

    def group_list(self) -> dict[str, Any]:
        return {"results": list(self.groups.values())}

    def group_create(self, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or not body.get("name") or not body.get("label"):
            raise WriteError(
                400,
                "Invalid input JSON on line 1: Cannot build PropertyGroupCreate, some of "
                "required attributes are not set [name, label]",
            )
        name = str(body["name"])
        if not _NAME.match(name):
            raise WriteError(400, f"Property group name {name!r} is invalid.")
        if name in self.groups:
            raise WriteError(
                409, f"Property group named '{name}' already exists.", "OBJECT_ALREADY_EXISTS"
            )
        group = {
            "name": name,
            "label": str(body["label"]),
            "displayOrder": int(body.get("displayOrder", -1)),
            "archived": False,
        }
        self.groups[name] = group
        self._state.changed()
        return 201, group

    # -- lists ------------------------------------------------------------------------

    def list_create(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("name") or not body.get("objectTypeId"):
            raise WriteError(
                400,
                "Invalid input JSON on line 1: Cannot build ListCreateRequest, some of "
                "required attributes are not set [name, objectTypeId, processingType]",
            )
        if body["objectTypeId"] not in (CONTACTS_TYPE_ID, "contacts", "contact"):
            raise WriteError(
                400, f"Object type {body['objectTypeId']} is not supported by this portal's lists."
            )
        processing = str(body.get("processingType") or "")
        if processing not in LIST_PROCESSING_TYPES:
            raise WriteError(400, f"processingType must be one of {sorted(LIST_PROCESSING_TYPES)}.")
        if processing == "DYNAMIC" and not body.get("filterBranch"):
            raise WriteError(400, "A DYNAMIC list needs a filterBranch.")
        name = str(body["name"]).strip()
        if self.list_by_name(name) is not None:
            raise WriteError(
                400,
                f"A list named '{name}' already exists.",
                subCategory="ILS_LIST_NAME_ALREADY_EXISTS",
            )
        stamp = _now()
        created = HubSpotList(str(self._next_list_id), name, processing, stamp, stamp)
        self._next_list_id += 1
        self.lists[created.list_id] = created
        self._state.changed()
        return {"list": created.as_dict()}

    def _list(self, list_id: str) -> HubSpotList:
        found = self.lists.get(str(list_id))
        if found is None:
            raise WriteError(404, f"List {list_id} does not exist.", "OBJECT_NOT_FOUND")
        return found

    def list_read(self, list_id: str) -> dict[str, Any]:
        return {"list": self._list(list_id).as_dict()}

    def list_by_name_read(self, object_type_id: str, name: str) -> dict[str, Any]:
        found = self.list_by_name(name)
        if found is None or object_type_id not in (CONTACTS_TYPE_ID, "contacts"):
            raise WriteError(
                404,
                f"List with name {name} does not exist for object type {object_type_id}.",
                "OBJECT_NOT_FOUND",
            )
        return {"list": found.as_dict()}

    def memberships(self, list_id: str, limit: int, after: str | None) -> dict[str, Any]:
        found = self._list(list_id)
        ids = sorted(found.members, key=int)
        if after:
            ids = [i for i in ids if int(i) > int(after)]
        page = ids[:limit]
        payload: dict[str, Any] = {
            "results": [{"recordId": i, "membershipTimestamp": found.members[i]} for i in page]
        }
        if len(ids) > limit:
            payload["paging"] = {"next": {"after": page[-1]}}
        return payload

    def change_memberships(self, list_id: str, body: Any, *, add: bool) -> dict[str, Any]:
        found = self._list(list_id)
        if found.processing_type == "DYNAMIC":
            raise WriteError(
                400,
                f"List {list_id} is a DYNAMIC list: its memberships follow its filters and "
                "cannot be changed by API; use a MANUAL or SNAPSHOT list.",
                subCategory="ILS_INVALID_PROCESSING_TYPE",
            )
        if not isinstance(body, list) or not all(
            isinstance(i, str | int) and not isinstance(i, bool) for i in body
        ):
            raise WriteError(400, "The request body must be a JSON array of record ids.")
        if len(body) > MEMBERSHIP_MAX_IDS:
            raise WriteError(
                400, f"At most {MEMBERSHIP_MAX_IDS:,} record ids can be sent in one request."
            )
        live = {r["id"] for r in self.portal.objects["contacts"] if not r.get("archived")}
        changed, missing = [], []
        stamp = _now()
        for raw in dict.fromkeys(str(i) for i in body):
            if raw not in live:
                missing.append(raw)
            elif add and raw not in found.members:
                found.members[raw] = stamp
                changed.append(raw)
            elif not add and raw in found.members:
                del found.members[raw]
                changed.append(raw)
        if changed:
            found.version += 1
            found.updated_at = stamp
            self.membership_changes += len(changed)
            self._state.changed()
        return {
            "recordsIdsAdded": changed if add else [],
            "recordIdsRemoved": [] if add else changed,
            "recordIdsMissing": missing,
        }


def _valid_date(text: str, kind: str) -> bool:
    if text.isdigit():
        if kind == "date":
            return int(text) % 86_400_000 == 0
        return True
    try:
        if kind == "date":
            if not _DATE.match(text):
                return False
            date.fromisoformat(text)
        else:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
