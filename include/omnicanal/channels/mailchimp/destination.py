"""Mailchimp Marketing API v3: audience members, their merge fields and a segment tag.

Members are written with ``PUT /lists/{list_id}/members/{subscriber_hash}`` and
``status_if_new: subscribed``, never ``status``: a new person is subscribed, an
existing member keeps the status they have, so someone who unsubscribed in Mailchimp
is never re-subscribed by a sync. (Batch subscribe, ``POST /lists/{list_id}``, cannot
do that: its schema has ``status`` and no ``status_if_new``.) The subscriber hash is
the MD5 of the lower-cased email.

- Small changes (at most ``direct_limit`` rows) go one request a row; larger ones
  through ``POST /batches`` as PUT operations, up to :data:`PIPELINED_BATCHES` batches
  submitted together and then each polled until it is finished; each operation's
  result, read back from the batch's results archive, becomes the row's outcome (an
  error is a failed row with Mailchimp's detail; an operation without a result stays
  pending).
- Merge fields the sync sends that the audience lacks are created first
  (``POST /lists/{list_id}/merge-fields``, type ``text`` unless the exposure's
  ``merge_field_types`` says otherwise): Mailchimp refuses values for undefined ones.
- With a ``tag`` option each member the sync adds gets that tag
  (``POST /lists/{list_id}/members/{hash}/tags``), and a removal only takes the tag
  away: the member, whom the sync may not have added, stays in the audience. Without
  one, a removal archives the member (``DELETE``), which the engine asks only for
  members the sync wrote.
- The client is paced (``rate_limit`` requests a second, default 10; Mailchimp allows
  10 simultaneous connections per key and this client holds one) and 429 answers are
  retried after ``Retry-After``.

Auth is HTTP basic with any user name and the API key as password. The results
archive is fetched from its own (pre-signed) URL without the API key.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import time
from collections.abc import Callable

import httpx

from omnicanal.activation.destination import Outcome, Row
from omnicanal.activation.http import RetryingClient
from omnicanal.channels.mailchimp import api_url
from omnicanal.config import Settings
from omnicanal.errors import SyncError

log = logging.getLogger(__name__)

#: Payload fields that are member fields, not merge fields.
MEMBER_FIELDS = {"email_address", "email_type", "language", "vip"}
#: Fields a sync must never send: a sync does not change anyone's subscription status,
#: and tags change only through the tags endpoint.
FORBIDDEN_FIELDS = {"status", "status_if_new", "tags"}
#: Operations per ``/batches`` request. Mailchimp documents no maximum.
BATCH_OPERATIONS = 1000
#: ``/batches`` requests submitted together before the first is awaited: Mailchimp runs
#: them in the background (up to 500 may wait), so while one runs the next uploads and
#: the client's requests keep to its pace instead of idling on each batch in turn. The
#: engine's batch is this many batches' rows, committed to the ledger together, which
#: bounds the rows a crash leaves to be sent again.
PIPELINED_BATCHES = 5
#: Up to this many rows are sent one request each; more go through ``/batches``.
DIRECT_LIMIT = 20
#: Requests a second: Mailchimp limits connections (10 at once), not rate; one paced
#: connection stays well inside it.
RATE_LIMIT = 10.0
MERGE_FIELD_TYPES = {
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
}


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def _detail(status: int, text: str) -> str:
    """Mailchimp's reason from a problem body: its detail and each field error."""
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        return f"HTTP {status}: {text[:200]}"
    if not isinstance(body, dict):
        return f"HTTP {status}"
    reason = body.get("detail") or body.get("title") or f"HTTP {status}"
    fields = [
        f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message"))
        for e in body.get("errors") or []
        if isinstance(e, dict) and e.get("message") != reason
    ]
    return f"{reason} ({'; '.join(fields)})" if fields else reason


