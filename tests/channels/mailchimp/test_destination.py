"""The Mailchimp destination against the sandbox's emulation, over real HTTP.

Small changes go one PUT a row, large ones through /batches (submitted together, then
awaited in turn) read back per operation;
nobody's subscription status is ever changed by a sync (an unsubscribed member stays
unsubscribed, checked with Mailchimp's official client and through ``run_sync``);
merge fields are created before use; the segment tag comes and goes without archiving
anyone; the client is paced and honours 429.
"""

from __future__ import annotations

import threading
import time

import mailchimp_marketing
import psycopg
import pytest

from omnicanal.activation.destination import Row
from omnicanal.activation.engine import run_sync
from omnicanal.channels.mailchimp import SANDBOX_API_KEY
from omnicanal.channels.mailchimp.destination import MailchimpDestination, subscriber_hash
from omnicanal.errors import SyncError
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import generate_world
from omnicanal.settings import get_settings

LIST = "omnicanal-demo"


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(generate_world(5, seed=3)) as server:
        yield server


@pytest.fixture
def mailchimp(sandbox):
    """The sandbox's Mailchimp with an empty sync audience and no faults."""
    emulator = sandbox.app.state.mailchimp
    emulator.cancel_batches()  # a batch an earlier test left pending must not run now
    emulator.audiences.clear()
    emulator.add_list(LIST)
    emulator.reset_counters()
    emulator.faults.clear()
    emulator.hold_batches(False)
    emulator.batch_operation_delay = 0.0
    yield emulator
    emulator.cancel_batches()
    emulator.hold_batches(False)


def destination(sandbox, **options) -> MailchimpDestination:
    options.setdefault("rate_limit", None)
    options.setdefault("poll_interval", 0.02)
    return MailchimpDestination(f"{sandbox.url}/3.0", SANDBOX_API_KEY, LIST, **options)


def official(sandbox) -> mailchimp_marketing.Client:
    client = mailchimp_marketing.Client()
    client.set_config({"api_key": SANDBOX_API_KEY, "server": "us1"})
    client.api_client.host = f"{sandbox.url}/3.0"
    return client


def row(email: str, first: str = "Ana", last: str = "Souza", **extra) -> Row:
    return Row(email, {"email_address": email, "FNAME": first, "LNAME": last, **extra})


def rows(n: int, start: int = 0, last: str = "Souza") -> list[Row]:
    return [row(f"cliente.{i}@uol.com.br", f"Nome{i}", last) for i in range(start, start + n)]


def statuses(emulator) -> dict[str, str]:
    return {m["email_address"]: m["status"] for m in emulator.members(LIST)}


def test_small_changes_are_one_put_a_row(sandbox, mailchimp):
    dest = destination(sandbox)
    try:
        outcomes = dest.upsert(rows(3))
    finally:
        dest.close()
    assert [(o.key, o.ok) for o in outcomes] == [(r.key, True) for r in rows(3)]
    assert [o.ref for o in outcomes] == [subscriber_hash(r.key) for r in rows(3)]
    puts = [(m, p) for m, p, _ in mailchimp.write_log]
    assert puts == [("PUT", f"/3.0/lists/{LIST}/members/{subscriber_hash(r.key)}") for r in rows(3)]
    assert mailchimp.batches == {}
    assert statuses(mailchimp) == {r.key: "subscribed" for r in rows(3)}


def test_large_changes_go_through_batches_read_back_per_operation(sandbox, mailchimp):
    good = rows(30)
    refused = [row("test@test.com"), row("fulano@example.com"), row("sem-arroba")]
    batch = good[:10] + refused + good[10:]
    dest = destination(sandbox)
    try:
        outcomes = dest.upsert(batch)
        stats = dest.stats()
    finally:
        dest.close()
    assert mailchimp.write_calls == 1  # one POST /batches; no member PUT of its own
    (only,) = mailchimp.batches.values()
    assert only.status == "finished" and len(only.operations) == 33
    assert {o.key: o.ok for o in outcomes} == {
        **{r.key: True for r in good},
        **{r.key: False for r in refused},
    }
    reasons = {o.key: o.error for o in outcomes if not o.ok}
    assert reasons["test@test.com"] == (
        "test@test.com looks fake or invalid, please enter a real email address."
    )
    assert "looks fake or invalid" in reasons["fulano@example.com"]
    assert "valid email" in reasons["sem-arroba"]
    assert all(o.ref.startswith(f"{only.id}/op") for o in outcomes)
    assert statuses(mailchimp) == {r.key: "subscribed" for r in good}
    assert mailchimp.member(LIST, "cliente.7@uol.com.br")["merge_fields"]["FNAME"] == "Nome7"
    assert (stats["batches"], stats["batch_operations"], stats["batch_errored_operations"]) == (
        1,
        33,
        3,
    )


