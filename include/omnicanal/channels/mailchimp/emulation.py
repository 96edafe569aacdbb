"""Mailchimp Marketing API v3 emulation: the audience the sync writes, and what tap-mailchimp reads.

Serves, under ``/3.0``, the endpoints the reverse-ETL sync writes through and the ones
tap-mailchimp reads, with Mailchimp's shapes and rules. Two kinds of audience live in
it: the sync audience (``omnicanal-demo``), which starts empty and keeps its members in
a state file, and the retailer's own newsletter audiences, campaigns and reports from
the world (:mod:`.world`), which are never written to the state file.

- HTTP Basic auth with any user name and the API key as password (``Bearer`` is also
  accepted); errors are problem JSON (``type``, ``title``, ``status``, ``detail``,
  ``instance``);
- ``POST /lists/{id}`` batch subscribe/update (at most 500 members). Its member schema
  has ``status`` (required) and no ``status_if_new``: a body with a member lacking
  ``status`` is refused whole (400, ``errors`` naming ``members.item:N``), a
  ``status_if_new`` there is ignored, and ``update_existing`` sets existing members'
  status. Per-member errors: fake-looking or invalid emails, undefined merge fields,
  ``ERROR_CONTACT_EXISTS`` when ``update_existing`` is false;
- ``PUT``/``PATCH``/``GET``/``DELETE`` (archive) ``/lists/{id}/members/{hash}`` and
  ``POST .../actions/delete-permanent``; the hash is the MD5 of the lower-cased email
  (an email address is accepted in its place, as Mailchimp does) and must match the
  body's ``email_address``. PUT takes ``status_if_new`` for a new member and changes an
  existing member's status only when ``status`` is given; ``tags`` in a PUT or PATCH
  body are not in the schema and are not applied (``POST /members`` takes them);
- ``GET``/``POST /lists/{id}/members/{hash}/tags`` (``[{name, status: active|inactive}]``,
  204);
- ``GET``/``POST /lists/{id}/merge-fields`` and ``GET .../merge-fields/{merge_id}``: an
  audience starts with FNAME, LNAME, ADDRESS, PHONE and BIRTHDAY; a value for a merge
  field the audience does not define (or a required one left empty) is a 400 "Invalid
  Resource", "Your merge fields were invalid.", with ``errors`` naming the field;
- addresses that look fake (reserved example/test domains, throwaway inboxes,
  placeholder names such as ``test@``) are refused with Mailchimp's "… looks fake or
  invalid, please enter a real email address.";
- ``GET /search-members?query=&list_id=``: ``exact_matches`` (the email) and
  ``full_search`` (part of the email or name);
- ``POST /batches`` (operations of ``method``, ``path``, ``params``, ``body`` as a JSON
  string, ``operation_id``), ``GET /batches``, ``GET``/``DELETE /batches/{id}``: batches
  run one at a time in the order they came, ``pending`` → ``started`` → ``finished``
  with ``total``/``finished``/``errored_operations``; a finished batch's
  ``response_body_url`` is a gzipped tar of JSON files, each an array of
  ``{status_code, operation_id, response}``, served without the API key as the real
  pre-signed link is. At most 500 batches may be pending (the next POST is a 429);
  Mailchimp documents no maximum of operations per batch;
- ``GET /lists`` and ``GET /lists/{id}/members`` with ``count`` (default 10, at most
  1000), ``offset`` and ``total_items``; members filter on ``status``,
  ``since_last_changed`` / ``before_last_changed`` and ``since_timestamp_opt`` /
  ``before_timestamp_opt`` (strictly after / before, ISO 8601) and sort on
  ``sort_field`` (``timestamp_opt``, ``timestamp_signup``, ``last_changed``) and
  ``sort_dir``;
- ``GET /campaigns`` (``status``, ``type``, ``list_id``, ``since_send_time`` /
  ``before_send_time``, ``since_create_time`` / ``before_create_time``, ``sort_field``
  ``create_time`` or ``send_time``) and ``GET /campaigns/{id}``;
- ``GET /reports/{campaign_id}/email-activity``: one entry per recipient with their
  ``activity`` (``open``, ``click``, ``bounce``), ``since`` keeping the actions strictly
  after it (and the recipients who have one); ``GET /reports/{campaign_id}/unsubscribed``;
- every GET takes ``fields`` / ``exclude_fields`` (comma-separated dot paths, e.g.
  ``members.email_address,total_items``);
- Mailchimp's limit of 10 simultaneous connections per key: the 11th open request is
  answered 429 with a problem body;
- like Mailchimp, a permanently deleted address cannot be re-imported by the API, an
  archived one comes back when it is added again, and a person who unsubscribed
  themselves (or bounced) cannot be subscribed by any API call, archived or not (400
  "Member In Compliance State").

For tests: ``members(list_id)`` shows what the audience holds, and ``write_calls`` /
``members_written`` count what was sent, so a test can assert an unchanged second sync
sent nothing. ``fail_next`` (429, 5xx, 401 for a revoked key, optionally after hanging
long enough for a client timeout), ``set_rate_limit`` (requests a second),
``max_connections`` and ``response_delay`` make it fail like the real service, also over
HTTP at ``POST /_sandbox/mailchimp/faults``; ``hold_batches`` keeps batches pending and
``batch_operation_delay`` slows each operation, so a test can watch a batch run;
``merge_fields(list_id)`` and ``tags(list_id, email)`` show the audience's fields and a
member's tags; ``touch_member`` changes a member as an edit
in Mailchimp would (``last_changed`` moves on).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import io
import json
import os
import queue
import re
import tarfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import URL, QueryParams

from omnicanal.channels.mailchimp import DEFAULT_LIST_ID, SANDBOX_API_KEY
from omnicanal.channels.mailchimp.world import MailchimpAccount, mailchimp_time, parse_time
from omnicanal.sandbox.throttle import Clock, FaultInjector, RequestWindow

MAX_BATCH_MEMBERS = 500
DEFAULT_COUNT = 10
MAX_COUNT = 1000
MEMBER_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
LISTABLE_STATUSES = (*MEMBER_STATUSES, "archived")
ERRORS_DOC = "https://mailchimp.com/developer/marketing/docs/errors/"
#: Mailchimp allows each API key 10 simultaneous connections; the next one gets a 429.
MAX_CONNECTIONS = 10
MEMBER_SORT_FIELDS = ("timestamp_opt", "timestamp_signup", "last_changed")
CAMPAIGN_SORT_FIELDS = ("create_time", "send_time")
CAMPAIGN_STATUSES = ("save", "paused", "schedule", "sending", "sent")
CAMPAIGN_TYPES = ("regular", "plaintext", "absplit", "rss", "variate")
FAULT_TITLES = {
    401: (
        "API Key Invalid",
        "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
    ),
    403: ("Forbidden", "You don't have permission to access this resource."),
    429: ("Too Many Requests", "You have exceeded the limit of 10 simultaneous connections."),
    500: (
        "Internal Server Error",
        "An unexpected internal error has occurred. Please contact Support for more information.",
    ),
    502: ("Bad Gateway", "The server received an invalid response. Please try again."),
    503: ("Service Unavailable", "The service is temporarily unavailable. Please try again."),
    504: ("Gateway Timeout", "The request timed out. Please try again."),
}

#: Mailchimp lets an account have 500 batches waiting at once; the next POST gets a 429.
MAX_PENDING_BATCHES = 500
BATCH_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: Operation results per JSON file of a batch's results archive.
BATCH_RESULTS_PER_FILE = 500
MERGE_FIELD_TYPES = (
    "text",
    "number",
    "address",
    "phone",
    "date",
    "url",
    "imageurl",
    "radio",
    "dropdown",
    "birthday",
    "zip",
)
#: The merge fields a new audience has: (tag, name, type).
DEFAULT_MERGE_FIELD_DEFS = (
    ("FNAME", "First Name", "text"),
    ("LNAME", "Last Name", "text"),
    ("ADDRESS", "Address", "address"),
    ("PHONE", "Phone Number", "phone"),
    ("BIRTHDAY", "Birthday", "birthday"),
)
_MERGE_TAG = re.compile(r"^[A-Z0-9_]{1,10}$")
TAG_STATUSES = ("active", "inactive")
INVALID_RESOURCE = (
    "The resource submitted could not be validated. For field-specific details, see the "
    "'errors' array."
)
#: Addresses Mailchimp refuses as fake-looking: reserved example/test domains (RFC 2606
#: and 6761), throwaway inbox services, and placeholder local parts.
FAKE_TLDS = {"test", "example", "invalid", "localhost"}
FAKE_DOMAINS = {
    "example.com",
    "example.net",
    "example.org",
    "test.com",
    "teste.com",
    "test.com.br",
    "teste.com.br",
    "mailinator.com",
    "yopmail.com",
    "guerrillamail.com",
    "sharklasers.com",
    "10minutemail.com",
    "trash-mail.com",
    "tempmail.com",
}
PLACEHOLDER_LOCAL_PARTS = {
    "test",
    "teste",
    "testing",
    "asdf",
    "qwerty",
    "fake",
    "noemail",
    "no-email",
    "nobody",
    "none",
    "null",
    "xxx",
    "foo",
    "foobar",
    "sample",
}

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
)
_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: MD5 hex digest of the lower-cased email address."""
    return _md5(email.lower())


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _valid_email(value: Any) -> bool:
    return isinstance(value, str) and bool(_EMAIL.match(value))


