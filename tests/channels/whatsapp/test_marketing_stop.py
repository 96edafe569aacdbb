"""A marketing template to someone who stopped the business's marketing messages: the
Cloud API accepts it, WhatsApp does not deliver it (a ``failed`` status, code 131050),
and the sync records the row as refused with Meta's reason and never sends it again.

The real engine, the WhatsApp destination and the webhook receiver, against the
sandbox's emulation (which knows each user's latest preference) over HTTP.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime

import psycopg
import pytest

from omnicanal.activation.definitions import MESSAGE, SyncDefinition
from omnicanal.activation.engine import run_sync
from omnicanal.activation.ledger import SCHEMA
from omnicanal.channels.whatsapp import API_VERSION, SANDBOX_ACCESS_TOKEN
from omnicanal.channels.whatsapp.destination import WhatsAppDestination
from omnicanal.channels.whatsapp.emulation import WhatsAppEmulator
from omnicanal.channels.whatsapp.statuses import collect_statuses
from omnicanal.channels.whatsapp.world import PHONE_NUMBER_ID, WABA_ID
from omnicanal.sandbox import SandboxServer, generate_world

AS_OF = datetime(2025, 6, 1, 15, tzinfo=UTC)
#: a declared WhatsApp sync, so its statuses are matched to its keys
SYNC = "whatsapp__abandoned_checkout"
DEFINITION = SyncDefinition(
    name=SYNC,
    destination="whatsapp",
    model="wa_checkouts",
    key="checkout_key",
    fields={
        "to": "phone",
        "first_name": "first_name",
        "cart_total": "cart_total",
        "checkout_url": "checkout_url",
    },
    mode=MESSAGE,
)


def destination(sandbox: SandboxServer, settings) -> WhatsAppDestination:
    dest = WhatsAppDestination(
        sandbox.url,
        SANDBOX_ACCESS_TOKEN,
        PHONE_NUMBER_ID,
        WABA_ID,
        template="carrinho_abandonado",  # a MARKETING template
        language="pt_BR",
        api_version=API_VERSION,
        rate_limit=20.0,
        pair_interval=1.0,
    )
    dest.statuses_settings = settings  # as the engine builds it for a run
    return dest


def set_model(url: str, rows: list[tuple[str, str, str]]) -> None:
    """The sync model (key, phone, customer) and everyone's WhatsApp consent: the
    pipeline has not yet seen the stop (its webhook and the next dbt build come later)."""
    with psycopg.connect(url) as conn:
        conn.execute("create schema if not exists activation")
        conn.execute("create schema if not exists marts")
        conn.execute(
            "create table if not exists activation.wa_checkouts (checkout_key text, "
            "phone text, first_name text, cart_total text, checkout_url text, "
            "customer_id text)"
        )
        conn.execute(
            "create table if not exists marts.customer_consent "
            "(customer_id text, channel text, consents boolean)"
        )
        conn.execute("truncate activation.wa_checkouts, marts.customer_consent")
        for key, phone, customer in rows:
            conn.execute(
                "insert into activation.wa_checkouts values (%s, %s, 'Ana', '189,90', %s, %s)",
                (key, phone, f"https://loja.example/checkouts/{key}", customer),
            )
            conn.execute(
                "insert into marts.customer_consent values (%s, 'whatsapp', true)", (customer,)
            )


def ledger(url: str) -> dict[str, tuple]:
    with psycopg.connect(url) as conn:
        return {
            key: tuple(rest)
            for key, *rest in conn.execute(
                f"select record_key, last_outcome, present, first_synced_at is not null, "
                f"last_error from {SCHEMA}.sync_ledger where sync_name = %s",
                (SYNC,),
            )
        }


def test_a_marketing_template_to_someone_who_stopped_is_refused_and_never_resent(
    fresh_db: str, webhook_emulations: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnicanal.demo import start_webhooks
    from omnicanal.settings import get_settings

    monkeypatch.setenv("OMNICANAL_WAREHOUSE_URL", fresh_db)
    with ExitStack() as stack:
        sandbox = stack.enter_context(
            SandboxServer(generate_world(30, 11, as_of=AS_OF), **webhook_emulations)
        )
        start_webhooks(get_settings(), sandbox, stack)
        settings = get_settings()
        emulator: WhatsAppEmulator = sandbox.app.state.emulators["whatsapp"]
        # the pair limit the destination below paces itself by (Meta's is 6 s): the last
        # send goes to the stopper again, and with 6 s here it was refused whenever the
        # test ran in under ~3 s, the destination's three 1-s retries
        emulator.pair_interval = 1.0
        # two people with WhatsApp who have not stopped marketing messages
        chosen = []
        for person in emulator.world.people:
            accounts = [w for w, p in emulator.accounts.items() if p == person.person_id]
            if accounts and not any(emulator.marketing_stopped(w) for w in accounts):
                chosen.append((person, accounts))
            if len(chosen) == 2:
                break
        (stopper, stopper_ids), (other, _) = chosen
        for wa_id in stopper_ids:
            emulator.set_preference(wa_id, "stop")
        set_model(
            fresh_db,
            [("stopper:w1", stopper.phone, "C-stop"), ("other:w1", other.phone, "C-other")],
        )

        def sync(**kwargs):
            dest = destination(sandbox, settings)
            try:
                return run_sync(settings, SYNC, definition=DEFINITION, destination=dest, **kwargs)
            finally:
                dest.close()

        first = sync()
        # the Cloud API accepts both: only the status will say one was not delivered
        assert (first.inserted, first.failed) == (2, 0)
        assert {k: v[:2] for k, v in ledger(fresh_db).items()} == {
            "stopper:w1": ("sent", True),
            "other:w1": ("sent", True),
        }
        sent = len(emulator.templates_sent())

        emulator.deliver()
        report = collect_statuses(settings)
        assert report.refused == 1
        rows = ledger(fresh_db)
        outcome, present, was_sent, error = rows["stopper:w1"]
        assert (outcome, present, was_sent) == ("failed", False, True)
        assert "131050" in error and "stop receiving marketing messages" in error
        assert rows["other:w1"][:2] == ("sent", True)
        with psycopg.connect(fresh_db) as conn:
            outcomes = {
                key: tuple(rest)
                for key, *rest in conn.execute(
                    f"select record_key, status, ok, error from {SCHEMA}.sync_row_outcomes "
                    "where run_id = %s",
                    (first.run_id,),
                )
            }
        assert outcomes["stopper:w1"] == ("failed", False, error)
        assert outcomes["other:w1"][:2] == ("sent", True)

        # never retried: not by the next run, not by a replay of the dead letters
        again = sync()
        replayed = sync(replay=True)
        assert (again.sent, replayed.sent) == (0, 0)
        assert len(emulator.templates_sent()) == sent
        assert ledger(fresh_db)["stopper:w1"][:2] == ("failed", False)

        # a resume opens marketing again: the next campaign window is delivered
        for wa_id in stopper_ids:
            emulator.set_preference(wa_id, "resume")
        set_model(fresh_db, [("stopper:w2", stopper.phone, "C-stop")])
        assert sync().inserted == 1
        emulator.deliver()
        assert collect_statuses(settings).refused == 0
        assert ledger(fresh_db)["stopper:w2"][:2] == ("sent", True)
