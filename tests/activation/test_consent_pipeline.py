"""Consent end to end: the sandbox world extracted by the real taps, the consent mart
built by dbt, a sync to the sandbox's Mailchimp over HTTP.

- The mart agrees with the world's truth (email: ``Person.accepts_email_marketing``;
  sms and whatsapp: ``Person.accepts_phone_marketing``, recorded where the person has
  a Shopify account with a phone).
- Nobody who never consented is ever sent; a person who unsubscribes in the
  retailer's Mailchimp newsletter is gone from the synced audience after one extract,
  one dbt build and one sync run, and is not subscribed again by later runs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql
from sync_pipeline import build_consent, make_shoppers_sync_model, rows

from omnicanal.activation.definitions import SyncDefinition
from omnicanal.activation.engine import run_sync
from omnicanal.channels.mailchimp.destination import subscriber_hash

PLATFORMS = ("mailchimp", "shopify", "square", "vtex")
SYNC_LIST = "omnicanal-demo"
DEFINITION = SyncDefinition(
    name="mailchimp__shoppers",
    destination="mailchimp",
    model="sync_test_shoppers",
    key="email",
    fields={"email_address": "email"},
)


@pytest.fixture(scope="module")
def pipeline(pg_admin_url, tmp_path_factory):
    from omnicanal.config import WarehouseURL
    from omnicanal.extract import run_extract
    from omnicanal.sandbox import SandboxServer, generate_world
    from omnicanal.settings import get_settings

    admin = WarehouseURL.parse(pg_admin_url)
    dbname = f"omnicanal_consent_{uuid.uuid4().hex[:10]}"
    url = WarehouseURL(admin.host, admin.port, admin.user, admin.password, dbname).url()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    world = generate_world(60, 20250601, as_of=datetime(2025, 6, 1, 15, tzinfo=UTC))
    workdir = tmp_path_factory.mktemp("consent")
    try:
        with SandboxServer(world) as sandbox, pytest.MonkeyPatch.context() as patch:
            patch.setenv("OMNICANAL_WAREHOUSE_URL", url)
            patch.setenv("OMNICANAL_SANDBOX_PORT", str(sandbox.port))
            patch.setenv("OMNICANAL_MAILCHIMP_API_URL", f"{sandbox.url}/3.0")
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
            }
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname))
            )


def consents(url: str) -> dict[tuple[str, str], bool]:
    return {
        (c, ch): ok
        for c, ch, ok in rows(
            url, "select customer_id, channel, consents from marts.customer_consent"
        )
    }


def test_the_mart_agrees_with_the_worlds_consent(pipeline):
    url, world = pipeline["url"], pipeline["world"]
    store = world.slices["shopify"]
    mart = consents(url)
    customers = dict(
        rows(url, "select record_key, customer_id from intermediate.int_identity__record_customers")
    )
    checked = {"email": 0, "whatsapp": 0}
    for customer in store.customers:
        customer_id = customers.get(f"shopify:{customer['id']}")
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
        expected = person.accepts_phone_marketing and with_phone
        assert mart[(customer_id, "whatsapp")] is expected, person
        assert mart[(customer_id, "sms")] is expected, person
        checked["email"] += person.accepts_email_marketing
        checked["whatsapp"] += expected
    assert checked["email"] > 5 and checked["whatsapp"] > 3, checked
    # one row per customer and channel
    assert rows(
        url, "select count(*) = count(distinct (customer_id, channel)) from marts.customer_consent"
    ) == [(True,)]


def test_revoked_in_a_source_is_gone_after_one_build_and_sync(pipeline, monkeypatch):
    from omnicanal.settings import get_settings

    url, world, sandbox = pipeline["url"], pipeline["world"], pipeline["sandbox"]
    monkeypatch.setenv("OMNICANAL_WAREHOUSE_URL", url)
    monkeypatch.setenv("OMNICANAL_MAILCHIMP_API_URL", f"{sandbox.url}/3.0")
    emulator = sandbox.app.state.mailchimp
    settings = get_settings()
    make_shoppers_sync_model(url)

    report = run_sync(settings, DEFINITION.name, definition=DEFINITION)
    assert report.failed == 0 and report.inserted > 5 and report.withheld > 5
    held = {m["email_address"] for m in emulator.members(SYNC_LIST, status="subscribed")}
    marketable = {
        email
        for (email,) in rows(
            url,
            "select s.email from activation.sync_test_shoppers s join marts.customer_consent c "
            "using (customer_id) where c.channel = 'email' and c.consents",
        )
    }
    assert held == marketable
    # nobody who never consented was sent: everyone held accepts, by the world's truth
    by_email = {p.email: p for p in world.people}
    assert all(by_email[e].accepts_email_marketing for e in held if e in by_email)
    assert len([e for e in held if e in by_email]) >= len(held) - 2

    # a consenting person unsubscribes from the retailer's newsletter in Mailchimp
    account = world.slices["mailchimp"]
    newsletter = next(
        (list_id, m["email_address"])
        for list_id, members in account.members.items()
        for m in members
        if m["status"] == "subscribed" and m["email_address"].lower() in held
    )
    list_id, email = newsletter
    emulator.touch_member(list_id, email, status="unsubscribed")

    # one pipeline run: extract, dbt, sync
    pipeline["extract"]("mailchimp")
    build_consent(url, pipeline["workdir"], PLATFORMS)
    make_shoppers_sync_model(url)
    report = run_sync(settings, DEFINITION.name, definition=DEFINITION)
    assert report.removed == 1 and report.inserted == 0, report
    assert emulator.member(SYNC_LIST, email)["status"] != "subscribed"
    assert email.lower() not in {
        m["email_address"] for m in emulator.members(SYNC_LIST, status="subscribed")
    }
    # and is not subscribed again by later runs
    assert run_sync(settings, DEFINITION.name, definition=DEFINITION).sent == 0
    assert emulator.member(SYNC_LIST, email)["status"] != "subscribed"
    assert subscriber_hash(email)  # the member is the one archived, by its hash
