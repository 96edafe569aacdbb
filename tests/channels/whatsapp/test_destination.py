"""The WhatsApp destination against the sandbox's Cloud API, over real HTTP, and the step
that brings delivery statuses back from the webhook receiver into the ledger.

Meta publishes no official Python client for the Cloud API (pywa, heyoo and the like are
third parties' wrappers), so the destination's raw httpx requests are what is checked,
against the documented shapes the emulation validates.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime

import psycopg
import pytest

from omnicanal.activation.destination import Row
from omnicanal.channels.whatsapp import API_VERSION, SANDBOX_ACCESS_TOKEN
from omnicanal.channels.whatsapp.destination import WhatsAppDestination
from omnicanal.channels.whatsapp.emulation import WhatsAppEmulator
from omnicanal.channels.whatsapp.world import PHONE_NUMBER_ID, WABA_ID
from omnicanal.errors import SyncError
from omnicanal.sandbox import SandboxServer, generate_world

AS_OF = datetime(2025, 6, 1, 15, tzinfo=UTC)
TEMPLATE = "carrinho_abandonado"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    # a short pair interval and a low throughput, so the limits show in a fast test
    options = {"whatsapp": {"pair_interval": 1.0, "throughput": 20}}
    with SandboxServer(generate_world(60, 20250601, as_of=AS_OF), **options) as server:
        yield server


@pytest.fixture
def emulator(sandbox: SandboxServer) -> Iterator[WhatsAppEmulator]:
    emulator: WhatsAppEmulator = sandbox.app.state.emulators["whatsapp"]
    yield emulator
    emulator.faults.clear()


def destination(sandbox: SandboxServer, **overrides) -> WhatsAppDestination:
    options = {
        "template": TEMPLATE,
        "language": "pt_BR",
        "api_version": API_VERSION,
        "rate_limit": 20.0,
        "pair_interval": 1.0,
        **overrides,
    }
    token = options.pop("token", SANDBOX_ACCESS_TOKEN)
    return WhatsAppDestination(
        sandbox.url, token, options.pop("phone", PHONE_NUMBER_ID), WABA_ID, **options
    )


def phones(emulator: WhatsAppEmulator, n: int, start: int = 0) -> list[str]:
    """n people's numbers as a store holds them: E.164 with the ninth digit."""
    people = emulator.world.people[start : start + n]
    return [p.phone for p in people]


def row(key: str, to: str, first: str = "Ana") -> Row:
    return Row(
        key,
        {"to": to, "first_name": first, "cart_total": "189,90", "checkout_url": f"https://s/{key}"},
    )


def test_each_row_is_one_template_message_whose_ref_is_the_wamid(sandbox, emulator) -> None:
    numbers = phones(emulator, 3)
    rows = [row(f"C{n}:{n}", to) for n, to in enumerate(numbers)]
    dest = destination(sandbox)
    try:
        dest.check()
        outcomes = dest.upsert(rows)
    finally:
        dest.close()
    assert [(o.key, o.ok) for o in outcomes] == [(r.key, True) for r in rows]
    sent = {m["biz_opaque_callback_data"]: m for m in emulator.templates_sent()}
    for outcome, r in zip(outcomes, rows, strict=True):
        message = sent[r.key]
        assert outcome.ref == message["id"] and outcome.ref.startswith("wamid.")
        assert (message["name"], message["language"]) == (TEMPLATE, "pt_BR")
        assert message["parameters"] == {k: v for k, v in r.payload.items() if k != "to"}
        # the account resolves whether or not it keeps the ninth digit
        assert message["wa_id"] in emulator.accounts or message["wa_id"] is None
    assert dest.stats()["accepted"] == 3


