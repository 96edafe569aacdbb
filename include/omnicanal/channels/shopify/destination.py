"""Shopify GraphQL Admin API: a segment as a customer tag, attributes as metafields.

Rows are keyed by the Shopify customer (its global id ``gid://shopify/Customer/<id>``,
or the bare numeric id). For each row the destination sends, in one GraphQL request
per batch of :data:`BATCH_ROWS` rows, aliased mutations:

- ``tagsAdd`` of the sync's tag (audience mode: the tag *is* the segment), and
  ``tagsRemove`` of that tag alone when the row leaves it: tags the merchant, other
  apps or other syncs put on the customer are never touched;
- ``metafieldsSet`` of the row's payload fields, one metafield per field (a field
  ``namespace.key``, or ``key`` in the namespace option ``metafield_namespace``), with
  the types of the option ``metafield_types`` (default ``single_line_text_field``). A
  null value is left out (Shopify refuses blank values). ``metafieldsSet`` is atomic,
  so each row gets its own call: one customer's invalid value never blocks another's.

Exposure options (``meta.omnicanal_sync``): ``tag`` (default ``omnicanal``; with
``mode: upsert`` and no ``tag``, no tag is written and nothing is ever removed),
``metafield_namespace``, ``metafield_types`` and ``consent_channel`` (default
``email``: tags and metafields feed the shop's marketing, Shopify Email's segments).

Pacing follows Shopify's calculated query cost: every mutation costs 10 points, the
answer's ``extensions.cost.throttleStatus`` says how many are left and how fast they
come back, and a request waits until its cost is available (a ``THROTTLED`` answer,
which changes nothing, is sent again after the wait). 25 rows with a metafield make a
request of 500 points, half the 1000-point limit of one query, and a Standard shop's
bucket (2000, restoring 100 a second) takes four at once: batching more rows in one
request would save round trips but no points, and points are what bound the rate.
Measured against the sandbox (200 customers, a tag and a metafield each): with the
bucket out of the way, one customer a request took 1.98 s (201 requests) and 25 a
request 0.23 s (9 requests); with a Standard bucket both took 20 s, the 4000 points at
100 a second. Aliased batches cost nothing and save the round trips.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx

from omnicanal.activation.destination import Outcome, Row
from omnicanal.activation.http import RetryingClient
from omnicanal.channels.shopify import API_VERSION, api_url
from omnicanal.config import Settings
from omnicanal.errors import SyncError

log = logging.getLogger(__name__)

#: Rows per request: see the module docstring.
BATCH_ROWS = 25
MUTATION_COST = 10
MAX_METAFIELDS_PER_SET = 25
DEFAULT_TAG = "omnicanal"
DEFAULT_NAMESPACE = "omnicanal"
DEFAULT_TYPE = "single_line_text_field"
#: How many THROTTLED answers in a row a request may get before the run gives up.
MAX_THROTTLED = 20
TOKEN_SETTING = "OMNICANAL_SHOPIFY_ACCESS_TOKEN"
URL_SETTING = "OMNICANAL_SHOPIFY_API_URL"


def customer_gid(key: str) -> str:
    """A row key as a customer global id (a bare numeric id is accepted too)."""
    key = str(key).strip()
    return f"gid://shopify/Customer/{key}" if key.isdigit() else key


def _reason(problem: dict[str, Any]) -> str:
    """A user error as the row's reason: ``CODE: message (field.path)``."""
    field = ".".join(problem.get("field") or [])
    code = f"{problem['code']}: " if problem.get("code") else ""
    return f"{code}{problem.get('message')}" + (f" ({field})" if field else "")