class MailchimpDestination:
    batch_size = BATCH_OPERATIONS * PIPELINED_BATCHES
    consent_channel = "email"

    def __init__(
        self,
        api_url: str,
        api_key: str,
        list_id: str,
        *,
        tag: str | None = None,
        merge_field_types: dict[str, str] | None = None,
        direct_limit: int = DIRECT_LIMIT,
        poll_interval: float = 0.2,
        max_poll_interval: float = 5.0,
        batch_timeout: float = 900.0,
        rate_limit: float | None = RATE_LIMIT,
        **client_options,
    ) -> None:
        self.list_id = list_id
        if tag is not None and (not isinstance(tag, str) or not tag.strip()):
            raise SyncError(
                "the Mailchimp sync's `tag` option must be a tag name (text); fix "
                "meta.omnicanal_sync.tag"
            )
        self.tag = tag.strip() if tag else None
        self.merge_field_types = {k.upper(): v for k, v in (merge_field_types or {}).items()}
        unknown = {v for v in self.merge_field_types.values() if v not in MERGE_FIELD_TYPES}
        if unknown:
            raise SyncError(
                f"Mailchimp merge_field_types has unknown type(s) {sorted(unknown)}; use "
                f"one of {', '.join(sorted(MERGE_FIELD_TYPES))}"
            )
        self.direct_limit = direct_limit
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.batch_timeout = batch_timeout
        self.rate_limit = rate_limit or None
        self.client = RetryingClient(
            api_url,
            auth=("omnicanal", api_key),
            service="Mailchimp",
            rate_limit=self.rate_limit,
            **client_options,
        )
        # the results archive lives behind a pre-signed link: no API key goes there
        self.downloads = RetryingClient(
            "",
            service="Mailchimp batch results",
            max_attempts=client_options.get("max_attempts", 6),
        )
        self._merge_tags: set[str] | None = None
        self._stats = {
            "requests": 0,
            "batches": 0,
            "batch_operations": 0,
            "batch_errored_operations": 0,
            "merge_fields_created": [],
        }

    @classmethod
    def from_settings(cls, settings: Settings, options: dict) -> MailchimpDestination:
        mailchimp = settings.channel("mailchimp")
        kwargs = {
            name: options[name]
            for name in ("direct_limit", "poll_interval", "batch_timeout", "rate_limit")
            if name in options
        }
        return cls(
            api_url(settings),
            mailchimp.api_key,
            str(options.get("list_id") or mailchimp.list_id),
            tag=options.get("tag"),
            merge_field_types=options.get("merge_field_types"),
            **kwargs,
        )

    def close(self) -> None:
        self.client.close()
        self.downloads.close()

    def stats(self) -> dict:
        """What this run asked of Mailchimp, for ``sync_runs.destination_stats``."""
        return {**self._stats, "requests": self.client.requests_sent}

    # -- whole-destination failures ---------------------------------------------------

    def _fail_whole(self, response: httpx.Response, doing: str) -> None:
        if response.status_code in (401, 403):
            raise SyncError(
                f"Mailchimp rejected the API key (HTTP {response.status_code}); check "
                "OMNICANAL_MAILCHIMP_API_KEY"
            )
        if response.status_code == 404:
            raise SyncError(
                f"Mailchimp has no audience {self.list_id!r} (HTTP 404); check "
                "OMNICANAL_MAILCHIMP_LIST_ID"
            )
        raise SyncError(
            f"Mailchimp refused {doing}: {_detail(response.status_code, response.text)}"
        )

    def _request(self, method: str, path: str, doing: str, **kwargs) -> httpx.Response:
        """A request whose failure is the whole destination's (anything but 2xx)."""
        response = self.client.request(method, path, **kwargs)
        if response.status_code >= 300:
            self._fail_whole(response, doing)
        return response

    def check(self) -> None:
        """Fail early, with a clear message, on bad credentials or a missing audience."""
        self._request("GET", f"/lists/{self.list_id}", "reading the audience")

    # -- merge fields ------------------------------------------------------------------

    def _ensure_merge_fields(self, tags: set[str]) -> None:
        """Create the merge fields the rows carry that the audience does not define."""
        if self._merge_tags is None:
            known: set[str] = set()
            offset = 0
            while True:
                page = self._request(
                    "GET",
                    f"/lists/{self.list_id}/merge-fields",
                    "listing the audience's merge fields",
                    params={
                        "count": 1000,
                        "offset": offset,
                        "fields": "merge_fields.tag,total_items",
                    },
                ).json()
                known |= {f["tag"].upper() for f in page.get("merge_fields") or []}
                offset += 1000
                if offset >= page.get("total_items", 0):
                    break
            self._merge_tags = known
        for tag in sorted(t for t in tags if t.upper() not in self._merge_tags):
            kind = self.merge_field_types.get(tag.upper(), "text")
            self._request(
                "POST",
                f"/lists/{self.list_id}/merge-fields",
                f"creating the merge field {tag!r} (type {kind}); a merge tag is at most 10 "
                "letters, digits or underscores: rename the field in meta.omnicanal_sync.fields",
                json={"tag": tag.upper(), "name": tag, "type": kind, "public": False},
            )
            self._merge_tags.add(tag.upper())
            self._stats["merge_fields_created"].append(tag)

    # -- members -----------------------------------------------------------------------

    @staticmethod
    def _email(row: Row) -> str:
        return str(row.payload.get("email_address") or row.key)

    def _member(self, row: Row) -> dict:
        """The PUT body: ``status_if_new`` only, so an existing member's status stays."""
        member: dict = {"email_address": self._email(row), "status_if_new": "subscribed"}
        merge_fields = {}
        for name, value in row.payload.items():
            if name in MEMBER_FIELDS:
                member[name] = value
            else:  # merge tags are upper case
                merge_fields[name.upper()] = "" if value is None else value
        if merge_fields:
            member["merge_fields"] = merge_fields
        return member

    def _tags_body(self, active: bool) -> dict:
        return {"tags": [{"name": self.tag, "status": "active" if active else "inactive"}]}

    def upsert(self, rows: list[Row]) -> list[Outcome]:
        if not rows:
            return []
        fields = set().union(*(row.payload for row in rows))
        forbidden = sorted(fields & FORBIDDEN_FIELDS)
        if forbidden:
            raise SyncError(
                f"a Mailchimp sync must not send {', '.join(forbidden)}: a sync never changes "
                "a member's subscription status, and tags come from the exposure's `tag` "
                "option; remove them from meta.omnicanal_sync.fields"
            )
        self._ensure_merge_fields(fields - MEMBER_FIELDS)
        members = [
            (
                row,
                "PUT",
                f"/lists/{self.list_id}/members/{subscriber_hash(self._email(row))}",
                self._member(row),
            )
            for row in rows
        ]
        outcomes = self._write(members)
        if not self.tag:
            return outcomes
        # tags only once the member exists: operations of one batch run in no set order
        by_key = {row.key: row for row in rows}
        tagged = [
            (
                by_key[o.key],
                "POST",
                f"/lists/{self.list_id}/members/{subscriber_hash(self._email(by_key[o.key]))}/tags",
                self._tags_body(True),
            )
            for o in outcomes
            if o.ok
        ]
        tag_outcomes = {o.key: o for o in self._write(tagged)}
        merged = []
        for outcome in outcomes:
            if not outcome.ok:
                merged.append(outcome)
            elif outcome.key in tag_outcomes:
                tag = tag_outcomes[outcome.key]
                merged.append(
                    outcome
                    if tag.ok
                    else Outcome(outcome.key, False, f"tag {self.tag!r}: {tag.error}", outcome.ref)
                )
            # a member whose tag got no answer stays pending: sent again next run
        return merged

    def remove(self, rows: list[Row]) -> list[Outcome]:
        if not rows:
            return []
        if self.tag:
            # the segment is the tag: leaving it takes the tag away, the member stays
            calls = [
                (
                    row,
                    "POST",
                    f"/lists/{self.list_id}/members/{subscriber_hash(self._email(row))}/tags",
                    self._tags_body(False),
                )
                for row in rows
            ]
        else:
            calls = [
                (
                    row,
                    "DELETE",
                    f"/lists/{self.list_id}/members/{subscriber_hash(self._email(row))}",
                    None,
                )
                for row in rows
            ]
        return self._write(calls, gone_is_done=True)

    # -- sending: one request a row, or a batch ----------------------------------------

    def _write(
        self, calls: list[tuple[Row, str, str, dict | None]], *, gone_is_done: bool = False
    ) -> list[Outcome]:
        if not calls:
            return []
        if len(calls) <= self.direct_limit:
            return self._write_direct(calls, gone_is_done)
        chunks = [
            calls[start : start + BATCH_OPERATIONS]
            for start in range(0, len(calls), BATCH_OPERATIONS)
        ]
        # every batch submitted first, then each awaited in turn: by the time the first
        # is read back the others have been running
        submitted = [(chunk, self._submit_batch(chunk)) for chunk in chunks]
        outcomes: list[Outcome] = []
        for chunk, batch_id in submitted:
            outcomes += self._collect_batch(chunk, batch_id, gone_is_done)
        return outcomes

    def _outcome(
        self, row: Row, status: int, text: str, gone_is_done: bool, ref: str | None
    ) -> Outcome | None:
        """One answer as the row's outcome; None leaves the row pending."""
        if 200 <= status < 300 or (gone_is_done and status == 404):
            return Outcome(row.key, True, None, ref)
        if status in (401, 403):
            raise SyncError(
                f"Mailchimp rejected the API key (HTTP {status}); check OMNICANAL_MAILCHIMP_API_KEY"
            )
        if status == 429 or status >= 500:
            return None  # transient: the row is sent again by the next run
        return Outcome(row.key, False, _detail(status, text), ref)

    def _write_direct(self, calls, gone_is_done: bool) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for row, method, path, body in calls:
            response = self.client.request(method, path, json=body)
            if response.status_code >= 500 or response.status_code == 429:
                # still failing after the client's retries: Mailchimp is down for us
                self._fail_whole(response, f"{method} {path}")
            ref = None
            if response.status_code == 200 and method == "PUT":
                ref = response.json().get("id")
            outcome = self._outcome(row, response.status_code, response.text, gone_is_done, ref)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _submit_batch(self, calls) -> str:
        """``POST /batches`` with one operation per call; the batch's id."""
        operations = [
            {
                "method": method,
                "path": path,
                "operation_id": f"op{n}",
                **({"body": json.dumps(body)} if body is not None else {}),
            }
            for n, (_row, method, path, body) in enumerate(calls)
        ]
        batch = self._request(
            "POST", "/batches", "starting a batch operation", json={"operations": operations}
        ).json()
        self._stats["batches"] += 1
        self._stats["batch_operations"] += len(operations)
        return str(batch["id"])

    def _collect_batch(self, calls, batch_id: str, gone_is_done: bool) -> list[Outcome]:
        """Each call's outcome once its batch has finished (none while it has not)."""
        finished = self._await(batch_id)
        if finished is None:
            log.warning(
                "Mailchimp batch %s did not finish within %.0fs; its %d rows stay pending",
                batch_id,
                self.batch_timeout,
                len(calls),
            )
            return []
        self._stats["batch_errored_operations"] += finished.get("errored_operations", 0)
        results = self._results(finished["response_body_url"])
        outcomes: list[Outcome] = []
        for n, (row, _method, _path, _body) in enumerate(calls):
            result = results.get(f"op{n}")
            if result is None:
                continue  # no answer for this operation: pending
            outcome = self._outcome(
                row,
                int(result.get("status_code") or 0),
                result.get("response") or "",
                gone_is_done,
                f"{batch_id}/op{n}",
            )
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _await(self, batch_id: str, *, clock: Callable[[], float] = time.monotonic) -> dict | None:
        """Poll ``GET /batches/{id}`` until it is finished; None after ``batch_timeout``."""
        deadline = clock() + self.batch_timeout
        interval = self.poll_interval
        while True:
            response = self.client.request("GET", f"/batches/{batch_id}")
            if response.status_code == 404:
                log.warning("Mailchimp batch %s was deleted before it finished", batch_id)
                return None  # its rows stay pending
            if response.status_code >= 300:
                self._fail_whole(response, f"reading batch {batch_id}")
            status = response.json()
            if status.get("status") == "finished":
                return status
            if clock() >= deadline:
                return None
            time.sleep(interval)
            interval = min(interval * 2, self.max_poll_interval)

    def _results(self, url: str) -> dict[str, dict]:
        """Each operation's result from the batch's results archive, by operation id."""
        response = self.downloads.request("GET", url)
        if response.status_code != 200:
            raise SyncError(
                f"Mailchimp's batch results could not be read (HTTP {response.status_code} "
                "from its response_body_url); the rows stay pending and are sent again"
            )
        results: dict[str, dict] = {}
        with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
            for member in archive.getmembers():
                if not member.isfile() or not member.name.endswith(".json"):
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                for result in json.load(handle):
                    if isinstance(result, dict) and result.get("operation_id"):
                        results[str(result["operation_id"])] = result
        return results