def test_a_refused_number_fails_alone_with_metas_reason(sandbox, emulator) -> None:
    good = phones(emulator, 1, start=5)[0]
    dest = destination(sandbox)
    try:
        outcomes = dest.upsert(
            [
                row("bad-ddd", "+55 01 98765-4321"),  # no DDD has a 0
                row("good", good),
                row("landline-as-mobile", "+55 11 3456-78901"),  # 9 digits not starting 9
            ]
        )
    finally:
        dest.close()
    assert [(o.key, o.ok) for o in outcomes] == [
        ("bad-ddd", False),
        ("good", True),
        ("landline-as-mobile", False),
    ]
    assert "(#100)" in outcomes[0].error and "area code" in outcomes[0].error
    assert "starts with 9" in outcomes[2].error


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"token": "EAAG-wrong"}, "OMNICANAL_WHATSAPP_ACCESS_TOKEN"),
        ({"phone": "999999999"}, "OMNICANAL_WHATSAPP_PHONE_NUMBER_ID"),
        ({"template": "nao_existe"}, "no template 'nao_existe'"),
        ({"language": "es"}, "languages it has: pt_BR"),
        ({"template": "black_friday_2026"}, "is PENDING, not APPROVED"),
        ({"template": "volte_sempre"}, "is PAUSED"),
        ({"template": None}, "OMNICANAL_WHATSAPP_TEMPLATE"),
    ],
)
def test_whole_destination_failures_name_what_to_fix(sandbox, emulator, overrides, needle):
    before = len(emulator.sent)
    dest = destination(sandbox, **overrides)
    try:
        with pytest.raises(SyncError, match=needle.replace("(", r"\(")):
            dest.check()
    finally:
        dest.close()
    assert len(emulator.sent) == before


def test_fields_that_are_not_the_templates_variables_stop_before_sending(sandbox, emulator):
    before = len(emulator.sent)
    dest = destination(sandbox)
    try:
        dest.check()
        with pytest.raises(SyncError, match="has the variables"):
            dest.upsert([Row("k", {"to": phones(emulator, 1)[0], "first_name": "Ana"})])
    finally:
        dest.close()
    assert len(emulator.sent) == before


def test_two_messages_to_one_person_are_spaced_by_the_pair_rate_limit(sandbox, emulator):
    to = phones(emulator, 1, start=10)[0]
    other = phones(emulator, 1, start=11)[0]
    dest = destination(sandbox)
    try:
        started = time.monotonic()
        # the same person twice, written once with and once without the ninth digit
        without_ninth = to[:5] + to[6:]
        outcomes = dest.upsert([row("a:1", to), row("a:2", without_ninth), row("b:1", other)])
        elapsed = time.monotonic() - started
    finally:
        dest.close()
    assert [o.ok for o in outcomes] == [True, True, True], outcomes
    assert elapsed >= 1.0  # the second message to one user waited out the interval
    assert dest.stats()["pair_rate_limited"] == 0  # paced, never refused


def test_a_destination_ignoring_the_pair_limit_leaves_the_row_pending(sandbox, emulator):
    to = phones(emulator, 1, start=12)[0]
    dest = destination(sandbox, pair_interval=0.0)
    try:
        outcomes = dest.upsert([row("p:1", to), row("p:2", to)])
    finally:
        dest.close()
    # 131056 each time: the row gets no outcome (pending, sent again by the next run)
    assert [(o.key, o.ok) for o in outcomes] == [("p:1", True)]
    assert dest.stats()["pair_rate_limited"] >= 1 and dest.stats()["left_pending"] == 1


def test_sends_are_paced_at_the_numbers_throughput(sandbox, emulator) -> None:
    numbers = phones(emulator, 30, start=20)
    dest = destination(sandbox, rate_limit=20.0)
    try:
        started = time.monotonic()
        outcomes = dest.upsert([row(f"r:{n}", to) for n, to in enumerate(numbers)])
        elapsed = time.monotonic() - started
        requests = dest.client.requests_sent
    finally:
        dest.close()
    assert all(o.ok for o in outcomes)
    # 20 a second, no 130429 retried (one request a message plus the template read)
    assert requests == len(numbers) + 1
    assert elapsed >= (len(numbers) - 1) / 20


