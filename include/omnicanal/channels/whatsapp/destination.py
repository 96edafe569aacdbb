"""WhatsApp Cloud API: a template message to each member of a segment.

A business may open a conversation only with an approved message template, so a sync to
WhatsApp sends one ``type: template`` message per row: ``POST /{phone-number-id}/messages``
with ``to`` (the row's ``to`` field, a phone number; WhatsApp resolves Brazilian numbers
with or without the ninth digit), the template's name and language (the exposure's
``template`` and ``language`` options, else ``OMNICANAL_WHATSAPP_TEMPLATE`` and
``_TEMPLATE_LANGUAGE``) and, as the body's parameters, every other mapped field: named
parameters (``{{first_name}}``) by field name, or positional ones (``{{1}}``) when the
fields are called ``1``, ``2`` …. The row's key rides along as
``biz_opaque_callback_data``, which comes back in the message's statuses.

A message cannot be unsent: ``supports_remove`` is False, and the sync's mode is
``message`` (each key is sent once; the key names the campaign window, e.g. customer
and checkout). The engine sends only to people with a WhatsApp opt-in
(``consent_channel``).

What comes back:

- accepted: :class:`Outcome` ``ok`` with ``ref`` = the message id (``wamid.…``), which the
  delivery statuses (sent, delivered, read, failed) name when they arrive by webhook
  (:mod:`.statuses` writes them to the ledger);
- refused (a malformed number, a parameter WhatsApp will not take): a failed outcome with
  Meta's code, title and details;
- the pair rate limit (131056: one message every 6 seconds to the same user): the
  destination spaces messages to one recipient itself, waits and tries again; a row still
  refused is left pending for the next run;
- a template that is missing, not approved, paused, or whose variables are not the
  mapped fields; a refused token; an unknown phone number id: :class:`SyncError` naming
  what to fix, before anything is sent.

Requests are paced at the number's throughput (``OMNICANAL_WHATSAPP_MESSAGES_PER_SECOND``,
80 by default) and 130429 (HTTP 429) and 5xx answers are retried with backoff.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import httpx

from omnicanal.activation.destination import Outcome, Row
from omnicanal.activation.http import RetryingClient
from omnicanal.channels.whatsapp import api_url
from omnicanal.channels.whatsapp.templates import variables
from omnicanal.config import Settings
from omnicanal.errors import OmnicanalError, SyncError

log = logging.getLogger(__name__)

#: The payload field that holds the recipient's phone number.
TO_FIELD = "to"
#: One sync batch: how many messages are sent (one request each) between two ledger commits.
BATCH_SIZE = 100
#: The pair rate limit: one message every 6 seconds to the same user.
PAIR_INTERVAL = 6.0
PAIR_RETRIES = 3
MAX_CALLBACK_DATA = 512
_TOKEN_SETTING = "OMNICANAL_WHATSAPP_ACCESS_TOKEN"
#: Errors that mean the template (or its mapping) is wrong: every row would fail alike.
_TEMPLATE_CODES = {132000, 132001, 132005, 132007, 132012, 132015, 132016}
_AUTH_CODES = {0, 102, 104, 190}
_PERMISSION_CODES = {3, 10, 200}


class InDoubt(SyncError):
    """The Cloud API gave no answer to a message (unreachable, or 5xx after retries): it
    may have been sent."""


def _error(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"message": response.text[:200]}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {"message": str(body)[:200]}


def _reason(error: dict[str, Any]) -> str:
    """Meta's reason for a refusal: its message (code and title) and details."""
    message = str(error.get("message") or "refused")
    code = error.get("code")
    if code is not None and f"#{code}" not in message:
        message = f"(#{code}) {message}"
    details = (error.get("error_data") or {}).get("details")
    return f"{message}: {details}" if details else message


def _recipient(to: str) -> str:
    """One form of a number for the pair limit: digits, a Brazilian mobile without its
    ninth digit (WhatsApp treats both forms as one account)."""
    digits = re.sub(r"\D", "", to)
    if digits.startswith("55") and len(digits) == 13 and digits[4] == "9":
        return digits[:4] + digits[5:]
    return digits


