"""omnicanal-tapkit, the piece every tap shares: waits, readable failures, config checks,
records conformed as the SDK would, a lean start.

All in memory (no server, no sleep worth the name): the taps' own tests drive the same
code against the sandbox. These pin what each tap relies on: ``Retry-After`` in both of
RFC 9110's forms, backoff growth and its cap, the tap's own error classes at the end of
the retries, no credential in any message or log line, and config problems that name
the setting, through singer-sdk's public surface only.
"""

from __future__ import annotations

import copy
import email.utils
import gc
import importlib
import json
import logging
import subprocess
import sys
import threading
import typing as t
import warnings
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter
from singer_sdk import RESTStream, Stream
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel

import omnicanal_tapkit.streams
from omnicanal_tapkit import (
    ConformedRecords,
    PlatformFailures,
    PlatformRetries,
    PlatformTap,
    PrefetchedPages,
    SchemaConformer,
    backoff_log_handler,
    base_url_errors,
    exponential_backoff,
    json_body,
    readable_failures,
    records_at,
    request_settings,
    retry_after_seconds,
    retry_waits,
    url_without_query,
)
from omnicanal_tapkit.startup import (
    DEFERRED_FOR_TAPS,
    UNUSED_BY_TAPS,
    absent,
    collector_paused_then_frozen,
    deferred,
)
from omnicanal_tapkit.waits import AnsweredRequests

TOKEN = "tok_SECRET_0123456789"
URL = "https://api.example.com/v2/orders?cursor=abc&access_token=qsSECRET987"


class AcmeError(FatalAPIError):
    pass


class AcmeConnectionError(AcmeError):
    pass


class AcmeRetriesExhaustedError(AcmeError):
    pass


ACME = PlatformFailures(
    platform="Acme",
    connection_error=AcmeConnectionError,
    retries_exhausted_error=AcmeRetriesExhaustedError,
    address_settings="`api_url` / `account`",
    describe=lambda response: f"{response.reason}: {response.text}",
)


def answer(status: int, headers: dict[str, str] | None = None, body: str = "") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error"}.get(
        status, ""
    )
    response.headers.update(headers or {})
    response._content = body.encode()
    response.url = URL
    return response


def prepared() -> requests.PreparedRequest:
    request = requests.Request(
        "GET", URL, headers={"Authorization": f"Bearer {TOKEN}", "X-Acme-AppKey": "key-SECRET42"}
    )
    return request.prepare()


# --- waits -------------------------------------------------------------------------------


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    assert retry_after_seconds(answer(429, {"Retry-After": "7"})) == 7.0
    assert retry_after_seconds(answer(429, {"Retry-After": "2.5"})) == 2.5
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= retry_after_seconds(answer(429, {"Retry-After": later})) <= 30
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_after_seconds(answer(503, {"Retry-After": past})) == 0.0
    assert retry_after_seconds(answer(429, {"Retry-After": "-3"})) == 0.0
    # absent or unreadable: the caller's own backoff decides
    assert retry_after_seconds(answer(429)) is None
    assert retry_after_seconds(answer(429, {"Retry-After": "soon"})) is None
    assert retry_after_seconds(None) is None