def test_a_batch_is_polled_until_finished(sandbox, mailchimp):
    dest = destination(sandbox)
    try:
        mailchimp.hold_batches()
        started = time.monotonic()
        threading.Timer(0.6, mailchimp.hold_batches, args=(False,)).start()
        outcomes = dest.upsert(rows(25))
        waited = time.monotonic() - started
        polls = dest.client.requests_sent - 2  # less the merge fields read and the POST
    finally:
        dest.close()
    assert waited >= 0.6 and all(o.ok for o in outcomes) and len(outcomes) == 25
    assert polls >= 3  # pending, pending …, finished: 0.02 s, then doubling


def test_large_changes_submit_every_batch_before_awaiting_the_first(
    sandbox, mailchimp, monkeypatch
):
    """Batches are pipelined: while the first is still pending, the others have been
    submitted already (one at a time, the client would idle on each), and every row's
    outcome still comes from its own batch's results."""
    monkeypatch.setattr("omnicanal.channels.mailchimp.destination.BATCH_OPERATIONS", 10)
    dest = destination(sandbox)
    seen_while_held: list[int] = []

    def release() -> None:
        seen_while_held.append(len(mailchimp.batches))
        mailchimp.hold_batches(False)

    try:
        mailchimp.hold_batches()
        threading.Timer(0.5, release).start()
        outcomes = dest.upsert(rows(35))
    finally:
        dest.close()
    assert seen_while_held == [4]  # 35 rows, 10 operations a batch: all four submitted
    assert dest.stats()["batches"] == 4
    assert sorted(o.key for o in outcomes) == sorted(r.key for r in rows(35))
    assert all(o.ok for o in outcomes)
    refs = {o.ref.split("/")[0] for o in outcomes}
    assert len(refs) == 4  # each outcome read back from its own batch
    assert len(mailchimp.members(LIST)) == 35


def test_a_batch_that_never_finishes_leaves_its_rows_pending(sandbox, mailchimp):
    mailchimp.hold_batches()
    dest = destination(sandbox, batch_timeout=0.3)
    try:
        assert dest.upsert(rows(25)) == []  # no answer: the engine keeps them pending
    finally:
        dest.close()
    assert mailchimp.members(LIST) == []


@pytest.mark.parametrize("count", [2, 40], ids=["one-by-one", "batches"])
def test_an_unsubscribed_member_is_never_resubscribed(sandbox, mailchimp, count):
    first = rows(count)
    dest = destination(sandbox)
    try:
        assert all(o.ok for o in dest.upsert(first))
        client = official(sandbox)
        gone = first[1].key
        client.lists.update_list_member(LIST, subscriber_hash(gone), {"status": "unsubscribed"})
        changed = rows(count, last="Oliveira")
        assert all(o.ok for o in dest.upsert(changed))
    finally:
        dest.close()
    member = official(sandbox).lists.get_list_member(LIST, subscriber_hash(gone))
    assert member["status"] == "unsubscribed"
    assert member["merge_fields"]["LNAME"] == "Oliveira"  # the rest of the row did sync
    assert sum(s == "subscribed" for s in statuses(mailchimp).values()) == count - 1


def test_who_unsubscribed_stays_out_after_leaving_and_coming_back(sandbox, mailchimp):
    """She unsubscribes herself, leaves the segment (archived), comes back: the sync's
    PUT is refused with Mailchimp's reason, and she is not subscribed again."""
    ana = row("ana.paula@gmail.com")
    dest = destination(sandbox)
    try:
        assert [o.ok for o in dest.upsert([ana])] == [True]
        mailchimp.touch_member(LIST, ana.key, status="unsubscribed")
        assert [o.ok for o in dest.remove([ana])] == [True]
        (back,) = dest.upsert([ana])
    finally:
        dest.close()
    assert not back.ok and back.error.startswith(
        "ana.paula@gmail.com is in a compliance state due to unsubscribe"
    )
    assert statuses(mailchimp) == {ana.key: "archived"}


