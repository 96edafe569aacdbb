"""The truths count consent (and, for Meta, orders) only through records tied together.

A person's records join where they share an identifier (email, phone as identity
normalises it, CPF, platform ids); a record sharing none is a customer of its own, and
what its owner said on another record is, for it, unknown. Each test builds a tiny world
by hand (one person, a Shopify account, a Square profile) so the one fact it checks is
the only one that varies.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from omnicanal.activation.hashing import sha256_hex
from omnicanal.channels.meta_ads.truth import expected_lapsed_customers
from omnicanal.channels.shopify.world import ShopifyStore
from omnicanal.channels.square.truth import expected_recent_store_buyers
from omnicanal.channels.square.world import SquareShop
from omnicanal.channels.vtex.world import VtexStore
from omnicanal.sandbox import World, generate_world
from omnicanal.sandbox.linkage import identity_record, phone_id, record_groups
from omnicanal.sandbox.noise import phone_formats

AS_OF = datetime(2026, 6, 1, 12, tzinfo=UTC)
PEDRO = "P000001"


def _person(person_id: str = PEDRO, accepts: bool = True):
    from omnicanal.sandbox.people import Person

    return Person(
        person_id=person_id,
        first_name="Pedro",
        last_name="Patrício",
        email="pedro.patricio@example.com.br",
        phone="+5511966717620",
        cpf="52998224725",
        birth_date=date(1990, 5, 17),
        city="São Paulo",
        state="SP",
        postcode="01310-100",
        address="Avenida Paulista, 1000",
        accepts_email_marketing=accepts,
    )


def _moment(days_ago: float) -> str:
    return (AS_OF - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")


def _world(
    profile: dict,
    *,
    till_days_ago: float = 10,
    online_days_ago: float | None = None,
    account_phone: str | None = None,
    accepts: bool = True,
) -> World:
    """Pedro: a Shopify account stating his consent (email, and ``account_phone``), an
    online order ``online_days_ago`` (none if None), and the Square ``profile`` with a
    completed till sale ``till_days_ago``."""
    account = {
        "id": 7001,
        "email": "Pedro.Patricio@example.com.br ",
        "phone": account_phone,
        "email_marketing_consent": {"state": "subscribed" if accepts else "unsubscribed"},
        "default_address": None,
    }
    online = (
        []
        if online_days_ago is None
        else [
            {
                "id": 5001,
                "name": "#1001",
                "customer": {"id": 7001},
                "email": "pedro.patricio@example.com.br",
                "created_at": _moment(online_days_ago),
                "cancelled_at": None,
            }
        ]
    )
    shop = SquareShop(
        locations=[],
        customers=[{"id": "SQPEDRO", **profile}],
        orders=[
            {
                "id": "SQORDER",
                "customer_id": "SQPEDRO",
                "state": "COMPLETED",
                "created_at": _moment(till_days_ago),
            }
        ],
        payments=[],
        refunds=[],
        catalog_items=[],
        customer_person={"SQPEDRO": PEDRO},
        order_person={"SQORDER": PEDRO},
    )
    store = ShopifyStore(
        customers=[account],
        orders=online,
        customer_person={7001: PEDRO},
    )
    vtex = VtexStore(profiles=[], orders=[], profile_person={}, order_person={})
    return World(
        as_of=AS_OF,
        seed=0,
        people=[_person(accepts=accepts)],
        slices={"shopify": store, "square": shop, "vtex": vtex},
    )


NAME_ONLY = {"given_name": "PEDRO", "family_name": "Patrício"}
#: The till typed his mobile without the ninth digit, as WhatsApp's wa_id often is.
OLD_MOBILE = {**NAME_ONLY, "phone_number": phone_formats("+5511966717620")["no_ninth_digit"]}


def test_the_phone_without_the_ninth_digit_is_the_phone() -> None:
    assert OLD_MOBILE["phone_number"].count("9") < "+5511966717620".count("9")
    assert phone_id(OLD_MOBILE["phone_number"]) == phone_id("+5511966717620")
    assert phone_id("551166717620") == ("phone", "5511966717620")


def test_a_name_only_profile_of_a_consenting_person_is_not_expected() -> None:
    world = _world(NAME_ONLY, account_phone="+5511966717620")
    # the person consents, on a served record: the old truth counted the profile
    assert PEDRO in world.email_marketing_consenters()
    assert expected_recent_store_buyers(world) == {}


def test_a_profile_tied_by_the_phone_without_its_ninth_digit_is_expected() -> None:
    world = _world(OLD_MOBILE, account_phone="+55 11 96671-7620")
    assert set(expected_recent_store_buyers(world)) == {"SQPEDRO"}
    # the phone is what ties them: without it on the account, nothing does
    assert expected_recent_store_buyers(_world(OLD_MOBILE)) == {}


def test_a_profile_consenting_on_its_own_email_is_expected_and_a_refusal_is_not() -> None:
    own = {**NAME_ONLY, "email_address": "pedro.patricio@example.com.br"}
    assert set(expected_recent_store_buyers(_world(own))) == {"SQPEDRO"}
    assert expected_recent_store_buyers(_world(own, accepts=False)) == {}


def test_meta_judges_each_side_of_a_person_split_by_identity() -> None:
    """Online he last bought 300 days ago, at the till 10 days ago. With the till profile
    tied to nothing, the account's customer is lapsed (its orders are all it knows of);
    tied by the phone (ninth digit dropped), he bought recently and is not."""
    key = sha256_hex("pedro.patricio@example.com.br")
    split = _world(NAME_ONLY, online_days_ago=300, account_phone="+5511966717620")
    assert set(expected_lapsed_customers(split)) == {key}
    whole = _world(OLD_MOBILE, online_days_ago=300, account_phone="+5511966717620")
    assert expected_lapsed_customers(whole) == {}


def test_meta_counts_a_lapsed_till_profile_only_with_consent_tied_to_it() -> None:
    """Only the till knows his orders (250 days ago): the name-only profile's customer has
    no consent, nor an email or phone to match on; tied by the phone to the account
    stating consent, it is lapsed and expected, under the account's email."""
    key = sha256_hex("pedro.patricio@example.com.br")
    assert expected_lapsed_customers(_world(NAME_ONLY, till_days_ago=250)) == {}
    tied = _world(OLD_MOBILE, till_days_ago=250, account_phone="+5511966717620")
    assert set(expected_lapsed_customers(tied)) == {key}


def test_groups_never_join_two_people() -> None:
    shared = ("phone", "5511966717620")
    a = identity_record("a:1", "P1", [shared])
    b = identity_record("b:1", "P2", [shared])
    c = identity_record("c:1", "P1", [shared, ("email", "x@y.com")])
    groups = record_groups([a, b, c])
    assert groups["a:1"] == groups["c:1"] != groups["b:1"]


@pytest.mark.parametrize("seed", [42, 7])
def test_every_person_record_is_in_one_group_of_its_own_person(seed: int) -> None:
    world = generate_world(200, seed=seed, as_of=AS_OF)
    records = world.identity_records()
    groups = world.record_groups()
    assert set(groups) == {r.key for r in records}
    owner = {r.key: r.person_id for r in records}
    for key, group in groups.items():
        assert owner[group] == owner[key]
    # an order placed from an account is tied to it, by the account id
    store = world.slices["shopify"]
    served = {c["id"] for c in store.customers}
    for order in store.orders:
        account = (order.get("customer") or {}).get("id")
        if account in served:
            assert groups[f"shopify_orders:{order['id']}"] == groups[f"shopify:{account}"]