def test_backoff_doubles_with_bounded_jitter_up_to_the_cap() -> None:
    assert [exponential_backoff(n, jitter=0) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    for step in range(5):
        wait = exponential_backoff(step, base=0.5)
        assert 0.5 * 2**step <= wait <= 0.5 * 2**step * 1.1
    assert exponential_backoff(10, base=1.0, cap=60.0) == 60.0
    # jitter spreads parallel taps: not every wait is the same
    assert len({exponential_backoff(3) for _ in range(20)}) > 1


def test_wait_generator_obeys_retry_after_capped_and_backs_off_otherwise() -> None:
    waits = retry_waits(base=1.0, cap=10.0)
    assert next(waits) == 0.0  # backoff primes the generator
    bare = RetriableAPIError("429", answer(429))
    first, second = waits.send(bare), waits.send(bare)
    assert 1.0 <= first <= 1.1 and 2.0 <= second <= 2.2
    assert waits.send(RetriableAPIError("429", answer(429, {"Retry-After": "3"}))) == 3.0
    # a Retry-After does not count as a backoff step: the next bare failure waits 4 s
    assert 4.0 <= waits.send(bare) <= 4.4
    assert waits.send(RetriableAPIError("429", answer(429, {"Retry-After": "3600"}))) == 10.0
    assert 8.0 <= waits.send(bare) <= 8.8
    assert waits.send(bare) == 10.0  # 16 s, over the cap
    assert 0.0 < waits.send(requests.exceptions.ConnectionError("reset")) <= 10.0


def test_a_bare_429_may_start_from_a_shorter_wait_than_an_outage() -> None:
    waits = retry_waits(base=1.0, cap=10.0, rate_limit_base=0.25)
    next(waits)
    bare = RetriableAPIError("429", answer(429))
    assert 0.25 <= waits.send(bare) <= 0.275 and 0.5 <= waits.send(bare) <= 0.55
    # a 5xx or a dropped connection keeps the long base, on the same step count (4 s)
    assert 4.0 <= waits.send(RetriableAPIError("503", answer(503))) <= 4.4
    assert 8.0 <= waits.send(requests.exceptions.ConnectionError("reset")) <= 8.8
    assert waits.send(RetriableAPIError("429", answer(429, {"Retry-After": "3"}))) == 3.0


# --- readable failures, no secrets ---------------------------------------------------------


def _failing(exc: BaseException) -> t.Callable[..., requests.Response]:
    def send(request: requests.PreparedRequest, context: t.Any) -> requests.Response:
        raise exc

    return send


def _secret_free(text: str) -> None:
    for secret in (TOKEN, "key-SECRET42", "qsSECRET987", "?cursor"):
        assert secret not in text, text


def test_a_timeout_becomes_the_platforms_connection_error() -> None:
    wrapped = readable_failures(
        _failing(requests.exceptions.ReadTimeout(f"read timed out: {URL}")),
        ACME,
        attempts=3,
        timeout=1.5,
    )
    with pytest.raises(AcmeConnectionError) as raised:
        wrapped(prepared(), None)
    message = str(raised.value)
    assert message.startswith(
        "Acme did not answer https://api.example.com/v2/orders within 1.5 s (3 attempt(s))"
    )
    assert "`request_timeout`" in message
    _secret_free(message)


def test_a_refused_connection_names_the_url_the_reason_and_the_settings() -> None:
    refused = requests.exceptions.ConnectionError(
        f"HTTPSConnectionPool: Max retries exceeded with url: {URL} ([Errno 111] "
        f"Connection refused) headers={{'Authorization': 'Bearer {TOKEN}'}}"
    )
    with pytest.raises(AcmeConnectionError) as raised:
        readable_failures(_failing(refused), ACME, attempts=1, timeout=60)(prepared(), None)
    message = str(raised.value)
    assert message == (
        "Could not connect to Acme at https://api.example.com/v2/orders (1 attempt(s)): "
        "connection refused — check the `api_url` / `account` setting and that the server is up"
    )
    assert isinstance(raised.value, AcmeError)


def test_retries_exhausted_keep_the_last_error_but_not_the_credentials() -> None:
    last = RetriableAPIError(
        f"500 Server Error for {URL} with Bearer {TOKEN} and key-SECRET42", answer(500)
    )
    with pytest.raises(AcmeRetriesExhaustedError) as raised:
        readable_failures(_failing(last), ACME, attempts=6, timeout=60)(prepared(), None)
    message = str(raised.value)
    assert message.startswith("500 Server Error for https://api.example.com/v2/orders with ***")
    assert message.endswith("— still failing after 6 attempt(s); try again later")
    assert "***" in message
    _secret_free(message)
    assert raised.value.__cause__ is last  # kept for a debugger, not for the log


def test_a_success_and_other_errors_pass_through() -> None:
    ok = answer(200)
    assert (
        readable_failures(lambda request, context: ok, ACME, attempts=1, timeout=1)(
            prepared(), None
        )
        is ok
    )
    fatal = AcmeError("HTTP 401 — check the `access_token` setting")
    with pytest.raises(AcmeError) as raised:
        readable_failures(_failing(fatal), ACME, attempts=1, timeout=1)(prepared(), None)
    assert raised.value is fatal


def test_retry_log_line_names_the_endpoint_the_reason_and_the_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("tapkit-test")
    handler = backoff_log_handler(ACME, logger, max_tries=6)
    failed = RetriableAPIError("429", answer(429, body=f"slow down {TOKEN}"))
    with caplog.at_level(logging.WARNING, logger="tapkit-test"):
        handler({"exception": failed, "args": (prepared(), None), "wait": 1.04, "tries": 1})
        handler(
            {
                "exception": requests.exceptions.ConnectionError("Connection reset by peer"),
                "args": (prepared(), None),
                "wait": 2.0,
                "tries": 2,
            }
        )
    first, second = (record.getMessage() for record in caplog.records)
    assert first == (
        "Acme request to https://api.example.com/v2/orders failed with HTTP 429 Too Many "
        "Requests: slow down ***; retrying in 1.04 s (attempt 2 of 6)"
    )
    assert "failed with connection reset; retrying in 2.00 s (attempt 3 of 6)" in second
    _secret_free(caplog.text)


def test_url_without_query_drops_query_and_fragment() -> None:
    assert url_without_query(URL + "#frag") == "https://api.example.com/v2/orders"
    assert url_without_query(None) == ""


# --- the mixin on a real RESTStream, over a fake transport -----------------------------------


class Scripted(BaseAdapter):
    """Answers from a script, one per request, and remembers what it was sent."""

    def __init__(self, *answers: requests.Response | BaseException) -> None:
        super().__init__()
        self.answers = list(answers)
        self.sent: list[requests.PreparedRequest] = []
        self.proxies: list[t.Any] = []

    def send(self, request: requests.PreparedRequest, **kwargs: t.Any) -> requests.Response:
        self.sent.append(request)
        self.proxies.append(kwargs.get("proxies"))
        item = self.answers.pop(0)
        if isinstance(item, BaseException):
            raise item
        item.request = request
        item.url = request.url or ""
        return item

    def close(self) -> None:
        pass


class AcmeStream(PlatformRetries, RESTStream[t.Any]):
    name = "things"
    path = "/v2/things"
    url_base = "https://api.example.com"
    records_jsonpath = "$.things[*]"
    schema = th.PropertiesList(th.Property("id", th.StringType)).to_dict()
    failures = ACME
    backoff_base_seconds = 0.001

    @property
    def http_headers(self) -> dict:
        return {**super().http_headers, "Authorization": f"Bearer {TOKEN}"}


class AcmeTap(PlatformTap):
    name = "tap-acme"
    known_failures = (AcmeError,)
    config_jsonschema = th.PropertiesList(
        th.Property("account", th.StringType),
        th.Property("api_url", th.StringType),
        th.Property("api_key", th.StringType, secret=True),
        th.Property("page_size", th.IntegerType(minimum=1, maximum=100)),
        th.Property("max_retries", th.IntegerType(minimum=0)),
    ).to_dict()

    def discover_streams(self) -> list:
        return [AcmeStream(tap=self)]

    @classmethod
    def config_errors(cls, config: t.Mapping[str, t.Any]) -> list[str]:
        errors = base_url_errors(
            config.get("api_url"), example="https://api.example.com", api_path="v2"
        )
        if not config.get("account") and not config.get("api_url"):
            errors.append("Set `account` or `api_url`; neither is set")
        return errors


def _stream_over(adapter: Scripted, **config: t.Any) -> AcmeStream:
    stream = AcmeTap(config={"api_url": "https://api.example.com", **config}).streams["things"]
    stream.requests_session.mount("https://", adapter)
    return stream


def test_proxies_come_from_the_environment_once_per_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example.com")
    lookups: list[str] = []
    real = omnicanal_tapkit.streams.resolve_proxies

    def counted(request: requests.PreparedRequest, *args: t.Any) -> dict[str, str]:
        lookups.append(request.url or "")
        return real(request, *args)

    monkeypatch.setattr(omnicanal_tapkit.streams, "resolve_proxies", counted)
    adapter = Scripted(*(answer(200, body='{"things": []}') for _ in range(3)))
    stream = _stream_over(adapter)
    session = stream.requests_session
    assert session is stream.requests_session
    session.mount("https://direct.example.com", adapter)
    urls = (
        "https://api.example.com/a",
        "https://api.example.com/b?x=1",
        "https://direct.example.com/c",
    )
    for url in urls:  # as singer-sdk sends: a prepared request, no proxies given
        session.send(session.prepare_request(requests.Request("GET", url)))
    # what requests itself decides: the proxy, except for the NO_PROXY host
    assert adapter.proxies[0]["https"] == "http://proxy.internal:3128"
    assert adapter.proxies[1] == adapter.proxies[0]
    assert "https" not in adapter.proxies[2]
    assert len(lookups) == 2  # one per origin, not one per request


def test_the_mixin_retries_through_the_sdk_and_ends_in_the_taps_error() -> None:
    adapter = Scripted(
        answer(429, {"Retry-After": "0"}),
        requests.exceptions.ConnectionError("Connection reset by peer"),
        answer(200, body='{"things": [{"id": "a"}]}'),
    )
    stream = _stream_over(adapter, max_retries=2)
    assert [record["id"] for record in stream.get_records(None)] == ["a"]
    assert len(adapter.sent) == 3

    adapter = Scripted(*(answer(500) for _ in range(3)))
    stream = _stream_over(adapter, max_retries=2)
    with pytest.raises(AcmeRetriesExhaustedError, match=r"still failing after 3 attempt"):
        list(stream.get_records(None))
    assert len(adapter.sent) == 3
    assert stream.timeout == 60


def test_request_settings_document_the_defaults_the_mixin_uses() -> None:
    properties = th.PropertiesList(
        *request_settings(user_agent="tap-acme (singer-sdk)", retried_after="HTTP 429")
    ).to_dict()["properties"]
    stream = AcmeTap(config={"account": "acme"}).streams["things"]
    assert stream.backoff_max_tries() == properties["max_retries"]["default"] + 1
    assert stream.timeout == properties["request_timeout"]["default"]
    assert "`tap-acme (singer-sdk)`" in properties["user_agent"]["description"]
    assert "after HTTP 429, before the sync fails" in properties["max_retries"]["description"]


# --- config checks and the clean exit ------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"api_url": "api.example.com"}, "api_url"),
        ({"api_url": "https://api.example.com/v2"}, "api_url"),
        ({"api_url": "https://proxy.example.com/acme/v2/things"}, "api_url"),
        ({"account": None, "api_url": None}, "account"),
    ],
)
def test_a_cross_setting_problem_names_the_setting(config: dict[str, t.Any], setting: str) -> None:
    merged = {k: v for k, v in {"account": "acme", "api_key": TOKEN, **config}.items() if v}
    with pytest.raises(ConfigValidationError) as raised:
        AcmeTap(config=merged)
    assert any(f"`{setting}`" in error for error in raised.value.errors), raised.value.errors
    assert TOKEN not in " ".join(raised.value.errors)


