"""The generated world: reproducible, realistic, dirty in the right places, and honest.

The noise assertions guard what identity resolution is tested against; the invariant
assertions guard what the dbt models and segment tests rely on.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from omnicanal.sandbox import World, cpf_is_valid, generate_world
from omnicanal.sandbox.noise import strip_accents

AS_OF = datetime(2025, 6, 1, 15, 0, 0, tzinfo=UTC)
SEED = 11
E164_MOBILE = re.compile(r"^\+55\d{2}9\d{8}$")
WITHOUT_NINTH_DIGIT = re.compile(r"^\(?\d{2}\)? \d{4}-\d{4}$")


def _all_addresses(world: World) -> list[dict[str, Any]]:
    addresses = [a for c in world.slices["shopify"].customers for a in c["addresses"]]
    addresses += [o["billing_address"] for o in world.slices["shopify"].orders]
    return addresses


def _norm(email: str) -> str:
    return email.strip().lower()


@pytest.fixture(scope="module")
def big_world() -> World:
    """Large enough that the rare cases (duplicate accounts, cancellations) surely occur."""
    return generate_world(1500, 7, as_of=AS_OF)


def test_same_seed_same_world() -> None:
    first = generate_world(60, SEED, as_of=AS_OF).to_dict()
    assert first == generate_world(60, SEED, as_of=AS_OF).to_dict()
    assert first != generate_world(60, SEED + 1, as_of=AS_OF).to_dict()


def test_default_as_of_is_now_to_the_second() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    world = generate_world(3, 1)
    assert before <= world.as_of <= datetime.now(UTC)
    assert world.as_of.microsecond == 0 and world.as_of.utcoffset() == timedelta(0)
    with pytest.raises(ValueError):
        generate_world(3, 1, as_of=datetime(2025, 1, 1))  # naive: ambiguous


def test_people_are_canonical_and_unique(world: World) -> None:
    assert [p.person_id for p in world.people][:2] == ["P000001", "P000002"]
    for field in ("email", "phone", "cpf"):
        values = [getattr(p, field) for p in world.people]
        assert len(set(values)) == len(values), field
    for person in world.people:
        assert person.email == person.email.strip().lower() and "@" in person.email
        assert E164_MOBILE.match(person.phone)
        assert re.match(r"^\d{5}-\d{3}$", person.postcode)
        assert re.match(r"^.+, \d+$", person.address)
        assert len(person.state) == 2
        assert 18 <= (AS_OF.date() - person.birth_date).days // 365 <= 76
    accepting = sum(p.accepts_email_marketing for p in world.people) / len(world.people)
    assert 0.55 < accepting < 0.85
    assert any(strip_accents(p.full_name) != p.full_name for p in world.people)


def test_json_round_trip(world: World, tmp_path: Path) -> None:
    path = tmp_path / "world.json"
    world.to_json(path)
    loaded = World.from_json(path)
    assert loaded.to_dict() == world.to_dict()
    assert loaded.as_of == world.as_of
    assert loaded.slices["shopify"].customer_person == world.slices["shopify"].customer_person
    assert "João" in path.read_text(encoding="utf-8") or "ã" in path.read_text(encoding="utf-8")


def test_customer_share_and_ground_truth(world: World) -> None:
    ids = [c["id"] for c in world.slices["shopify"].customers]
    assert len(set(ids)) == len(ids) and all(i > 10**12 for i in ids)
    deleted = {entry["id"] for entry in world.slices["shopify"].deleted}
    # the ground truth keeps whose a deleted account was
    assert set(world.slices["shopify"].customer_person) == set(ids) | deleted
    assert deleted and not deleted & set(ids)
    people_with_account = set(world.slices["shopify"].customer_person.values())
    assert 0.75 < len(people_with_account) / len(world.people) < 0.95
    for customer in world.slices["shopify"].customers:
        person = world.person(world.slices["shopify"].customer_person[customer["id"]])
        assert _norm(customer["email"]) == person.email


def test_noise_is_present(world: World) -> None:
    phones = [c["phone"] for c in world.slices["shopify"].customers]
    phones += [a["phone"] for a in _all_addresses(world)]
    assert any(p is None for p in phones)
    assert any(p and WITHOUT_NINTH_DIGIT.match(p) for p in phones)
    assert any(p and p.startswith("(") and re.search(r" 9\d{4}-", p) for p in phones)
    assert any(p and E164_MOBILE.match(p) for p in phones)

    emails = [c["email"] for c in world.slices["shopify"].customers]
    emails += [o["email"] for o in world.slices["shopify"].orders]
    assert any(e != e.strip() for e in emails)
    assert any(e.strip() != e.strip().lower() for e in emails)
    assert any(e == _norm(e) for e in emails)

    names = [(a["first_name"], a["last_name"]) for a in _all_addresses(world)]
    assert any(first.isupper() for first, _ in names)

    companies = [a["company"] for a in _all_addresses(world)]
    assert any(c is None for c in companies)
    assert any(c and re.match(r"^\d{3}\.\d{3}\.\d{3}-\d{2}$", c) for c in companies)
    assert any(c and re.match(r"^\d{11}$", c) for c in companies)
    assert all(cpf_is_valid(c) for c in companies if c)


def test_timestamps_are_ordered_and_in_shop_time(big_world: World) -> None:
    for record in big_world.slices["shopify"].customers + big_world.slices["shopify"].orders:
        created = datetime.fromisoformat(record["created_at"])
        updated = datetime.fromisoformat(record["updated_at"])
        assert record["created_at"].endswith("-03:00")
        assert created <= updated <= big_world.as_of
    later = [r for r in big_world.slices["shopify"].orders if r["updated_at"] != r["created_at"]]
    assert later


def test_orders_stay_clear_of_segment_boundaries(big_world: World) -> None:
    for order in big_world.slices["shopify"].orders:
        age = big_world.as_of - datetime.fromisoformat(order["created_at"])
        assert timedelta(0) < age <= timedelta(days=731)
        for boundary in (30, 90):
            assert abs(age - timedelta(days=boundary)) > timedelta(days=2)
    ages = [
        big_world.as_of - datetime.fromisoformat(o["created_at"])
        for o in big_world.slices["shopify"].orders
    ]
    assert any(a < timedelta(days=30) for a in ages)
    assert any(timedelta(days=30) < a < timedelta(days=90) for a in ages)


def test_orders_are_consistent(big_world: World) -> None:
    orders = big_world.slices["shopify"].orders
    assert [o["order_number"] for o in orders] == list(range(1001, 1001 + len(orders)))
    assert all(o["name"] == f"#{o['order_number']}" for o in orders)
    cancelled = [o for o in orders if o["cancelled_at"]]
    assert 0.005 < len(cancelled) / len(orders) < 0.06
    for order in orders:
        if order["financial_status"] in ("refunded", "partially_refunded"):
            assert order["refunds"]
        assert order["currency"] == "BRL" and order["line_items"]
        assert order["source_name"] in ("web", "pos")
        items = sum(float(i["price"]) * i["quantity"] for i in order["line_items"])
        assert float(order["total_line_items_price"]) == pytest.approx(items)
    per_customer: dict[int, int] = defaultdict(int)
    for order in orders:
        per_customer[order["customer"]["id"]] += 1
    for customer in big_world.slices["shopify"].customers:
        assert customer["orders_count"] == per_customer[customer["id"]]
    assert {o["source_name"] for o in orders} == {"web", "pos"}


def test_duplicate_accounts_agree_where_the_models_rely_on_it(big_world: World) -> None:
    accounts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for customer in big_world.slices["shopify"].customers:
        accounts[big_world.slices["shopify"].customer_person[customer["id"]]].append(customer)
    duplicated = {pid: rows for pid, rows in accounts.items() if len(rows) > 1}
    assert duplicated, "expected some people with two store accounts"
    for person_id, rows in accounts.items():
        person = big_world.person(person_id)
        states = {r["email_marketing_consent"]["state"] for r in rows}
        assert len(states) == 1
        assert (states == {"subscribed"}) == person.accepts_email_marketing
        latest = max(rows, key=lambda r: datetime.fromisoformat(r["updated_at"]))
        assert (latest["first_name"], latest["last_name"]) == (person.first_name, person.last_name)
        if len(rows) > 1:
            assert len({r["email"] for r in rows}) == len(rows)
            assert len({_norm(r["email"]) for r in rows}) == 1
            moments = sorted(datetime.fromisoformat(r["updated_at"]) for r in rows)
            assert moments[-1] > moments[-2]


def _recent_buyers_from_raw_records(world: World, window_days: int) -> dict[str, dict[str, str]]:
    """What a correct dbt model computes, from the noisy records only (no Person)."""
    latest: dict[str, dict[str, Any]] = {}
    for customer in world.slices["shopify"].customers:
        key = _norm(customer["email"])
        if key not in latest or customer["updated_at"] > latest[key]["updated_at"]:
            latest[key] = customer
    cutoff = world.as_of - timedelta(days=window_days)
    recent = {
        _norm(o["email"])
        for o in world.slices["shopify"].orders
        if o["cancelled_at"] is None and datetime.fromisoformat(o["created_at"]) >= cutoff
    }
    return {
        email: {"first_name": latest[email]["first_name"], "last_name": latest[email]["last_name"]}
        for email in sorted(recent)
        if latest[email]["email_marketing_consent"]["state"] == "subscribed"
    }


@pytest.mark.parametrize("window_days", [30, 90])
def test_expected_recent_buyers_matches_the_raw_records(world: World, window_days: int) -> None:
    expected = world.expected_recent_buyers(window_days)
    assert expected, "a 200-person world must have recent buyers"
    assert expected == _recent_buyers_from_raw_records(world, window_days)
    emails = {p.email for p in world.people if p.accepts_email_marketing}
    assert set(expected) <= emails


def test_expected_recent_buyers_on_a_big_world(big_world: World) -> None:
    assert big_world.expected_recent_buyers() == _recent_buyers_from_raw_records(big_world, 90)
    assert set(big_world.expected_recent_buyers(30)) < set(big_world.expected_recent_buyers(90))


def test_email_consent_counts_only_where_a_served_record_states_it() -> None:
    """The truths market to people whose consent the pipeline can see: an account the
    platform deleted takes its consent with it, a Mailchimp member pending confirmation
    or a Square profile without an email states none, and no record makes someone who
    refused a consenter."""
    world = generate_world(1500, 7, as_of=AS_OF)  # mutated below: not the shared one
    consenters = world.email_marketing_consenters()
    slices = {
        name: piece.email_consent_people()
        for name, piece in world.slices.items()
        if hasattr(piece, "email_consent_people")
    }
    assert set(slices) == {"shopify", "mailchimp", "vtex", "square"}
    refusers = {p.person_id for p in world.people if not p.accepts_email_marketing}
    assert refusers & set().union(*slices.values()), "no refuser has a consent record"
    assert consenters == set().union(*slices.values()) - refusers

    def only(name: str) -> list[str]:
        others = set().union(*(people for k, people in slices.items() if k != name))
        return sorted(consenters - others)

    # consent only a Shopify account states goes with the account
    store = world.slices["shopify"]
    gone = only("shopify")[:3]
    assert gone
    store.customers = [c for c in store.customers if store.customer_person[c["id"]] not in gone]
    # a member pending confirmation states nothing
    account = world.slices["mailchimp"]
    pending = only("mailchimp")[:1]
    assert pending
    for list_id, members in account.members.items():
        for member in members:
            if account.person_of(list_id, member["email_address"]) in pending:
                member["status"] = "pending"
    # nor does a Square profile without an email, whatever its preferences say
    shop = world.slices["square"]
    no_email = only("square")[:1]
    assert no_email
    for customer in shop.customers:
        if shop.customer_person[customer["id"]] in no_email:
            customer.pop("email_address")
    assert world.email_marketing_consenters() == consenters - {*gone, *pending, *no_email}