def looks_fake(email: str) -> bool:
    """True for an address Mailchimp refuses as "fake or invalid" although well formed."""
    local, _, domain = email.strip().lower().rpartition("@")
    if domain.rsplit(".", 1)[-1] in FAKE_TLDS:
        return True
    if any(domain == fake or domain.endswith(f".{fake}") for fake in FAKE_DOMAINS):
        return True
    return local in PLACEHOLDER_LOCAL_PARTS


def _fake_detail(email: Any) -> str:
    return f"{email} looks fake or invalid, please enter a real email address."


def _schema_problem(errors: list[tuple[str, str]]) -> Problem:
    """A body that fails Mailchimp's JSON schema: 400 with one entry per field."""
    return Problem(
        400,
        "Invalid Resource",
        INVALID_RESOURCE,
        [{"field": name, "message": message} for name, message in errors],
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def default_merge_fields(list_id: str) -> list[dict[str, Any]]:
    """The merge field definitions of a new audience."""
    return [
        _merge_field(list_id, i + 1, tag, name, kind, display_order=i + 2)
        for i, (tag, name, kind) in enumerate(DEFAULT_MERGE_FIELD_DEFS)
    ]


def _merge_field(
    list_id: str, merge_id: int, tag: str, name: str, kind: str, **extra: Any
) -> dict[str, Any]:
    return {
        "merge_id": merge_id,
        "tag": tag,
        "name": name,
        "type": kind,
        "required": bool(extra.get("required", False)),
        "default_value": str(extra.get("default_value") or ""),
        "public": bool(extra.get("public", True)),
        "display_order": int(extra.get("display_order") or merge_id + 1),
        "options": dict(extra.get("options") or {}),
        "help_text": str(extra.get("help_text") or ""),
        "list_id": list_id,
        "_links": [],
    }


class Problem(Exception):
    """An error answered as Mailchimp problem JSON."""

    def __init__(
        self, status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "type": ERRORS_DOC,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": str(uuid.uuid4()),
        }
        if self.errors:
            body["errors"] = self.errors
        headers = {"Retry-After": "1"} if self.status == 429 else None
        return JSONResponse(
            body, status_code=self.status, media_type="application/problem+json", headers=headers
        )


def _not_found() -> Problem:
    return Problem(404, "Resource Not Found", "The requested resource could not be found.")


def _invalid(detail: str, field_name: str | None = None) -> Problem:
    errors = [{"field": field_name, "message": detail}] if field_name else None
    return Problem(400, "Invalid Resource", detail, errors)


@dataclass
class Audience:
    """One Mailchimp list (audience) and the members it holds, keyed by subscriber hash."""

    id: str
    name: str
    date_created: str = field(default_factory=_now)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)  # permanently deleted hashes
    #: Members in a compliance state: they unsubscribed themselves (or bounced), and
    #: no API call may subscribe them again, archived or not.
    compliance: set[str] = field(default_factory=set)
    web_ids: int = 0
    #: False for the world's audiences: they are rebuilt from the world, not the state file.
    persist: bool = True
    #: The world's description of the audience (name, contact, defaults…), if it has one.
    info: dict[str, Any] | None = None
    campaign_count: int = 0
    #: The audience's merge field definitions (``GET /lists/{id}/merge-fields``).
    merge_fields: list[dict[str, Any]] = field(default_factory=list)
    #: Tag name -> tag id, and when each member got each of its tags.
    tag_ids: dict[str, int] = field(default_factory=dict)
    tag_added: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.merge_fields:
            self.merge_fields = default_merge_fields(self.id)

    def merge_field(self, tag: str) -> dict[str, Any] | None:
        """The merge field with ``tag`` (merge tags are matched case-insensitively)."""
        wanted = tag.upper()
        return next((f for f in self.merge_fields if f["tag"] == wanted), None)

    def tag_id(self, name: str) -> int:
        if name not in self.tag_ids:
            self.tag_ids[name] = len(self.tag_ids) + 1
        return self.tag_ids[name]

    def summary(self) -> dict[str, Any]:
        counts = {s: 0 for s in LISTABLE_STATUSES}
        for member in self.members.values():
            counts[member["status"]] += 1
        stamps = {"subscribed": [], "unsubscribed": []}
        for member in self.members.values():
            if member["status"] in stamps and member["last_changed"]:
                stamps[member["status"]].append(member["last_changed"])
        stats = {
            "member_count": counts["subscribed"],
            "unsubscribe_count": counts["unsubscribed"],
            "cleaned_count": counts["cleaned"],
            "total_contacts": sum(counts.values()) - counts["archived"],
            "member_count_since_send": counts["subscribed"],
            "unsubscribe_count_since_send": counts["unsubscribed"],
            "cleaned_count_since_send": counts["cleaned"],
            "campaign_count": self.campaign_count,
            "merge_field_count": len(self.merge_fields),
            "last_sub_date": max(stamps["subscribed"], default=""),
            "last_unsub_date": max(stamps["unsubscribed"], default=""),
        }
        if self.info is not None:
            return {**self.info, "stats": stats}
        return {
            "id": self.id,
            "web_id": int(_md5(self.id)[:6], 16),
            "name": self.name,
            "date_created": self.date_created,
            "email_type_option": False,
            "use_archive_bar": True,
            "visibility": "prv",
            "campaign_defaults": {
                "from_name": "omnicanal",
                "from_email": "contato@omnicanal.example",
                "subject": "",
                "language": "pt",
            },
            "stats": stats,
        }


@dataclass
class Batch:
    """One ``POST /batches`` request: its operations, progress and results."""

    id: str
    operations: list[dict[str, Any]]
    results_base: str
    status: str = "pending"
    finished_operations: int = 0
    errored_operations: int = 0
    submitted_at: str = field(default_factory=_now)
    completed_at: str = ""
    response_body_url: str = ""
    cancelled: bool = False

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "total_operations": len(self.operations),
            "finished_operations": self.finished_operations,
            "errored_operations": self.errored_operations,
            "submitted_at": self.submitted_at,
            "completed_at": self.completed_at,
            "response_body_url": self.response_body_url,
            "_links": [],
        }


class _OperationRequest:
    """What a route handler reads of a request, for a batch operation run in process."""

    def __init__(self, method: str, path: str, params: dict[str, Any], base_url: str) -> None:
        self.method = method
        self.url = URL(f"/3.0{path}")
        self.query_params = QueryParams({k: str(v) for k, v in params.items()})
        self.base_url = base_url


def _fault_problem(status: int) -> Problem:
    title, detail = FAULT_TITLES.get(status, FAULT_TITLES[500])
    return Problem(status, title, detail)


def _select(value: Any, include: list[str] | None, exclude: list[str] | None) -> Any:
    """Apply ``fields`` / ``exclude_fields`` (dot paths, lists traversed) to a response."""
    if include:
        value = _keep(value, [p.split(".") for p in include])
    if exclude:
        value = _drop(value, [p.split(".") for p in exclude])
    return value