def test_schema_and_rule_problems_are_reported_together() -> None:
    with pytest.raises(ConfigValidationError) as raised:
        AcmeTap(config={"api_url": "ftp://x", "page_size": 500})
    errors = raised.value.errors
    assert any("config['page_size']" in error for error in errors), errors
    assert any(error.startswith("`api_url` must be an http(s) URL") for error in errors), errors


def test_a_good_config_passes_and_discovery_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    AcmeTap(config={"api_url": "https://proxy.example.com/acme/"})
    with caplog.at_level(logging.WARNING):
        AcmeTap(config={}, validate_config=False)
    assert "Set `account` or `api_url`" in caplog.text


class FailingTap(AcmeTap):
    failure: t.ClassVar[BaseException] = AcmeConnectionError("Could not connect to Acme")

    @classmethod
    def config_errors(cls, config: t.Mapping[str, t.Any]) -> list[str]:
        return []

    def discover_streams(self) -> list:
        raise self.failure


def test_a_known_failure_ends_the_cli_with_its_message(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exited:
        FailingTap.invoke(about=False)
    assert exited.value.code == 1
    assert "Could not connect to Acme" in caplog.text
    assert not any(record.exc_info for record in caplog.records)

    class BuggyTap(FailingTap):
        failure = KeyError("a bug keeps its traceback")

    with pytest.raises(KeyError):
        BuggyTap.invoke(about=False)


def test_the_sdk_internals_full_sync_relies_on_are_still_there():
    """RetiresMissingOnFullSync is the kit's one use of singer-sdk internals (its
    behaviour is tested per channel in tests/channels/test_deletions.py): a new SDK
    that moves them must fail here, by name, not silently stop retiring deletions."""
    import inspect

    from singer_sdk import Stream, Tap

    from omnicanal_tapkit import RetiresMissingOnFullSync

    assert callable(Stream._write_activate_version_message)
    assert list(inspect.signature(Stream._write_activate_version_message).parameters) == [
        "self",
        "full_table_version",
    ]
    assert "self._stream_version" in inspect.getsource(Stream.__init__)
    assert "version=self._stream_version" in inspect.getsource(Stream._generate_record_messages)
    assert "initialized_at" in dir(Tap)
    # the STATE written once ACTIVATE_VERSION is out (it drops the pending mark)
    assert callable(Stream._write_state_message)
    assert "state_manager.is_flushed" in inspect.getsource(Stream._write_state_message)
    assert RetiresMissingOnFullSync.sync.__qualname__ == "RetiresMissingOnFullSync.sync"


NOW = 1_750_000_000_000  # epoch milliseconds, as table versions are
DAY_MS = 86_400_000


@pytest.mark.parametrize(
    ("state", "days", "due"),
    [
        ({}, 7, True),  # no bookmark: the first sync, or a full refresh
        ({"replication_key_value": "2025-01-01"}, 7, True),  # bookmark from before: once
        ({"replication_key_value": "x", "last_full_sync": NOW - DAY_MS}, 7, False),
        ({"replication_key_value": "x", "last_full_sync": NOW - 7 * DAY_MS}, 7, True),
        ({"replication_key_value": "x", "last_full_sync": NOW - 3 * DAY_MS}, 2.5, True),
        ({"replication_key_value": "x", "last_full_sync": NOW - 9 * DAY_MS}, 0, False),
        ({"replication_key_value": "x", "last_full_sync": NOW - 9 * DAY_MS}, None, True),
        # a full sync cut before its ACTIVATE_VERSION is redone, whatever the schedule
        ({"replication_key_value": "x", "last_full_sync": NOW, "full_sync_pending": NOW}, 0, True),
    ],
)
def test_when_a_stream_syncs_in_full(state, days, due):
    from omnicanal_tapkit.full_sync import full_sync_due

    config = {} if days is None else {"full_sync_every_days": days}
    assert full_sync_due(state, NOW, config) is due


# --- conformance compiled once per schema ------------------------------------------------

CONFORM_SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType),
    th.Property("count", th.IntegerType),
    th.Property("paid", th.BooleanType),
    th.Property("amount", th.NumberType),
    th.Property("at", th.DateTimeType),
    th.Property("tags", th.ArrayType(th.StringType)),
    th.Property("flags", th.ArrayType(th.BooleanType)),
    th.Property(
        "address",
        th.ObjectType(
            th.Property("city", th.StringType),
            th.Property("verified", th.BooleanType),
            th.Property("geo", th.ObjectType(th.Property("lat", th.NumberType))),
        ),
    ),
    th.Property(
        "lines",
        th.ArrayType(
            th.ObjectType(
                th.Property("sku", th.StringType),
                th.Property("qty", th.IntegerType),
                th.Property("gift", th.BooleanType),
            )
        ),
    ),
    th.Property("extra", th.ObjectType(additional_properties=True)),
    th.Property(
        "loose",
        th.CustomType({"type": ["object", "null"], "additionalProperties": True, "properties": {}}),
    ),
).to_dict()

