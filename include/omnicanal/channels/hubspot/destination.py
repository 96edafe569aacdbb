"""HubSpot CRM as a destination: contact properties, and list memberships.

Two kinds of sync, chosen by the exposure's ``mode``:

- properties (``upsert``, or ``mirror``, the default): each row is a contact, keyed by
  email, its fields contact properties. Rows go in with
  ``POST /crm/v3/objects/contacts/batch/upsert`` (``idProperty: email``, 100 inputs a
  call), which creates the contacts HubSpot does not have. A removal (mirror) clears the
  mapped properties the sync wrote (``batch/update`` with empty strings) and leaves the
  contact, and its email, alone. Properties of customers a business already has are not
  marketing: this kind needs no consent (``consent_channel`` None);
- ``audience``: the same upsert, then the contacts go into a MANUAL list (option
  ``list``: its name; created if missing) with ``PUT /crm/v3/lists/{id}/memberships/add``;
  a removal takes them out of the list (``memberships/remove``) and nothing else. A list
  is what email campaigns are sent to, so its members must accept email marketing
  (``consent_channel = "email"``).

Properties the model maps and the portal lacks are created first (in the group
``omnicanal``, type inferred from the values: number, bool, date, datetime or string).
Every input carries an ``objectWriteTraceId``, HubSpot's opt-in to multi-status: a batch
with a refused input answers 207 and the rest are written; each refusal becomes that
row's failed outcome with HubSpot's reason. Requests are paced at 19 a second
(a Professional portal's private app: 190 per 10 s; option ``rate_limit`` to change it),
held back a second when ``X-HubSpot-RateLimit-Remaining`` reaches 0, and 429s are retried.
Auth: ``Authorization: Bearer`` with ``OMNICANAL_HUBSPOT_ACCESS_TOKEN``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from omnicanal.activation.destination import Outcome, Row
from omnicanal.activation.http import RetryingClient
from omnicanal.channels.hubspot import api_url
from omnicanal.config import Settings
from omnicanal.errors import SyncError

BATCH_LIMIT = 100
#: 190 requests per rolling 10 seconds (private app, Professional/Enterprise portal).
RATE_LIMIT = 19.0
PROPERTY_GROUP = "omnicanal"
CONTACTS = "0-1"
TOKEN_SETTING = "OMNICANAL_HUBSPOT_ACCESS_TOKEN"
MODES = ("upsert", "mirror", "audience")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def property_type(value: Any) -> tuple[str, str]:
    """(type, fieldType) of a new HubSpot property that holds ``value``."""
    if isinstance(value, bool):
        return "bool", "booleancheckbox"
    if isinstance(value, int | float):
        return "number", "number"
    if isinstance(value, datetime):
        return "datetime", "date"
    if isinstance(value, date):
        return "date", "date"
    if isinstance(value, str) and _DATE.match(value):
        return "date", "date"
    if isinstance(value, str) and _DATETIME.match(value):
        return "datetime", "date"
    return "string", "text"


def property_value(value: Any) -> str:
    """A value as HubSpot's API takes it (every property value is a string; empty clears)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _reason(error: dict[str, Any]) -> str:
    details = error.get("errors") or []
    if details:
        return "; ".join(
            f"{d.get('code')}: {d.get('message')}" if d.get("code") else str(d.get("message"))
            for d in details
        )
    category = error.get("category")
    message = error.get("message") or "refused"
    return f"{category}: {message}" if category else message