def _keep(value: Any, paths: list[list[str]]) -> Any:
    if isinstance(value, list):
        return [_keep(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    kept: dict[str, Any] = {}
    for key in dict.fromkeys(p[0] for p in paths):
        if key not in value:
            continue
        rest = [p[1:] for p in paths if p[0] == key]
        kept[key] = value[key] if any(not r for r in rest) else _keep(value[key], rest)
    return kept


def _drop(value: Any, paths: list[list[str]]) -> Any:
    if isinstance(value, list):
        return [_drop(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    whole = {p[0] for p in paths if len(p) == 1}
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in whole:
            continue
        rest = [p[1:] for p in paths if p[0] == key and len(p) > 1]
        out[key] = _drop(item, rest) if rest else item
    return out


def _csv(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def _time_param(query: Any, name: str) -> datetime | None:
    """An ISO 8601 query parameter (a ``+`` decoded as a space is read back as ``+``)."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_time(raw.replace(" ", "+"))
    except ValueError:
        raise _invalid(
            f"{name} must be an ISO 8601 date-time such as 2015-10-21T15:41:36+00:00.", name
        ) from None


def _stamp(value: str) -> datetime | None:
    return parse_time(value) if value else None


class MailchimpEmulator:
    """The emulated Mailchimp account: its router, audiences, throttle and counters."""

    def __init__(
        self,
        *,
        api_key: str = SANDBOX_API_KEY,
        list_ids: tuple[str, ...] = (DEFAULT_LIST_ID,),
        max_requests_per_second: int | None = None,
        max_connections: int = MAX_CONNECTIONS,
        clock: Clock = time.monotonic,
        state_path: str | Path | None = None,
        account: MailchimpAccount | None = None,
    ) -> None:
        self.api_key = api_key
        self.audiences: dict[str, Audience] = {}
        # Real Mailchimp remembers its members across our runs; with a state file the
        # emulator does too, so a sandbox restart does not fake a destination wipe.
        self.state_path = Path(state_path) if state_path else None
        if self.state_path and self.state_path.exists():
            self._load_state()
        # The retailer's own audiences, campaigns and reports come from the world.
        self.account = account
        self.campaigns: dict[str, dict[str, Any]] = {}
        if account is not None:
            for info in account.lists:
                audience = Audience(
                    id=info["id"],
                    name=info["name"],
                    date_created=info["date_created"],
                    members={m["id"]: m for m in account.members.get(info["id"], [])},
                    persist=False,
                    info=info,
                )
                audience.web_ids = len(audience.members)
                audience.compliance = {
                    key
                    for key, m in audience.members.items()
                    if m["status"] in ("unsubscribed", "cleaned")
                }
                self.audiences[info["id"]] = audience
            for campaign in account.campaigns:
                self.campaigns[campaign["id"]] = campaign
                audience = self.audiences.get(campaign["recipients"]["list_id"])
                if audience is not None and campaign["status"] == "sent":
                    audience.campaign_count += 1
        for list_id in list_ids:
            if list_id not in self.audiences:
                self.add_list(list_id)
        self.faults = FaultInjector()
        self._window = RequestWindow(max_requests_per_second, clock)
        self._clock = clock
        self._lock = threading.RLock()
        self.max_connections = max_connections
        #: Seconds each answer is held (while its connection counts as open), for tests
        #: of the simultaneous-connections limit.
        self.response_delay = 0.0
        self._open = 0
        self._open_lock = threading.Lock()
        self.request_count = 0
        self.write_calls = 0
        self.members_written = 0
        self.write_log: list[tuple[str, str, int]] = []  # (method, path, members written)
        # /batches: submitted batches by id, run one at a time by a worker thread in
        # the order they came; ``batch_gate`` cleared holds them all as pending.
        self.batches: dict[str, Batch] = {}
        self.batch_archives: dict[str, bytes] = {}
        self.batch_gate = threading.Event()
        self.batch_gate.set()
        #: Seconds each batch operation takes, so tests can watch a batch "started".
        self.batch_operation_delay = 0.0
        self._batch_queue: queue.Queue[Batch] = queue.Queue()
        self._batch_worker: threading.Thread | None = None
        self._defer_save = False
        self._dispatch_routes: list[tuple[str, re.Pattern[str], Callable[..., Response]]] = []
        self.router = self._build_router()

    # -- test controls and views ----------------------------------------------------

    def add_list(self, list_id: str, name: str | None = None) -> Audience:
        """Create an (empty) audience, e.g. a second destination list for a test."""
        audience = Audience(id=list_id, name=name or f"omnicanal sandbox ({list_id})")
        self.audiences[list_id] = audience
        return audience

    def members(self, list_id: str = DEFAULT_LIST_ID, status: str | None = None) -> list[dict]:
        """Copies of the members the audience holds (archived included), optionally by status."""
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self.audiences[list_id].members.values()
                if status is None or m["status"] == status
            ]

    def member(self, list_id: str, email: str) -> dict[str, Any] | None:
        """A copy of the member with ``email`` (any case), or None."""
        with self._lock:
            found = self.audiences[list_id].members.get(subscriber_hash(email))
            return copy.deepcopy(found) if found else None

    def merge_fields(self, list_id: str = DEFAULT_LIST_ID) -> list[dict[str, Any]]:
        """Copies of the audience's merge field definitions."""
        with self._lock:
            return copy.deepcopy(self.audiences[list_id].merge_fields)

    def tags(self, list_id: str, email: str) -> list[str]:
        """The names of the tags the member with ``email`` has (KeyError if none)."""
        with self._lock:
            member = self.audiences[list_id].members[subscriber_hash(email)]
            return [tag["name"] for tag in member["tags"]]

    def hold_batches(self, hold: bool = True) -> None:
        """Keep submitted batches pending (True) or let them run (False)."""
        if hold:
            self.batch_gate.clear()
        else:
            self.batch_gate.set()

    def cancel_batches(self) -> None:
        """Drop every batch, stopping those not finished (``DELETE /batches/{id}`` on all)."""
        for batch in list(self.batches.values()):
            batch.cancelled = True
        self.batches.clear()
        self.batch_archives.clear()

    def reset_counters(self) -> None:
        """Zero ``write_calls``, ``members_written`` and ``write_log``, e.g. between syncs."""
        with self._lock:
            self.write_calls, self.members_written = 0, 0
            self.write_log.clear()

    def fail_next(self, n: int = 1, status: int = 500, *, hang_seconds: float = 0.0) -> None:
        """Answer the next ``n`` authenticated requests with ``status`` instead.

        401 is a key revoked in the account (Mailchimp's "API Key Invalid"); 429 a rate
        limit; 5xx an outage. ``hang_seconds`` first holds each answer that long, so a
        client with a shorter timeout sees a timeout.
        """
        self.faults.fail_next(n, status, hang_seconds=hang_seconds)

    def touch_member(self, list_id: str, email: str, **fields: Any) -> dict[str, Any]:
        """Change a member as an edit in Mailchimp would: ``status``, ``merge_fields`` or
        other member fields; ``last_changed`` moves past every other member's. Returns a copy.
        ``status="unsubscribed"`` is the person unsubscribing themselves: as in Mailchimp,
        no API call may subscribe them again ("Member In Compliance State")."""
        with self._lock:
            audience = self.audiences[list_id]
            member = audience.members.get(subscriber_hash(email))
            if member is None:
                raise KeyError(email)
            latest = max(
                (parse_time(m["last_changed"]) for m in audience.members.values()),
                default=datetime.now(UTC),
            )
            status = fields.pop("status", None)
            # the person's own choice: unsubscribing (or bouncing) puts them in a
            # compliance state no API call can lift; subscribing again themselves does
            if status in ("unsubscribed", "cleaned"):
                audience.compliance.add(member["id"])
            elif status == "subscribed":
                audience.compliance.discard(member["id"])
            self._update(audience, member, fields, status=status)
            moment = max(datetime.now(UTC), latest + timedelta(seconds=1))
            member["last_changed"] = mailchimp_time(moment)
            self._save_state()
            return copy.deepcopy(member)

    def set_rate_limit(self, max_requests_per_second: int | None) -> None:
        """Answer 429 beyond this many requests in any second (None: unlimited)."""
        self._window = RequestWindow(max_requests_per_second, self._clock)

    # -- request plumbing ---------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        if not header:
            raise Problem(401, "API Key Missing", "Your request did not include an API key.")
        scheme, _, credentials = header.partition(" ")
        key = None
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(credentials).decode("utf-8").partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                key = None
        elif scheme.lower() in ("bearer", "apikey"):
            key = credentials.strip()
        if key != self.api_key:
            raise Problem(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )

    async def _guard(self, request: Request) -> None:
        self.request_count += 1
        self._authenticate(request)
        if not self._window.allow():
            raise Problem(
                429,
                "Too Many Requests",
                "You have exceeded the limit of requests per second for this API key. "
                "Wait a second and retry.",
            )
        fault = self.faults.take()
        if fault is not None:
            if fault.hang_seconds:
                await asyncio.sleep(fault.hang_seconds)
            raise _fault_problem(fault.status)
        if request.method in _WRITE_METHODS:
            with self._lock:
                self.write_calls += 1

    def _wrote(self, request: Request, count: int) -> None:
        with self._lock:
            self.members_written += count
            self.write_log.append((request.method, request.url.path, count))
            if not self._defer_save:
                self._save_state()

    def _load_state(self) -> None:
        data = json.loads(self.state_path.read_text())
        for item in data.get("audiences", []):
            self.audiences[item["id"]] = Audience(
                id=item["id"],
                name=item["name"],
                date_created=item["date_created"],
                members=item["members"],
                forgotten=set(item.get("forgotten", [])),
                compliance=set(item.get("compliance", [])),
                web_ids=item.get("web_ids", 0),
                merge_fields=item.get("merge_fields") or [],
                tag_ids=item.get("tag_ids") or {},
                tag_added=item.get("tag_added") or {},
            )

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        data = {
            "audiences": [
                {
                    "id": a.id,
                    "name": a.name,
                    "date_created": a.date_created,
                    "members": a.members,
                    "forgotten": sorted(a.forgotten),
                    "compliance": sorted(a.compliance),
                    "web_ids": a.web_ids,
                    "merge_fields": a.merge_fields,
                    "tag_ids": a.tag_ids,
                    "tag_added": a.tag_added,
                }
                for a in self.audiences.values()
                if a.persist
            ]
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.state_path)

    def _audience(self, list_id: str) -> Audience:
        audience = self.audiences.get(list_id)
        if audience is None:
            raise _not_found()
        return audience

    @staticmethod
    async def _json(request: Request) -> dict[str, Any]:
        """The JSON object body, or {} when there is none (GET, DELETE, actions)."""
        if not await request.body():
            return {}
        try:
            body = await request.json()
        except ValueError as exc:
            raise Problem(
                400, "JSON Parse Exception", "We encountered an unspecified JSON parsing error."
            ) from exc
        if not isinstance(body, dict):
            raise Problem(400, "JSON Parse Exception", "The request body must be a JSON object.")
        return body

    # -- member logic -------------------------------------------------------------

    @staticmethod
    def _check_status(value: Any, field_name: str) -> None:
        if value is not None and value not in MEMBER_STATUSES:
            raise _invalid(
                f"{field_name} must be one of {', '.join(MEMBER_STATUSES)}, got {value!r}.",
                field_name,
            )

    @staticmethod
    def _check_email(email: Any) -> str:
        """A well-formed address Mailchimp would take, or the 400 it answers."""
        if not _valid_email(email):
            raise _invalid("Please provide a valid email address.", "email_address")
        if looks_fake(email):
            raise Problem(400, "Invalid Resource", _fake_detail(email))
        return email

    @staticmethod
    def _merge_values(audience: Audience, values: Any, *, new: bool) -> dict[str, Any]:
        """``merge_fields`` of a member body, keyed by the audience's own tags.

        Like Mailchimp, a tag the audience does not define, or a required field left
        empty on a new member, is a 400 naming the field."""
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise _schema_problem(
                [("merge_fields", f"Schema describes object, {_json_type(values)} found instead")]
            )
        out: dict[str, Any] = {}
        errors: list[dict[str, str]] = []
        for name, value in values.items():
            defined = audience.merge_field(str(name))
            if defined is None:
                errors.append(
                    {
                        "field": str(name),
                        "message": f"Merge field {name} does not exist in this audience; "
                        "add it first (POST /lists/{list_id}/merge-fields).",
                    }
                )
                continue
            if defined["type"] == "number" and value not in ("", None):
                try:
                    float(value)
                except (TypeError, ValueError):
                    errors.append({"field": defined["tag"], "message": "Please enter a number"})
                    continue
            out[defined["tag"]] = "" if value is None else value
        if new:
            for defined in audience.merge_fields:
                if defined["required"] and out.get(defined["tag"]) in (None, ""):
                    errors.append({"field": defined["tag"], "message": "Please enter a value"})
        if errors:
            raise Problem(400, "Invalid Resource", "Your merge fields were invalid.", errors)
        return out

    def _set_tags(
        self, audience: Audience, member: dict[str, Any], changes: list[tuple[str, bool]]
    ) -> bool:
        """Add (True) or remove (False) tags by name; True when anything changed."""
        names = [t["name"] for t in member["tags"]]
        dates = audience.tag_added.setdefault(member["id"], {})
        changed = False
        for name, active in changes:
            if active and name not in names:
                names.append(name)
                dates[name] = _now()
                changed = True
            elif not active and name in names:
                names.remove(name)
                dates.pop(name, None)
                changed = True
        member["tags"] = [{"id": audience.tag_id(n), "name": n} for n in names]
        member["tags_count"] = len(names)
        return changed

    def _create(
        self, audience: Audience, email: str, status: str, body: dict, tags: list[str]
    ) -> dict:
        key = subscriber_hash(email)
        now = _now()
        merge = {f["tag"]: "" for f in audience.merge_fields}
        merge.update(self._merge_values(audience, body.get("merge_fields"), new=True))
        audience.web_ids += 1
        member = {
            "id": key,
            "email_address": email,
            "unique_email_id": _md5(f"{audience.id}:{key}")[:10],
            "contact_id": _md5(f"contact:{key}"),
            "full_name": f"{merge.get('FNAME', '')} {merge.get('LNAME', '')}".strip(),
            "web_id": audience.web_ids,
            "email_type": body.get("email_type") or "html",
            "status": status,
            "merge_fields": merge,
            "interests": body.get("interests") or {},
            "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
            "ip_signup": "",
            "timestamp_signup": "",
            "ip_opt": "",
            "timestamp_opt": now if status == "subscribed" else "",
            "member_rating": 2,
            "last_changed": now,
            "language": body.get("language") or "",
            "vip": bool(body.get("vip", False)),
            "email_client": "",
            "location": {"latitude": 0, "longitude": 0, "gmtoff": 0, "dstoff": 0},
            "source": "API - Generic",
            "tags_count": 0,
            "tags": [],
            "list_id": audience.id,
        }
        self._set_tags(audience, member, [(t, True) for t in tags])
        audience.members[key] = member
        return member

    def _update(
        self,
        audience: Audience,
        member: dict[str, Any],
        body: dict[str, Any],
        *,
        status: str | None,
    ) -> dict:
        """Apply a member body (PUT, PATCH, batch subscribe) to an existing member. Only
        the fields of the member schema apply: ``tags`` is not one (tags change through
        ``/members/{hash}/tags``), ``status_if_new`` only decides a new member's status."""
        before = copy.deepcopy(member)
        merge = self._merge_values(audience, body.get("merge_fields"), new=False)
        if status == "subscribed" and member["status"] != "subscribed":
            if member["id"] in audience.compliance:
                raise Problem(
                    400,
                    "Member In Compliance State",
                    f"{member['email_address']} is in a compliance state due to unsubscribe, "
                    "bounce, or compliance review and cannot be subscribed.",
                )
        if status is not None:
            if status == "subscribed" and member["status"] != "subscribed":
                member["timestamp_opt"] = _now()
            member["status"] = status
        if merge:
            member["merge_fields"] = {**member["merge_fields"], **merge}
            merged = member["merge_fields"]
            member["full_name"] = f"{merged.get('FNAME', '')} {merged.get('LNAME', '')}".strip()
        for key in ("email_type", "language", "vip", "interests"):
            if key in body:
                member[key] = body[key]
        if "email_address" in body:
            member["email_address"] = body["email_address"]
        if member != before:
            member["last_changed"] = _now()
        return member

    def _upsert(
        self,
        audience: Audience,
        email: str,
        body: dict,
        *,
        allow_update: bool,
        schema: str,
        tags: list[str] | None = None,
    ):
        """Add or update one member; return (member, created) or raise a Problem.

        ``schema`` is the call's member schema: ``"put"`` (``PUT /members/{hash}``:
        ``status_if_new`` for a new member, ``status`` only if given), or ``"status"``
        (``POST /members`` and batch subscribe: ``status`` is required and is the
        member's status; there is no ``status_if_new``)."""
        key = subscriber_hash(email)
        if key in audience.forgotten:
            raise Problem(
                400,
                "Forgotten Email Not Subscribed",
                f"{email} was permanently deleted and cannot be re-imported. "
                "The contact must re-subscribe to get back on the list.",
            )
        status = body.get("status")
        self._check_status(status, "status")
        if schema == "put":
            status_if_new = body.get("status_if_new")
            self._check_status(status_if_new, "status_if_new")
        else:
            status_if_new = None  # not in this schema: ignored, as Mailchimp does
        existing = audience.members.get(key)
        if existing is not None and existing["status"] != "archived":
            if not allow_update:
                raise Problem(
                    400,
                    "Member Exists",
                    f"{email} is already a list member. Use PUT to insert or update list members.",
                )
            member = self._update(audience, existing, body, status=status)
            if tags:
                self._set_tags(audience, member, [(t, True) for t in tags])
            return member, False
        new_status = status_if_new or status
        if new_status is None:
            raise _invalid(
                "status_if_new is required when the email address is not on the list yet.",
                "status_if_new",
            )
        if existing is not None:  # archived: adding it again brings it back
            member = self._update(audience, existing, body, status=new_status)
            if tags:
                self._set_tags(audience, member, [(t, True) for t in tags])
            return member, True
        return self._create(audience, email, new_status, body, tags or []), True

    def _batch(self, request: Request, audience: Audience, body: dict) -> dict[str, Any]:
        """Batch subscribe/update (``POST /lists/{id}``). The body is checked against
        the schema first (each member needs ``email_address`` and ``status``): a body
        that fails is refused whole, like Mailchimp's 400 with an ``errors`` array."""
        members = body.get("members")
        if not isinstance(members, list):
            if members is None:
                raise _schema_problem([("", "Required fields were not provided: members")])
            raise _schema_problem(
                [("members", f"Schema describes array, {_json_type(members)} found instead")]
            )
        if len(members) > MAX_BATCH_MEMBERS:
            raise _invalid(
                f"members holds {len(members)} items; send at most {MAX_BATCH_MEMBERS} per call.",
                "members",
            )
        problems: list[tuple[str, str]] = []
        for i, item in enumerate(members):
            where = f"members.item:{i}"
            if not isinstance(item, dict):
                problems.append(
                    (where, f"Schema describes object, {_json_type(item)} found instead")
                )
                continue
            missing = [f for f in ("email_address", "status") if f not in item]
            if missing:
                problems.append((where, f"Required fields were not provided: {', '.join(missing)}"))
            elif item["status"] not in MEMBER_STATUSES:
                problems.append(
                    (
                        f"{where}.status",
                        "Data presented is not one of the accepted values: "
                        f"{', '.join(MEMBER_STATUSES)}.",
                    )
                )
        if problems:
            raise _schema_problem(problems)
        update_existing = bool(body.get("update_existing", False))
        created, updated, errors, seen = [], [], [], set()
        for item in members:
            email = item.get("email_address")
            if not _valid_email(email) or looks_fake(email):
                errors.append(
                    {
                        "email_address": email if isinstance(email, str) else "",
                        "error": _fake_detail(email),
                        "error_code": "ERROR_GENERIC",
                        "field": "email_address",
                        "field_message": _fake_detail(email),
                    }
                )
                continue
            key = subscriber_hash(email)
            if key in seen:
                errors.append(
                    {
                        "email_address": email,
                        "error": f"{email} appears more than once in this batch.",
                        "error_code": "ERROR_DUPLICATE",
                    }
                )
                continue
            seen.add(key)
            tags = [t for t in item.get("tags") or [] if isinstance(t, str)]
            try:
                member, is_new = self._upsert(
                    audience, email, item, allow_update=update_existing, schema="status", tags=tags
                )
            except Problem as problem:
                code = (
                    "ERROR_CONTACT_EXISTS" if problem.title == "Member Exists" else "ERROR_GENERIC"
                )
                error = {"email_address": email, "error": problem.detail, "error_code": code}
                if problem.errors:
                    error["field"] = problem.errors[0]["field"]
                    error["field_message"] = problem.errors[0]["message"]
                errors.append(error)
                continue
            (created if is_new else updated).append(copy.deepcopy(member))
        self._wrote(request, len(created) + len(updated))
        return {
            "new_members": created,
            "updated_members": updated,
            "errors": errors,
            "total_created": len(created),
            "total_updated": len(updated),
            "error_count": len(errors),
            "_links": [],
        }

    @staticmethod
    def _member_key(subscriber: str) -> str:
        return subscriber_hash(subscriber) if "@" in subscriber else subscriber.lower()

    def _check_body_email(self, key: str, body: dict[str, Any], required: bool) -> str | None:
        email = body.get("email_address")
        if email is None:
            if required:
                raise _invalid("email_address is required.", "email_address")
            return None
        self._check_email(email)
        if subscriber_hash(email) != key:
            raise _invalid(
                "The subscriber hash in the URL does not match the email_address in the body: "
                "it must be the MD5 of the lower-cased email address.",
                "email_address",
            )
        return email

    # -- batch operations -----------------------------------------------------------

    @staticmethod
    def _check_operations(body: dict[str, Any]) -> list[dict[str, Any]]:
        """The operations of a ``POST /batches`` body, checked against its schema."""
        operations = body.get("operations")
        if operations is None:
            raise _schema_problem([("", "Required fields were not provided: operations")])
        if not isinstance(operations, list):
            raise _schema_problem(
                [("operations", f"Schema describes array, {_json_type(operations)} found instead")]
            )
        problems: list[tuple[str, str]] = []
        for i, op in enumerate(operations):
            where = f"operations.item:{i}"
            if not isinstance(op, dict):
                problems.append((where, f"Schema describes object, {_json_type(op)} found instead"))
                continue
            missing = [f for f in ("method", "path") if f not in op]
            if missing:
                problems.append((where, f"Required fields were not provided: {', '.join(missing)}"))
                continue
            if op["method"] not in BATCH_METHODS:
                problems.append(
                    (
                        f"{where}.method",
                        "Data presented is not one of the accepted values: "
                        f"{', '.join(BATCH_METHODS)}.",
                    )
                )
            for name, kind in (
                ("path", str),
                ("body", str),
                ("operation_id", str),
                ("params", dict),
            ):
                if name in op and op[name] is not None and not isinstance(op[name], kind):
                    wanted = "string" if kind is str else "object"
                    problems.append(
                        (
                            f"{where}.{name}",
                            f"Schema describes {wanted}, {_json_type(op[name])} found instead",
                        )
                    )
        if problems:
            raise _schema_problem(problems)
        return operations

    def _start_batch_worker(self) -> None:
        if self._batch_worker is None or not self._batch_worker.is_alive():
            self._batch_worker = threading.Thread(
                target=self._run_batches, name="mailchimp-batches", daemon=True
            )
            self._batch_worker.start()

    def _run_batches(self) -> None:
        """Mailchimp runs an account's batches one at a time, in the order they came."""
        while True:
            batch = self._batch_queue.get()
            self.batch_gate.wait()
            if not batch.cancelled:
                self._run_batch(batch)

    def _run_batch(self, batch: Batch) -> None:
        batch.status = "started"
        results: list[dict[str, Any]] = []
        for op in batch.operations:
            if batch.cancelled:
                return
            if self.batch_operation_delay:
                time.sleep(self.batch_operation_delay)
            with self._lock:
                self._defer_save = True
                try:
                    status, text = self._dispatch(op, batch.results_base)
                finally:
                    self._defer_save = False
            results.append(
                {"status_code": status, "operation_id": op.get("operation_id"), "response": text}
            )
            batch.finished_operations += 1
            if status >= 400:
                batch.errored_operations += 1
        with self._lock:
            self._save_state()
        self.batch_archives[batch.id] = _results_archive(batch.id, results)
        batch.response_body_url = f"{batch.results_base}/{batch.id}.tar.gz"
        batch.completed_at = _now()
        batch.status = "finished"

    def _dispatch(self, op: dict[str, Any], base_url: str) -> tuple[int, str]:
        """Run one batch operation through the API's own handlers: (status, body)."""
        path = "/" + str(op["path"]).lstrip("/")
        if path.startswith("/3.0/"):
            path = path[len("/3.0") :]
        path = path.split("?", 1)[0]
        method = op["method"]
        allowed = False
        for route_method, pattern, func in self._dispatch_routes:
            match = pattern.match(path)
            if match is None:
                continue
            allowed = True
            if route_method != method:
                continue
            try:
                raw = op.get("body")
                body = json.loads(raw) if raw else {}
                if not isinstance(body, dict):
                    raise ValueError("not an object")
            except ValueError:
                problem = Problem(
                    400, "JSON Parse Exception", "We encountered an unspecified JSON parsing error."
                )
                return 400, problem.response().body.decode()
            request = _OperationRequest(method, path, op.get("params") or {}, base_url)
            try:
                response = func(request, body, **match.groupdict())
            except Problem as problem:
                response = problem.response()
            return response.status_code, bytes(response.body or b"").decode()
        if allowed:
            problem = Problem(
                405,
                "Method Not Allowed",
                "The requested method and resource are not compatible. See the Allow header "
                "for this resource's available methods.",
            )
        else:
            problem = _not_found()
        return problem.status, problem.response().body.decode()

    # -- routes ---------------------------------------------------------------------

    def _build_router(self) -> APIRouter:
        router = APIRouter(prefix="/3.0", tags=["mailchimp"])
        Handler = Callable[..., Awaitable[Response]]

        def endpoint(func: Handler) -> Callable[[Request], Awaitable[Response]]:
            """Run the guard, hold the lock, turn Problems into problem-JSON responses."""

            async def wrapper(request: Request) -> Response:
                with self._open_lock:
                    self._open += 1
                    too_many = self._open > self.max_connections
                try:
                    if too_many:
                        raise Problem(
                            429,
                            "Too Many Requests",
                            f"You have exceeded the limit of {self.max_connections} "
                            "simultaneous connections.",
                        )
                    await self._guard(request)
                    body = await self._json(request)
                    if self.response_delay:
                        await asyncio.sleep(self.response_delay)
                    with self._lock:
                        return func(request, body, **request.path_params)
                except Problem as problem:
                    return problem.response()
                finally:
                    with self._open_lock:
                        self._open -= 1

            return wrapper

        def ping(request: Request, body: dict) -> Response:
            return JSONResponse({"health_status": "Everything's Chimpy!"})

        def get_lists(request: Request, body: dict) -> Response:
            query = request.query_params
            count, offset = _paging(query)
            since = _time_param(query, "since_date_created")
            before = _time_param(query, "before_date_created")
            email = query.get("email")
            rows = []
            for audience in self.audiences.values():
                created = _stamp(audience.date_created)
                if since and created and created <= since:
                    continue
                if before and created and created >= before:
                    continue
                if email and subscriber_hash(email) not in audience.members:
                    continue
                rows.append(audience.summary())
            return _answer(
                query,
                {
                    "lists": rows[offset : offset + count],
                    "total_items": len(rows),
                    "constraints": {
                        "may_create": True,
                        "max_instances": 5,
                        "current_total_instances": len(self.audiences),
                    },
                    "_links": [],
                },
            )

        def get_list(request: Request, body: dict, list_id: str) -> Response:
            return _answer(request.query_params, self._audience(list_id).summary())

        def batch(request: Request, body: dict, list_id: str) -> Response:
            return JSONResponse(self._batch(request, self._audience(list_id), body))

        def list_members(request: Request, body: dict, list_id: str) -> Response:
            audience = self._audience(list_id)
            query = request.query_params
            count, offset = _paging(query)
            status = query.get("status")
            if status is not None and status not in LISTABLE_STATUSES:
                raise _invalid(f"status must be one of {', '.join(LISTABLE_STATUSES)}.", "status")
            windows = [
                (name, key, _time_param(query, f"{side}_{name}"), side)
                for name, key in (
                    ("last_changed", "last_changed"),
                    ("timestamp_opt", "timestamp_opt"),
                )
                for side in ("since", "before")
            ]
            rows = []
            for member in audience.members.values():
                if status is not None and member["status"] != status:
                    continue
                if status is None and member["status"] == "archived":
                    continue  # archived members are listed only when asked for
                keep = True
                for _name, key, bound, side in windows:
                    if bound is None:
                        continue
                    value = _stamp(member.get(key) or "")
                    if value is None or (value <= bound if side == "since" else value >= bound):
                        keep = False
                        break
                if keep:
                    rows.append(member)
            sort_field = query.get("sort_field")
            if sort_field is not None:
                if sort_field not in MEMBER_SORT_FIELDS:
                    raise _invalid(
                        f"sort_field must be one of {', '.join(MEMBER_SORT_FIELDS)}.", "sort_field"
                    )
                rows.sort(
                    key=lambda m: (m.get(sort_field) or "", m["web_id"]),
                    reverse=_descending(query),
                )
            return _page(query, "members", rows, count, offset, list_id=list_id)

        def list_campaigns(request: Request, body: dict) -> Response:
            query = request.query_params
            count, offset = _paging(query)
            status, kind = query.get("status"), query.get("type")
            if status is not None and status not in CAMPAIGN_STATUSES:
                raise _invalid(f"status must be one of {', '.join(CAMPAIGN_STATUSES)}.", "status")
            if kind is not None and kind not in CAMPAIGN_TYPES:
                raise _invalid(f"type must be one of {', '.join(CAMPAIGN_TYPES)}.", "type")
            bounds = [
                (key, _time_param(query, f"{side}_{key}"), side)
                for key in ("send_time", "create_time")
                for side in ("since", "before")
            ]
            rows = []
            for campaign in self.campaigns.values():
                if status is not None and campaign["status"] != status:
                    continue
                if kind is not None and campaign["type"] != kind:
                    continue
                if query.get("list_id") and campaign["recipients"]["list_id"] != query["list_id"]:
                    continue
                keep = True
                for key, bound, side in bounds:
                    if bound is None:
                        continue
                    value = _stamp(campaign.get(key) or "")
                    if value is None or (value <= bound if side == "since" else value >= bound):
                        keep = False
                        break
                if keep:
                    rows.append(campaign)
            sort_field = query.get("sort_field")
            if sort_field is not None:
                if sort_field not in CAMPAIGN_SORT_FIELDS:
                    raise _invalid(
                        f"sort_field must be one of {', '.join(CAMPAIGN_SORT_FIELDS)}.",
                        "sort_field",
                    )
                rows.sort(key=lambda c: c.get(sort_field) or "", reverse=_descending(query))
            return _page(query, "campaigns", rows, count, offset)

        def get_campaign(request: Request, body: dict, campaign_id: str) -> Response:
            campaign = self.campaigns.get(campaign_id)
            if campaign is None:
                raise _not_found()
            return _answer(request.query_params, campaign)

        def _sent_campaign(campaign_id: str) -> dict[str, Any]:
            campaign = self.campaigns.get(campaign_id)
            if campaign is None or campaign["status"] != "sent" or self.account is None:
                raise _not_found()
            return campaign

        def email_activity(request: Request, body: dict, campaign_id: str) -> Response:
            _sent_campaign(campaign_id)
            query = request.query_params
            count, offset = _paging(query)
            since = _time_param(query, "since")
            assert self.account is not None
            rows = []
            for recipient in self.account.email_activity.get(campaign_id, []):
                if since is None:
                    rows.append(recipient)
                    continue
                actions = [a for a in recipient["activity"] if parse_time(a["timestamp"]) > since]
                if actions:
                    rows.append({**recipient, "activity": actions})
            return _page(query, "emails", rows, count, offset, campaign_id=campaign_id)

        def unsubscribed(request: Request, body: dict, campaign_id: str) -> Response:
            _sent_campaign(campaign_id)
            query = request.query_params
            count, offset = _paging(query)
            assert self.account is not None
            rows = self.account.unsubscribes.get(campaign_id, [])
            return _page(query, "unsubscribes", rows, count, offset, campaign_id=campaign_id)

        def add_member(request: Request, body: dict, list_id: str) -> Response:
            audience = self._audience(list_id)
            missing = [f for f in ("email_address", "status") if f not in body]
            if missing:
                raise _schema_problem(
                    [("", f"Required fields were not provided: {', '.join(missing)}")]
                )
            email = self._check_email(body.get("email_address"))
            tags = body.get("tags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise _schema_problem([("tags", "Schema describes array of strings")])
            member, _ = self._upsert(
                audience, email, body, allow_update=False, schema="status", tags=tags
            )
            self._wrote(request, 1)
            return JSONResponse(member)

        def get_member(
            request: Request, body: dict, list_id: str, subscriber_hash: str
        ) -> Response:
            member = self._audience(list_id).members.get(self._member_key(subscriber_hash))
            if member is None:
                raise _not_found()
            return JSONResponse(member)

        def put_member(
            request: Request, body: dict, list_id: str, subscriber_hash: str
        ) -> Response:
            audience = self._audience(list_id)
            key = self._member_key(subscriber_hash)
            email = self._check_body_email(key, body, required=True)
            assert email is not None
            member, _ = self._upsert(audience, email, body, allow_update=True, schema="put")
            self._wrote(request, 1)
            return JSONResponse(member)

        def patch_member(
            request: Request, body: dict, list_id: str, subscriber_hash: str
        ) -> Response:
            audience = self._audience(list_id)
            key = self._member_key(subscriber_hash)
            member = audience.members.get(key)
            if member is None:
                raise _not_found()
            self._check_body_email(key, body, required=False)
            self._check_status(body.get("status"), "status")
            self._update(audience, member, body, status=body.get("status"))
            self._wrote(request, 1)
            return JSONResponse(member)

        def archive_member(
            request: Request, body: dict, list_id: str, subscriber_hash: str
        ) -> Response:
            member = self._audience(list_id).members.get(self._member_key(subscriber_hash))
            if member is None:
                raise _not_found()
            if member["status"] != "archived":
                member["status"], member["last_changed"] = "archived", _now()
                self._wrote(request, 1)
            return Response(status_code=204)

        def delete_permanent(
            request: Request, body: dict, list_id: str, subscriber_hash: str
        ) -> Response:
            audience = self._audience(list_id)
            key = self._member_key(subscriber_hash)
            if audience.members.pop(key, None) is None:
                raise _not_found()
            audience.forgotten.add(key)
            self._wrote(request, 1)
            return Response(status_code=204)

        def get_member_tags(
            request: Request, body: dict, list_id: str, subscriber_hash: str
        ) -> Response:
            audience = self._audience(list_id)
            member = audience.members.get(self._member_key(subscriber_hash))
            if member is None:
                raise _not_found()
            count, offset = _paging(request.query_params)
            dates = audience.tag_added.get(member["id"], {})
            rows = [{**tag, "date_added": dates.get(tag["name"], "")} for tag in member["tags"]]
            return _page(request.query_params, "tags", rows, count, offset)

        def post_member_tags(
            request: Request, body: dict, list_id: str, subscriber_hash: str
        ) -> Response:
            audience = self._audience(list_id)
            member = audience.members.get(self._member_key(subscriber_hash))
            if member is None:
                raise _not_found()
            tags = body.get("tags")
            if tags is None:
                raise _schema_problem([("", "Required fields were not provided: tags")])
            if not isinstance(tags, list):
                raise _schema_problem(
                    [("tags", f"Schema describes array, {_json_type(tags)} found instead")]
                )
            changes, problems = [], []
            for i, tag in enumerate(tags):
                where = f"tags.item:{i}"
                if not isinstance(tag, dict):
                    problems.append(
                        (where, f"Schema describes object, {_json_type(tag)} found instead")
                    )
                    continue
                missing = [f for f in ("name", "status") if f not in tag]
                if missing:
                    problems.append(
                        (where, f"Required fields were not provided: {', '.join(missing)}")
                    )
                elif not isinstance(tag["name"], str) or not tag["name"].strip():
                    problems.append((f"{where}.name", "Please enter a tag name"))
                elif tag["status"] not in TAG_STATUSES:
                    problems.append(
                        (
                            f"{where}.status",
                            "Data presented is not one of the accepted values: active, inactive.",
                        )
                    )
                else:
                    changes.append((tag["name"].strip(), tag["status"] == "active"))
            if problems:
                raise _schema_problem(problems)
            if self._set_tags(audience, member, changes):
                member["last_changed"] = _now()
            self._wrote(request, 1)
            return Response(status_code=204)

        def list_merge_fields(request: Request, body: dict, list_id: str) -> Response:
            audience = self._audience(list_id)
            query = request.query_params
            count, offset = _paging(query)
            rows = audience.merge_fields
            kind = query.get("type")
            if kind is not None:
                if kind not in MERGE_FIELD_TYPES:
                    raise _invalid(f"type must be one of {', '.join(MERGE_FIELD_TYPES)}.", "type")
                rows = [f for f in rows if f["type"] == kind]
            required = query.get("required")
            if required is not None:
                rows = [f for f in rows if f["required"] == (required.lower() == "true")]
            return _page(query, "merge_fields", rows, count, offset, list_id=list_id)

        def add_merge_field(request: Request, body: dict, list_id: str) -> Response:
            audience = self._audience(list_id)
            missing = [f for f in ("name", "type") if not body.get(f)]
            if missing:
                raise _schema_problem(
                    [("", f"Required fields were not provided: {', '.join(missing)}")]
                )
            if body["type"] not in MERGE_FIELD_TYPES:
                raise _schema_problem(
                    [
                        (
                            "type",
                            "Data presented is not one of the accepted values: "
                            f"{', '.join(MERGE_FIELD_TYPES)}.",
                        )
                    ]
                )
            merge_id = max((f["merge_id"] for f in audience.merge_fields), default=0) + 1
            tag = str(body.get("tag") or f"MMERGE{merge_id}").upper()
            if not _MERGE_TAG.match(tag):
                raise _invalid("A merge tag is 1 to 10 letters, digits or underscores.", "tag")
            if audience.merge_field(tag) is not None:
                raise Problem(
                    400,
                    "Invalid Resource",
                    f'A Merge Field with the tag "{tag}" already exists for this list.',
                )
            created = _merge_field(
                list_id,
                merge_id,
                tag,
                str(body["name"]),
                body["type"],
                **{k: body[k] for k in body if k not in ("tag", "name", "type", "merge_id")},
            )
            audience.merge_fields.append(created)
            for member in audience.members.values():
                member["merge_fields"].setdefault(tag, "")
            self._wrote(request, 0)
            return JSONResponse(created)

        def get_merge_field(request: Request, body: dict, list_id: str, merge_id: str) -> Response:
            audience = self._audience(list_id)
            found = next((f for f in audience.merge_fields if str(f["merge_id"]) == merge_id), None)
            if found is None:
                raise _not_found()
            return _answer(request.query_params, found)

        def search_members(request: Request, body: dict) -> Response:
            query = request.query_params
            text = (query.get("query") or "").strip()
            if not text:
                raise _schema_problem([("query", "Required fields were not provided: query")])
            if query.get("list_id"):
                audiences = [self._audience(query["list_id"])]
            else:
                audiences = list(self.audiences.values())
            wanted = text.lower()
            exact, full = [], []
            for audience in audiences:
                for member in audience.members.values():
                    if member["status"] == "archived":
                        continue
                    email = member["email_address"].lower()
                    names = " ".join(
                        str(member["merge_fields"].get(t) or "") for t in ("FNAME", "LNAME")
                    ).lower()
                    if email == wanted:
                        exact.append(member)
                    elif (
                        wanted in email or wanted in names or wanted in member["full_name"].lower()
                    ):
                        full.append(member)
            return _answer(
                query,
                {
                    "exact_matches": {"members": exact, "total_items": len(exact)},
                    "full_search": {"members": full, "total_items": len(full)},
                    "_links": [],
                },
            )

        def start_batch(request: Request, body: dict) -> Response:
            operations = self._check_operations(body)
            pending = sum(1 for b in self.batches.values() if b.status != "finished")
            if pending >= MAX_PENDING_BATCHES:
                raise Problem(
                    429,
                    "Too Many Requests",
                    f"You have {pending} batches pending; at most {MAX_PENDING_BATCHES} may be "
                    "pending at once. Wait for some to finish and retry.",
                )
            batch = Batch(
                id=uuid.uuid4().hex[:10],
                operations=operations,
                results_base=f"{str(request.base_url).rstrip('/')}/_sandbox/mailchimp/batch-results",
            )
            self.batches[batch.id] = batch
            self._batch_queue.put(batch)
            self._start_batch_worker()
            return _answer(request.query_params, batch.resource())

        def list_batches(request: Request, body: dict) -> Response:
            query = request.query_params
            count, offset = _paging(query)
            rows = [b.resource() for b in self.batches.values()]
            return _page(query, "batches", rows, count, offset)

        def get_batch(request: Request, body: dict, batch_id: str) -> Response:
            batch = self.batches.get(batch_id)
            if batch is None:
                raise _not_found()
            return _answer(request.query_params, batch.resource())

        def delete_batch(request: Request, body: dict, batch_id: str) -> Response:
            batch = self.batches.pop(batch_id, None)
            if batch is None:
                raise _not_found()
            batch.cancelled = True
            self.batch_archives.pop(batch_id, None)
            return Response(status_code=204)

        member_path = "/lists/{list_id}/members/{subscriber_hash}"
        routes: list[tuple[str, Handler, str]] = [
            ("/ping", ping, "GET"),
            ("/lists", get_lists, "GET"),
            ("/lists/{list_id}", get_list, "GET"),
            ("/lists/{list_id}", batch, "POST"),
            ("/lists/{list_id}/members", list_members, "GET"),
            ("/lists/{list_id}/members", add_member, "POST"),
            ("/campaigns", list_campaigns, "GET"),
            ("/campaigns/{campaign_id}", get_campaign, "GET"),
            ("/reports/{campaign_id}/email-activity", email_activity, "GET"),
            ("/reports/{campaign_id}/unsubscribed", unsubscribed, "GET"),
            (member_path, get_member, "GET"),
            (member_path, put_member, "PUT"),
            (member_path, patch_member, "PATCH"),
            (member_path, archive_member, "DELETE"),
            (f"{member_path}/actions/delete-permanent", delete_permanent, "POST"),
            (f"{member_path}/tags", get_member_tags, "GET"),
            (f"{member_path}/tags", post_member_tags, "POST"),
            ("/lists/{list_id}/merge-fields", list_merge_fields, "GET"),
            ("/lists/{list_id}/merge-fields", add_merge_field, "POST"),
            ("/lists/{list_id}/merge-fields/{merge_id}", get_merge_field, "GET"),
            ("/search-members", search_members, "GET"),
            ("/batches", start_batch, "POST"),
            ("/batches", list_batches, "GET"),
            ("/batches/{batch_id}", get_batch, "GET"),
            ("/batches/{batch_id}", delete_batch, "DELETE"),
        ]
        for path, func, method in routes:
            router.add_api_route(path, endpoint(func), methods=[method], name=func.__name__)
            if not path.startswith("/batches"):  # what a batch operation may call
                pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
                self._dispatch_routes.append((method, re.compile(f"^{pattern}/?$"), func))

        async def faults(spec: Annotated[dict[str, Any], Body()]) -> JSONResponse:
            """Sandbox knob: ``{"n", "status", "hang_seconds"}`` queues failures;
            ``per_second``, ``max_connections`` and ``response_delay`` set the limits."""
            if "status" in spec:
                self.fail_next(
                    int(spec.get("n", 1)),
                    int(spec["status"]),
                    hang_seconds=float(spec.get("hang_seconds", 0.0)),
                )
            if "per_second" in spec:
                self.set_rate_limit(spec["per_second"])
            if "max_connections" in spec:
                self.max_connections = int(spec["max_connections"])
            if "response_delay" in spec:
                self.response_delay = float(spec["response_delay"])
            if "hold_batches" in spec:
                self.hold_batches(bool(spec["hold_batches"]))
            if "batch_operation_delay" in spec:
                self.batch_operation_delay = float(spec["batch_operation_delay"])
            return JSONResponse({"pending": self.faults.pending})

        async def batch_results(request: Request, batch_id: str) -> Response:
            """A finished batch's results archive: the stand-in for the S3 link Mailchimp
            gives as ``response_body_url`` (no API key: the link itself is the secret, and
            S3 refuses a pre-signed URL that also carries an Authorization header)."""
            if "authorization" in request.headers:
                return Response(
                    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidArgument'
                    "</Code><Message>Only one auth mechanism allowed; only the X-Amz-Algorithm "
                    "query parameter, Signature query string parameter or the Authorization "
                    "header should be specified</Message></Error>",
                    status_code=400,
                    media_type="application/xml",
                )
            archive = self.batch_archives.get(batch_id)
            if archive is None:
                return Response(status_code=404)
            return Response(archive, media_type="application/x-gzip")

        outer = APIRouter()  # the knob lives beside the API, not under /3.0
        outer.include_router(router)
        outer.add_api_route(
            "/_sandbox/mailchimp/faults", faults, methods=["POST"], include_in_schema=False
        )
        outer.add_api_route(
            "/_sandbox/mailchimp/batch-results/{batch_id}.tar.gz",
            batch_results,
            methods=["GET"],
            include_in_schema=False,
        )
        return outer


def _paging(query: Any) -> tuple[int, int]:
    """``count`` (default 10, 1 to 1000) and ``offset`` (from 0) of a collection."""
    try:
        count = int(query.get("count", DEFAULT_COUNT))
        offset = int(query.get("offset", 0))
    except ValueError as exc:
        raise _invalid("count and offset must be integers.") from exc
    if not 1 <= count <= MAX_COUNT or offset < 0:
        raise _invalid(f"count must be between 1 and {MAX_COUNT} and offset >= 0.", "count")
    return count, offset


def _descending(query: Any) -> bool:
    direction = query.get("sort_dir", "ASC")
    if direction not in ("ASC", "DESC"):
        raise _invalid("sort_dir must be ASC or DESC.", "sort_dir")
    return direction == "DESC"


def _page(
    query: Any, key: str, rows: list[Any], count: int, offset: int, **ids: str
) -> JSONResponse:
    """One page of a collection, as every Mailchimp list answers: the page under ``key``,
    the parent's id(s), ``total_items`` and ``_links``."""
    return _answer(
        query, {key: rows[offset : offset + count], **ids, "total_items": len(rows), "_links": []}
    )


def _answer(query: Any, body: dict[str, Any]) -> JSONResponse:
    """The body with ``fields`` / ``exclude_fields`` applied."""
    return JSONResponse(_select(body, _csv(query.get("fields")), _csv(query.get("exclude_fields"))))


def _results_archive(batch_id: str, results: list[dict[str, Any]]) -> bytes:
    """A batch's results as Mailchimp gives them: a gzipped tar of JSON files, each an
    array of ``{status_code, operation_id, response}`` (``response`` the body as text)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for n, start in enumerate(range(0, max(len(results), 1), BATCH_RESULTS_PER_FILE)):
            data = json.dumps(results[start : start + BATCH_RESULTS_PER_FILE]).encode()
            info = tarfile.TarInfo(f"{_md5(f'{batch_id}:{n}')}.json")
            info.size = len(data)
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