CONFORM_RECORDS: list[dict[str, t.Any]] = [
    {"id": "a", "count": 3, "paid": True, "amount": Decimal("1.10"), "tags": ["x", "y"]},
    {"id": "b", "paid": 0, "flags": [1, 0, None, True], "unknown": 1, "amount": Decimal("NaN")},
    {"id": "c", "paid": "false", "amount": float("inf"), "at": datetime(2026, 1, 2, 3, 4, 5)},
    {
        "id": "d",
        "address": {"city": "Recife", "verified": 1, "zip": "50000", "geo": {"lat": 1.5, "x": 2}},
        "lines": [{"sku": "s1", "qty": 2, "gift": 0, "note": "n"}, {"sku": "s2"}, "odd"],
    },
    {"id": "e", "at": date(2026, 1, 2), "count": timedelta(seconds=5), "tags": "not a list"},
    {"id": "f", "paid": b"\x00", "tags": [b"\x01", None], "address": "not an object"},
    {"id": "g", "extra": {"anything": [1, {"deep": True}]}, "loose": {"k": 1}, "paid": None},
    {"id": "h", "lines": [], "address": {}, "flags": ["yes"], "amount": 2},
]


def test_compiled_conformance_writes_what_the_sdk_writes() -> None:
    """The records as singer-sdk's RECURSIVE conformance leaves them, dropped names too."""
    from singer_sdk.helpers._typing import _conform_record_data_types
    from singer_sdk.helpers.conform import TypeConformanceLevel

    conformer = SchemaConformer(CONFORM_SCHEMA)
    for record in CONFORM_RECORDS:
        expected, expected_dropped = _conform_record_data_types(
            copy.deepcopy(record), CONFORM_SCHEMA, TypeConformanceLevel.RECURSIVE, None
        )
        got, dropped = conformer.conform(copy.deepcopy(record))
        assert got == expected, record["id"]
        assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]
        assert dropped == expected_dropped, record["id"]


