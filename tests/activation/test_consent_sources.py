"""Consent revoked in HubSpot or WhatsApp, end to end: the sandbox world extracted by the
real taps (WhatsApp through Meta's signed webhooks and our receiver), the consent mart
built by dbt with HubSpot and WhatsApp in the project, a sync to the sandbox's Mailchimp
over HTTP.

- The mart agrees with the world's truth, now that HubSpot's opt-outs and WhatsApp's
  stops and resumes count: email and ads follow ``Person.accepts_email_marketing``;
  whatsapp is the Shopify opt-in of those who accept phone marketing, or a WhatsApp
  resume (``world.marketing_preference``).
- A consenting person who unsubscribes from all email in HubSpot, or stops the
  retailer's marketing messages in WhatsApp, is gone from the synced audience after one
  extract, one dbt build and one sync run, and consents to no channel; a WhatsApp resume
  afterwards opens WhatsApp again and nothing else (the audience does not take them
  back).
"""

from __future__ import annotations

import socket
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql
from sync_pipeline import build_consent, make_shoppers_sync_model, rows

from omnicanal.activation.definitions import SyncDefinition
from omnicanal.activation.engine import run_sync

PLATFORMS = ("mailchimp", "shopify", "square", "vtex", "hubspot", "whatsapp")
PEOPLE = 120
SEED = 20250601
AS_OF = datetime(2025, 6, 1, 15, tzinfo=UTC)
SYNC_LIST = "omnicanal-demo"
DEFINITION = SyncDefinition(
    name="mailchimp__shoppers",
    destination="mailchimp",
    model="sync_test_shoppers",
    key="email",
    fields={"email_address": "email"},
)


def consents(url: str) -> dict[tuple[str, str], bool]:
    return {
        (c, ch): ok
        for c, ch, ok in rows(
            url, "select customer_id, channel, consents from marts.customer_consent"
        )
    }


def customer_of(url: str, record_key: str) -> str | None:
    found = rows(
        url,
        "select customer_id from intermediate.int_identity__record_customers where record_key = %s",
        record_key,
    )
    return found[0][0] if found else None


@pytest.fixture(scope="module")
def pipeline(pg_admin_url, tmp_path_factory):
    from omnicanal.channels import sources
    from omnicanal.config import WarehouseURL
    from omnicanal.demo import start_webhooks
    from omnicanal.extract import run_extract
    from omnicanal.sandbox import SandboxServer, generate_world
    from omnicanal.settings import get_settings

    admin = WarehouseURL.parse(pg_admin_url)
    dbname = f"omnicanal_consent_src_{uuid.uuid4().hex[:10]}"
    url = WarehouseURL(admin.host, admin.port, admin.user, admin.password, dbname).url()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    world = generate_world(PEOPLE, SEED, as_of=AS_OF)
    workdir = tmp_path_factory.mktemp("consent_sources")
    with socket.socket() as free:  # the receiver's port, which WhatsApp posts to
        free.bind(("127.0.0.1", 0))
        webhooks_port = free.getsockname()[1]
    env = {
        "OMNICANAL_WAREHOUSE_URL": url,
        "OMNICANAL_HOME": str(workdir / "home"),
        "OMNICANAL_WEBHOOKS_PORT": str(webhooks_port),
    }
    try:
        with ExitStack() as stack, pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            settings = get_settings()
            options = {
                c.name: c.emulation.options_from_settings(settings)
                for c in sources()
                if c.source.delivery == "webhook" and c.emulation
            }
            sandbox = stack.enter_context(SandboxServer(world, **options))
            env |= {
                "OMNICANAL_SANDBOX_PORT": str(sandbox.port),
                "OMNICANAL_HUBSPOT_API_URL": sandbox.url,
                "OMNICANAL_MAILCHIMP_API_URL": f"{sandbox.url}/3.0",
            }
            for name, value in env.items():
                patch.setenv(name, value)
            start_webhooks(get_settings(), sandbox, stack)  # the receiver, the backlog
            for name in PLATFORMS:
                run_extract(get_settings(), name, full_refresh=True)
            build_consent(url, workdir, PLATFORMS)

            def extract(name: str) -> None:
                run_extract(get_settings(), name)

            yield {
                "url": url,
                "world": world,
                "sandbox": sandbox,
                "workdir": workdir,
                "extract": extract,
                "env": env,
            }
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname))
            )


@pytest.fixture
def pointed(pipeline, monkeypatch):
    """omnicanal's settings pointed at the pipeline for this test."""
    for name, value in pipeline["env"].items():
        monkeypatch.setenv(name, value)
    return pipeline