class HubSpotDestination:
    batch_size = BATCH_LIMIT

    def __init__(
        self,
        api_url: str,
        access_token: str,
        *,
        mode: str = "mirror",
        list_name: str | None = None,
        rate_limit: float = RATE_LIMIT,
        **client_options: Any,
    ) -> None:
        if mode not in MODES and mode != "message":
            raise SyncError(f"HubSpot syncs support modes {', '.join(MODES)}, not {mode!r}")
        if mode == "message":
            raise SyncError("HubSpot does not send messages; use mode upsert, mirror or audience")
        if mode == "audience" and not list_name:
            raise SyncError(
                "a HubSpot audience sync needs the list's name: add `list: <name>` to the "
                "exposure's meta.omnicanal_sync"
            )
        self.mode = mode
        self.list_name = list_name
        self.list_id: str | None = None
        #: a list is what email campaigns go to; contact properties are not marketing
        self.consent_channel = "email" if mode == "audience" else None
        self.rate_limit = rate_limit
        self.client = RetryingClient(
            api_url,
            headers={"Authorization": f"Bearer {access_token}"},
            service="HubSpot",
            rate_limit=rate_limit,
            **client_options,
        )
        self._properties: dict[str, dict[str, Any]] | None = None
        self._stats = {"contacts_created": 0, "properties_created": 0, "members_added": 0}

    @classmethod
    def from_settings(cls, settings: Settings, options: dict[str, Any]) -> HubSpotDestination:
        return cls(
            api_url(settings),
            settings.channel("hubspot").access_token,
            mode=str(options.get("mode") or "mirror"),
            list_name=options.get("list"),
            rate_limit=float(options.get("rate_limit") or RATE_LIMIT),
        )

    def close(self) -> None:
        self.client.close()

    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    # -- HTTP -------------------------------------------------------------------------

    def _request(self, method: str, path: str, doing: str, **kwargs: Any):
        response = self.client.request(method, path, **kwargs)
        if response.headers.get("X-HubSpot-RateLimit-Remaining") == "0" and self.client.limiter:
            self.client.limiter.defer(1.0)  # the rolling window is full: let it drain a bit
        if response.status_code == 401:
            raise SyncError(
                f"HubSpot rejected the access token (HTTP 401) while {doing}; check "
                f"{TOKEN_SETTING} (a private app's token)"
            )
        if response.status_code == 403:
            raise SyncError(
                f"HubSpot refused {doing} (HTTP 403): the private app behind {TOKEN_SETTING} "
                "lacks a scope (crm.objects.contacts.write, crm.schemas.contacts.write, "
                "crm.lists.write)"
            )
        return response

    def _fail(self, response, doing: str) -> SyncError:
        try:
            body = response.json()
            detail = body.get("message") or body.get("category") or ""
        except ValueError:
            detail = response.text[:200]
        return SyncError(f"HubSpot refused {doing} (HTTP {response.status_code}): {detail}")

    # -- set-up -----------------------------------------------------------------------

    def check(self) -> None:
        """Fail early on a bad token; find (or make) the list an audience sync fills."""
        response = self._request("GET", "/crm/v3/properties/contacts", "reading properties")
        if response.status_code != 200:
            raise self._fail(response, "reading the contact properties")
        self._properties = {p["name"]: p for p in response.json().get("results") or []}
        if self.mode == "audience":
            self._ensure_list()

    def _ensure_list(self) -> str:
        if self.list_id is not None:
            return self.list_id
        from urllib.parse import quote

        response = self._request(
            "GET",
            f"/crm/v3/lists/object-type-id/{CONTACTS}/name/{quote(str(self.list_name), safe='')}",
            "reading the list",
        )
        if response.status_code == 404:
            response = self._request(
                "POST",
                "/crm/v3/lists",
                "creating the list",
                json={
                    "name": self.list_name,
                    "objectTypeId": CONTACTS,
                    "processingType": "MANUAL",
                },
            )
        if response.status_code not in (200, 201):
            raise self._fail(response, f"reading or creating the list {self.list_name!r}")
        found = response.json()["list"]
        if found.get("processingType") == "DYNAMIC":
            raise SyncError(
                f"HubSpot list {self.list_name!r} is an active (DYNAMIC) list, whose members "
                "follow its filters; name a MANUAL list (or a new name) in the exposure's "
                "`list` option"
            )
        self.list_id = str(found["listId"])
        return self.list_id

    def _ensure_properties(self, rows: list[Row]) -> None:
        if self._properties is None:
            self.check()
        assert self._properties is not None
        wanted: dict[str, Any] = {}
        for row in rows:
            for name, value in row.payload.items():
                if name not in self._properties and (wanted.get(name) is None):
                    wanted[name] = value
        if not wanted:
            return
        if (
            PROPERTY_GROUP not in {g.get("groupName") for g in self._properties.values()}
            and not self._group_exists()
        ):
            response = self._request(
                "POST",
                "/crm/v3/properties/contacts/groups",
                "creating the property group",
                json={"name": PROPERTY_GROUP, "label": "omnicanal", "displayOrder": -1},
            )
            if response.status_code not in (200, 201, 409):
                raise self._fail(response, f"creating the property group {PROPERTY_GROUP!r}")
        for name, sample in wanted.items():
            kind, field_type = property_type(sample)
            response = self._request(
                "POST",
                "/crm/v3/properties/contacts",
                "creating a property",
                json={
                    "name": name,
                    "label": name.replace("_", " ").capitalize(),
                    "type": kind,
                    "fieldType": field_type,
                    "groupName": PROPERTY_GROUP,
                    "description": "Written by omnicanal's reverse-ETL sync.",
                },
            )
            if response.status_code == 409:  # made meanwhile: read it
                response = self._request(
                    "GET", f"/crm/v3/properties/contacts/{name}", "reading a property"
                )
            if response.status_code not in (200, 201):
                raise self._fail(
                    response,
                    f"creating the contact property {name!r} (map the model's column to an "
                    "existing property, or a lower-case name HubSpot accepts)",
                )
            self._properties[name] = response.json()
            self._stats["properties_created"] += 1

    def _group_exists(self) -> bool:
        response = self._request(
            "GET", "/crm/v3/properties/contacts/groups", "reading the property groups"
        )
        if response.status_code != 200:
            raise self._fail(response, "reading the property groups")
        return PROPERTY_GROUP in {g.get("name") for g in response.json().get("results") or []}

    # -- contacts ---------------------------------------------------------------------

    @staticmethod
    def _email(row: Row) -> str:
        return str(row.payload.get("email") or row.key).strip()

    def _batch(
        self, action: str, rows: list[Row], inputs: list[dict[str, Any]]
    ) -> tuple[dict[int, dict], dict[int, str]]:
        """Send one contact batch; (results, refusals) by the row's position."""
        for position, item in enumerate(inputs):
            item["objectWriteTraceId"] = str(position)
        response = self._request(
            "POST",
            f"/crm/v3/objects/contacts/batch/{action}",
            f"the contacts batch {action}",
            json={"inputs": inputs},
        )
        if response.status_code not in (200, 201, 207):
            raise self._fail(response, f"the contacts batch {action}")
        body = response.json()
        results: dict[int, dict] = {}
        by_email = {self._email(row).lower(): i for i, row in enumerate(rows)}
        for result in body.get("results") or []:
            trace = result.get("objectWriteTraceId")
            if trace is not None and str(trace).isdigit():
                results[int(trace)] = result
            else:
                email = str((result.get("properties") or {}).get("email") or "").lower()
                if email in by_email:
                    results[by_email[email]] = result
        refused: dict[int, str] = {}
        for error in body.get("errors") or []:
            for trace in (error.get("context") or {}).get("objectWriteTraceId") or []:
                if str(trace).isdigit() and int(trace) < len(rows):
                    refused[int(trace)] = _reason(error)
        return results, refused

    def _properties_of(self, row: Row) -> dict[str, str]:
        return {name: property_value(value) for name, value in row.payload.items()}

    def upsert(self, rows: list[Row]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for start in range(0, len(rows), BATCH_LIMIT):
            outcomes += self._upsert_batch(rows[start : start + BATCH_LIMIT])
        return outcomes

    def _upsert_batch(self, rows: list[Row]) -> list[Outcome]:
        self._ensure_properties(rows)
        inputs = [
            {"id": self._email(row), "idProperty": "email", "properties": self._properties_of(row)}
            for row in rows
        ]
        results, refused = self._batch("upsert", rows, inputs)
        self._stats["contacts_created"] += sum(1 for r in results.values() if r.get("new"))
        written: dict[int, str] = {i: str(r["id"]) for i, r in results.items()}
        if self.mode == "audience" and written:
            missing = self._memberships("add", list(written.values()))
            for position, record_id in list(written.items()):
                if record_id in missing:
                    refused[position] = f"contact {record_id} is missing; not added to the list"
                    del written[position]
            self._stats["members_added"] += len(written)
        outcomes = []
        for position, row in enumerate(rows):
            if position in refused:
                outcomes.append(Outcome(row.key, False, refused[position]))
            elif position in written:
                outcomes.append(Outcome(row.key, True, ref=written[position]))
            # else: HubSpot did not answer for it; the engine keeps it pending
        return outcomes

    def _memberships(self, change: str, record_ids: list[str]) -> set[str]:
        list_id = self._ensure_list()
        response = self._request(
            "PUT",
            f"/crm/v3/lists/{list_id}/memberships/{change}",
            f"the list memberships {change}",
            json=record_ids,
        )
        if response.status_code != 200:
            raise self._fail(response, f"the list memberships {change} of {self.list_name!r}")
        return {str(i) for i in response.json().get("recordIdsMissing") or []}

    def remove(self, rows: list[Row]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for start in range(0, len(rows), BATCH_LIMIT):
            batch = rows[start : start + BATCH_LIMIT]
            if self.mode == "audience":
                outcomes += self._leave_list(batch)
            else:
                outcomes += self._clear(batch)
        return outcomes

    def _clear(self, rows: list[Row]) -> list[Outcome]:
        """Mirror removal: the properties the sync wrote are emptied, the contact stays."""
        inputs = [
            {
                "id": self._email(row),
                "idProperty": "email",
                "properties": {name: "" for name in row.payload if name != "email"},
            }
            for row in rows
        ]
        results, refused = self._batch("update", rows, inputs)
        outcomes = []
        for position, row in enumerate(rows):
            reason = refused.get(position)
            if reason is not None and "OBJECT_NOT_FOUND" not in reason:
                outcomes.append(Outcome(row.key, False, reason))
            elif position in results or reason is not None:
                # cleared, or the contact is gone (deleted in HubSpot): nothing of ours left
                outcomes.append(Outcome(row.key, True))
        return outcomes

    def _leave_list(self, rows: list[Row]) -> list[Outcome]:
        response = self._request(
            "POST",
            "/crm/v3/objects/contacts/batch/read",
            "reading contacts",
            json={
                "idProperty": "email",
                "properties": ["email"],
                "inputs": [{"id": self._email(row)} for row in rows],
            },
        )
        if response.status_code not in (200, 207):
            raise self._fail(response, "reading the contacts to take out of the list")
        ids = {
            str((r.get("properties") or {}).get("email") or "").strip().lower(): str(r["id"])
            for r in response.json().get("results") or []
        }
        present = [ids[e] for e in (self._email(r).lower() for r in rows) if e in ids]
        if present:
            self._memberships("remove", present)
        # a contact HubSpot no longer has is in no list: removed as well
        return [Outcome(row.key, True) for row in rows]
