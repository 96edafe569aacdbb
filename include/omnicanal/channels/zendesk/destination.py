"""Zendesk Support as a destination: a user tag, so agents see the segment.

Each row is a person, keyed by email (field ``email``; ``name`` is used only to create
a user Zendesk does not have yet); every other field is a custom user field (its key),
which agents see on the user's profile, created on first use with a type inferred from
the values (checkbox, integer, decimal, date or text). The sync owns one tag (option
``tag``, default ``omnicanal_segment``) and its fields, and touches nothing else of a
user:

- a row in the segment: the user is found with ``GET /api/v2/users/search?query=email:``;
  a user without the tag, or whose fields differ, gets them through
  ``PUT /api/v2/users/update_many`` (100 users a call, each with their own tags plus
  ours), a bulk job whose ``job_status`` is polled
  to completion and whose per-user results become the rows' outcomes; a person Zendesk
  does not know is created (``POST /api/v2/users``, an end-user with the tag). A user
  who has the tag already is left alone;
- a row that left: the same bulk update with the user's tags less ours and our fields
  emptied; a user who is gone needs nothing.

A bulk update sets a user's whole tag list, so a tag an agent adds between our read and
our write can be lost for that user; the window is one job (seconds). Tags in a help
desk are not marketing: no consent channel gates this destination (``consent_channel``
None). Requests are paced at the account's limit (700 a minute, Suite Enterprise; option
``rate_limit`` in requests a second for smaller plans), a 429's ``Retry-After`` is
honoured and requests wait for ``ratelimit-reset`` when ``X-Rate-Limit-Remaining`` hits 0.
Auth: Basic ``<OMNICANAL_ZENDESK_EMAIL>/token:<OMNICANAL_ZENDESK_API_TOKEN>``, or
``Bearer <OMNICANAL_ZENDESK_OAUTH_TOKEN>`` when set.
"""

from __future__ import annotations

import re
import time
from datetime import date
from typing import Any

from omnicanal.activation.destination import Outcome, Row
from omnicanal.activation.http import RetryingClient
from omnicanal.channels.zendesk import api_url
from omnicanal.config import Settings
from omnicanal.errors import SyncError

