"""Mailchimp Marketing API v3: audience members.

Members are written with the batch subscribe/update call (``POST /lists/{list_id}``,
at most 500 members a call, ``update_existing``) and archived with
``DELETE /lists/{list_id}/members/{subscriber_hash}``; the subscriber hash is the MD5
of the lower-cased email. New members get ``status_if_new: subscribed`` and no
``status``, so a person who unsubscribed in Mailchimp is never re-subscribed by a
sync. Auth is HTTP basic with any user name and the API key as password.
"""

from __future__ import annotations

import hashlib

from omnicanal.activation.destination import Outcome, Row
from omnicanal.activation.http import RetryingClient
from omnicanal.channels.mailchimp import api_url
from omnicanal.config import Settings
from omnicanal.errors import SyncError

#: Member fields that are not merge fields.
MEMBER_FIELDS = {"email_address", "status", "status_if_new", "language", "vip", "tags"}
BATCH_LIMIT = 500


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


class MailchimpDestination:
    batch_size = BATCH_LIMIT

    def __init__(self, api_url: str, api_key: str, list_id: str, **client_options) -> None:
        self.list_id = list_id
        self.client = RetryingClient(
            api_url, auth=("omnicanal", api_key), service="Mailchimp", **client_options
        )

    @classmethod
    def from_settings(cls, settings: Settings, options: dict) -> MailchimpDestination:
        return cls(
            api_url(settings),
            settings.channel("mailchimp").api_key,
            str(options.get("list_id") or settings.channel("mailchimp").list_id),
        )

    def close(self) -> None:
        self.client.close()

    def _fail_whole(self, response, doing: str) -> None:
        if response.status_code == 401:
            raise SyncError(
                "Mailchimp rejected the API key (HTTP 401); check OMNICANAL_MAILCHIMP_API_KEY"
            )
        if response.status_code == 404:
            raise SyncError(
                f"Mailchimp has no audience {self.list_id!r} (HTTP 404); check "
                "OMNICANAL_MAILCHIMP_LIST_ID"
            )
        detail = ""
        try:
            body = response.json()
            detail = body.get("detail") or body.get("title") or ""
        except ValueError:
            detail = response.text[:200]
        raise SyncError(f"Mailchimp refused {doing} (HTTP {response.status_code}): {detail}")

    def check(self) -> None:
        """Fail early, with a clear message, on bad credentials or a missing audience."""
        response = self.client.request("GET", f"/lists/{self.list_id}")
        if response.status_code != 200:
            self._fail_whole(response, "reading the audience")

    def _member(self, payload: dict) -> dict:
        member: dict = {"status_if_new": "subscribed"}
        merge_fields = {}
        for field, value in payload.items():
            if field in MEMBER_FIELDS:
                member[field] = value
            else:
                merge_fields[field] = "" if value is None else value
        if merge_fields:
            member["merge_fields"] = merge_fields
        return member

    def upsert(self, rows: list[Row]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for start in range(0, len(rows), BATCH_LIMIT):
            batch = rows[start : start + BATCH_LIMIT]
            body = {
                "members": [self._member(row.payload) for row in batch],
                "update_existing": True,
            }
            response = self.client.request("POST", f"/lists/{self.list_id}", json=body)
            if response.status_code != 200:
                self._fail_whole(response, "the batch subscribe/update")
            errors = {
                str(err.get("email_address", "")).strip().lower(): err
                for err in response.json().get("errors") or []
            }
            for row in batch:
                email = str(row.payload.get("email_address", "")).strip().lower()
                err = errors.get(email)
                if err:
                    reason = err.get("error") or "refused"
                    if err.get("error_code"):
                        reason = f"{err['error_code']}: {reason}"
                    outcomes.append(Outcome(row.key, False, reason))
                else:
                    outcomes.append(Outcome(row.key, True))
        return outcomes

    def remove(self, rows: list[Row]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for row in rows:
            email = str(row.payload.get("email_address") or row.key)
            response = self.client.request(
                "DELETE", f"/lists/{self.list_id}/members/{subscriber_hash(email)}"
            )
            if response.status_code in (200, 204, 404):
                # 404: already gone, which is what we wanted.
                outcomes.append(Outcome(row.key, True))
            elif response.status_code in (401, 403):
                self._fail_whole(response, "archiving a member")
            else:
                outcomes.append(Outcome(row.key, False, f"HTTP {response.status_code}"))
        return outcomes
