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
from omnicanal.sandbox.linkage import email_id, record_groups

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


def group_orders(world: Any, groups: dict[str, str]) -> dict[str, tuple[str, datetime]]:
    """order_key → (record group, created at) of every order not cancelled that a
    pipeline can attribute, to the group (``World.record_groups``) of the record it
    belongs to: a Shopify order to its account (an account the shop deleted is no record:
    then, like a guest order, through its email, to the group holding that email), a
    Square order to its served customer profile, a VTEX order to itself (an identity
    record of its own)."""
    records = world.identity_records()
    by_email = {
        value: groups[r.key] for r in records for kind, value in r.identifiers if kind == "email"
    }
    owners: dict[str, tuple[str, datetime]] = {}
    for order in world.slices["shopify"].orders:
        if order.get("cancelled_at"):
            continue
        account = (order.get("customer") or {}).get("id")
        group = groups.get(f"shopify:{account}")
        if group is None:
            email = email_id(order.get("email"))
            group = by_email.get(email[1]) if email else None
        if group is not None:
            owners[f"shopify:{order['id']}"] = (group, _moment(order["created_at"]))
    for order in world.slices["square"].orders:
        if order["state"] == "CANCELED" or order.get("returns"):
            continue
        group = groups.get(f"square:{order.get('customer_id')}")
        if group is not None:
            owners[f"square:{order['id']}"] = (group, _moment(order["created_at"]))
    for order in world.slices["vtex"].orders:
        group = groups.get(f"vtex_orders:{order['orderId']}")
        if order["status"] != "canceled" and group is not None:
            owners[f"vtex:{order['orderId']}"] = (group, _moment(order["creationDate"]))
    return owners


def _group_email(person: Any, records: list[Any]) -> str | None:
    """The email the golden record of a group keeps, as survivorship ranks sources: an
    online account's (Shopify, then VTEX) over the others'; the person's own address
    among equals, else the first in order."""
    emails: dict[int, set[str]] = {}
    for record in records:
        rank = {"shopify": 0, "vtex": 1, "vtex_orders": 1}.get(record.key.split(":")[0], 2)
        for kind, value in record.identifiers:
            if kind == "email":
                emails.setdefault(rank, set()).add(value)
    if not emails:
        return None
    best = emails[min(emails)]
    return person.email if person.email in best else sorted(best)[0]


def expected_lapsed_customers(
    world: Any, lapsed_days: int = 180, country: str = "BR"
) -> dict[str, dict[str, str]]:
    """The audience ``sync_meta_ads__lapsed_customers`` leaves at Meta.

    One row per record group (``World.record_groups``: a person's records that shared
    identifiers tie together; a person split into two groups is judged on each side,
    as a correct pipeline sees two customers) whose latest order not cancelled (any
    platform, up to ``as_of``; :func:`group_orders`) is more than ``lapsed_days`` old,
    in which a record states the person's marketing consent
    (``World.consenting_groups``), and which holds an email or a phone. Keyed by the
    ``EMAIL`` hash of the group's email (``""`` when it has none, as the audience keys a
    row without one), each with the hashes of the person's canonical phone, first and
    last name, city, state, postcode and ``country`` under Meta's names (``EMAIL``,
    ``PHONE``, ``FN``, ``LN``, ``CT``, ``ST``, ``ZIP``, ``COUNTRY``).
    """
    cutoff = world.as_of - timedelta(days=lapsed_days)
    records = world.identity_records()
    groups = record_groups(records)
    consenting = world.consenting_groups(groups)
    members: dict[str, list[Any]] = {}
    for record in records:
        members.setdefault(groups[record.key], []).append(record)
    latest: dict[str, datetime] = {}
    for group, moment in group_orders(world, groups).values():
        if moment <= world.as_of:
            latest[group] = max(moment, latest.get(group, moment))
    expected: dict[str, dict[str, str]] = {}
    for group, last in latest.items():
        if last >= cutoff or group not in consenting:
            continue
        person = world.person(members[group][0].person_id)
        email = _group_email(person, members[group])
        kinds = {kind for record in members[group] for kind, _ in record.identifiers}
        if email is None and "phone" not in kinds:
            continue
        values = {
            "EMAIL": email,
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