def test_missing_merge_fields_are_created_first(sandbox, mailchimp):
    dest = destination(sandbox, merge_field_types={"PONTOS": "number"})
    try:
        batch = [row("bia.lima@gmail.com", CIDADE="Recife", PONTOS=120)]
        assert [o.ok for o in dest.upsert(batch)] == [True]
        assert dest.stats()["merge_fields_created"] == ["CIDADE", "PONTOS"]
        assert [o.ok for o in dest.upsert([row("caio@gmail.com", CIDADE="Natal", PONTOS=3)])] == [
            True
        ]
        assert dest.stats()["merge_fields_created"] == ["CIDADE", "PONTOS"]  # not again
    finally:
        dest.close()
    types = {f["tag"]: f["type"] for f in mailchimp.merge_fields(LIST)}
    assert (types["CIDADE"], types["PONTOS"]) == ("text", "number")
    held = mailchimp.member(LIST, "bia.lima@gmail.com")["merge_fields"]
    assert (held["CIDADE"], held["PONTOS"]) == ("Recife", 120)

    again = destination(sandbox)
    try:
        with pytest.raises(SyncError, match="meta.omnicanal_sync.fields"):
            again.upsert([row("davi@gmail.com", ULTIMA_COMPRA_EM="2025-05-01")])
    finally:
        again.close()


def test_a_sync_never_sends_status_or_tags(sandbox, mailchimp):
    dest = destination(sandbox)
    try:
        with pytest.raises(SyncError, match="status"):
            dest.upsert([row("eva@gmail.com", status="subscribed")])
    finally:
        dest.close()
    assert mailchimp.members(LIST) == []


@pytest.mark.parametrize("count", [2, 30], ids=["one-by-one", "batches"])
def test_segment_tag_comes_and_goes_and_nobody_is_archived(sandbox, mailchimp, count):
    client = official(sandbox)
    # someone the retailer added by hand, with a tag of their own
    client.lists.add_list_member(
        LIST, {"email_address": "cliente.0@uol.com.br", "status": "subscribed", "tags": ["loja"]}
    )
    dest = destination(sandbox, tag="compradores-90d")
    try:
        members = rows(count)
        assert all(o.ok for o in dest.upsert(members))
        assert {r.key: mailchimp.tags(LIST, r.key) for r in members} == {
            **{r.key: ["compradores-90d"] for r in members},
            "cliente.0@uol.com.br": ["loja", "compradores-90d"],
        }
        removed = dest.remove(members)
        assert [(o.key, o.ok) for o in removed] == [(r.key, True) for r in members]
        # removing a member the audience no longer has is fine too
        assert [o.ok for o in dest.remove([row("nunca@gmail.com")])] == [True]
    finally:
        dest.close()
    assert statuses(mailchimp) == {r.key: "subscribed" for r in members}
    assert mailchimp.tags(LIST, "cliente.0@uol.com.br") == ["loja"]
    assert all(mailchimp.tags(LIST, r.key) == [] for r in members[1:])


def test_without_a_tag_removal_archives(sandbox, mailchimp):
    dest = destination(sandbox)
    try:
        dest.upsert(rows(25))
        removed = dest.remove(rows(25))
        assert all(o.ok for o in removed) and len(removed) == 25
        assert [o.ok for o in dest.remove(rows(1))] == [True]  # already gone: done
    finally:
        dest.close()
    assert set(statuses(mailchimp).values()) == {"archived"}


def test_requests_are_paced(sandbox, mailchimp):
    dest = destination(sandbox, rate_limit=20.0)
    try:
        started = time.monotonic()
        outcomes = dest.upsert(rows(10))
        elapsed = time.monotonic() - started
        sent = dest.client.requests_sent
    finally:
        dest.close()
    assert all(o.ok for o in outcomes) and len(outcomes) == 10
    assert sent == 1 + 10  # the merge fields read, ten PUTs
    assert elapsed >= (sent - 1) / 20 * 0.9  # 20 requests a second at most


def test_429_is_waited_out(sandbox, mailchimp):
    mailchimp.fail_next(2, status=429)  # each with Retry-After: 1
    dest = destination(sandbox, backoff=0.01)
    try:
        started = time.monotonic()
        outcomes = dest.upsert(rows(3))
        elapsed = time.monotonic() - started
        sent = dest.client.requests_sent
    finally:
        dest.close()
    assert [o.ok for o in outcomes] == [True, True, True]
    assert sent == 1 + 2 + 3 and elapsed >= 2.0


