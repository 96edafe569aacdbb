"""The write side of the Zendesk emulation: what a reverse-ETL destination calls on users.

Served by :class:`~omnicanal.channels.zendesk.emulation.ZendeskEmulator` on the same
router (same auth, same account-wide rate limit and its ``Retry-After``, same error
bodies) as the read side:

- ``GET /api/v2/users/search?query=email:<address>`` (or free text: email or name, or
  ``external_id=``): ``{"users", "next_page", "previous_page", "count"}``;
- ``GET /api/v2/users/{id}`` and ``GET /api/v2/users/show_many?ids=`` (at most 100);
- ``POST /api/v2/users``: creates one user (``name`` required, a well-formed ``email``
  no other user has); a refusal is ``422 {"error": "RecordInvalid", "description":
  "Record validation errors", "details": {<field>: [{"description", "error"}]}}``;
- ``PUT /api/v2/users/update_many``: ``?ids=`` (or ``external_ids=``) with one
  ``{"user": {...}}`` for all, or ``{"users": [{"id", ...}, ...]}`` each its own; at most
  100. It answers a ``job_status`` (``queued``) at once; ``GET
  /api/v2/job_statuses/{id}`` then reports it ``completed`` with one result per user:
  ``{"id", "action": "update", "success": true, "status": "Updated"}`` or ``{"id",
  "success": false, "status": "Failed", "error", "details"}``. ``tags`` on a user
  replaces all of that user's tags;
- custom user fields, ``GET/POST /api/v2/user_fields`` (``key`` lower-case letters, digits
  and underscores, unique; ``type`` text, textarea, checkbox, date, integer, decimal);
  a user's ``user_fields`` values are checked against their field's type (a refused
  value fails that user), keys no field defines are ignored, as Zendesk does, and
  ``null`` clears a value;
- the Tags API on a user, ``/api/v2/users/{id}/tags``: ``GET`` lists, ``POST`` sets
  (replaces), ``PUT`` adds, ``DELETE`` removes the tags of ``{"tags": [...]}``; each
  answers ``{"tags": [...]}``.

Tags are stored as Zendesk does: lower-cased, a space splits a tag in two, duplicates
dropped. What it holds is readable for tests: :meth:`UserWrites.user_by_email`,
:meth:`tagged`, and the counters ``users_created``, ``users_updated``, ``jobs``. With a
``state_path`` the users written and the user fields made are kept in a JSON file,
saved within a second of each write and read back at start, so a sandbox restart does
not fake a help desk that lost what a sync wrote.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omnicanal.channels.zendesk.world import ZendeskDesk, zendesk_timestamp
from omnicanal.sandbox.state_file import StateFile

BULK_MAX = 100
USER_FIELD_TYPES = {"text", "textarea", "checkbox", "date", "integer", "decimal"}
_KEY = re.compile(r"^[a-z0-9_]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
)
_WRITABLE = {
    "name",
    "email",
    "phone",
    "external_id",
    "tags",
    "details",
    "notes",
    "alias",
    "locale",
    "time_zone",
    "organization_id",
    "user_fields",
    "verified",
    "role",
}


class UserWriteError(Exception):
    """A Zendesk error answer: status and its ``{"error", "description", ...}`` body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(json.dumps(body))
        self.status, self.body = status, body


def _invalid(description: str) -> UserWriteError:
    return UserWriteError(400, {"error": "InvalidValue", "description": description})


def _not_found() -> UserWriteError:
    return UserWriteError(404, {"error": "RecordNotFound", "description": "Not found"})


def normalise_tags(tags: Any) -> list[str]:
    """Zendesk's tags: lower case, split on spaces, no duplicates, in order."""
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _invalid("tags must be an array of strings")
    seen: dict[str, None] = {}
    for tag in tags:
        for part in tag.lower().split():
            seen[part] = None
    return list(seen)


def _stamp() -> str:
    return zendesk_timestamp(datetime.now(UTC))


