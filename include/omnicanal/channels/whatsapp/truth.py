"""Ground truth of the WhatsApp syncs, from the sandbox world alone (plain Python).

What a correct pipeline sends on WhatsApp, computed from the world's records and the
people they belong to, never from the warehouse: the demo summary and the end-to-end
tests compare the template messages the emulation received against it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from omnicanal.channels.channel import SyncTruth

#: The template the ``whatsapp__abandoned_checkout`` exposure sends, and its language.
ABANDONED_CHECKOUT_TEMPLATE = "carrinho_abandonado"
ABANDONED_CHECKOUT_LANGUAGE = "pt_BR"


def brazilian_money(amount: str | Decimal) -> str:
    """``1189.9`` as Brazilians write it: ``1.189,90``."""
    return f"{Decimal(amount):,.2f}".translate(str.maketrans(",.", ".,"))


def whatsapp_opt_ins(world: Any) -> set[str]:
    """The people with a WhatsApp opt-in the platforms recorded: they accept marketing
    messages on their mobile (``Person.accepts_phone_marketing``) and a Shopify account of
    theirs holds that opt-in (``sms_marketing_consent`` subscribed, collected with a phone
    at checkout); or they resumed the retailer's marketing messages in WhatsApp after
    stopping them (their latest ``user_preferences`` webhook says ``resume``; they accept
    no other marketing, see ``world.marketing_preference``)."""
    store = world.slices["shopify"]
    inbox = world.slices.get("whatsapp")
    found = set()
    if inbox is not None:
        found |= {p for p, value in inbox.marketing_choices().items() if value == "resume"}
    for customer in store.customers:
        person_id = store.customer_person.get(customer["id"])
        consent = customer.get("sms_marketing_consent") or {}
        if (
            person_id
            and consent.get("state") == "subscribed"
            and world.person(person_id).accepts_phone_marketing
        ):
            found.add(person_id)
    return found


def expected_abandoned_checkouts(
    world: Any, window_days: int | None = None, *, opted_in_only: bool = True
) -> dict[str, dict[str, str]]:
    """The template messages ``whatsapp__abandoned_checkout`` sends, by Shopify checkout id.

    Every checkout still abandoned (not completed) created up to the world's ``as_of``
    (and in its last ``window_days``, if given) by a customer account whose owner has not
    placed a non-cancelled Shopify order (any of their accounts, online or at the POS)
    since, and has a WhatsApp opt-in (:func:`whatsapp_opt_ins`; ``opted_in_only=False``
    gives the segment before consent). Each with the owner's ``person_id``, mobile
    (``to``, E.164), ``first_name``, the cart's ``cart_total`` written the Brazilian way and
    its ``checkout_url``. Read from the current records, so it follows changes made
    through the emulators.
    """
    store = world.slices["shopify"]
    orders: dict[str, list[datetime]] = {}
    for order in store.orders:
        person_id = store.customer_person.get((order.get("customer") or {}).get("id"))
        if person_id and not order.get("cancelled_at"):
            orders.setdefault(person_id, []).append(datetime.fromisoformat(order["created_at"]))
    opted_in = whatsapp_opt_ins(world) if opted_in_only else None
    found: dict[str, dict[str, str]] = {}
    for checkout in store.abandoned_checkouts:
        if checkout.get("completed_at"):
            continue
        created = datetime.fromisoformat(checkout["created_at"])
        if created > world.as_of:
            continue
        if window_days is not None and created < world.as_of - timedelta(days=window_days):
            continue
        person_id = store.customer_person.get((checkout.get("customer") or {}).get("id"))
        if person_id is None or (opted_in is not None and person_id not in opted_in):
            continue
        if any(created <= at <= world.as_of for at in orders.get(person_id, [])):
            continue
        person = world.person(person_id)
        found[str(checkout["id"])] = {
            "person_id": person_id,
            "to": person.phone,
            "first_name": person.first_name,
            "cart_total": brazilian_money(checkout["total_price"]),
            "checkout_url": checkout["abandoned_checkout_url"],
        }
    return found


def received_abandoned_checkouts(templates_sent: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """What the emulation received, in :func:`expected_abandoned_checkouts`'s shape (less
    ``person_id``): the ``carrinho_abandonado`` messages by checkout id (the key's second
    part, sent as ``biz_opaque_callback_data``), from ``WhatsAppEmulator.templates_sent()``.
    A checkout messaged twice would show as one: compare the list's length too."""
    found: dict[str, dict[str, str]] = {}
    for message in templates_sent:
        key = message.get("biz_opaque_callback_data") or ""
        if message["name"] != ABANDONED_CHECKOUT_TEMPLATE or ":" not in key:
            continue
        found[key.split(":", 1)[1]] = {"to": message["to"], **message["parameters"]}
    return found


def demo_truths(world: Any, emulator: Any) -> list[SyncTruth]:
    """The abandoned-checkout templates received against the world, by checkout id."""
    return [
        SyncTruth(
            "whatsapp__abandoned_checkout",
            f"abandoned checkouts messaged on WhatsApp ({ABANDONED_CHECKOUT_TEMPLATE})",
            frozenset(received_abandoned_checkouts(emulator.templates_sent())),
            frozenset(expected_abandoned_checkouts(world)),
        )
    ]