def test_conformed_streams_drop_unknown_properties_once_and_leave_the_sdk_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Things(Stream):
        name = "things"
        schema = CONFORM_SCHEMA

        def get_records(self, context):  # noqa: ANN001, ANN201 - the stream's own reading
            return iter(copy.deepcopy(CONFORM_RECORDS[:2]) * 2)

    class Conformed(ConformedRecords, Things):
        pass

    tap = AcmeTap(config={"access_token": TOKEN, "api_url": "https://x.test"})
    stream = Conformed(tap=tap)
    assert stream.TYPE_CONFORMANCE_LEVEL == TypeConformanceLevel.NONE
    with caplog.at_level(logging.WARNING):
        records = [stream.post_process(r, None) for r in stream.get_records(None)]
    assert [r["id"] for r in records] == ["a", "b", "a", "b"]
    assert "unknown" not in records[1] and records[1]["paid"] is False
    assert records[1]["amount"] is None and records[1]["flags"] == [True, False, None, True]
    warnings = [r for r in caplog.records if "not found in catalog schema" in r.getMessage()]
    assert len(warnings) == 1 and "unknown" in warnings[0].getMessage()


def test_the_record_post_process_hands_the_sdk_is_conformed_once_whatever_it_built() -> None:
    """Conformance comes after the stream's post-processing, once: an override that
    calls ``super().post_process`` sees the raw row, one that builds a new record (no
    ``super``) has it conformed too, and the outermost call's result is what goes out."""
    seen: list[dict] = []

    class Things(ConformedRecords, Stream):
        name = "things"
        schema = CONFORM_SCHEMA

        def get_records(self, context):  # noqa: ANN001, ANN201 - the stream's own reading
            return iter(copy.deepcopy(CONFORM_RECORDS[:2]))

        def post_process(self, row, context=None):  # noqa: ANN001, ANN201
            row = super().post_process(row, context)
            seen.append(dict(row))
            return {**row, "built_here": True}

    class Rebuilt(Things):
        def post_process(self, row, context=None):  # noqa: ANN001, ANN201
            return {**super().post_process(row, context), "added_outside": 1}

    tap = AcmeTap(config={"access_token": TOKEN, "api_url": "https://x.test"})
    for stream_class in (Things, Rebuilt):
        seen.clear()
        stream = stream_class(tap=tap)
        records = [stream.post_process(r, None) for r in stream.get_records(None)]
        assert "unknown" in seen[1]  # the inner call got the row as read
        assert [r["id"] for r in records] == ["a", "b"]
        for record in records:
            assert not {"unknown", "built_here", "added_outside"} & set(record)
        assert records[1]["paid"] is False  # conformed: a boolean-only property coerced


# --- the SDK's selection walk, skipped when nothing is deselected -------------------------


class _NoWalking(dict):
    """A record that fails if the SDK's selection walk reaches it (the walk copies it)."""

    def copy(self) -> dict:
        raise AssertionError("walked")


