"""Meta Custom Audiences (Marketing API): the people of a segment in a customer-file audience.

A row's fields are Meta's multi-key names, mapped to model columns by the exposure
(``EMAIL``, ``PHONE``, ``FN``, ``LN``, ``CT``, ``ST``, ``ZIP``, ``COUNTRY``, ``DOBY``,
``DOBM``, ``DOBD``, ``GEN``, ``EXTERN_ID``). Each value is normalised by Meta's rules
(:mod:`omnicanal.activation.hashing`: emails trimmed and lower-cased, phones as digits
with the country code, Brazilian ones with the ninth digit; names, city and state
lower-case letters only; postcode without spaces or dashes; country as its two-letter
code) and SHA-256 hashed here: plain PII never leaves the process (``EXTERN_ID``, the
advertiser's own id, is sent as it is). Email and phone go as ``EMAIL_SHA256`` and
``PHONE_SHA256``.

``upsert`` is ``POST /{audience-id}/users`` and ``remove`` is ``DELETE
/{audience-id}/users``, at most 10,000 rows a request, each request one session
(``session_id``, ``batch_seq``, ``last_batch_flag``). A row with no usable identifier
(email, phone or external id) is refused with the reason, before anything is sent;
rows Meta counts as invalid entries and names in its samples are refused too. A full
replace (:meth:`MetaAdsDestination.replace`) goes through ``/usersreplace`` in one
session of as many batches as it takes.

Which audience: the exposure's ``audience_id``; or its ``audience_name``, found in the
ad account and created (a customer-file audience, ``USER_PROVIDED_ONLY``) when it does
not exist yet, so an analyst can start an audience from dbt alone; or else
``OMNICANAL_META_ADS_AUDIENCE_ID``. An ``audience_id`` that does not exist is an error,
never created: it names an audience someone expects to be there.

Pacing: ``OMNICANAL_META_ADS_RATE_LIMIT`` requests a second; throttling answers (HTTP 429,
or Graph's codes 4, 17, 613, 80003 with HTTP 400) are retried after the
``estimated_time_to_regain_access`` of ``X-Business-Use-Case-Usage`` (or a backoff), and a
usage header at 95 % or more holds the next request back.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from omnicanal.activation.destination import Outcome, Row
from omnicanal.activation.hashing import (
    normalize_email,
    normalize_name,
    normalize_phone,
    sha256_hex,
)
from omnicanal.activation.http import RetryingClient
from omnicanal.channels.meta_ads import api_url
from omnicanal.config import Settings
from omnicanal.errors import SyncError

log = logging.getLogger(__name__)

#: Rows in one ``/users`` request (Meta's limit).
BATCH_LIMIT = 10_000
#: Graph's throttling codes: app, user, API and the ad account's custom_audience budget.
THROTTLE_CODES = {4, 17, 32, 613, 80003}
TOKEN_CODES = {102, 104, 190}
#: Usage (percent of the hourly budget) from which the next request is held back.
SLOW_DOWN_AT = 95
THROTTLE_ATTEMPTS = 6
_USAGE_SHARES = ("call_count", "total_cputime", "total_time")

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DIGITS = re.compile(r"\D")


def _email(value: str) -> str | None:
    email = normalize_email(value)
    return email if email and _EMAIL.fullmatch(email) else None


def _zip(value: str) -> str | None:
    text = re.sub(r"[\s\-.]", "", value).lower()
    return text or None


def _country(value: str) -> str | None:
    text = re.sub(r"[^a-z]", "", value.lower())
    return text if len(text) == 2 else None


def _year(value: str) -> str | None:
    digits = _DIGITS.sub("", value)
    return digits if len(digits) == 4 else None


def _two_digits(value: str) -> str | None:
    digits = _DIGITS.sub("", value)
    return digits.zfill(2) if 1 <= len(digits) <= 2 and int(digits) > 0 else None


def _gender(value: str) -> str | None:
    first = value.strip().lower()[:1]
    return first if first in ("m", "f") else None


def _extern_id(value: str) -> str | None:
    return value.strip() or None


#: Row field → (name in the schema sent, normaliser, hashed?)
FIELDS: dict[str, tuple[str, Callable[[str], str | None], bool]] = {
    "EXTERN_ID": ("EXTERN_ID", _extern_id, False),
    "EMAIL": ("EMAIL_SHA256", _email, True),
    "PHONE": ("PHONE_SHA256", normalize_phone, True),
    "FN": ("FN", normalize_name, True),
    "LN": ("LN", normalize_name, True),
    "CT": ("CT", normalize_name, True),
    "ST": ("ST", normalize_name, True),
    "ZIP": ("ZIP", _zip, True),
    "COUNTRY": ("COUNTRY", _country, True),
    "DOBY": ("DOBY", _year, True),
    "DOBM": ("DOBM", _two_digits, True),
    "DOBD": ("DOBD", _two_digits, True),
    "GEN": ("GEN", _gender, True),
}
IDENTIFIERS = ("EMAIL", "PHONE", "EXTERN_ID")


def hashed_row(payload: dict[str, Any], fields: Iterable[str]) -> dict[str, str]:
    """The values Meta receives for a payload: normalised, hashed, ``""`` when unusable."""
    out: dict[str, str] = {}
    for field in fields:
        _, normalise, hashed = FIELDS[field]
        raw = payload.get(field)
        value = None if raw is None else normalise(str(raw))
        out[field] = "" if value is None else (sha256_hex(value) if hashed else value)
    return out


def _session_id() -> int:
    return secrets.randbelow(2**62) + 1


class MetaAdsDestination:
    """One customer-file custom audience of an ad account, written through the Marketing API."""

    batch_size = BATCH_LIMIT
    consent_channel = "ads"
    supports_remove = True

    def __init__(
        self,
        api_url: str,
        access_token: str,
        ad_account_id: str,
        *,
        audience_id: str | None = None,
        audience_name: str | None = None,
        audience_source: str = "OMNICANAL_META_ADS_AUDIENCE_ID",
        rate_limit: float | None = None,
        throttle_backoff: float = 5.0,
        **client_options: Any,
    ) -> None:
        if not audience_id and not audience_name:
            raise SyncError(
                "no Meta custom audience to write to: set OMNICANAL_META_ADS_AUDIENCE_ID or "
                "name one in the exposure (audience_id or audience_name)"
            )
        self.ad_account_id = ad_account_id
        self.audience_id = audience_id
        self.audience_name = audience_name
        self.audience_source = audience_source
        self.rate_limit = rate_limit
        self.throttle_backoff = throttle_backoff
        # The token goes in the Authorization header, which RetryingClient never logs.
        self.client = RetryingClient(
            api_url,
            headers={"Authorization": f"Bearer {access_token}"},
            service="Meta Marketing API",
            rate_limit=rate_limit,
            **client_options,
        )
        self._resolved = False
        self._stats = {"num_received": 0, "num_invalid_entries": 0, "requests": 0}

    @classmethod
    def from_settings(cls, settings: Settings, options: dict) -> MetaAdsDestination:
        meta_ads = settings.channel("meta_ads")
        audience_id = options.get("audience_id")
        audience_name = options.get("audience_name")
        if audience_id is not None and not str(audience_id).strip().isdigit():
            raise SyncError(
                f"the exposure's audience_id must be a numeric custom audience id, got "
                f"{audience_id!r}"
            )
        if audience_id:
            source = "the exposure's audience_id"
        elif audience_name:
            source = "the exposure's audience_name"
        else:
            audience_id, source = meta_ads.audience_id, "OMNICANAL_META_ADS_AUDIENCE_ID"
        return cls(
            api_url(settings),
            meta_ads.access_token,
            meta_ads.ad_account_id,
            audience_id=str(audience_id) if audience_id else None,
            audience_name=str(audience_name) if audience_name and not audience_id else None,
            audience_source=source,
            # the exposure's own pacing, else the channel's setting
            rate_limit=float(options["rate_limit"])
            if options.get("rate_limit")
            else meta_ads.rate_limit,
        )

    def close(self) -> None:
        self.client.close()

    def stats(self) -> dict[str, int]:
        """What Meta counted this run: rows received and invalid entries, and requests."""
        return dict(self._stats)

    # -- calls ---------------------------------------------------------------------------

    def _fail(self, response: httpx.Response, doing: str) -> None:
        error = _error(response)
        code, message = error.get("code"), error.get("message") or response.text[:200]
        if code in TOKEN_CODES:
            raise SyncError(
                f"Meta rejected the access token while {doing} (OAuthException {code}: "
                f"{message}); check OMNICANAL_META_ADS_ACCESS_TOKEN"
            )
        if code in (10, 200) or (isinstance(code, int) and 200 <= code < 300):
            raise SyncError(
                f"Meta refused {doing} for lack of permission ({code}: {message}); the token "
                "in OMNICANAL_META_ADS_ACCESS_TOKEN needs ads_management on ad account "
                f"act_{self.ad_account_id}"
            )
        raise SyncError(f"Meta refused {doing} (HTTP {response.status_code}, {code}: {message})")

    def _honour_usage(self, response: httpx.Response) -> float:
        """Seconds to wait before the next call, from the usage headers (0: none): the
        ad account's ``custom_audience`` use case (``X-Business-Use-Case-Usage``) or its
        Marketing API utilisation (``X-Ad-Account-Usage``) at 95 % or more."""
        wait = 0.0
        raw = response.headers.get("X-Business-Use-Case-Usage")
        if raw:
            try:
                usage = json.loads(raw)
            except ValueError:
                usage = {}
            for entries in usage.values() if isinstance(usage, dict) else ():
                for entry in entries if isinstance(entries, list) else ():
                    used = max(int(entry.get(k) or 0) for k in _USAGE_SHARES)
                    regain = float(entry.get("estimated_time_to_regain_access") or 0) * 60
                    if used >= SLOW_DOWN_AT:
                        wait = max(wait, regain or self.throttle_backoff)
        raw = response.headers.get("X-Ad-Account-Usage")
        if raw:
            try:
                account = json.loads(raw)
            except ValueError:
                account = {}
            if isinstance(account, dict) and float(account.get("acc_id_util_pct") or 0) >= (
                SLOW_DOWN_AT
            ):
                reset = float(account.get("reset_time_duration") or 0)
                wait = max(wait, reset or self.throttle_backoff)
        return wait

    def _call(self, method: str, path: str, doing: str, **kwargs: Any) -> dict:
        """One Graph call; throttling answers are waited out and retried."""
        delay = self.throttle_backoff
        for attempt in range(1, THROTTLE_ATTEMPTS + 1):
            response = self.client.request(method, path, **kwargs)
            self._stats["requests"] += 1
            wait = self._honour_usage(response)
            if wait and self.client.limiter is not None:
                self.client.limiter.defer(wait)
            if response.status_code == 200:
                return response.json()
            error = _error(response)
            throttled = response.status_code == 429 or error.get("code") in THROTTLE_CODES
            if not throttled:
                self._fail(response, doing)
            if attempt == THROTTLE_ATTEMPTS:
                raise SyncError(
                    f"Meta kept throttling {doing} ({error.get('code')}: "
                    f"{error.get('message')}); lower OMNICANAL_META_ADS_RATE_LIMIT or run the "
                    "sync later"
                )
            pause = max(wait, delay)
            log.warning(
                "Meta throttled %s (%s); waiting %.1fs (attempt %d/%d)",
                doing,
                error.get("code"),
                pause,
                attempt,
                THROTTLE_ATTEMPTS,
            )
            time.sleep(pause)
            delay = min(delay * 2, 300)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the audience --------------------------------------------------------------------

    def _audience(self) -> str:
        if self._resolved:
            return self.audience_id
        if self.audience_id:
            response = self.client.request(
                "GET", f"/{self.audience_id}", params={"fields": "id,name,subtype"}
            )
            self._stats["requests"] += 1
            if response.status_code != 200:
                error = _error(response)
                if error.get("code") == 100 and error.get("error_subcode") == 33:
                    raise SyncError(
                        f"Meta has no custom audience {self.audience_id} that this token may "
                        f"use ({error.get('message')}); check {self.audience_source} (and that "
                        "the token's user is an admin of the audience's ad account)"
                    )
                self._fail(response, f"reading custom audience {self.audience_id}")
        else:
            self.audience_id = self._find_or_create(self.audience_name)
        self._resolved = True
        return self.audience_id

    def _find_or_create(self, name: str) -> str:
        path = f"/act_{self.ad_account_id}/customaudiences"
        params: dict[str, Any] = {"fields": "id,name", "limit": 100}
        while True:
            response = self.client.request("GET", path, params=params)
            self._stats["requests"] += 1
            if response.status_code != 200:
                error = _error(response)
                if error.get("code") == 100 and error.get("error_subcode") == 33:
                    raise SyncError(
                        f"Meta has no ad account act_{self.ad_account_id} this token may use; "
                        "check OMNICANAL_META_ADS_AD_ACCOUNT_ID"
                    )
                self._fail(response, "listing the ad account's custom audiences")
            body = response.json()
            for audience in body.get("data", []):
                if audience.get("name") == name:
                    return str(audience["id"])
            after = (body.get("paging") or {}).get("cursors", {}).get("after")
            if not (body.get("paging") or {}).get("next") or not after:
                break
            params = {**params, "after": after}
        created = self._call(
            "POST",
            path,
            "creating the custom audience",
            data={
                "name": name,
                "subtype": "CUSTOM",
                "customer_file_source": "USER_PROVIDED_ONLY",
                "description": "Written by omnicanal (a dbt exposure's sync)",
            },
        )
        log.info("created Meta custom audience %r (%s)", name, created["id"])
        return str(created["id"])

    def check(self) -> None:
        """Fail early, naming the setting, on a bad token or an audience that is not there."""
        self._audience()

    # -- rows ----------------------------------------------------------------------------

    def _prepare(self, rows: list[Row]) -> tuple[list[str], list[tuple[Row, list[str]]], list]:
        """(schema fields, rows to send with their values, refused outcomes)."""
        fields = sorted(
            {f for row in rows for f in row.payload if f in FIELDS},
            key=list(FIELDS).index,
        )
        unknown = sorted({f for row in rows for f in row.payload if f not in FIELDS})
        if unknown:
            raise SyncError(
                f"Meta custom audiences have no field(s) {', '.join(unknown)}; map the "
                f"exposure's fields to Meta's keys ({', '.join(FIELDS)})"
            )
        ready: list[tuple[Row, list[str]]] = []
        refused: list[Outcome] = []
        for row in rows:
            values = hashed_row(row.payload, fields)
            if not any(values.get(key) for key in IDENTIFIERS):
                given = [f for f in IDENTIFIERS if row.payload.get(f) not in (None, "")]
                reason = (
                    f"no valid identifier: {', '.join(given)} could not be normalised"
                    if given
                    else "no identifier"
                ) + " (Meta matches people on EMAIL, PHONE or EXTERN_ID)"
                refused.append(Outcome(row.key, False, reason))
                continue
            ready.append((row, [values[f] for f in fields]))
        return fields, ready, refused

    def _send(self, method: str, rows: list[Row]) -> list[Outcome]:
        if not rows:
            return []
        audience_id = self._audience()
        fields, ready, refused = self._prepare(rows)
        by_key = {o.key: o for o in refused}
        schema = [FIELDS[f][0] for f in fields]
        session_id = _session_id()
        batches = [ready[i : i + BATCH_LIMIT] for i in range(0, len(ready), BATCH_LIMIT)]
        doing = "adding people to" if method == "POST" else "removing people from"
        for seq, batch in enumerate(batches, start=1):
            body = {
                "payload": json.dumps(
                    {"schema": schema, "data": [values for _, values in batch]},
                    separators=(",", ":"),
                ),
                "session": json.dumps(
                    {
                        "session_id": session_id,
                        "batch_seq": seq,
                        "last_batch_flag": seq == len(batches),
                        "estimated_num_total": len(ready),
                    }
                ),
            }
            answer = self._call(
                method, f"/{audience_id}/users", f"{doing} custom audience {audience_id}", data=body
            )
            by_key.update(self._outcomes(answer, batch, fields, str(answer.get("session_id"))))
        # one outcome per row, in the rows' order
        return [by_key[row.key] for row in rows if row.key in by_key]

    def _outcomes(
        self, answer: dict, batch: list[tuple[Row, list[str]]], fields: list[str], ref: str
    ) -> dict[str, Outcome]:
        self._stats["num_received"] += int(answer.get("num_received") or 0)
        self._stats["num_invalid_entries"] += int(answer.get("num_invalid_entries") or 0)
        samples = answer.get("invalid_entry_samples") or {}
        outcomes: dict[str, Outcome] = {}
        for row, values in batch:
            reason = None
            if samples:
                for field, value in zip(fields, values, strict=True):
                    if value and value in samples:
                        reason = f"Meta counted it an invalid entry ({field}: {samples[value]})"
                        break
            outcomes[row.key] = Outcome(row.key, reason is None, reason, ref)
        return outcomes

    def upsert(self, rows: list[Row]) -> list[Outcome]:
        """Add the rows' people to the audience (adding someone again changes nothing)."""
        return self._send("POST", rows)

    def remove(self, rows: list[Row]) -> list[Outcome]:
        """Take the rows' people out of the audience."""
        return self._send("DELETE", rows)

    def replace(self, rows: Iterable[Row]) -> list[Outcome]:
        """Make the audience hold exactly ``rows``: one ``/usersreplace`` session, in batches
        of 10,000; Meta swaps the new membership in when the last batch arrives."""
        rows = list(rows)
        audience_id = self._audience()
        fields, ready, refused = self._prepare(rows)
        if not ready:
            raise SyncError("a replace needs at least one row with an identifier")
        by_key = {o.key: o for o in refused}
        schema = [FIELDS[f][0] for f in fields]
        session_id = _session_id()
        batches = [ready[i : i + BATCH_LIMIT] for i in range(0, len(ready), BATCH_LIMIT)]
        for seq, batch in enumerate(batches, start=1):
            answer = self._call(
                "POST",
                f"/{audience_id}/usersreplace",
                f"replacing the people of custom audience {audience_id}",
                data={
                    "payload": json.dumps(
                        {"schema": schema, "data": [v for _, v in batch]}, separators=(",", ":")
                    ),
                    "session": json.dumps(
                        {
                            "session_id": session_id,
                            "batch_seq": seq,
                            "last_batch_flag": seq == len(batches),
                            "estimated_num_total": len(ready),
                        }
                    ),
                },
            )
            by_key.update(self._outcomes(answer, batch, fields, str(session_id)))
        return [by_key[row.key] for row in rows if row.key in by_key]


def _error(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}