class CostThrottle:
    """What the shop's cost bucket holds, from the last ``throttleStatus`` it reported."""

    def __init__(self, *, clock=time.monotonic, sleep=time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self.available: float | None = None
        self.maximum: float | None = None
        self.restore_rate = 50.0
        self._at = 0.0
        self.waited = 0.0

    def observe(self, body: dict[str, Any]) -> None:
        status = ((body.get("extensions") or {}).get("cost") or {}).get("throttleStatus")
        if not status:
            return
        self.available = float(status["currentlyAvailable"])
        self.maximum = float(status["maximumAvailable"])
        self.restore_rate = float(status["restoreRate"]) or self.restore_rate
        self._at = self._clock()

    def estimate(self) -> float | None:
        if self.available is None:
            return None
        restored = self.available + (self._clock() - self._at) * self.restore_rate
        return min(self.maximum or restored, restored)

    def wait_for(self, cost: float) -> None:
        """Sleep until ``cost`` points are back in the bucket (as far as we know)."""
        have = self.estimate()
        if have is None or have >= cost:
            return
        seconds = (cost - have) / self.restore_rate
        self.waited += seconds
        self._sleep(seconds)


class ShopifyDestination:
    batch_size = BATCH_ROWS

    def __init__(
        self,
        api_url: str,
        access_token: str,
        *,
        tag: str | None = DEFAULT_TAG,
        metafield_namespace: str = DEFAULT_NAMESPACE,
        metafield_types: dict[str, str] | None = None,
        consent_channel: str | None = "email",
        **client_options: Any,
    ) -> None:
        if tag is not None and ("," in tag or not tag.strip()):
            raise SyncError(
                f"Shopify tag {tag!r} is not one tag: a tag is a non-empty text without "
                "commas (set meta.omnicanal_sync.tag in the sync's exposure)"
            )
        self.tag = tag.strip() if tag else None
        self.metafield_namespace = metafield_namespace
        self.metafield_types = dict(metafield_types or {})
        self.consent_channel = consent_channel
        #: without a tag a row leaving the model has nothing to take back
        self.supports_remove = self.tag is not None
        self.path = f"/admin/api/{API_VERSION}/graphql.json"
        self.client = RetryingClient(
            api_url,
            headers={"X-Shopify-Access-Token": access_token},
            service="Shopify",
            **client_options,
        )
        self.throttle = CostThrottle()
        self.requests = 0
        #: THROTTLED answers received (each waited out and sent again)
        self.throttled = 0

    @classmethod
    def from_settings(cls, settings: Settings, options: dict[str, Any]) -> ShopifyDestination:
        mode = options.get("mode")
        tag = options.get("tag", None if mode == "upsert" else DEFAULT_TAG)
        return cls(
            api_url(settings),
            settings.channel("shopify").access_token,
            tag=None if tag in (None, False, "") else str(tag),
            metafield_namespace=str(options.get("metafield_namespace") or DEFAULT_NAMESPACE),
            metafield_types=dict(options.get("metafield_types") or {}),
            consent_channel=options.get("consent_channel", "email"),
        )

    def close(self) -> None:
        self.client.close()

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "throttled": self.throttled,
            "throttle_wait_seconds": round(self.throttle.waited, 3),
        }

    # -- transport ---------------------------------------------------------------------

    def _fail_whole(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 401:
            raise SyncError(f"Shopify rejected the access token (HTTP 401); check {TOKEN_SETTING}")
        if status == 403:
            raise SyncError(
                "Shopify refused the write (HTTP 403): the app behind "
                f"{TOKEN_SETTING} needs the write_customers scope"
            )
        if status == 404:
            raise SyncError(
                f"Shopify has no Admin API at {self.client.base_url}{self.path} (HTTP 404); "
                f"check {URL_SETTING}"
            )
        try:
            detail = json.dumps(response.json().get("errors"))[:300]
        except ValueError:
            detail = response.text[:300]
        raise SyncError(f"Shopify answered HTTP {status}: {detail}")

    def _execute(self, query: str, variables: dict[str, Any], cost: int) -> dict[str, Any]:
        """One GraphQL request, paced by the cost bucket; THROTTLED answers are retried."""
        for _ in range(MAX_THROTTLED):
            self.throttle.wait_for(cost)
            self.requests += 1
            response = self.client.request(
                "POST", self.path, json={"query": query, "variables": variables}
            )
            if response.status_code != 200:
                self._fail_whole(response)
            body = response.json()
            self.throttle.observe(body)
            codes = {(e.get("extensions") or {}).get("code") for e in body.get("errors") or []}
            if "THROTTLED" in codes and body.get("data") is None:
                self.throttled += 1
                if self.throttle.available is None:
                    self.throttle.available = 0.0
                continue
            if "ACCESS_DENIED" in codes:
                denied = next(
                    e
                    for e in body["errors"]
                    if (e.get("extensions") or {}).get("code") == "ACCESS_DENIED"
                )
                raise SyncError(
                    f"Shopify denied the app behind {TOKEN_SETTING}: {denied.get('message')} "
                    "Grant the scope to the app (or use a token that has it)"
                )
            if "MAX_COST_EXCEEDED" in codes:
                raise SyncError(
                    f"a batch of Shopify writes cost more than one query may ({cost} points); "
                    "this is a bug in omnicanal's batch size"
                )
            if body.get("data") is None:
                messages = "; ".join(e.get("message", "") for e in body.get("errors") or [])
                raise SyncError(f"Shopify refused the request: {messages}")
            return body
        raise SyncError(
            f"Shopify kept answering THROTTLED ({MAX_THROTTLED} times in a row); the shop's "
            "API budget is used up by other apps: run the sync again later"
        )

    def check(self) -> None:
        """Fail early, naming the setting, on a bad token or a wrong store URL."""
        self._execute("{ shop { name } }", {}, 1)

    # -- rows --------------------------------------------------------------------------

    def _metafields(self, owner: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        inputs = []
        for field, value in payload.items():
            if value is None:
                continue
            namespace, _, key = field.rpartition(".")
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (dict, list)):
                text = json.dumps(value, ensure_ascii=False)
            else:
                text = str(value)
            inputs.append(
                {
                    "ownerId": owner,
                    "namespace": namespace or self.metafield_namespace,
                    "key": key,
                    "type": self.metafield_types.get(field, DEFAULT_TYPE),
                    "value": text,
                }
            )
        return inputs

    def _send(self, rows: list[Row], tag_mutation: str | None, metafields: bool) -> list[Outcome]:
        declarations, selections, variables = [], [], {}
        aliases: dict[int, list[str]] = {}
        refused: dict[int, str] = {}
        if tag_mutation:
            declarations.append("$tags: [String!]!")
            variables["tags"] = [self.tag]
        for i, row in enumerate(rows):
            owner = customer_gid(row.key)
            mine: list[str] = []
            if tag_mutation:
                declarations.append(f"$id{i}: ID!")
                variables[f"id{i}"] = owner
                selections.append(
                    f"t{i}: {tag_mutation}(id: $id{i}, tags: $tags) "
                    "{ node { id } userErrors { field message } }"
                )
                mine.append(f"t{i}")
            inputs = self._metafields(owner, row.payload) if metafields else []
            if len(inputs) > MAX_METAFIELDS_PER_SET:
                refused[i] = (
                    f"{len(inputs)} metafields for one customer; Shopify sets at most "
                    f"{MAX_METAFIELDS_PER_SET} a call (map fewer fields in the exposure)"
                )
                continue
            if inputs:
                declarations.append(f"$m{i}: [MetafieldsSetInput!]!")
                variables[f"m{i}"] = inputs
                selections.append(
                    f"m{i}: metafieldsSet(metafields: $m{i}) "
                    "{ metafields { id } userErrors { code field message } }"
                )
                mine.append(f"m{i}")
            aliases[i] = mine
        answers: dict[str, Any] = {}
        errors: dict[str, str] = {}
        if selections:
            used = [d for d in declarations if d.split(":")[0][1:] in variables]
            query = (
                f"mutation omnicanalSync({', '.join(used)}) {{\n  "
                + "\n  ".join(selections)
                + "\n}"
            )
            body = self._execute(query, variables, MUTATION_COST * len(selections))
            answers = body.get("data") or {}
            for error in body.get("errors") or []:
                path = error.get("path") or []
                if path:
                    errors.setdefault(str(path[0]), error.get("message") or "refused")
        outcomes = []
        for i, row in enumerate(rows):
            if i in refused:
                outcomes.append(Outcome(row.key, False, refused[i]))
                continue
            reasons = []
            for alias in aliases[i]:
                if alias in errors:
                    reasons.append(errors[alias])
                    continue
                answer = answers.get(alias)
                if answer is None:
                    continue  # no answer for it: the row stays pending
                for problem in answer.get("userErrors") or []:
                    field = ".".join(problem.get("field") or [])
                    code = f"{problem['code']}: " if problem.get("code") else ""
                    reasons.append(
                        f"{code}{problem.get('message')}" + (f" ({field})" if field else "")
                    )
            answered = all(
                alias in errors or answers.get(alias) is not None for alias in aliases[i]
            )
            if reasons:
                outcomes.append(Outcome(row.key, False, "; ".join(reasons)))
            elif answered:
                outcomes.append(Outcome(row.key, True))
        return outcomes

    def _chunks(self, rows: list[Row], mutations_per_row: int) -> list[list[Row]]:
        """``rows`` in requests of at most :data:`BATCH_ROWS`, and never more than the
        shop's whole bucket holds (a smaller plan's), or the request could never run."""
        size = BATCH_ROWS
        if self.throttle.maximum:
            per_row = MUTATION_COST * max(1, mutations_per_row)
            size = max(1, min(size, int(self.throttle.maximum // per_row)))
        return [rows[start : start + size] for start in range(0, len(rows), size)]

    def upsert(self, rows: list[Row]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        with_metafields = any(v is not None for row in rows for v in row.payload.values())
        per_row = (1 if self.tag else 0) + (1 if with_metafields else 0)
        for batch in self._chunks(rows, per_row):
            outcomes += self._send(batch, "tagsAdd" if self.tag else None, metafields=True)
        return outcomes

    def remove(self, rows: list[Row]) -> list[Outcome]:
        """Take the sync's tag off; a customer Shopify no longer has holds no tag either."""
        if not self.tag:
            return [Outcome(row.key, True) for row in rows]
        outcomes: list[Outcome] = []
        for batch in self._chunks(rows, 1):
            for outcome in self._send(batch, "tagsRemove", metafields=False):
                gone = outcome.error and "does not exist" in outcome.error
                outcomes.append(Outcome(outcome.key, True) if gone else outcome)
        return outcomes