BATCH_LIMIT = 100
#: 700 requests a minute (Suite Enterprise).
RATE_LIMIT = 700 / 60
DEFAULT_TAG = "omnicanal_segment"
JOB_TIMEOUT = 300.0
#: Row fields that are the user's own, not custom user fields.
USER_ATTRIBUTES = {"email", "name"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def user_field_type(value: Any) -> str:
    """The type of a new Zendesk custom user field that holds ``value``."""
    if isinstance(value, bool):
        return "checkbox"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "decimal"
    if isinstance(value, date) or (isinstance(value, str) and _DATE.match(value)):
        return "date"
    return "text"


def _same(held: Any, wanted: Any) -> bool:
    if held is None or wanted is None:
        return held is None and wanted is None
    if isinstance(wanted, bool) or isinstance(held, bool):
        return held is wanted
    return str(held) == str(wanted)


class ZendeskDestination:
    batch_size = BATCH_LIMIT
    #: a tag agents see in the help desk is not a marketing message
    consent_channel = None

    def __init__(
        self,
        api_url: str,
        *,
        email: str | None = None,
        api_token: str | None = None,
        oauth_token: str | None = None,
        tag: str = DEFAULT_TAG,
        rate_limit: float = RATE_LIMIT,
        job_timeout: float = JOB_TIMEOUT,
        **client_options: Any,
    ) -> None:
        tag = str(tag).strip().lower()
        if not tag or " " in tag:
            raise SyncError(
                f"a Zendesk tag is one lower-case word, got {tag!r}: fix the exposure's "
                "`tag` option"
            )
        self.tag = tag
        self.rate_limit = rate_limit
        self.job_timeout = job_timeout
        if oauth_token:
            auth, headers = None, {"Authorization": f"Bearer {oauth_token}"}
            self.credential_setting = "OMNICANAL_ZENDESK_OAUTH_TOKEN"
        else:
            auth, headers = (f"{email}/token", str(api_token or "")), None
            self.credential_setting = "OMNICANAL_ZENDESK_EMAIL and OMNICANAL_ZENDESK_API_TOKEN"
        self.client = RetryingClient(
            api_url,
            auth=auth,
            headers=headers,
            service="Zendesk",
            rate_limit=rate_limit,
            **client_options,
        )
        self._stats = {"users_created": 0, "users_tagged": 0, "users_untagged": 0, "jobs": 0}
        self._fields: dict[str, dict[str, Any]] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, options: dict[str, Any]) -> ZendeskDestination:
        zendesk = settings.channel("zendesk")
        mode = str(options.get("mode") or "audience")
        if mode not in ("audience", "mirror", "upsert"):
            raise SyncError(
                f"a Zendesk sync tags users: use mode audience (add and remove the tag) or "
                f"upsert (only add it), not {mode!r}"
            )
        return cls(
            api_url(settings),
            email=zendesk.email,
            api_token=zendesk.api_token,
            oauth_token=zendesk.oauth_token,
            tag=str(options.get("tag") or DEFAULT_TAG),
            rate_limit=float(options.get("rate_limit") or RATE_LIMIT),
        )

    def close(self) -> None:
        self.client.close()

    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    # -- HTTP -------------------------------------------------------------------------

    def _request(self, method: str, path: str, doing: str, **kwargs: Any):
        response = self.client.request(method, path, **kwargs)
        if response.headers.get("X-Rate-Limit-Remaining") == "0" and self.client.limiter:
            try:
                self.client.limiter.defer(float(response.headers.get("ratelimit-reset") or 1))
            except ValueError:
                self.client.limiter.defer(1.0)
        if response.status_code == 401:
            raise SyncError(
                f"Zendesk could not authenticate omnicanal (HTTP 401) while {doing}; check "
                f"{self.credential_setting}"
            )
        if response.status_code == 403:
            raise SyncError(
                f"Zendesk refused {doing} (HTTP 403): the agent behind "
                f"{self.credential_setting} may not manage end users"
            )
        return response

    @staticmethod
    def _detail(response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:200]
        parts = [str(body.get("error") or ""), str(body.get("description") or "")]
        details = body.get("details")
        if isinstance(details, dict):
            parts += [
                str(d.get("description") or d.get("error"))
                for found in details.values()
                for d in (found if isinstance(found, list) else [found])
                if isinstance(d, dict)
            ]
        return ": ".join(p for p in parts if p)

    def _fail(self, response, doing: str) -> SyncError:
        return SyncError(
            f"Zendesk refused {doing} (HTTP {response.status_code}): {self._detail(response)}"
        )

    def check(self) -> None:
        """Fail early, naming the settings, when Zendesk does not take the credentials."""
        response = self._request("GET", "/api/v2/users/me.json", "reading the agent")
        if response.status_code != 200:
            raise self._fail(response, "reading the authenticated agent")

    # -- custom user fields -----------------------------------------------------------

    @staticmethod
    def _values(row: Row) -> dict[str, Any]:
        return {k: v for k, v in row.payload.items() if k not in USER_ATTRIBUTES}

    def _ensure_fields(self, rows: list[Row]) -> None:
        wanted: dict[str, Any] = {}
        for row in rows:
            for key, value in self._values(row).items():
                if wanted.get(key) is None:
                    wanted[key] = value
        if not wanted:
            return
        if self._fields is None:
            response = self._request("GET", "/api/v2/user_fields.json", "reading user fields")
            if response.status_code != 200:
                raise self._fail(response, "reading the custom user fields")
            self._fields = {f["key"]: f for f in response.json().get("user_fields") or []}
        for key, sample in wanted.items():
            if key in self._fields:
                continue
            response = self._request(
                "POST",
                "/api/v2/user_fields.json",
                "creating a user field",
                json={
                    "user_field": {
                        "key": key,
                        "type": user_field_type(sample),
                        "title": key.replace("_", " ").capitalize(),
                        "description": "Written by omnicanal's reverse-ETL sync.",
                    }
                },
            )
            if response.status_code not in (200, 201):
                raise self._fail(
                    response,
                    f"creating the custom user field {key!r} (an admin creates it in Admin "
                    "Center, or map the column to an existing field's key)",
                )
            self._fields[key] = response.json()["user_field"]

    # -- users ------------------------------------------------------------------------

    def _find(self, email: str) -> dict[str, Any] | None:
        response = self._request(
            "GET",
            "/api/v2/users/search.json",
            "searching users",
            params={"query": f"email:{email}"},
        )
        if response.status_code != 200:
            raise self._fail(response, "searching users by email")
        wanted = email.strip().lower()
        for user in response.json().get("users") or []:
            if (user.get("email") or "").strip().lower() == wanted:
                return user
        return None

    def _create(self, row: Row, email: str) -> Outcome:
        name = str(row.payload.get("name") or "").strip() or email.split("@", 1)[0]
        response = self._request(
            "POST",
            "/api/v2/users.json",
            "creating a user",
            json={
                "user": {
                    "name": name,
                    "email": email,
                    "tags": [self.tag],
                    "user_fields": self._values(row),
                }
            },
        )
        if response.status_code in (200, 201):
            self._stats["users_created"] += 1
            return Outcome(row.key, True, ref=str(response.json()["user"]["id"]))
        if response.status_code in (400, 422):
            return Outcome(row.key, False, self._detail(response))
        raise self._fail(response, "creating a user")

    def _retag(self, pairs: list[tuple[Row, dict[str, Any]]], add: bool) -> list[Outcome]:
        """One bulk update of the users' tag lists; the job's results as outcomes."""
        users = []
        for row, user in pairs:
            tags = [t for t in user.get("tags") or [] if t != self.tag]
            values = self._values(row)
            change: dict[str, Any] = {"id": user["id"], "tags": [*tags, self.tag] if add else tags}
            if values:
                change["user_fields"] = values if add else dict.fromkeys(values)
            users.append(change)
        response = self._request(
            "PUT",
            "/api/v2/users/update_many.json",
            "the bulk update of users",
            json={"users": users},
        )
        if response.status_code != 200:
            raise self._fail(response, "the bulk update of users' tags")
        self._stats["jobs"] += 1
        results = self._wait(response.json()["job_status"])
        by_id = {str(r.get("id")): r for r in results}
        by_index = {r["index"]: r for r in results if isinstance(r.get("index"), int)}
        outcomes = []
        for index, (row, user) in enumerate(pairs):
            result = by_id.get(str(user["id"])) or by_index.get(index)
            if result is None:
                continue  # no answer for this user: pending, sent again next run
            if result.get("success") or result.get("status") in ("Updated", "Created"):
                outcomes.append(Outcome(row.key, True, ref=str(user["id"])))
                self._stats["users_tagged" if add else "users_untagged"] += 1
            elif not add and result.get("error") == "RecordNotFound":
                outcomes.append(Outcome(row.key, True))  # gone: carries no tag of ours
            else:
                reason = ": ".join(str(result[k]) for k in ("error", "details") if result.get(k))
                outcomes.append(Outcome(row.key, False, reason or "refused"))
        return outcomes

    def _wait(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        """Poll a job status until it completes; its results."""
        deadline = time.monotonic() + self.job_timeout
        pause = 0.2
        while job.get("status") in ("queued", "working"):
            if time.monotonic() > deadline:
                raise SyncError(
                    f"Zendesk's job {job.get('id')} did not complete in {self.job_timeout:.0f}s; "
                    "the next run sends its rows again"
                )
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
            response = self._request(
                "GET", f"/api/v2/job_statuses/{job['id']}.json", "polling a job status"
            )
            if response.status_code != 200:
                raise self._fail(response, f"reading job status {job.get('id')}")
            job = response.json()["job_status"]
        if job.get("status") != "completed":
            raise SyncError(
                f"Zendesk's job {job.get('id')} ended {job.get('status')}: {job.get('message')}"
            )
        return list(job.get("results") or [])

    def upsert(self, rows: list[Row]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for start in range(0, len(rows), BATCH_LIMIT):
            outcomes += self._apply(rows[start : start + BATCH_LIMIT], add=True)
        return outcomes

    def remove(self, rows: list[Row]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for start in range(0, len(rows), BATCH_LIMIT):
            outcomes += self._apply(rows[start : start + BATCH_LIMIT], add=False)
        return outcomes

    def _apply(self, rows: list[Row], *, add: bool) -> list[Outcome]:
        if add:
            self._ensure_fields(rows)
        answered: dict[str, Outcome] = {}
        to_update: list[tuple[Row, dict[str, Any]]] = []
        for row in rows:
            email = str(row.payload.get("email") or row.key).strip()
            user = self._find(email) if "@" in email else None
            if user is None:
                if add:
                    answered[row.key] = self._create(row, email)
                else:
                    answered[row.key] = Outcome(row.key, True)  # nobody to untag
                continue
            held = user.get("user_fields") or {}
            fields_as_wanted = all(
                _same(held.get(k), v if add else None) for k, v in self._values(row).items()
            )
            has_tag = self.tag in (user.get("tags") or [])
            if has_tag == add and fields_as_wanted:
                answered[row.key] = Outcome(row.key, True, ref=str(user["id"]))
            else:
                to_update.append((row, user))
        if to_update:
            for outcome in self._retag(to_update, add):
                answered[outcome.key] = outcome
        return [answered[row.key] for row in rows if row.key in answered]
