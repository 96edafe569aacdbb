"""Ground truth of the Meta Ads syncs, from the sandbox world alone (plain Python).

What a correct pipeline leaves in the custom audience, computed from the world's
orders and the people they belong to, never from the warehouse: the demo summary and
the end-to-end test compare the emulation against it. An audience holds hashes, so the
truth is hashes too, normalised and hashed the way the destination does it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from omnicanal.channels.channel import SyncTruth
from omnicanal.channels.meta_ads.destination import hashed_row

#: The audience the ``meta_ads__lapsed_customers`` exposure finds or creates by name.
LAPSED_CUSTOMERS_AUDIENCE = "Clientes inativos (omnicanal)"
#: What the exposure maps, in Meta's multi-key names.
LAPSED_FIELDS = ("EMAIL", "PHONE", "FN", "LN", "CT", "ST", "ZIP", "COUNTRY")


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def person_orders(world: Any) -> dict[str, tuple[str, datetime]]:
    """order_key (``<platform>:<id>``, as fct_orders has it) → (person_id, created at) of
    every order not cancelled whose buyer a pipeline can know: Shopify orders of a
    customer account or carrying the person's own email, Square orders of a customer
    profile (anonymous till sales and returns are nobody's), every VTEX order."""
    owners: dict[str, tuple[str, datetime]] = {}
    by_email = {p.email: p.person_id for p in world.people}
    shopify = world.slices["shopify"]
    for order in shopify.orders:
        if order.get("cancelled_at"):
            continue
        owner = shopify.customer_person.get((order.get("customer") or {}).get("id"))
        if owner is None:
            owner = by_email.get(str(order.get("email") or "").strip().lower())
        if owner is not None:
            owners[f"shopify:{order['id']}"] = (owner, _moment(order["created_at"]))
    square = world.slices["square"]
    for order in square.orders:
        if order["state"] == "CANCELED" or order.get("returns") or not order.get("customer_id"):
            continue
        owner = square.order_person.get(order["id"])
        if owner is not None:
            owners[f"square:{order['id']}"] = (owner, _moment(order["created_at"]))
    vtex = world.slices["vtex"]
    for order in vtex.orders:
        owner = vtex.order_person.get(order["orderId"])
        if order["status"] != "canceled" and owner is not None:
            owners[f"vtex:{order['orderId']}"] = (owner, _moment(order["creationDate"]))
    return owners


def last_orders(world: Any) -> dict[str, datetime]:
    """person_id → their latest order not cancelled up to ``as_of`` (:func:`person_orders`)."""
    latest: dict[str, datetime] = {}
    for person_id, moment in person_orders(world).values():
        if moment <= world.as_of:
            latest[person_id] = max(moment, latest.get(person_id, moment))
    return latest


def expected_lapsed_customers(
    world: Any, lapsed_days: int = 180, country: str = "BR"
) -> dict[str, dict[str, str]]:
    """The audience ``sync_meta_ads__lapsed_customers`` leaves at Meta.

    People whose latest order not cancelled (any platform, up to ``as_of``) is more than
    ``lapsed_days`` old and who accept marketing (the ``ads`` consent) as a served record
    says (``World.email_marketing_consenters``), keyed by their
    ``EMAIL`` hash (what the audience holds a person by), each with the hashes of their
    canonical email, phone, first and last name, city, state, postcode and
    ``country`` under Meta's names (``EMAIL``, ``PHONE``, ``FN``, ``LN``, ``CT``, ``ST``,
    ``ZIP``, ``COUNTRY``).
    """
    cutoff = world.as_of - timedelta(days=lapsed_days)
    consenters = world.email_marketing_consenters()
    expected: dict[str, dict[str, str]] = {}
    for person_id, last in last_orders(world).items():
        if last >= cutoff or person_id not in consenters:
            continue
        person = world.person(person_id)
        values = {
            "EMAIL": person.email,
            "PHONE": person.phone,
            "FN": person.first_name,
            "LN": person.last_name,
            "CT": person.city,
            "ST": person.state,
            "ZIP": person.postcode,
            "COUNTRY": country,
        }
        hashes = hashed_row(values, LAPSED_FIELDS)
        expected[hashes["EMAIL"]] = hashes
    return dict(sorted(expected.items()))


def audience_rows(emulator: Any, name: str = LAPSED_CUSTOMERS_AUDIENCE) -> dict[str, dict]:
    """What the emulated audience called ``name`` holds, keyed by ``EMAIL`` hash (empty
    when no such audience exists yet)."""
    for audience_id, audience in emulator.audiences.items():
        if audience.info["name"] == name:
            return {row.get("EMAIL", ""): row for row in emulator.users(audience_id)}
    return {}


def demo_truths(world: Any, emulator: Any) -> list[SyncTruth]:
    """The lapsed-customers audience against the world, person by person (EMAIL hash)."""
    return [
        SyncTruth(
            "meta_ads__lapsed_customers",
            f"people in the Meta custom audience {LAPSED_CUSTOMERS_AUDIENCE!r}",
            frozenset(audience_rows(emulator)),
            frozenset(expected_lapsed_customers(world)),
        )
    ]
