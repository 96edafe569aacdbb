"""Square: a segment as a customer group, so the till sees it; attributes as custom attributes.

Rows are keyed by the Square customer profile id. The sync's group (exposure option
``group``, a name, default ``omnicanal``) is found by name among the seller's groups,
or created, when the run starts; then each row is:

- added to the group, ``PUT /v2/customers/{customer_id}/groups/{group_id}`` (Square has
  no bulk membership call), and taken out of it when it leaves,
  ``DELETE`` on the same path: other groups the profile is in are never touched. A
  profile Square does not have is a failed row with Square's reason; on removal it
  holds no group any more, which is what was wanted;
- given its payload fields as customer custom attributes (each field a definition key,
  created when missing with the type of the option ``attribute_types``: ``String``
  (default), ``Number``, ``Boolean`` or ``Email``, visible to the seller so the Point of
  Sale shows it), through ``bulk-upsert``, 25 a call, each answered on its own. A null
  value is left out.

Square publishes no rate limit: requests are paced at ``rate_limit`` a second (option,
default :data:`DEFAULT_RATE_LIMIT`) and a ``429 RATE_LIMITED`` is retried with
exponential backoff (Square sends no ``Retry-After``). Options ``consent_channel``
(default ``email``: Square Marketing reaches group members by email).
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from omnicanal.activation.destination import Outcome, Row
from omnicanal.activation.http import RetryingClient
from omnicanal.channels.square import api_url
from omnicanal.channels.square.writes import MAX_BULK_UPSERTS, SCHEMA_BASE, SCHEMAS
from omnicanal.config import Settings
from omnicanal.errors import SyncError

DEFAULT_GROUP = "omnicanal"
DEFAULT_RATE_LIMIT = 20.0
TOKEN_SETTING = "OMNICANAL_SQUARE_ACCESS_TOKEN"
VERSION_SETTING = "OMNICANAL_SQUARE_API_VERSION"
URL_SETTING = "OMNICANAL_SQUARE_API_URL"


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        return list(response.json().get("errors") or [])
    except ValueError:
        return [{"code": f"HTTP_{response.status_code}", "detail": response.text[:200]}]


def _reason(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e.get('code')}: {e.get('detail')}" for e in errors) or "refused"


class SquareDestination:
    batch_size = MAX_BULK_UPSERTS

    def __init__(
        self,
        api_url: str,
        access_token: str,
        api_version: str,
        *,
        group: str = DEFAULT_GROUP,
        attribute_types: dict[str, str] | None = None,
        rate_limit: float = DEFAULT_RATE_LIMIT,
        consent_channel: str | None = "email",
        **client_options: Any,
    ) -> None:
        if not group.strip():
            raise SyncError(
                "the Square customer group needs a name (meta.omnicanal_sync.group in the "
                "sync's exposure)"
            )
        unknown = {t for t in (attribute_types or {}).values() if t not in SCHEMAS}
        if unknown:
            raise SyncError(
                f"Square custom attribute type(s) {', '.join(sorted(unknown))} unknown; "
                f"meta.omnicanal_sync.attribute_types takes {', '.join(SCHEMAS)}"
            )
        self.group = group.strip()
        self.attribute_types = dict(attribute_types or {})
        self.consent_channel = consent_channel
        self.rate_limit = rate_limit
        self.client = RetryingClient(
            api_url,
            headers={
                "Authorization": f"Bearer {access_token}",
                "Square-Version": api_version,
                "Content-Type": "application/json",
            },
            service="Square",
            rate_limit=rate_limit,
            **client_options,
        )
        self.group_id: str | None = None
        self._definitions: set[str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, options: dict[str, Any]) -> SquareDestination:
        square = settings.channel("square")
        return cls(
            api_url(settings),
            square.access_token,
            square.api_version,
            group=str(options.get("group") or DEFAULT_GROUP),
            attribute_types=dict(options.get("attribute_types") or {}),
            rate_limit=float(options.get("rate_limit") or DEFAULT_RATE_LIMIT),
            consent_channel=options.get("consent_channel", "email"),
        )

    def close(self) -> None:
        self.client.close()

    def stats(self) -> dict[str, Any]:
        return {"group_id": self.group_id, "requests": self.client.requests_sent}

    # -- transport ---------------------------------------------------------------------

    def _fail_whole(self, response: httpx.Response, doing: str) -> None:
        errors = _errors(response)
        codes = {e.get("code") for e in errors}
        if response.status_code == 401:
            raise SyncError(
                f"Square rejected the access token (HTTP 401) while {doing}; check {TOKEN_SETTING}"
            )
        if response.status_code == 403:
            raise SyncError(
                f"Square refused {doing} (HTTP 403, {_reason(errors)}): the token in "
                f"{TOKEN_SETTING} needs the CUSTOMERS_READ and CUSTOMERS_WRITE permissions"
            )
        if codes & {"INVALID_SQUARE_VERSION_FORMAT", "API_VERSION_INCOMPATIBLE"}:
            raise SyncError(
                f"Square refused the API version while {doing} ({_reason(errors)}); check "
                f"{VERSION_SETTING} (customer groups need 2020-04-22 or later)"
            )
        if response.status_code == 404 and "NOT_FOUND" not in codes:
            raise SyncError(
                f"Square has no API at {self.client.base_url} (HTTP 404); check {URL_SETTING}"
            )
        raise SyncError(f"Square refused {doing} (HTTP {response.status_code}): {_reason(errors)}")

    def _request(self, method: str, path: str, doing: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        status = response.status_code
        if status == 429 or status >= 500:
            # still failing after the client's retries: Square is unavailable, not the row
            raise SyncError(
                f"Square kept failing while {doing} (HTTP {status}: "
                f"{_reason(_errors(response))}); the run stops here and the next one resumes"
            )
        if status in (401, 403) or (status >= 400 and status != 404 and not _errors(response)):
            self._fail_whole(response, doing)
        return response

    # -- the group and the definitions ---------------------------------------------------

    def check(self) -> None:
        """Find the sync's group by name, or create it; fail naming the setting to fix."""
        cursor = None
        while True:
            params = {"cursor": cursor} if cursor else {}
            response = self._request(
                "GET", "/v2/customers/groups", "listing customer groups", params=params
            )
            if response.status_code != 200:
                self._fail_whole(response, "listing customer groups")
            body = response.json()
            for group in body.get("groups") or []:
                if group["name"] == self.group:
                    self.group_id = group["id"]
                    return
            cursor = body.get("cursor")
            if not cursor:
                break
        key = "omnicanal-group-" + hashlib.sha256(self.group.encode()).hexdigest()[:24]
        response = self._request(
            "POST",
            "/v2/customers/groups",
            "creating the customer group",
            json={"idempotency_key": key, "group": {"name": self.group}},
        )
        if response.status_code != 200:
            self._fail_whole(response, f"creating the customer group {self.group!r}")
        self.group_id = response.json()["group"]["id"]

    def _ensure_definitions(self, keys: set[str]) -> None:
        if self._definitions is None:
            self._definitions = set()
            cursor = None
            while True:
                params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
                response = self._request(
                    "GET",
                    "/v2/customers/custom-attribute-definitions",
                    "listing custom attribute definitions",
                    params=params,
                )
                if response.status_code != 200:
                    self._fail_whole(response, "listing custom attribute definitions")
                body = response.json()
                self._definitions |= {
                    d["key"] for d in body.get("custom_attribute_definitions") or []
                }
                cursor = body.get("cursor")
                if not cursor:
                    break
        for key in sorted(keys - self._definitions):
            kind = self.attribute_types.get(key, "String")
            response = self._request(
                "POST",
                "/v2/customers/custom-attribute-definitions",
                "creating a custom attribute definition",
                json={
                    "custom_attribute_definition": {
                        "key": key,
                        "name": key,
                        "schema": {"$ref": f"{SCHEMA_BASE}{kind}"},
                        "visibility": "VISIBILITY_READ_WRITE_VALUES",
                    },
                    "idempotency_key": f"omnicanal-definition-{key}",
                },
            )
            if response.status_code not in (200, 409):  # 409: someone made it meanwhile
                self._fail_whole(response, f"creating the custom attribute definition {key!r}")
            self._definitions.add(key)

    def _value(self, key: str, value: Any) -> Any:
        kind = self.attribute_types.get(key, "String")
        if kind == "Boolean":
            return bool(value)
        return str(value)

    # -- rows --------------------------------------------------------------------------

    def _membership(self, method: str, row: Row) -> str | None:
        """Add or take the row out of the group: None when done, else Square's reason."""
        if self.group_id is None:
            self.check()
        doing = "adding a customer to the group" if method == "PUT" else "removing one"
        response = self._request(method, f"/v2/customers/{row.key}/groups/{self.group_id}", doing)
        if response.status_code == 200:
            return None
        errors = _errors(response)
        if response.status_code == 404 and any(e.get("field") == "group_id" for e in errors):
            raise SyncError(
                f"the Square customer group {self.group!r} was deleted during the run; run "
                "the sync again to recreate it"
            )
        return _reason(errors)

    def upsert(self, rows: list[Row]) -> list[Outcome]:
        reasons: dict[str, str] = {}
        for row in rows:
            reason = self._membership("PUT", row)
            if reason:
                reasons[row.key] = reason
        attributes = [
            (row, key, value)
            for row in rows
            if row.key not in reasons
            for key, value in row.payload.items()
            if value is not None
        ]
        if attributes:
            self._ensure_definitions({key for _, key, _ in attributes})
        for start in range(0, len(attributes), MAX_BULK_UPSERTS):
            chunk = attributes[start : start + MAX_BULK_UPSERTS]
            values = {
                f"u{i}": {
                    "customer_id": row.key,
                    "custom_attribute": {"key": key, "value": self._value(key, value)},
                }
                for i, (row, key, value) in enumerate(chunk)
            }
            response = self._request(
                "POST",
                "/v2/customers/custom-attributes/bulk-upsert",
                "setting custom attributes",
                json={"values": values},
            )
            if response.status_code != 200:
                self._fail_whole(response, "setting custom attributes")
            answers = response.json().get("values") or {}
            for i, (row, key, _) in enumerate(chunk):
                answer = answers.get(f"u{i}")
                if answer is None:
                    reasons.setdefault(row.key, "")  # no answer: leave the row pending
                elif answer.get("errors"):
                    reason = f"{key}: {_reason(answer['errors'])}"
                    reasons[row.key] = "; ".join(r for r in (reasons.get(row.key), reason) if r)
        outcomes = []
        for row in rows:
            reason = reasons.get(row.key)
            if reason is None:
                outcomes.append(Outcome(row.key, True))
            elif reason:
                outcomes.append(Outcome(row.key, False, reason))
        return outcomes

    def remove(self, rows: list[Row]) -> list[Outcome]:
        """Take each row out of the group; a profile Square no longer has is out already."""
        outcomes = []
        for row in rows:
            reason = self._membership("DELETE", row)
            gone = reason is not None and reason.startswith("NOT_FOUND")
            outcomes.append(Outcome(row.key, reason is None or gone, None if gone else reason))
        return outcomes