def test_the_selection_walk_is_skipped_when_nothing_is_deselected_and_drops_otherwise() -> None:
    from singer_sdk.singerlib.catalog import SelectionMask
    from singer_sdk.streams import core

    from omnicanal_tapkit.selection import skip_walk_when_all_selected

    assert skip_walk_when_all_selected()
    assert skip_walk_when_all_selected()  # idempotent: wrapped once
    walk = core.pop_deselected_record_properties
    assert walk.omnicanal_skips_when_all_selected
    assert not getattr(walk.sdk_walk, "omnicanal_skips_when_all_selected", False)
    schema = {"properties": {"id": {}, "email": {}, "address": {"properties": {"zip": {}}}}}
    everything = SelectionMask({(): True, ("properties", "email"): True})
    walk(_NoWalking(id="a", email="x@y.z", address={"zip": "1"}), schema, everything)

    record = {"id": "a", "email": "x@y.z", "address": {"zip": "1", "city": "Rio"}}
    deselected = SelectionMask(
        {
            (): True,
            ("properties", "email"): False,
            ("properties", "address", "properties", "zip"): False,
        }
    )
    walk(record, schema, deselected)
    assert record == {"id": "a", "address": {"city": "Rio"}}


# --- lean start ----------------------------------------------------------------------------


def test_absent_modules_fail_to_import_inside_and_import_again_after() -> None:
    name = "omnicanal_tapkit_test_absent_module"
    assert name not in sys.modules
    with absent([name, "json"]):
        with pytest.raises(ImportError):
            importlib.import_module(name)
        assert importlib.import_module("json") is sys.modules["json"]  # imported: untouched
    assert name not in sys.modules