def test_bad_key_and_unknown_audience_name_their_settings(sandbox, mailchimp):
    bad = MailchimpDestination(f"{sandbox.url}/3.0", "wrong-us1", LIST, rate_limit=None)
    with pytest.raises(SyncError, match="OMNICANAL_MAILCHIMP_API_KEY"):
        bad.check()
    bad.close()
    missing = MailchimpDestination(f"{sandbox.url}/3.0", SANDBOX_API_KEY, "nope", rate_limit=None)
    with pytest.raises(SyncError, match="OMNICANAL_MAILCHIMP_LIST_ID"):
        missing.check()
    missing.close()


# --- through the sync engine -------------------------------------------------------------


def _segment(url: str, people: list[tuple[str, str, str]]) -> None:
    """The sync model (email, first, last) and everyone's email consent."""
    with psycopg.connect(url) as conn:
        conn.execute("create schema if not exists activation")
        conn.execute("create schema if not exists marts")
        conn.execute(
            "create table if not exists activation.sync_mailchimp__recent_buyers "
            "(email text, first_name text, last_name text, customer_id text, "
            "last_order_at timestamptz)"
        )
        conn.execute(
            "create table if not exists marts.customer_consent (customer_id text, channel text, "
            "consents boolean, consent_source text, consent_changed_at timestamptz)"
        )
        conn.execute("truncate activation.sync_mailchimp__recent_buyers")
        conn.execute("truncate marts.customer_consent")
        for email, first, last in people:
            conn.execute(
                "insert into activation.sync_mailchimp__recent_buyers values "
                "(%s, %s, %s, md5(%s), now())",
                (email, first, last, email),
            )
            conn.execute(
                "insert into marts.customer_consent values (md5(%s), 'email', true, 'test', now())",
                (email,),
            )


def test_a_sync_keeps_an_unsubscribed_member_unsubscribed(
    sandbox, mailchimp, warehouse_env, monkeypatch
):
    monkeypatch.setenv("OMNICANAL_MAILCHIMP_API_URL", f"{sandbox.url}/3.0")
    monkeypatch.setenv("OMNICANAL_MAILCHIMP_API_KEY", SANDBOX_API_KEY)
    people = [("ana@x.com.br", "Ana", "Souza"), ("bia@x.com.br", "Bia", "Lima")]
    _segment(warehouse_env, [*people, ("caio@x.com.br", "Caio", "Reis")])
    with psycopg.connect(warehouse_env) as conn:  # Caio never accepted email marketing
        conn.execute(
            "update marts.customer_consent set consents = false where customer_id = md5(%s)",
            ("caio@x.com.br",),
        )
    first = run_sync(get_settings(), "mailchimp__recent_buyers")
    assert (first.inserted, first.failed) == (2, 0)
    assert mailchimp.member(LIST, "caio@x.com.br") is None  # consent channel: email

    client = official(sandbox)
    client.lists.update_list_member(
        LIST, subscriber_hash("ana@x.com.br"), {"status": "unsubscribed"}
    )
    _segment(warehouse_env, [("ana@x.com.br", "Ana Maria", "Souza"), people[1]])
    second = run_sync(get_settings(), "mailchimp__recent_buyers")
    assert (second.updated, second.failed) == (1, 0)
    resync = run_sync(get_settings(), "mailchimp__recent_buyers", full_resync=True)
    assert (resync.updated, resync.failed) == (2, 0)

    ana = client.lists.get_list_member(LIST, subscriber_hash("ana@x.com.br"))
    assert (ana["status"], ana["merge_fields"]["FNAME"]) == ("unsubscribed", "Ana Maria")
    assert statuses(mailchimp) == {"ana@x.com.br": "unsubscribed", "bia@x.com.br": "subscribed"}


def test_the_recent_buyers_truth_goes_through_as_is(sandbox, mailchimp, world):
    """The world's recent buyers, sent as the sync sends them (through /batches), are
    exactly the audience's subscribed members: no real address is refused as fake."""
    truth = world.expected_recent_buyers()
    assert len(truth) > 20  # large enough for /batches
    segment = [
        row(email, names["first_name"], names["last_name"]) for email, names in truth.items()
    ]
    dest = destination(sandbox)
    try:
        outcomes = dest.upsert(segment)
    finally:
        dest.close()
    assert [o for o in outcomes if not o.ok] == [] and len(outcomes) == len(truth)
    held = {
        m["email_address"]: {
            "first_name": m["merge_fields"]["FNAME"],
            "last_name": m["merge_fields"]["LNAME"],
        }
        for m in mailchimp.members(LIST, status="subscribed")
    }
    assert held == truth and len(mailchimp.batches) == 1