def test_the_mart_agrees_with_the_worlds_consent_with_hubspot_and_whatsapp(pointed):
    url, world = pointed["url"], pointed["world"]
    store, portal, inbox = (world.slices[n] for n in ("shopify", "hubspot", "whatsapp"))
    mart = consents(url)
    choices = inbox.marketing_choices()
    checked = {"email": 0, "whatsapp": 0, "resumed": 0}
    for customer in store.customers:
        customer_id = customer_of(url, f"shopify:{customer['id']}")
        if customer_id is None:  # deleted accounts are nobody's
            continue
        person = world.person(store.customer_person[customer["id"]])
        assert mart[(customer_id, "email")] is person.accepts_email_marketing, person
        assert mart[(customer_id, "ads")] is person.accepts_email_marketing, person
        with_phone = any(
            c.get("phone")
            for c in store.customers
            if store.customer_person[c["id"]] == person.person_id
        )
        phone = person.accepts_phone_marketing and with_phone
        resumed = choices.get(person.person_id) == "resume"
        assert mart[(customer_id, "whatsapp")] is (phone or resumed), person
        assert mart[(customer_id, "sms")] is phone, person
        checked["email"] += person.accepts_email_marketing
        checked["whatsapp"] += phone
        checked["resumed"] += resumed
    assert checked["email"] > 5 and checked["whatsapp"] > 3 and checked["resumed"] > 0, checked
    # both sources' signals reached the mart: every opted-out HubSpot contact's customer
    # and every WhatsApp stop's customer has revoked, a resume decides their whatsapp
    opted_out = [
        c["id"] for c in portal.objects["contacts"] if c["properties"]["hs_email_optout"] == "true"
    ]
    stopped = {p["wa_id"] for p in inbox.user_preferences}
    assert opted_out and stopped
    revoked = dict(
        rows(url, "select distinct customer_id, has_revoked from marts.customer_consent")
    )
    for record_key in [f"hubspot:{i}" for i in opted_out] + [f"whatsapp:{w}" for w in stopped]:
        assert revoked[customer_of(url, record_key)] is True, record_key
    decided = {
        c: (ok, source)
        for c, ok, source in rows(
            url,
            "select customer_id, consents, decided_by_source from marts.customer_consent "
            "where channel = 'whatsapp'",
        )
    }
    for wa_id in {p["wa_id"] for p in inbox.user_preferences if p["value"] == "resume"}:
        assert decided[customer_of(url, f"whatsapp:{wa_id}")] == (True, "whatsapp"), wa_id


def _held(emulator) -> set[str]:
    return {m["email_address"] for m in emulator.members(SYNC_LIST, status="subscribed")}


def test_revoked_in_hubspot_or_whatsapp_is_gone_after_one_build_and_sync(pointed):
    from omnicanal.settings import get_settings

    url, world, sandbox = pointed["url"], pointed["world"], pointed["sandbox"]
    mailchimp = sandbox.app.state.mailchimp
    settings = get_settings()
    make_shoppers_sync_model(url)
    report = run_sync(settings, DEFINITION.name, definition=DEFINITION)
    assert report.failed == 0 and report.inserted > 5 and report.withheld > 5
    held = _held(mailchimp)
    shoppers = dict(rows(url, "select email, customer_id from activation.sync_test_shoppers"))

    # a consenting shopper with a HubSpot contact of theirs unsubscribes from all email
    portal = world.slices["hubspot"]
    contact_id, email = next(
        (contact["id"], email)
        for contact in portal.objects["contacts"]
        for email in sorted(held)
        if customer_of(url, f"hubspot:{contact['id']}") == shoppers[email]
    )
    customer_id = shoppers[email]
    sandbox.app.state.hubspot.touch("contacts", contact_id, hs_email_optout="true")

    # one pipeline run: extract, dbt, sync
    pointed["extract"]("hubspot")
    build_consent(url, pointed["workdir"], PLATFORMS)
    make_shoppers_sync_model(url)
    report = run_sync(settings, DEFINITION.name, definition=DEFINITION)
    assert report.removed == 1 and report.inserted == 0, report
    assert email not in _held(mailchimp)
    assert mailchimp.member(SYNC_LIST, email)["status"] != "subscribed"
    mart = consents(url)
    assert not any(mart[(customer_id, ch)] for ch in ("email", "sms", "whatsapp", "ads"))
    decided = rows(
        url,
        "select distinct decided_by_source, decided_by_record_key from marts.customer_consent "
        "where customer_id = %s",
        customer_id,
    )
    assert decided == [("hubspot", f"hubspot:{contact_id}")]

    # a consenting shopper who writes on WhatsApp stops the retailer's marketing messages
    whatsapp = sandbox.app.state.whatsapp
    inbox = world.slices["whatsapp"]
    held = _held(mailchimp)
    wa_id, email = next(
        (wa_id, email)
        for wa_id in inbox.wa_person
        for email in sorted(held)
        if customer_of(url, f"whatsapp:{wa_id}") == shoppers[email]
    )
    customer_id = shoppers[email]
    whatsapp.set_preference(wa_id, "stop")
    assert whatsapp.deliver().failed == 0  # Meta posts it to the receiver

    pointed["extract"]("whatsapp")
    build_consent(url, pointed["workdir"], PLATFORMS)
    make_shoppers_sync_model(url)
    report = run_sync(settings, DEFINITION.name, definition=DEFINITION)
    assert report.removed == 1 and report.inserted == 0, report
    assert email not in _held(mailchimp)
    mart = consents(url)
    assert not any(mart[(customer_id, ch)] for ch in ("email", "sms", "whatsapp", "ads"))
    assert rows(
        url,
        "select distinct decided_by_source from marts.customer_consent where customer_id = %s",
        customer_id,
    ) == [("whatsapp",)]

    # they resume: WhatsApp marketing again, nothing else; the audience does not take
    # them back
    whatsapp.set_preference(wa_id, "resume")
    assert whatsapp.deliver().failed == 0
    pointed["extract"]("whatsapp")
    build_consent(url, pointed["workdir"], PLATFORMS)
    make_shoppers_sync_model(url)
    assert run_sync(settings, DEFINITION.name, definition=DEFINITION).sent == 0
    assert email not in _held(mailchimp)
    mart = consents(url)
    assert mart[(customer_id, "whatsapp")] is True
    assert not any(mart[(customer_id, ch)] for ch in ("email", "sms", "ads"))
