"""Marketing API emulation of one ad account's customer-file custom audiences.

Serves what an advertiser's audience sync calls, the way the Graph API does, so our
destination and Meta's own SDK (``facebook-business``: ``AdAccount.create_custom_audience``,
``CustomAudience.add_users`` / ``remove_users``) run unchanged against it. On the Graph
parts every Meta emulation shares (:mod:`omnicanal.channels.meta`):

- **paths** under a Graph version (up to the newest, v26.0; older than the oldest served
  is code 2635, a malformed or future one code 2500);
- **auth**: ``access_token`` in the query or body, or ``Authorization: Bearer``/``OAuth``;
  none is code 104, a wrong one code 190 (``OAuthException``, HTTP 400 with
  ``WWW-Authenticate``), an expired one 190 subcode 463;
- ``GET /act_{id}/customaudiences`` (``fields``, ``limit``, cursor paging) and ``POST``
  (``name`` required; ``subtype`` CUSTOM; ``customer_file_source`` required, one of
  USER_PROVIDED_ONLY, PARTNER_PROVIDED_ONLY, BOTH_USER_AND_PARTNER_PROVIDED) answering
  ``{"id"}``; another account is code 100 subcode 33;
- ``GET /{audience-id}`` (``fields``: id, account_id, name, description, subtype,
  customer_file_source, approximate_count_lower_bound / _upper_bound, data_source,
  operation_status, delivery_status, time_created, time_updated, retention_days);
  ``DELETE /{audience-id}``; an unknown audience is code 100 subcode 33
  ("Unsupported get/post/delete request");
- ``POST`` / ``DELETE /{audience-id}/users`` and ``POST /{audience-id}/usersreplace`` take
  ``payload={"schema", "data"}`` (form field holding JSON, as the SDK sends it, or a JSON
  body; on DELETE in the query or the body) and an optional ``session`` object
  ``{session_id, batch_seq, last_batch_flag, estimated_num_total}`` (required for
  ``usersreplace``). The schema is one key (``EMAIL_SHA256``, ``PHONE_SHA256``,
  ``MOBILE_ADVERTISER_ID``: ``data`` a list of strings) or a list of multi-key names
  (``EXTERN_ID``, ``EMAIL``/``EMAIL_SHA256``, ``PHONE``/``PHONE_SHA256``, ``GEN``,
  ``DOBY``, ``DOBM``, ``DOBD``, ``LN``, ``FN``, ``FI``, ``CT``, ``ST``, ``ZIP``,
  ``COUNTRY``, ``MADID``: ``data`` a list of rows as long as the schema); an audience
  fed one kind refuses the other (code 2650, as Meta does). At most 10,000 rows a
  request (code 100). Each row's PII values must be SHA-256 as 64 lower-case hex digits
  (or empty); a row with a malformed value, or with no value at all, is an invalid entry:
  counted in ``num_invalid_entries``, sampled in ``invalid_entry_samples``
  (``{value: reason}``) and not stored. The answer is ``{audience_id, session_id,
  num_received, num_invalid_entries, invalid_entry_samples}``;
- **replace sessions**: ``usersreplace`` batches of one ``session_id`` (``batch_seq`` from
  1, each once) collect the new membership; the batch with ``last_batch_flag`` swaps it
  in. While one is open, ``/users`` writes are refused (code 2650); a session open for
  more than 90 minutes has expired (code 100);
- **throttling**: every answer carries ``X-App-Usage``, ``X-Business-Use-Case-Usage``
  (``type: custom_audience`` for the ad account: ``call_count``, ``total_cputime``,
  ``total_time``, ``estimated_time_to_regain_access`` in minutes) and
  ``X-Ad-Account-Usage`` (``acc_id_util_pct``, ``reset_time_duration`` in seconds,
  ``ads_api_access_tier``); ``X-FB-Ads-Insights-Throttle`` belongs to the Insights API
  and is not sent here. At 100 % of the hourly
  budget calls are refused with code 80003 ("There have been too many calls to this
  ad-account…", HTTP 400, ``is_transient``);
- **faults** for tests: ``fail_next(n, status)`` (429 with ``Retry-After``, or 5xx with
  Graph's transient body), ``rate_limit_next(n, code)`` (80003, 17, 613 or 4),
  ``expire_token()`` / ``renew_token()``, ``force_usage(percent)``.

What each audience holds is exposed for tests: :meth:`MetaAdsEmulator.users` (the stored
rows, by multi-key name, hashed as sent) and :meth:`MetaAdsEmulator.hashes`.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import Match

from omnicanal.channels import meta
from omnicanal.channels.meta import GraphError, UsageMeter
from omnicanal.channels.meta_ads import (
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_AD_ACCOUNT_ID,
    SANDBOX_AUDIENCE_ID,
    SANDBOX_AUDIENCE_NAME,
)
from omnicanal.sandbox.throttle import Clock

#: Rows Meta takes in one ``/users`` or ``/usersreplace`` request.
MAX_USERS_PER_REQUEST = 10_000
#: A replace session must end (``last_batch_flag``) within this long of its first batch.
REPLACE_SESSION_SECONDS = 90 * 60
#: Hourly budgets behind the usage headers: the app's, and the ad account's
#: ``custom_audience`` business use case (190,000 for a Standard-tier app).
DEFAULT_APP_CALLS_PER_HOUR = 200_000
DEFAULT_ACCOUNT_CALLS_PER_HOUR = 190_000
#: Invalid entries sampled in an answer.
INVALID_SAMPLES = 10

SINGLE_KEYS = ("EMAIL_SHA256", "PHONE_SHA256", "MOBILE_ADVERTISER_ID")
#: Multi-key schema names, and the name a value is stored under (the hashed aliases).
MULTI_KEYS = {
    "EXTERN_ID": "EXTERN_ID",
    "EMAIL": "EMAIL",
    "EMAIL_SHA256": "EMAIL",
    "PHONE": "PHONE",
    "PHONE_SHA256": "PHONE",
    "GEN": "GEN",
    "DOBY": "DOBY",
    "DOBM": "DOBM",
    "DOBD": "DOBD",
    "LN": "LN",
    "FN": "FN",
    "FI": "FI",
    "CT": "CT",
    "ST": "ST",
    "ZIP": "ZIP",
    "COUNTRY": "COUNTRY",
    "MADID": "MADID",
}
_SINGLE_STORED = {"EMAIL_SHA256": "EMAIL", "PHONE_SHA256": "PHONE", "MOBILE_ADVERTISER_ID": "MADID"}
#: Values sent as they are (ids), not hashed.
UNHASHED = {"EXTERN_ID", "MADID"}
#: Keys that identify a person on their own: a row is stored (and removed) by these.
IDENTIFIERS = ("EXTERN_ID", "EMAIL", "PHONE", "MADID")
CUSTOMER_FILE_SOURCES = (
    "USER_PROVIDED_ONLY",
    "PARTNER_PROVIDED_ONLY",
    "BOTH_USER_AND_PARTNER_PROVIDED",
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_AUDIENCE_ID = re.compile(r"238\d{14}")

_AUDIENCE_FIELDS = (
    "id",
    "account_id",
    "name",
    "description",
    "subtype",
    "customer_file_source",
    "approximate_count_lower_bound",
    "approximate_count_upper_bound",
    "data_source",
    "operation_status",
    "delivery_status",
    "time_created",
    "time_updated",
    "retention_days",
)


def unsupported(method: str, node: str) -> GraphError:
    """Code 100 subcode 33: the node does not exist or the token may not touch it."""
    return GraphError(
        f"Unsupported {method.lower()} request. Object with ID '{node}' does not exist, "
        "cannot be loaded due to missing permissions, or does not support this operation. "
        "Please read the Graph API documentation at "
        "https://developers.facebook.com/docs/graph-api",
        code=100,
        subcode=33,
        type="GraphMethodException",
    )


def throttled(code: int = 80003) -> GraphError:
    messages = {
        80003: "(#80003) There have been too many calls to this ad-account. Wait a bit and "
        "try again. For more info, please refer to "
        "https://developers.facebook.com/docs/graph-api/overview/rate-limiting"
        "#custom-audience.",
        17: "(#17) User request limit reached",
        613: "(#613) Calls to this api have exceeded the rate limit.",
        4: "(#4) Application request limit reached",
    }
    if code not in messages:
        raise ValueError(f"custom audience throttling codes are {sorted(messages)}, not {code}")
    return GraphError(messages[code], code=code, is_transient=True)


def audience_update_failed(reason: str) -> GraphError:
    return GraphError(f"(#2650) Failed to update the custom audience: {reason}", code=2650)


class Audience:
    """One customer-file custom audience and the rows it holds (by identity)."""

    def __init__(self, info: dict[str, Any], users: dict[str, dict[str, str]] | None = None):
        self.info = info
        #: identity ("EMAIL:<hash>") → the stored row, {multi-key name: value}
        self.users: dict[str, dict[str, str]] = users or {}
        #: (key, value) → identity, for removal by any identifier
        self.index: dict[tuple[str, str], str] = {}
        for identity, row in self.users.items():
            self._index(identity, row)
        self.replace: dict[str, Any] | None = None

    def _index(self, identity: str, row: dict[str, str]) -> None:
        for key in IDENTIFIERS:
            if row.get(key):
                self.index[(key, row[key])] = identity

    def _unindex(self, row: dict[str, str]) -> None:
        for key in IDENTIFIERS:
            if row.get(key):
                self.index.pop((key, row[key]), None)

    @staticmethod
    def identity(row: dict[str, str]) -> str:
        for key in IDENTIFIERS:
            if row.get(key):
                return f"{key}:{row[key]}"
        raise AssertionError("a stored row has an identifier")  # pragma: no cover

    def matching(self, row: dict[str, str]) -> set[str]:
        return {
            self.index[(key, row[key])]
            for key in IDENTIFIERS
            if row.get(key) and (key, row[key]) in self.index
        }

    def add(self, row: dict[str, str]) -> None:
        # A row that shares an identifier with stored ones is the same person: it replaces them.
        for identity in self.matching(row):
            self._unindex(self.users.pop(identity))
        identity = self.identity(row)
        self.users[identity] = row
        self._index(identity, row)

    def remove(self, row: dict[str, str]) -> None:
        for identity in self.matching(row):
            self._unindex(self.users.pop(identity))

    def swap_in(self, rows: dict[str, dict[str, str]]) -> None:
        self.users = {}
        self.index = {}
        for row in rows.values():
            self.add(row)


class MetaAdsEmulator:
    """The emulated Marketing API of one ad account's custom audiences."""

    def __init__(
        self,
        *,
        access_token: str = SANDBOX_ACCESS_TOKEN,
        ad_account_id: str = SANDBOX_AD_ACCOUNT_ID,
        audience_ids: tuple[str, ...] = (SANDBOX_AUDIENCE_ID,),
        state_path: str | Path | None = None,
        app_calls_per_hour: int | None = DEFAULT_APP_CALLS_PER_HOUR,
        account_calls_per_hour: int | None = DEFAULT_ACCOUNT_CALLS_PER_HOUR,
        clock: Clock = time.monotonic,
    ) -> None:
        self.access_token = access_token
        self.ad_account_id = ad_account_id
        self.token_expired_at: datetime | None = None
        self.app_usage = UsageMeter(app_calls_per_hour, clock)
        self.account_usage = UsageMeter(account_calls_per_hour, clock)
        self._faults: deque[tuple[str, int]] = deque()
        self._lock = threading.RLock()
        self.audiences: dict[str, Audience] = {}
        self.state_path = Path(state_path) if state_path else None
        if self.state_path and self.state_path.exists():
            self._load_state()
        for number, audience_id in enumerate(audience_ids):
            if audience_id not in self.audiences:
                name = SANDBOX_AUDIENCE_NAME if number == 0 else f"omnicanal-{audience_id}"
                self.add_audience(name, audience_id=audience_id)
        #: ``estimated_time_to_regain_access`` (minutes) reported once the budget is spent
        self.regain_minutes = 1
        self.request_count = 0
        #: (method, path, rows received) of each users write, for tests and benches
        self.write_log: list[tuple[str, str, int]] = []
        self.router = self._build_router()

    # -- test controls and views ---------------------------------------------------------

    def add_audience(
        self,
        name: str,
        *,
        audience_id: str | None = None,
        description: str = "",
        customer_file_source: str = "USER_PROVIDED_ONLY",
    ) -> str:
        """Create an empty customer-file audience (as ``POST act_{id}/customaudiences``)."""
        with self._lock:
            audience_id = audience_id or f"238{secrets.randbelow(10**14):014d}"
            now = int(time.time())
            self.audiences[audience_id] = Audience(
                {
                    "id": audience_id,
                    "account_id": self.ad_account_id,
                    "name": name,
                    "description": description,
                    "subtype": "CUSTOM",
                    "customer_file_source": customer_file_source,
                    "data_source": {"type": "UNKNOWN", "sub_type": "ANYTHING"},
                    "time_created": now,
                    "time_updated": now,
                    "retention_days": 0,
                }
            )
            self._save_state()
            return audience_id

    def users(self, audience_id: str = SANDBOX_AUDIENCE_ID) -> list[dict[str, str]]:
        """Copies of the rows the audience holds: ``{multi-key name: value as sent}``."""
        with self._lock:
            return copy.deepcopy(list(self.audiences[audience_id].users.values()))

    def hashes(self, audience_id: str = SANDBOX_AUDIENCE_ID, key: str = "EMAIL") -> set[str]:
        """The values of one key (``EMAIL``, ``PHONE``…) the audience holds."""
        with self._lock:
            return {row[key] for row in self.audiences[audience_id].users.values() if row.get(key)}

    def reset_log(self) -> None:
        with self._lock:
            self.write_log.clear()

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` authenticated requests with ``status`` (429 or 5xx)."""
        with self._lock:
            self._faults.extend([("status", status)] * n)

    def rate_limit_next(self, n: int = 1, code: int = 80003) -> None:
        """Refuse the next ``n`` requests with a throttling error ``code``."""
        throttled(code)  # validates the code
        with self._lock:
            self._faults.extend([("throttle", code)] * n)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
        self.app_usage.force(None)
        self.account_usage.force(None)

    def force_usage(self, percent: int | None) -> None:
        """Report ``percent`` of the ad account's budget used; 100 refuses calls."""
        self.account_usage.force(percent)

    def expire_token(self, at: datetime | None = None) -> None:
        self.token_expired_at = at or datetime.now(UTC) - timedelta(minutes=1)

    def renew_token(self) -> None:
        self.token_expired_at = None

    # -- state ---------------------------------------------------------------------------

    def _load_state(self) -> None:
        data = json.loads(self.state_path.read_text())
        for item in data.get("audiences", []):
            self.audiences[item["info"]["id"]] = Audience(item["info"], item["users"])

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        data = {
            "audiences": [
                {"info": audience.info, "users": audience.users}
                for audience in self.audiences.values()
            ]
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.state_path)

    # -- the guard -----------------------------------------------------------------------

    def _usage_headers(self, app: int, account: int) -> dict[str, str]:
        regain = 0 if account < 100 else self.regain_minutes
        return {
            "X-App-Usage": UsageMeter.app_usage_header(app),
            "X-Business-Use-Case-Usage": json.dumps(
                {
                    self.ad_account_id: [
                        {
                            "type": "custom_audience",
                            "call_count": account,
                            "total_cputime": account,
                            "total_time": account,
                            "estimated_time_to_regain_access": regain,
                        }
                    ]
                }
            ),
            # the Marketing API's per-ad-account utilisation (reset in seconds)
            "X-Ad-Account-Usage": json.dumps(
                {
                    "acc_id_util_pct": account,
                    "reset_time_duration": regain * 60,
                    "ads_api_access_tier": "standard_access",
                }
            ),
        }

    def _guard(self, params: dict[str, Any], request: Request) -> dict[str, str]:
        """Authenticate, meter and inject faults; raise the Graph error to answer."""
        self.request_count += 1
        token = params.get("access_token") or meta.request_token(request)
        if not token:
            raise meta.missing_token()
        if not secrets.compare_digest(str(token), self.access_token):
            raise meta.invalid_token()
        if self.token_expired_at is not None:
            raise meta.expired_token(self.token_expired_at)
        app = self.app_usage.record()
        account = self.account_usage.record()
        headers = self._usage_headers(app, account)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault and fault[0] == "status":
            error = meta.server_error(fault[1]) if fault[1] >= 500 else throttled(80003)
            error.status = fault[1]
            if fault[1] == 429:
                error.headers["Retry-After"] = "1"
            error.headers.update(headers)
            raise error
        if fault and fault[0] == "throttle":
            error = throttled(fault[1])
            error.headers.update(self._usage_headers(app, 100))
            raise error
        if app >= 100:
            error = throttled(4)
            error.headers.update(headers)
            raise error
        if account >= 100:
            error = throttled(80003)
            error.headers.update(headers)
            raise error
        return headers

    # -- requests ------------------------------------------------------------------------

    @staticmethod
    async def _params(request: Request) -> dict[str, Any]:
        """Graph reads parameters from the query and the body (form or JSON) alike."""
        params: dict[str, Any] = dict(request.query_params)
        body = await request.body()
        if body:
            kind = request.headers.get("content-type", "")
            if "json" in kind:
                try:
                    data = json.loads(body)
                except ValueError:
                    raise meta.invalid_parameter("The request body is not valid JSON") from None
                if isinstance(data, dict):
                    params.update(data)
            elif "multipart" in kind:
                # curl -F, as Meta's examples send it: 10,000 hashed rows exceed 1 MB
                form = await request.form(max_part_size=64 * 1024 * 1024)
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
            else:
                params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        return params

    @staticmethod
    def _json_param(params: dict[str, Any], name: str) -> Any:
        value = params.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise meta.invalid_parameter(f"Param {name} must be a JSON object") from None
        return value

    def _audience(self, method: str, audience_id: str) -> Audience:
        audience = self.audiences.get(audience_id)
        if audience is None:
            raise unsupported(method, audience_id)
        return audience

    def _render(self, audience: Audience, fields: list[meta.FieldSpec]) -> dict[str, Any]:
        names = [f.name for f in fields] or ["id"]
        out: dict[str, Any] = {}
        for name in names:
            if name not in _AUDIENCE_FIELDS:
                raise meta.invalid_parameter(
                    f"Tried accessing nonexisting field ({name}) on node type (CustomAudience)"
                )
            count = len(audience.users)
            if name == "approximate_count_lower_bound":
                out[name] = count
            elif name == "approximate_count_upper_bound":
                out[name] = count
            elif name == "operation_status":
                out[name] = {"code": 200, "description": "Normal"}
            elif name == "delivery_status":
                if count < 1000:
                    out[name] = {"code": 300, "description": "This audience is too small."}
                else:
                    out[name] = {"code": 200, "description": "This audience is ready for use."}
            else:
                out[name] = audience.info.get(name)
        out.setdefault("id", audience.info["id"])
        return out

    def _rows(self, audience: Audience, payload: Any) -> tuple[list[dict[str, str]], dict]:
        """The payload's valid rows as stored, and the invalid-entry report."""
        if not isinstance(payload, dict):
            raise meta.invalid_parameter("The parameter payload is required")
        schema, data = payload.get("schema"), payload.get("data")
        if schema is None or data is None:
            raise meta.invalid_parameter("Param payload must have a schema and data")
        if isinstance(schema, str):
            if schema not in SINGLE_KEYS:
                raise meta.invalid_parameter(
                    f"Param payload[schema] must be one of {{{', '.join(SINGLE_KEYS)}}} or a "
                    f"list of multi-key names, got {schema!r}"
                )
            kind = "HASHES_OR_USER_IDS"
            names = [_SINGLE_STORED[schema]]
            rows = [[value] for value in data] if isinstance(data, list) else None
        elif isinstance(schema, list) and schema:
            unknown = [key for key in schema if key not in MULTI_KEYS]
            if unknown:
                raise meta.invalid_parameter(
                    f"Param payload[schema] has unsupported key(s) {', '.join(map(str, unknown))}"
                )
            names = [MULTI_KEYS[key] for key in schema]
            if len(set(names)) != len(names):
                raise meta.invalid_parameter("Param payload[schema] names a key twice")
            kind = "MULTI_HASHES"
            rows = data if isinstance(data, list) else None
        else:
            raise meta.invalid_parameter("Param payload[schema] must be a string or a list")
        if rows is None:
            raise meta.invalid_parameter("Param payload[data] must be an array")
        if not rows:
            raise meta.invalid_parameter("Param payload[data] must not be empty")
        if len(rows) > MAX_USERS_PER_REQUEST:
            raise meta.invalid_parameter(
                f"Too many users in one request: payload[data] has {len(rows)} rows and at "
                f"most {MAX_USERS_PER_REQUEST} are accepted. Split the upload into several "
                "requests (a session)."
            )
        source = audience.info["data_source"]
        if source["type"] == "FILE_IMPORTED" and source["sub_type"] != kind:
            raise audience_update_failed(
                f"This audience was created from data source FILE_IMPORTED.{source['sub_type']}, "
                f"which does not support data source FILE_IMPORTED.{kind}."
            )
        valid: list[dict[str, str]] = []
        invalid = 0
        samples: dict[str, str] = {}
        for number, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(names):
                raise meta.invalid_parameter(
                    f"Row {number} of payload[data] has "
                    f"{len(row) if isinstance(row, list) else 1} values; the schema has "
                    f"{len(names)} keys"
                )
            stored: dict[str, str] = {}
            reason = None
            for name, value in zip(names, row, strict=True):
                text = "" if value is None else str(value)
                if not text:
                    continue
                if name not in UNHASHED and not _SHA256.fullmatch(text):
                    reason = (
                        f"{name} must be a SHA-256 hash (64 lower-case hex characters); "
                        "normalise and hash the value before sending it"
                    )
                    if len(samples) < INVALID_SAMPLES:
                        samples.setdefault(text, reason)
                    break
                stored[name] = text
            if reason is None and not any(stored.get(key) for key in IDENTIFIERS):
                reason = "The row has no identifier (EMAIL, PHONE, EXTERN_ID or MADID)"
                if len(samples) < INVALID_SAMPLES:
                    samples.setdefault(json.dumps(row), reason)
            if reason is not None:
                invalid += 1
                continue
            valid.append(stored)
        if source["type"] != "FILE_IMPORTED":
            audience.info["data_source"] = {"type": "FILE_IMPORTED", "sub_type": kind}
        return valid, {
            "num_received": len(rows),
            "num_invalid_entries": invalid,
            "invalid_entry_samples": samples,
        }

    @staticmethod
    def _session(params: dict[str, Any], required: bool) -> dict[str, Any] | None:
        raw = MetaAdsEmulator._json_param(params, "session")
        if raw is None:
            if required:
                raise meta.invalid_parameter("The parameter session is required")
            return None
        if not isinstance(raw, dict):
            raise meta.invalid_parameter("Param session must be an object")
        try:
            session_id = int(raw["session_id"])
            batch_seq = int(raw.get("batch_seq", 1))
        except (KeyError, TypeError, ValueError):
            raise meta.invalid_parameter(
                "Param session must have a numeric session_id and batch_seq"
            ) from None
        if session_id <= 0 or batch_seq <= 0:
            raise meta.invalid_parameter("session_id and batch_seq must be positive integers")
        last = raw.get("last_batch_flag", False)
        if isinstance(last, str):
            last = last.lower() == "true"
        return {
            "session_id": session_id,
            "batch_seq": batch_seq,
            "last_batch_flag": bool(last),
            "estimated_num_total": raw.get("estimated_num_total"),
        }

    def _write(self, method: str, audience_id: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            audience = self._audience("post" if method == "POST" else "delete", audience_id)
            if audience.replace is not None and not self._replace_expired(audience):
                raise audience_update_failed(
                    "A replace session is in progress for this audience; wait for it to end "
                    "before adding or removing users."
                )
            session = self._session(params, required=False)
            payload = self._json_param(params, "payload")
            rows, report = self._rows(audience, payload)
            for row in rows:
                (audience.add if method == "POST" else audience.remove)(row)
            audience.info["time_updated"] = int(time.time())
            self.write_log.append((method, f"/{audience_id}/users", report["num_received"]))
            self._save_state()
        session_id = session["session_id"] if session else secrets.randbelow(10**15) + 1
        return {"audience_id": audience_id, "session_id": str(session_id), **report}

    def _replace_expired(self, audience: Audience) -> bool:
        replace = audience.replace
        if replace is not None and time.monotonic() - replace["started"] > REPLACE_SESSION_SECONDS:
            audience.replace = None
            return True
        return False

    def _replace(self, audience_id: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            audience = self._audience("post", audience_id)
            session = self._session(params, required=True)
            payload = self._json_param(params, "payload")
            current = audience.replace
            if current is not None and self._replace_expired(audience):
                if current["session_id"] == session["session_id"]:
                    raise meta.invalid_parameter(
                        "The replace session has expired: a session must end within 90 "
                        "minutes of its first batch. Start a new session."
                    )
                current = None
            if current is not None and current["session_id"] != session["session_id"]:
                raise audience_update_failed(
                    f"Another replace session ({current['session_id']}) is in progress for "
                    "this audience."
                )
            if current is None:
                current = audience.replace = {
                    "session_id": session["session_id"],
                    "started": time.monotonic(),
                    "seen": set(),
                    "rows": Audience({"id": audience_id}),
                }
            if session["batch_seq"] in current["seen"]:
                raise meta.invalid_parameter(
                    f"batch_seq {session['batch_seq']} was already received in session "
                    f"{session['session_id']}"
                )
            rows, report = self._rows(audience, payload)
            current["seen"].add(session["batch_seq"])
            for row in rows:
                current["rows"].add(row)
            if session["last_batch_flag"]:
                audience.swap_in(current["rows"].users)
                audience.replace = None
            audience.info["time_updated"] = int(time.time())
            self.write_log.append(("POST", f"/{audience_id}/usersreplace", len(rows)))
            self._save_state()
        return {
            "account_id": self.ad_account_id,
            "session_id": str(session["session_id"]),
            **report,
        }

    # -- router --------------------------------------------------------------------------

    def _build_router(self) -> APIRouter:
        router = APIRouter(tags=["meta_ads"])

        def check_version(version: str, rest: str) -> None:
            parsed = meta.version_tuple(version)
            if parsed is None or parsed > meta.version_tuple(meta.GRAPH_API_VERSION):
                raise meta.unknown_path(f"{version}/{rest}")
            if parsed < meta.version_tuple(meta.OLDEST_GRAPH_VERSION):
                raise GraphError(
                    f"(#2635) You are calling a deprecated version of the Graph API. Please "
                    f"update to the latest version: {meta.GRAPH_API_VERSION}.",
                    code=2635,
                )

        def handler(work):
            async def endpoint(request: Request) -> JSONResponse:
                headers: dict[str, str] = {}
                path = request.path_params
                try:
                    check_version(path["version"], request.url.path)
                    params = await self._params(request)
                    headers = self._guard(params, request)
                    body = work(request, params, path)
                    return JSONResponse(body, headers=headers)
                except GraphError as error:
                    return error.response(headers)

            return endpoint

        def account(path: dict[str, str], method: str) -> None:
            if path["account_id"] != self.ad_account_id:
                raise unsupported(method, f"act_{path['account_id']}")

        def list_audiences(request, params, path):
            account(path, "get")
            specs = meta.parse_fields(params.get("fields"))
            with self._lock:
                items = list(self.audiences.values())
            limit = meta.page_limit(params.get("limit"))
            page, paging = meta.cursor_page(
                items,
                limit=limit,
                after=params.get("after"),
                before=params.get("before"),
                url=f"{str(request.base_url).rstrip('/')}{request.url.path}",
                params={k: str(v) for k, v in params.items()},
            )
            body: dict[str, Any] = {"data": [self._render(a, specs) for a in page]}
            if paging:
                body["paging"] = paging
            return body

        def create_audience(request, params, path):
            account(path, "post")
            name = str(params.get("name") or "").strip()
            if not name:
                raise meta.invalid_parameter("The parameter name is required")
            subtype = str(params.get("subtype") or "CUSTOM").upper()
            if subtype != "CUSTOM":
                raise meta.invalid_parameter(
                    f"Param subtype must be CUSTOM for a customer file audience, got {subtype}"
                )
            source = str(params.get("customer_file_source") or "").upper()
            if source not in CUSTOMER_FILE_SOURCES:
                raise meta.invalid_parameter(
                    "Param customer_file_source must be one of {"
                    + ", ".join(CUSTOMER_FILE_SOURCES)
                    + "} for a customer file custom audience"
                )
            audience_id = self.add_audience(
                name,
                description=str(params.get("description") or ""),
                customer_file_source=source,
            )
            return {"id": audience_id}

        def read_audience(request, params, path):
            with self._lock:
                audience = self._audience("get", path["audience_id"])
                return self._render(audience, meta.parse_fields(params.get("fields")))

        def delete_audience(request, params, path):
            with self._lock:
                self._audience("delete", path["audience_id"])
                del self.audiences[path["audience_id"]]
                self._save_state()
            return {"success": True}

        def add_users(request, params, path):
            return self._write("POST", path["audience_id"], params)

        def remove_users(request, params, path):
            return self._write("DELETE", path["audience_id"], params)

        def replace_users(request, params, path):
            return self._replace(path["audience_id"], params)

        route = _route_for(self.owns)
        for path, method, work in (
            ("/{version}/act_{account_id}/customaudiences", "GET", list_audiences),
            ("/{version}/act_{account_id}/customaudiences", "POST", create_audience),
            ("/{version}/{audience_id}", "GET", read_audience),
            ("/{version}/{audience_id}", "DELETE", delete_audience),
            ("/{version}/{audience_id}/users", "POST", add_users),
            ("/{version}/{audience_id}/users", "DELETE", remove_users),
            ("/{version}/{audience_id}/usersreplace", "POST", replace_users),
        ):
            router.add_api_route(
                path,
                handler(work),
                methods=[method],
                route_class_override=route,
                include_in_schema=False,
            )
        return router

    def owns(self, params: dict[str, str]) -> bool:
        """Whether a path is this emulation's: a Graph version and an ad account or a
        custom audience id (Meta's 17-digit ``238…``; unknown ones answer code 100/33).

        Instagram and WhatsApp share the Graph URL space and claim only their own nodes.
        """
        if not meta.VERSION_PATTERN.fullmatch(params.get("version", "")):
            return False
        if "account_id" in params:
            return params["account_id"].isdigit()
        node = params.get("audience_id", "")
        return node in self.audiences or bool(_AUDIENCE_ID.fullmatch(node))


def _route_for(owns: Any) -> type[APIRoute]:
    class OwnNodesRoute(APIRoute):
        """A Graph route that matches only the nodes this emulation answers for."""

        def matches(self, scope: Any) -> tuple[Match, dict[str, Any]]:
            match, child = super().matches(scope)
            if match is not Match.NONE and not owns(child.get("path_params", {})):
                return Match.NONE, {}
            return match, child

    return OwnNodesRoute