def test_a_tap_started_by_its_console_script_never_imports_the_unused_libraries(
    tmp_path: Path,
) -> None:
    """`tap-square --about` runs, in JSON through msgspec, without numpy, psutil,
    isoduration, chardet, fsspec, joblib, asyncio or jsonpath-ng; singer-sdk's batch paths
    are real UPaths all the same, backoff's asyncio, the SDK Target's joblib and its
    JSONPath helpers the real ones when used."""
    script = (
        "import sys, runpy\n"
        "sys.argv = ['tap-square', '--about', '--format=json']\n"
        "try:\n"
        "    runpy.run_module('tap_square', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "loaded = [n for n in (*UNUSED, *DEFERRED, 'joblib', 'fsspec', 'upath.core',\n"
        "                      'jsonpath_ng') if n in sys.modules]\n"
        "assert not loaded, loaded\n"
        "import singer_sdk.streams.rest as rest, singer_sdk.pagination as pagination\n"
        "assert list(rest.extract_jsonpath('$.a[*]', {'a': [1, 2]})) == [1, 2]\n"
        "assert 'jsonpath_ng' in sys.modules  # the real helpers, on use\n"
        "import singer_sdk.helpers.jsonpath as helpers\n"
        "assert type(helpers).__name__ == 'module' and helpers._compile_jsonpath\n"
        "paginator = pagination.JSONPathPaginator('$.next')\n"
        "assert paginator.get_next(type('R', (), {'json': lambda self: {'next': 'n2'}})()) "
        "== 'n2'\n"
        "import asyncio, backoff._async, singer_sdk.target_base as target\n"
        "assert type(asyncio).__name__ == 'module'\n"
        "assert backoff._async.asyncio.sleep is asyncio.sleep  # the real one, on use\n"
        "with target.parallel_config(backend='threading', n_jobs=1):\n"
        "    assert target.Parallel()(target.delayed(abs)(x) for x in (-1, -2)) == [1, 2]\n"
        "assert 'joblib.parallel' in sys.modules\n"
        "import numpy  # afterwards, as usual\n"
        "from singer_sdk.helpers._batch import StorageTarget\n"
        "from upath import UPath\n"
        "from upath.core import UPath as Real\n"
        "assert UPath is Real\n"
        "assert StorageTarget.split_url('file:///tmp/b/part.jsonl')[1] == 'part.jsonl'\n"
        "assert isinstance(StorageTarget(root='file:///tmp/b')._root_path, Real)\n"
        "import gc\n"
        "assert gc.isenabled() and gc.get_freeze_count() > 10_000  # the import's objects\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"UNUSED = {UNUSED_BY_TAPS!r}\nDEFERRED = {DEFERRED_FOR_TAPS!r}\n{script}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["name"] == "tap-square"
    assert issubclass(PlatformTap.message_writer_class, MsgSpecWriter)


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_collector_skips_what_the_import_made_and_still_collects_later_cycles() -> None:
    """Paused inside; afterwards what was made inside is frozen (no collection walks or
    frees it), collection is back on, and a cycle made later is collected."""
    assert gc.isenabled()
    try:
        with collector_paused_then_frozen():
            assert not gc.isenabled()
            made_inside = _Cycle()
        assert gc.isenabled()
        assert not any(o is made_inside for o in gc.get_objects())
        assert gc.get_freeze_count() > 0
        gc.collect()
        later = _Cycle()
        assert any(o is later for o in gc.get_objects())
        del later
        assert gc.collect() > 0  # the later cycle, freed
        gc.disable()
        with collector_paused_then_frozen():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
        gc.unfreeze()


def test_a_deferred_module_is_the_real_one_from_its_first_use() -> None:
    name = "omnicanal_tapkit_test_deferred_module"
    with deferred([name, "json"]):
        stand_in = importlib.import_module(name)
        assert importlib.import_module("json") is sys.modules["json"]  # imported: untouched
    assert name not in sys.modules
    sys.modules[name] = module = type(sys)(name)
    module.answer = 42
    try:
        assert stand_in.answer == 42
    finally:
        del sys.modules[name]


# --- a page's body and its records ---------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "body"),
    [
        ("$.orders[*]", {"orders": [{"id": 1}, {"id": 2}], "cursor": "c"}),
        ("$.orders[*]", {}),
        ("$.orders[*]", {"orders": None}),
        ("$.orders[*]", {"orders": []}),
        ("$.orders[*]", {"orders": {"id": 1}}),
        ("$.orders[*]", [{"orders": [1]}]),
        ("$[*]", [{"id": 1}, {"id": 2}]),
        ("$[*]", []),
        ("$[*]", {"id": 1}),
        ("$.data.items[*]", {"data": {"items": [{"id": 3}]}}),
        ("$.list[0]", {"list": [{"id": 4}, {"id": 5}]}),
    ],
)
def test_records_at_finds_what_the_sdk_finds(expression: str, body: t.Any) -> None:
    from singer_sdk.helpers.jsonpath import extract_jsonpath

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert list(records_at(expression, body)) == list(extract_jsonpath(expression, body))


def test_plain_wildcards_are_read_without_a_jsonpath_parser() -> None:
    from singer_sdk.helpers import jsonpath

    jsonpath._compile_jsonpath.cache_clear()
    for expression, body in (("$.customers[*]", {"customers": [{"id": 1}]}), ("$[*]", [{}])):
        assert list(records_at(expression, body)) == list(records_at(expression, body))
    assert jsonpath._compile_jsonpath.cache_info().currsize == 0


@pytest.mark.parametrize(
    "content",
    [
        b'{"a": 1.10, "b": [1, 2.5e3, -0.0], "c": "\\u00e9", "d": null, "e": 12345678901234567890}',
        b'[{"x": true}]',
        b'{"big": 1e400}',  # out of a float's range: msgspec refuses it, json says inf
    ],
)
def test_json_body_is_what_requests_decodes(content: bytes) -> None:
    response = requests.Response()
    response._content = content
    response.encoding = "utf-8"
    assert repr(json_body(response)) == repr(response.json())
    exact = json_body(response, exact_decimals=True)
    assert repr(exact) == repr(response.json(parse_float=Decimal))


# --- a per-second window used fully ------------------------------------------------------


def test_a_429_waits_until_the_window_has_room_then_backs_off() -> None:
    """The first wait of a 429 without Retry-After ends when the oldest request sent in
    the window leaves it (counted from its answer), so does a second (at least 0.05 s); a
    third 429 in a row backs off from the rate-limit base."""
    now = [100.0]
    window = AnsweredRequests(1.0, clock=lambda: now[0])
    assert window.wait_for_room() is None  # nothing answered: nothing to go by
    for sent, answered in ((100.0, 100.01), (100.2, 100.21), (100.3, 100.31)):
        now[0] = answered
        window.note(sent)
    now[0] = 100.4
    window.refused()
    assert window.wait_for_room() == pytest.approx(0.61)
    now[0] = 101.1  # the first left the window: room when the second leaves
    window.refused()
    assert window.wait_for_room() == pytest.approx(0.11)

    waits = retry_waits(base=1.0, cap=10.0, rate_limit_base=0.25, rate_window=window)
    next(waits)
    limited = RetriableAPIError("429", answer(429))
    assert waits.send(limited) == pytest.approx(0.11)
    now[0] = 101.29  # refused again: room in 0.02 s, but never less than the floor
    window.refused()
    assert waits.send(limited) == pytest.approx(0.05)
    assert 0.25 <= waits.send(limited) <= 0.275  # the window was not the whole story
    assert 0.5 <= waits.send(limited) <= 0.55
    assert waits.send(RetriableAPIError("429", answer(429, {"Retry-After": "3"}))) == 3.0
    # a 5xx is no sign of a full window
    fresh = retry_waits(base=1.0, cap=10.0, rate_limit_base=0.25, rate_window=window)
    next(fresh)
    assert 1.0 <= fresh.send(RetriableAPIError("503", answer(503))) <= 1.1
    now[0] = 103.0  # the window emptied: a 429 backs off as before
    window.refused()
    assert 0.5 <= fresh.send(limited) <= 0.55


def test_a_request_answered_in_the_window_but_sent_before_it_is_not_waited_for() -> None:
    """The platform counts a request when it arrives. One sent at 100.000 and answered at
    100.020 (a slow page) had left the platform's window at 101.000 + a little, when a 429
    sent at 101.005 is answered at 101.010: its answer is still in the last second, but
    room comes when the next one, sent at 100.030, leaves: waiting for the first retried
    too early, into another 429."""
    now = [0.0]
    window = AnsweredRequests(1.0, clock=lambda: now[0])
    for sent, answered in ((100.000, 100.020), (100.030, 100.050), (100.060, 100.080)):
        now[0] = answered
        window.note(sent)
    now[0] = 101.010
    window.refused()
    assert window.wait_for_room() == pytest.approx(0.040)  # 100.050 + 1 - 101.010


def test_streams_with_a_rate_window_note_what_the_platform_counted() -> None:
    class Windowed(AcmeStream):
        rate_limit_window_seconds = 1.0

    tap = AcmeTap(config={"api_url": "https://api.example.com"})
    stream = Windowed(tap=tap)
    session = stream.requests_session
    assert session.answered is not None
    assert session.answered is Windowed(tap=tap).requests_session.answered  # one per origin
    session.mount("https://", Scripted(answer(200), answer(429), answer(200)))
    for _ in range(3):
        session.get("https://api.example.com/v2/things")
    assert len(session.answered._answered) == 2  # the 429 was not counted
    (first_sent, first_answered), _ = session.answered._answered
    assert first_sent <= first_answered
    assert 0.9 < session.answered.wait_for_room() <= 1.0
    assert AcmeStream(tap=tap).requests_session.answered is None  # no window, no notes


# --- the next page asked for while this one's records are handed on -----------------------


class Pages(BaseAdapter):
    """Answers ``?page=N`` with the script's page N (a JSON body, or a status code) and
    notes each request as it arrives, from whichever thread sends it."""

    def __init__(self, *pages: dict[str, t.Any] | int) -> None:
        super().__init__()
        self.pages = pages
        self.sent: list[str] = []
        self.arrived = [threading.Event() for _ in pages]

    def send(self, request: requests.PreparedRequest, **kwargs: t.Any) -> requests.Response:
        self.sent.append(str(request.url))
        number = int(parse_qs(urlsplit(str(request.url)).query).get("page", ["0"])[0])
        self.arrived[number].set()
        page = self.pages[number]
        if isinstance(page, int):
            item = answer(page, body="no")
        else:
            item = answer(200, {"Content-Type": "application/json"}, json.dumps(page))
        item.request, item.url = request, str(request.url)
        return item

    def close(self) -> None:
        pass


class PagedStream(PrefetchedPages, AcmeStream):
    next_page_token_jsonpath = "$.next"  # noqa: S105 - a JSONPath, not a secret

    def get_url_params(self, context: t.Any, next_page_token: t.Any) -> dict:
        return {"page": next_page_token} if next_page_token is not None else {}


def _paged(adapter: Pages) -> PagedStream:
    stream = PagedStream(tap=AcmeTap(config={"api_url": "https://api.example.com"}))
    stream.requests_session.mount("https://", adapter)
    return stream


def _walk(records: t.Iterator[dict]) -> tuple[list[str], BaseException | None]:
    """The ids handed on, and what ended the walk if it was not the last page."""
    ids = []
    try:
        for record in records:
            ids.append(record["id"])
    except Exception as exc:  # noqa: BLE001 - compared below
        return ids, exc
    return ids, None


THREE_PAGES = (
    {"things": [{"id": "a"}, {"id": "b"}], "next": 1},
    {"things": [{"id": "c"}], "next": 2},
    {"things": [{"id": "d"}, {"id": "e"}]},
)


def test_the_next_page_is_asked_for_while_this_ones_records_are_handed_on() -> None:
    adapter = Pages(*THREE_PAGES)
    records = _paged(adapter).request_records(None)
    assert next(records)["id"] == "a"
    # page 1's first record is in our hands and the loop is paused here: the SDK's loop
    # would not send page 2's request until page 1's records had all been handed on
    assert adapter.arrived[1].wait(timeout=30)
    assert not adapter.arrived[2].is_set()  # one page ahead, never more
    assert [r["id"] for r in records] == ["b", "c", "d", "e"]
    sdk = Pages(*THREE_PAGES)
    assert _walk(RESTStream.request_records(_paged(sdk), None))[0] == list("abcde")
    assert adapter.sent == sdk.sent  # the same requests, in the same order


@pytest.mark.parametrize(
    ("pages", "ids"),
    [
        # page 2 fails (404, not retried): page 1's records first, then the failure
        (({"things": [{"id": "a"}, {"id": "b"}], "next": 1}, 404), ["a", "b"]),
        # page 2 repeats page 1's cursor: the paginator's failure after page 2's records
        (
            (
                {"things": [{"id": "a"}], "next": 1},
                {"things": [{"id": "b"}], "next": 1},
            ),
            ["a", "b"],
        ),
        # page 2 is empty: the walk stops there, without asking for page 3
        (
            (
                {"things": [{"id": "a"}], "next": 1},
                {"things": [], "next": 2},
                {"things": [{"id": "c"}]},
            ),
            ["a"],
        ),
    ],
    ids=["request-fails", "cursor-repeats", "empty-page"],
)
def test_records_requests_and_failures_come_as_from_the_sdks_loop(
    pages: tuple[dict[str, t.Any] | int, ...], ids: list[str]
) -> None:
    prefetching, sdk = Pages(*pages), Pages(*pages)
    got, failure = _walk(_paged(prefetching).request_records(None))
    want, sdk_failure = _walk(RESTStream.request_records(_paged(sdk), None))
    assert got == want == ids
    assert type(failure) is type(sdk_failure)
    assert str(failure) == str(sdk_failure)
    assert prefetching.sent == sdk.sent