class WhatsAppDestination:
    batch_size = BATCH_SIZE
    consent_channel = "whatsapp"
    supports_remove = False

    def __init__(
        self,
        api_url: str,
        access_token: str,
        phone_number_id: str,
        waba_id: str,
        *,
        template: str | None,
        language: str,
        api_version: str,
        rate_limit: float,
        pair_interval: float = PAIR_INTERVAL,
        **client_options: Any,
    ) -> None:
        self.template = template
        self.language = language
        self.phone_number_id = phone_number_id
        self.waba_id = waba_id
        self.rate_limit = rate_limit
        self.pair_interval = pair_interval
        self.client = RetryingClient(
            f"{api_url.rstrip('/')}/{api_version}",
            headers={"Authorization": f"Bearer {access_token}"},
            service="the WhatsApp Cloud API",
            rate_limit=rate_limit,
            **client_options,
        )
        self._variables: list[str] | None = None
        self._named = True
        self._last_sent: dict[str, float] = {}
        self._stats = {"accepted": 0, "refused": 0, "pair_rate_limited": 0, "left_pending": 0}
        #: set for a sync run: the delivery statuses are collected at its start and end
        self.statuses_settings: Settings | None = None
        self._statuses_read: dict[str, int] = {}
        self._collected_at_end = False
        #: check, upsert or stats were called: a run (a plan only builds and closes)
        self._used = False
        #: a whole-destination failure met part-way through a batch, raised by the next call
        self._failure: SyncError | None = None

    @classmethod
    def from_settings(cls, settings: Settings, options: dict) -> WhatsAppDestination:
        whatsapp = settings.channel("whatsapp")
        template = options.get("template") or whatsapp.template
        language = options.get("language") or whatsapp.template_language
        destination = cls(
            api_url(settings),
            whatsapp.access_token,
            whatsapp.phone_number_id,
            whatsapp.waba_id,
            template=str(template) if template else None,
            language=str(language),
            api_version=whatsapp.api_version,
            rate_limit=float(whatsapp.messages_per_second),
        )
        if "mode" in options:  # built by the sync engine for a run
            destination.statuses_settings = settings
        return destination

    def collect_statuses(self) -> None:
        """Bring the delivery statuses that arrived into the ledger; a receiver that is
        down only delays them (the next run reads them), so it is a warning here."""
        if self.statuses_settings is None:
            return
        from omnicanal.channels.whatsapp.statuses import collect_statuses

        try:
            read = collect_statuses(self.statuses_settings)
        except (OmnicanalError, httpx.HTTPError) as exc:
            log.warning("whatsapp: delivery statuses not collected this time: %s", exc)
            return
        for status, count in read.by_status.items():
            self._statuses_read[status] = self._statuses_read.get(status, 0) + count

    def close(self) -> None:
        try:
            if self._used and not self._collected_at_end:
                self.collect_statuses()
        finally:
            self.client.close()

    def stats(self) -> dict[str, Any]:
        """This run's messages accepted and refused, pair-rate-limit waits, and the
        delivery statuses read into the ledger during the run (at its start and end), so
        ``omnicanal sync status`` shows a message that failed after it was sent."""
        self._used = True
        if self.statuses_settings is not None and not self._collected_at_end:
            self.collect_statuses()
            self._collected_at_end = True
        found: dict[str, Any] = {**self._stats, "statuses_read": dict(self._statuses_read)}
        if self._failure is not None:
            found["error"] = str(self._failure)
        return found

    # --- whole-destination failures ---------------------------------------------------

    def _fail_whole(self, response: httpx.Response, doing: str) -> None:
        error = _error(response)
        code = error.get("code")
        if response.status_code == 401 or code in _AUTH_CODES:
            raise SyncError(
                f"the WhatsApp Cloud API refused the access token while {doing} "
                f"({_reason(error)}); check {_TOKEN_SETTING}"
            )
        if code in _PERMISSION_CODES:
            raise SyncError(
                f"the WhatsApp access token may not do this ({_reason(error)}); give the "
                f"system user whatsapp_business_messaging and whatsapp_business_management "
                f"and check {_TOKEN_SETTING}"
            )
        if code in _TEMPLATE_CODES:
            raise SyncError(
                f"WhatsApp refused template {self.template!r} ({self.language}): "
                f"{_reason(error)}; fix the template in WhatsApp Manager or the sync's "
                "template, language and fields (meta.omnicanal_sync in its exposure)"
            )
        failure = InDoubt if response.status_code >= 500 else SyncError
        raise failure(
            f"the WhatsApp Cloud API refused {doing} (HTTP {response.status_code}): "
            f"{_reason(error)}"
        )

    def check(self) -> None:
        """Fail before sending anything: bad token, unknown number, no such approved template."""
        self._used = True
        if self._failure is not None:
            raise self._failure
        number = self.client.request(
            "GET", f"/{self.phone_number_id}", params={"fields": "id,display_phone_number"}
        )
        if number.status_code != 200:
            error = _error(number)
            if number.status_code == 404 or (
                error.get("code") == 100 and error.get("error_subcode") == 33
            ):
                raise SyncError(
                    f"WhatsApp has no business phone number {self.phone_number_id} this token "
                    "may use; check OMNICANAL_WHATSAPP_PHONE_NUMBER_ID"
                )
            self._fail_whole(number, "reading the business phone number")
        self._load_template()
        self.collect_statuses()

    def _load_template(self) -> None:
        if not self.template:
            raise SyncError(
                "a WhatsApp sync needs a message template: set `template` (and `language`) "
                "in its exposure's meta.omnicanal_sync, or OMNICANAL_WHATSAPP_TEMPLATE"
            )
        found: list[dict[str, Any]] = []
        params: dict[str, Any] | None = {
            "name": self.template,
            "fields": "name,language,status,parameter_format,components",
            "limit": 100,
        }
        path = f"/{self.waba_id}/message_templates"
        while params is not None:
            response = self.client.request("GET", path, params=params)
            if response.status_code != 200:
                error = _error(response)
                if response.status_code == 404 or (
                    error.get("code") == 100 and error.get("error_subcode") == 33
                ):
                    raise SyncError(
                        f"WhatsApp has no business account {self.waba_id} this token may "
                        "use; check OMNICANAL_WHATSAPP_WABA_ID"
                    )
                self._fail_whole(response, "reading the message templates")
            page = response.json()
            found.extend(page.get("data") or [])
            paging = page.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            params = {**params, "after": after} if after and paging.get("next") else None
        same = [t for t in found if t.get("name") == self.template]
        match = next((t for t in same if t.get("language") == self.language), None)
        if match is None:
            languages = ", ".join(sorted(str(t.get("language")) for t in same)) or "none"
            raise SyncError(
                f"WhatsApp has no template {self.template!r} in {self.language} (languages "
                f"it has: {languages}); create it in WhatsApp Manager or fix the sync's "
                "template and language (meta.omnicanal_sync in its exposure)"
            )
        if match.get("status") != "APPROVED":
            raise SyncError(
                f"WhatsApp template {self.template!r} ({self.language}) is "
                f"{match.get('status')}, not APPROVED: only approved templates can be sent"
            )
        body = next((c for c in match.get("components") or [] if c.get("type") == "BODY"), {})
        self._variables = variables(str(body.get("text") or ""))
        self._named = match.get("parameter_format") == "NAMED"

    def _check_fields(self, payload: dict) -> None:
        """The mapped fields (besides ``to``) must be the template's variables."""
        fields = sorted(k for k in payload if k != TO_FIELD)
        wanted = sorted(self._variables or [])
        if fields != wanted:
            raise SyncError(
                f"WhatsApp template {self.template!r} ({self.language}) has the variables "
                f"{wanted or 'none'} but the sync maps {fields or 'none'} (besides {TO_FIELD!r}); "
                "map one field per variable in meta.omnicanal_sync.fields"
            )

    # --- sending ---------------------------------------------------------------------

    def _message(self, row: Row) -> dict[str, Any]:
        payload = row.payload
        names = [k for k in payload if k != TO_FIELD]
        if not self._named:
            names.sort(key=int)
        parameters = []
        for name in names:
            value = payload[name]
            parameter: dict[str, Any] = {
                "type": "text",
                "text": "" if value is None else str(value),
            }
            if self._named:
                parameter["parameter_name"] = name
            parameters.append(parameter)
        message: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": str(payload.get(TO_FIELD) or ""),
            "type": "template",
            "template": {
                "name": self.template,
                "language": {"code": self.language, "policy": "deterministic"},
                "components": [{"type": "body", "parameters": parameters}] if parameters else [],
            },
        }
        if len(row.key) <= MAX_CALLBACK_DATA:
            message["biz_opaque_callback_data"] = row.key
        return message

    def _wait_for_pair(self, recipient: str) -> None:
        last = self._last_sent.get(recipient)
        if last is not None:
            wait = last + self.pair_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    def _send(self, row: Row) -> Outcome | None:
        """One message; None when the pair limit still refuses it (left pending)."""
        to = str(row.payload.get(TO_FIELD) or "")
        recipient = _recipient(to)
        if not to.strip():
            self._stats["refused"] += 1
            return Outcome(row.key, False, f"no phone number in the {TO_FIELD!r} field")
        body = self._message(row)
        for _ in range(PAIR_RETRIES):
            self._wait_for_pair(recipient)
            try:
                response = self.client.request(
                    "POST", f"/{self.phone_number_id}/messages", json=body
                )
            except SyncError as exc:  # no answer after the retries: it may have gone
                raise InDoubt(str(exc)) from None
            if response.status_code == 200:
                answer = response.json()
                self._last_sent[recipient] = time.monotonic()
                wa_id = ((answer.get("contacts") or [{}])[0]).get("wa_id")
                if wa_id:
                    self._last_sent[_recipient(wa_id)] = self._last_sent[recipient]
                self._stats["accepted"] += 1
                return Outcome(row.key, True, ref=answer["messages"][0]["id"])
            error = _error(response)
            code = error.get("code")
            if code == 131056:
                # the previous message to this user was moments ago: wait a full interval
                self._stats["pair_rate_limited"] += 1
                self._last_sent[recipient] = time.monotonic()
                continue
            if (
                response.status_code in (401, 403)
                or code in _AUTH_CODES | _PERMISSION_CODES | _TEMPLATE_CODES
                or response.status_code >= 500
                or response.status_code == 429
            ):
                self._fail_whole(response, "sending a template message")
            self._stats["refused"] += 1
            return Outcome(row.key, False, _reason(error))
        self._stats["left_pending"] += 1
        log.warning("whatsapp: %s still pair-rate-limited; left pending for the next run", row.key)
        return None

    def upsert(self, rows: list[Row]) -> list[Outcome]:
        """One message per row; an outcome per row answered, in the rows' order.

        When the Cloud API fails as a whole once sending began (a token revoked, a
        template paused, an outage), the messages it accepted keep their outcomes and the
        rows not tried are left out (pending: the next run sends them, and its ``check``
        fails until the cause is fixed); the one it gave no answer for is a failed outcome
        "in doubt" (it may have gone: only ``replay`` sends it again). Later batches of the
        run are left pending without a request; the error is logged and in ``stats()``.
        Raising instead would leave the engine unsure of a whole batch of messages, some
        never sent."""
        self._used = True
        if self._failure is not None:
            return []
        if self._variables is None:
            self._load_template()
        for row in rows:
            self._check_fields(row.payload)
        outcomes: dict[str, Outcome] = {}
        # Messages to a user messaged moments ago go last, so the wait overlaps the others.
        now = time.monotonic()
        order = sorted(
            range(len(rows)),
            key=lambda i: self._last_sent.get(
                _recipient(str(rows[i].payload.get(TO_FIELD) or "")), now - self.pair_interval
            ),
        )
        seen: set[str] = set()
        first, later = [], []
        for i in order:
            recipient = _recipient(str(rows[i].payload.get(TO_FIELD) or ""))
            (later if recipient in seen else first).append(i)
            seen.add(recipient)
        for i in first + later:
            key = rows[i].key
            try:
                outcome = self._send(rows[i])
            except SyncError as exc:
                self._failure = exc
                if isinstance(exc, InDoubt):
                    outcomes[key] = Outcome(
                        key,
                        False,
                        f"in doubt: {exc}; the message may have been delivered "
                        "(`omnicanal sync replay` sends it again)",
                    )
                log.error("whatsapp: stopped part-way through a batch: %s", exc)
                break
            if outcome is not None:
                outcomes[key] = outcome
        return [outcomes[row.key] for row in rows if row.key in outcomes]

    def remove(self, rows: list[Row]) -> list[Outcome]:
        """A message cannot be unsent: never called (``supports_remove`` is False)."""
        raise SyncError("WhatsApp messages cannot be unsent; a WhatsApp sync never removes")