class UserWrites:
    """Users written, and the job statuses of bulk updates, of one emulated account."""

    def __init__(
        self,
        desk: ZendeskDesk,
        base_url: str = "https://omnicanal.zendesk.com",
        *,
        state_path: str | Path | None = None,
        lock: threading.RLock | None = None,
    ) -> None:
        self.desk = desk
        self.base_url = base_url
        self.jobs: dict[str, dict[str, Any]] = {}
        self.user_fields: dict[str, dict[str, Any]] = {}
        self.users_created = 0
        self.users_updated = 0
        #: the emulator's lock: a deferred save reads what its handlers write
        self._lock = lock or threading.RLock()
        self._written: set[int] = set()
        self.state_path = Path(state_path) if state_path else None
        self._state = StateFile(self.state_path, self._state_data, self._lock)
        if self.state_path and self.state_path.exists():
            self._load_state()

    # -- the state file ---------------------------------------------------------------

    def _load_state(self) -> None:
        assert self.state_path is not None
        data = json.loads(self.state_path.read_text())
        self.user_fields.update(data.get("user_fields") or {})
        position = {u["id"]: i for i, u in enumerate(self.desk.users)}
        for user in data.get("users") or []:
            if user["id"] in position:
                self.desk.users[position[user["id"]]] = user
            else:
                self.desk.users.append(user)
            self._written.add(user["id"])

    def _state_data(self) -> dict[str, Any]:
        """What the state file keeps."""
        return {
            "user_fields": self.user_fields,
            "users": [u for u in self.desk.users if u["id"] in self._written],
        }

    def flush(self) -> None:
        """Save what a deferred save still holds (tests, shutdown)."""
        self._state.flush()

    # -- what it holds, for tests -----------------------------------------------------

    def user(self, user_id: int) -> dict[str, Any] | None:
        return next((u for u in self.desk.users if u["id"] == user_id), None)

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        wanted = email.strip().lower()
        return next(
            (u for u in self.desk.users if (u.get("email") or "").strip().lower() == wanted), None
        )

    def tagged(self, tag: str) -> dict[str, dict[str, Any]]:
        """Users carrying ``tag``, by lower-cased email (or ``id:<n>`` without one)."""
        return {
            (u.get("email") or f"id:{u['id']}").strip().lower(): u
            for u in self.desk.users
            if tag in (u.get("tags") or [])
        }

    def reset_counters(self) -> None:
        self.users_created = self.users_updated = 0
        self.jobs.clear()

    # -- reads ------------------------------------------------------------------------

    def show(self, user_id: str) -> dict[str, Any]:
        found = self.user(self._id(user_id))
        if found is None:
            raise _not_found()
        return {"user": found}

    def show_many(self, ids: str | None) -> dict[str, Any]:
        wanted = self._ids(ids)
        return {"users": [u for u in self.desk.users if u["id"] in set(wanted)]}

    def search(self, query: str | None, external_id: str | None) -> dict[str, Any]:
        if external_id:
            found = [u for u in self.desk.users if u.get("external_id") == external_id]
        elif query:
            text = query.strip()
            if text.lower().startswith("email:"):
                wanted = text[6:].strip().strip('"').lower()
                found = [
                    u for u in self.desk.users if (u.get("email") or "").strip().lower() == wanted
                ]
            else:
                needle = text.lower()
                found = [
                    u
                    for u in self.desk.users
                    if needle in (u.get("email") or "").lower()
                    or needle in (u.get("name") or "").lower()
                ]
        else:
            raise _invalid("Supply query or external_id")
        return {"users": found, "next_page": None, "previous_page": None, "count": len(found)}

    # -- writes -----------------------------------------------------------------------

    @staticmethod
    def _id(raw: Any) -> int:
        try:
            return int(str(raw).removesuffix(".json"))
        except ValueError:
            raise _not_found() from None

    def _ids(self, raw: str | None) -> list[int]:
        parts = [p for p in (raw or "").split(",") if p.strip()]
        if not parts:
            raise _invalid("Supply ids (comma-separated user ids)")
        if len(parts) > BULK_MAX:
            raise _invalid(f"Too many ids: at most {BULK_MAX} in one request")
        try:
            return [int(p) for p in parts]
        except ValueError:
            raise _invalid("ids must be comma-separated integers") from None

    def _problems(self, fields: dict[str, Any], user_id: int | None) -> dict[str, list[dict]]:
        details: dict[str, list[dict]] = {}
        if "email" in fields and fields["email"] is not None:
            email = str(fields["email"]).strip()
            if not _EMAIL.match(email):
                details["email"] = [
                    {
                        "description": f"Email: {email} is not properly formatted",
                        "error": "InvalidFormat",
                    }
                ]
            else:
                other = self.user_by_email(email)
                if other is not None and other["id"] != user_id:
                    details["email"] = [
                        {
                            "description": f"Email: {email} is already being used by another user",
                            "error": "DuplicateValue",
                        }
                    ]
        if "name" in fields and not str(fields.get("name") or "").strip():
            details["name"] = [
                {
                    "description": "Name:  is too short (minimum is 1 character)",
                    "error": "BlankValue",
                }
            ]
        if "tags" in fields:
            try:
                normalise_tags(fields["tags"])
            except UserWriteError as exc:
                details["tags"] = [
                    {"description": exc.body["description"], "error": "InvalidValue"}
                ]
        values = fields.get("user_fields")
        if values is not None and not isinstance(values, dict):
            details["user_fields"] = [
                {"description": "user_fields must be an object", "error": "InvalidValue"}
            ]
        elif values:
            for key, value in values.items():
                spec = self.user_fields.get(key)
                if spec is None or value is None:
                    continue  # keys no field defines are ignored; None clears
                problem = _field_problem(spec["type"], value)
                if problem:
                    details[key] = [
                        {"description": f"{spec['title']}: {problem}", "error": "InvalidValue"}
                    ]
        return details

    def _apply(self, user: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        changes = {k: v for k, v in fields.items() if k in _WRITABLE}
        if "user_fields" in changes:
            changes["user_fields"] = self._merged_fields(user, changes["user_fields"])
        if "tags" in changes:
            changes["tags"] = normalise_tags(changes["tags"])
        if "email" in changes and changes["email"]:
            changes["email"] = str(changes["email"]).strip()
        updated = {**user, **changes, "updated_at": _stamp()}
        self.desk.users[self.desk.users.index(user)] = updated
        self.users_updated += 1
        self._written.add(updated["id"])
        self._state.changed()
        return updated

    def create(self, body: Any) -> tuple[int, dict[str, Any]]:
        fields = body.get("user") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            raise _invalid('Supply a user object: {"user": {...}}')
        problems = self._problems({"name": fields.get("name"), **fields}, None)
        if problems:
            raise UserWriteError(
                422,
                {
                    "error": "RecordInvalid",
                    "description": "Record validation errors",
                    "details": problems,
                },
            )
        user_id = max((u["id"] for u in self.desk.users), default=381000000000) + 1
        stamp = _stamp()
        template = next((u for u in self.desk.users if u.get("role") == "end-user"), None) or {}
        user = {
            **{k: None for k in template},
            "id": user_id,
            "url": f"{self.base_url}/api/v2/users/{user_id}.json",
            "name": str(fields["name"]).strip(),
            "email": (str(fields.get("email")).strip() if fields.get("email") else None),
            "phone": fields.get("phone"),
            "external_id": fields.get("external_id"),
            "role": fields.get("role") or "end-user",
            "verified": bool(fields.get("verified", False)),
            "active": True,
            "suspended": False,
            "locale": "pt-BR",
            "time_zone": "Brasilia",
            "tags": normalise_tags(fields.get("tags") or []),
            "user_fields": self._merged_fields({}, fields.get("user_fields") or {}),
            "details": "",
            "notes": "",
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.desk.users.append(user)
        self.users_created += 1
        self._written.add(user_id)
        self._state.changed()
        return 201, {"user": user}

    def update_many(self, ids: str | None, external_ids: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _invalid('Supply {"user": {...}} with ids, or {"users": [...]}')
        items: list[tuple[Any, dict[str, Any]]] = []
        if "users" in body:
            users = body["users"]
            if not isinstance(users, list) or not users:
                raise _invalid("users must be a non-empty array")
            if len(users) > BULK_MAX:
                raise _invalid(f"Too many users: at most {BULK_MAX} in one request")
            for entry in users:
                if not isinstance(entry, dict) or (
                    "id" not in entry and "external_id" not in entry
                ):
                    raise _invalid("Each user needs an id (or external_id)")
                key = entry.get("id", entry.get("external_id"))
                items.append((key, {k: v for k, v in entry.items() if k != "id"}))
        elif isinstance(body.get("user"), dict):
            if ids:
                items = [(i, dict(body["user"])) for i in self._ids(ids)]
            elif external_ids:
                parts = [p for p in external_ids.split(",") if p]
                if len(parts) > BULK_MAX:
                    raise _invalid(f"Too many external_ids: at most {BULK_MAX} in one request")
                items = [(("external", p), dict(body["user"])) for p in parts]
            else:
                raise _invalid("Supply ids or external_ids with a user object")
        else:
            raise _invalid('Supply {"user": {...}} with ids, or {"users": [...]}')
        results = []
        for index, (key, fields) in enumerate(items):
            if isinstance(key, tuple):
                user = next((u for u in self.desk.users if u.get("external_id") == key[1]), None)
                shown = key[1]
            else:
                try:
                    user = self.user(int(key))
                except (TypeError, ValueError):
                    user = None
                shown = key
            if user is None:
                results.append(
                    {
                        "index": index,
                        "id": shown,
                        "success": False,
                        "status": "Failed",
                        "error": "RecordNotFound",
                        "details": "Not found",
                    }
                )
                continue
            problems = self._problems(fields, user["id"])
            if problems:
                results.append(
                    {
                        "index": index,
                        "id": user["id"],
                        "success": False,
                        "status": "Failed",
                        "error": "UserUpdateError",
                        "details": "; ".join(
                            d["description"] for found in problems.values() for d in found
                        ),
                    }
                )
                continue
            self._apply(user, fields)
            results.append(
                {
                    "index": index,
                    "id": user["id"],
                    "action": "update",
                    "success": True,
                    "status": "Updated",
                }
            )
        job_id = uuid.uuid4().hex
        job = {
            "id": job_id,
            "url": f"{self.base_url}/api/v2/job_statuses/{job_id}.json",
            "job_type": "Bulk Update Users",
            "total": len(items),
            "progress": 0,
            "status": "queued",
            "message": None,
            "results": None,
        }
        # the work is done; the job reports it done from its first poll on
        self.jobs[job_id] = {**job, "_results": results}
        return {"job_status": job}

    def job_status(self, job_id: str) -> dict[str, Any]:
        job_id = job_id.removesuffix(".json")
        job = self.jobs.get(job_id)
        if job is None:
            raise _not_found()
        done = {k: v for k, v in job.items() if not k.startswith("_")}
        done.update(
            status="completed",
            progress=job["total"],
            message=f"Completed at {_stamp()}",
            results=job["_results"],
        )
        self.jobs[job_id] = {**done, "_results": job["_results"]}
        return {"job_status": done}

    # -- custom user fields ---------------------------------------------------------

    def _merged_fields(self, user: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        merged = {k: None for k in self.user_fields} | dict(user.get("user_fields") or {})
        for key, value in values.items():
            if key in self.user_fields:  # keys no field defines are ignored
                merged[key] = value
        return merged

    def field_list(self) -> dict[str, Any]:
        return {
            "user_fields": list(self.user_fields.values()),
            "next_page": None,
            "count": len(self.user_fields),
        }

    def field_create(self, body: Any) -> tuple[int, dict[str, Any]]:
        spec = body.get("user_field") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise _invalid('Supply a user field: {"user_field": {...}}')
        key, kind = str(spec.get("key") or ""), str(spec.get("type") or "")
        details: dict[str, list[dict]] = {}
        if not _KEY.match(key):
            details["key"] = [{"description": f"Key: {key!r} is invalid", "error": "InvalidValue"}]
        elif key in self.user_fields:
            details["key"] = [
                {"description": "Key: has already been taken", "error": "DuplicateValue"}
            ]
        if kind not in USER_FIELD_TYPES:
            details["type"] = [
                {"description": f"Type: {kind!r} is invalid", "error": "InvalidValue"}
            ]
        if not str(spec.get("title") or "").strip():
            details["title"] = [{"description": "Title: cannot be blank", "error": "BlankValue"}]
        if details:
            raise UserWriteError(
                422,
                {
                    "error": "RecordInvalid",
                    "description": "Record validation errors",
                    "details": details,
                },
            )
        stamp = _stamp()
        field_id = 360000000000 + len(self.user_fields) + 1
        made = {
            "id": field_id,
            "url": f"{self.base_url}/api/v2/user_fields/{field_id}.json",
            "key": key,
            "type": kind,
            "title": str(spec["title"]),
            "description": str(spec.get("description") or ""),
            "active": True,
            "system": False,
            "position": len(self.user_fields),
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.user_fields[key] = made
        self._state.changed()
        return 201, {"user_field": made}

    # -- the Tags API -----------------------------------------------------------------

    def tags(self, user_id: str, method: str, body: Any) -> dict[str, Any]:
        user = self.user(self._id(user_id))
        if user is None:
            raise _not_found()
        if method == "GET":
            return {"tags": list(user.get("tags") or [])}
        if not isinstance(body, dict) or "tags" not in body:
            raise _invalid('Supply {"tags": [...]}')
        given = normalise_tags(body["tags"])
        current = list(user.get("tags") or [])
        if method == "POST":
            new = given
        elif method == "PUT":
            new = current + [t for t in given if t not in current]
        else:  # DELETE
            new = [t for t in current if t not in given]
        if new != current:
            user = self._apply(user, {"tags": new})
        return {"tags": list(user["tags"])}


def _field_problem(kind: str, value: Any) -> str | None:
    """Why ``value`` cannot be a ``kind`` user field's value (None: it can)."""
    if kind == "checkbox":
        return None if isinstance(value, bool) else f"{value!r} is not true or false"
    if kind == "integer":
        try:
            int(str(value))
        except ValueError:
            return f"{value!r} is not an integer"
        return None
    if kind == "decimal":
        try:
            float(str(value))
        except ValueError:
            return f"{value!r} is not a number"
        return None
    if kind == "date":
        text = str(value)
        if not _DATE.match(text):
            return f"{value!r} is not a date (YYYY-MM-DD)"
        try:
            datetime.strptime(text, "%Y-%m-%d")
        except ValueError:
            return f"{value!r} is not a date (YYYY-MM-DD)"
    return None