def test_statuses_come_back_into_the_ledger_from_the_receiver(
    fresh_db: str, webhook_emulations: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnicanal.activation.ledger import SCHEMA, ensure_schema
    from omnicanal.channels.whatsapp.statuses import collect_statuses, status_counts
    from omnicanal.demo import start_webhooks
    from omnicanal.settings import get_settings

    monkeypatch.setenv("OMNICANAL_WAREHOUSE_URL", fresh_db)
    world = generate_world(40, 7, as_of=AS_OF)
    with ExitStack() as stack:
        sandbox = stack.enter_context(SandboxServer(world, **webhook_emulations))
        emulator: WhatsAppEmulator = sandbox.app.state.emulators["whatsapp"]
        start_webhooks(get_settings(), sandbox, stack)
        numbers = phones(emulator, 4)
        # the last person has no WhatsApp: accepted, then failed (131026)
        gone = emulator.world.people[3].person_id
        for wa_id in [w for w, p in emulator.accounts.items() if p == gone]:
            del emulator.accounts[wa_id]
        rows = [row(f"C{n}:{n}", to) for n, to in enumerate(numbers)]
        dest = destination(sandbox)
        try:
            outcomes = dest.upsert(rows)
        finally:
            dest.close()
        # the ledger knows the keys the sync wrote (as the engine records them)
        with psycopg.connect(fresh_db) as conn:
            ensure_schema(conn)
            for r in rows:
                conn.execute(
                    f"insert into {SCHEMA}.sync_ledger (sync_name, record_key, present) "
                    "values ('whatsapp__abandoned_checkout', %s, true)",
                    (r.key,),
                )
        emulator.deliver()
        report = collect_statuses(get_settings())
        assert report.unmatched > 0  # the world's own chats: not ours, left alone
        with psycopg.connect(fresh_db) as conn:
            found = {
                key: (mid, status, code)
                for mid, key, status, code in conn.execute(
                    f"select message_id, record_key, status, error_code "
                    f"from {SCHEMA}.message_statuses"
                )
            }
            counts = status_counts(conn)
        assert set(found) == {r.key for r in rows}
        for outcome in outcomes:
            mid, status, code = found[outcome.key]
            assert mid == outcome.ref
            if outcome.key == "C3:3":
                assert (status, code) == ("failed", 131026)
            else:
                assert status in ("delivered", "read") and code is None
        assert counts[0]["sync"] == "whatsapp__abandoned_checkout"
        assert counts[0]["failed"] == 1 and counts[0]["failures"][0]["record_key"] == "C3:3"
        # read again: the bookmark holds, nothing new
        assert collect_statuses(get_settings()).events_read == 0

        # late and out of order, as webhooks come: an old 'delivered' after 'read', a
        # 'sent' after 'failed' move nothing back; a new status moves a message on
        with psycopg.connect(fresh_db) as conn:
            before = conn.execute(
                f"select * from {SCHEMA}.message_statuses order by message_id"
            ).fetchall()
        behind = [
            (found[key][0], "sent" if found[key][1] == "failed" else "delivered")
            for key in found
            if found[key][1] in ("read", "failed")
        ]
        assert behind
        late = [{"id": mid, "status": status, "timestamp": "1748790000"} for mid, status in behind]
        _post_statuses(get_settings(), late)
        assert collect_statuses(get_settings()).statuses == len(late)
        with psycopg.connect(fresh_db) as conn:
            after = conn.execute(
                f"select * from {SCHEMA}.message_statuses order by message_id"
            ).fetchall()
        for was, now in zip(before, after, strict=True):
            # status and error stay; a time already known stays (a missing one may fill in)
            assert now[:7] == was[:7], (was, now)
            assert all(w is None or w == n for w, n in zip(was[7:11], now[7:11], strict=True))
        delivered = [k for k in found if found[k][1] == "delivered"]
        if delivered:
            mid = found[delivered[0]][0]
            _post_statuses(get_settings(), [{"id": mid, "status": "read", "timestamp": "1"}])
            collect_statuses(get_settings())
            with psycopg.connect(fresh_db) as conn:
                [(status,)] = conn.execute(
                    f"select status from {SCHEMA}.message_statuses where message_id = %s",
                    (mid,),
                ).fetchall()
            assert status == "read"


def _post_statuses(settings, statuses: list[dict]) -> None:
    """Post statuses to the receiver as Meta does: signed with the app secret."""
    import json

    import httpx

    from omnicanal.channels.whatsapp import callback_url
    from omnicanal.webhooks.payload import sign

    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": WABA_ID,
                    "changes": [
                        {
                            "field": "messages",
                            "value": {"messaging_product": "whatsapp", "statuses": statuses},
                        }
                    ],
                }
            ],
        }
    ).encode()
    secret = settings.channel("whatsapp").app_secret
    answer = httpx.post(
        callback_url(settings),
        content=body,
        headers={"X-Hub-Signature-256": sign(secret, body), "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text


def test_a_receiver_that_is_down_only_delays_the_statuses(
    sandbox, emulator, fresh_db: str, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    import socket

    from omnicanal.settings import get_settings

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{free.getsockname()[1]}"
    monkeypatch.setenv("OMNICANAL_WAREHOUSE_URL", fresh_db)
    monkeypatch.setenv("OMNICANAL_WHATSAPP_RECEIVER_URL", closed)
    dest = destination(sandbox)
    dest.statuses_settings = get_settings()  # as the engine builds it for a run
    try:
        dest.check()
        outcomes = dest.upsert([row("down:1", phones(emulator, 1, start=40)[0])])
        stats = dest.stats()
    finally:
        dest.close()
    assert [o.ok for o in outcomes] == [True]
    assert stats["statuses_read"] == {} and stats["accepted"] == 1
    assert "delivery statuses not collected this time" in caplog.text
    assert "cannot be reached" in caplog.text and closed in caplog.text


@pytest.fixture
def receiving(fresh_db: str, webhook_emulations: dict, monkeypatch: pytest.MonkeyPatch):
    """A world served with a webhook receiver of its own, posted to as Meta does, and a
    fresh warehouse database (its URL): what a statuses pass reads and writes."""
    from omnicanal.demo import start_webhooks
    from omnicanal.settings import get_settings

    monkeypatch.setenv("OMNICANAL_WAREHOUSE_URL", fresh_db)
    with ExitStack() as stack:
        sandbox = stack.enter_context(
            SandboxServer(generate_world(20, 3, as_of=AS_OF), **webhook_emulations)
        )
        start_webhooks(get_settings(), sandbox, stack)
        yield fresh_db


@pytest.mark.parametrize("table", ["sync_ledger", "sync_row_outcomes"])
def test_a_ledger_that_keeps_refs_matches_statuses_by_message_id(
    table: str, receiving: str
) -> None:
    """When the ledger keeps each row's ``ref`` (the wamid), a status without callback
    data is matched by it."""
    from omnicanal.activation.ledger import SCHEMA, ensure_schema
    from omnicanal.channels.whatsapp.statuses import collect_statuses
    from omnicanal.settings import get_settings

    with psycopg.connect(receiving) as conn:
        ensure_schema(conn)
        conn.execute(f"alter table {SCHEMA}.{table} add column if not exists ref text")
        if table == "sync_ledger":
            conn.execute(
                f"insert into {SCHEMA}.sync_ledger (sync_name, record_key, present, ref) "
                "values ('whatsapp__abandoned_checkout', 'K1', true, 'wamid.ours')"
            )
        else:
            [(run_id,)] = conn.execute(
                f"insert into {SCHEMA}.sync_runs (sync_name, destination) "
                "values ('whatsapp__abandoned_checkout', 'whatsapp') returning run_id"
            ).fetchall()
            conn.execute(
                f"insert into {SCHEMA}.sync_row_outcomes "
                "(run_id, record_key, action, ok, ref) values (%s, 'K1', 'insert', true, "
                "'wamid.ours')",
                (run_id,),
            )
    _post_statuses(
        get_settings(),
        [
            {"id": "wamid.ours", "status": "delivered", "timestamp": "1748790000"},
            {"id": "wamid.theirs", "status": "delivered", "timestamp": "1748790000"},
        ],
    )
    report = collect_statuses(get_settings())
    with psycopg.connect(receiving) as conn:
        rows = conn.execute(
            f"select message_id, sync_name, record_key, status from {SCHEMA}.message_statuses"
        ).fetchall()
    assert rows == [("wamid.ours", "whatsapp__abandoned_checkout", "K1", "delivered")]
    assert report.statuses == 1 and report.unmatched >= 1


def test_statuses_settle_rows_in_doubt_and_leave_the_others_alone(receiving: str) -> None:
    """A run killed mid-send leaves ``sending`` rows, an unanswered request a failed row
    "in doubt": a status for one proves WhatsApp took the message (sent, its dead letter
    gone, its payload kept for the diff) or says it failed (Meta's reason); a row whose
    run recorded it is not touched by a status, and a second pass changes nothing."""
    from omnicanal.activation.ledger import SCHEMA, ensure_schema
    from omnicanal.channels.whatsapp.statuses import collect_statuses
    from omnicanal.settings import get_settings

    sync = "whatsapp__abandoned_checkout"
    with psycopg.connect(receiving) as conn:
        ensure_schema(conn)
        for key, outcome, error in (
            ("K-killed", "sending", None),
            ("K-unanswered", "failed", "in doubt: HTTP 503"),
            ("K-bounced", "sending", None),
            ("K-refused", "failed", "(132001) template does not exist"),
        ):
            conn.execute(
                f"insert into {SCHEMA}.sync_ledger (sync_name, record_key, present, "
                "last_outcome, last_error) values (%s, %s, false, %s, %s)",
                (sync, key, outcome, error),
            )
            if error:
                conn.execute(
                    f"insert into {SCHEMA}.sync_dead_letters (sync_name, record_key, "
                    "action, payload, payload_hash, reason) "
                    "values (%s, %s, 'insert', '{\"to\": \"5511\"}', 'h-' || %s, %s)",
                    (sync, key, key, error),
                )
    delivered_at = 1748790000
    _post_statuses(
        get_settings(),
        [
            {
                "id": f"wamid.{key}",
                "status": status,
                "timestamp": str(delivered_at),
                "recipient_id": "5511987654321",
                "biz_opaque_callback_data": key,
                **(
                    {"errors": [{"code": 131026, "title": "Message undeliverable"}]}
                    if status == "failed"
                    else {}
                ),
            }
            for key, status in (
                ("K-killed", "delivered"),
                ("K-unanswered", "read"),
                ("K-bounced", "failed"),
                ("K-refused", "delivered"),
            )
        ],
    )
    first = collect_statuses(get_settings())
    _post_statuses(
        get_settings(),
        [
            {
                "id": "wamid.K-killed",
                "status": "read",
                "timestamp": str(delivered_at + 60),
                "biz_opaque_callback_data": "K-killed",
            }
        ],
    )
    again = collect_statuses(get_settings())
    with psycopg.connect(receiving) as conn:
        ledger = {
            key: rest
            for key, *rest in conn.execute(
                f"select record_key, last_outcome, present, first_synced_at, "
                f"last_error, payload_hash from {SCHEMA}.sync_ledger"
            )
        }
        dead = dict(conn.execute(f"select record_key, reason from {SCHEMA}.sync_dead_letters"))
    assert (first.settled_sent, first.settled_failed) == (2, 1)
    assert (again.settled_sent, again.settled_failed) == (0, 0)  # already settled
    moment = datetime.fromtimestamp(delivered_at, UTC)
    assert ledger["K-killed"] == ["sent", True, moment, None, None]
    assert ledger["K-unanswered"] == ["sent", True, moment, None, "h-K-unanswered"]
    assert "K-unanswered" not in dead
    outcome, present, synced, error, _ = ledger["K-bounced"]
    assert (outcome, present, synced) == ("failed", False, None) and "131026" in error
    # recorded by its run, not in doubt: a status does not rewrite it
    assert ledger["K-refused"][:2] == ["failed", False]
    assert dead["K-refused"] == "(132001) template does not exist"


def test_a_token_revoked_part_way_keeps_what_was_sent_and_leaves_the_rest_pending(
    sandbox, emulator
) -> None:
    import threading

    same, other = phones(emulator, 2, start=44)
    rows = [row("t:1", same), row("t:2", same), row("t:3", other)]
    dest = destination(sandbox)
    try:
        dest.check()
        # t:1 and t:3 go at once; t:2 waits out the pair interval, and the token dies
        timer = threading.Timer(0.3, emulator.expire_token)
        timer.start()
        outcomes = dest.upsert(rows)
        timer.join()
        assert [(o.key, o.ok) for o in outcomes] == [("t:1", True), ("t:3", True)]
        # the rest of the run asks nothing more of the Cloud API: left pending
        before = dest.client.requests_sent
        assert dest.upsert([row("t:4", phones(emulator, 1, start=46)[0])]) == []
        assert dest.client.requests_sent == before
        assert "OMNICANAL_WHATSAPP_ACCESS_TOKEN" in dest.stats()["error"]
        with pytest.raises(SyncError, match="OMNICANAL_WHATSAPP_ACCESS_TOKEN"):
            dest.check()
    finally:
        emulator.expire_token(False)
        dest.close()


def test_a_message_without_an_answer_is_in_doubt_and_the_rest_pending(sandbox, emulator):
    rows = [row(f"d:{n}", to) for n, to in enumerate(phones(emulator, 3, start=47))]
    dest = destination(sandbox, backoff=0.01, max_attempts=2)
    try:
        dest.check()
        emulator.fail_next(2, 503)  # the first message's two attempts
        outcomes = dest.upsert(rows)
    finally:
        emulator.faults.clear()
        dest.close()
    assert [(o.key, o.ok) for o in outcomes] == [("d:0", False)]
    assert outcomes[0].error.startswith("in doubt:") and "replay" in outcomes[0].error
    tried = {m["biz_opaque_callback_data"] for m in emulator.templates_sent()}
    assert not tried & {"d:1", "d:2"}
