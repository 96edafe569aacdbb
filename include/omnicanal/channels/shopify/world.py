"""Shopify's slice of the world: customers and orders as the Admin REST API returns them,
and the shop around them (locations, products, abandoned checkouts, fulfillments,
returns: see :mod:`.commerce`), which the GraphQL Admin API serves.

Records follow the Shopify Admin REST API 2024-10 JSON shape so the real tap code runs
against them unchanged. They are generated from the ``Person`` ground truth with the
dirt a Brazilian store accumulates (see ``noise``), under invariants the tests and the
dbt models rely on:

- every customer and order carries some spelling of the person's email, so trimmed,
  lower-cased email is a correct identity key;
- the customer record a person updated last carries the canonical first and last name,
  and every account of one person has the same email-marketing consent state, which is
  "subscribed" exactly when the person accepts email marketing;
- no order is created within two days of the 30- and 90-day windows before ``as_of``,
  so segment tests never depend on the second a test runs;
- the customers and orders of a seed do not depend on the rest of the shop, which is
  drawn afterwards from a stream of its own; it only closes settled orders (their
  ``closed_at`` set to their ``updated_at``) and renames the free shipping line of
  orders picked up in a store;
- a few customers were deleted before ``as_of`` (``deleted``): Shopify deletes only
  customers who never placed an order, and these were their person's only account and
  left no abandoned checkout, so no order (and so neither
  ``World.expected_recent_buyers`` nor any other slice, which read the orders and
  ``customer_person``) depends on them. They are drawn last, from a stream of their
  own, so every other record of a seed is the same with or without them. A deleted
  customer is gone from ``customers`` (the API no longer serves it);
  ``customer_person`` still says whose it was.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from omnicanal.channels.shopify import commerce
from omnicanal.sandbox.brazil import (
    ADDRESS_COMPLEMENTS,
    CUSTOMER_NOTES,
    CUSTOMER_TAGS,
    PRODUCTS,
    STATE_NAMES,
    STREETS,
)
from omnicanal.sandbox.linkage import (
    IdentityRecord,
    cpf_id,
    email_id,
    identity_record,
    phone_id,
    platform_id,
)
from omnicanal.sandbox.noise import (
    different_email_spelling,
    name_typo,
    noisy_cpf,
    noisy_email,
    noisy_name_case,
    noisy_phone,
)
from omnicanal.sandbox.people import Person

#: The customer fields Shopify embeds in an order's ``customer`` object.
EMBEDDED_CUSTOMER_KEYS = (
    "id",
    "email",
    "created_at",
    "updated_at",
    "first_name",
    "last_name",
    "state",
    "verified_email",
    "phone",
    "currency",
    "tags",
    "admin_graphql_api_id",
)

SHOP_TZ = timezone(timedelta(hours=-3), "America/Sao_Paulo")
"""Shopify renders timestamps in the shop's zone; a Brazilian shop is at -03:00."""

CUSTOMER_SHARE = 0.85
DUPLICATE_ACCOUNT_SHARE = 0.05
CANCELLED_SHARE = 0.03
#: The share of deletable customers (no order, no checkout) deleted before ``as_of``.
DELETED_SHARE = 0.2
SEGMENT_BOUNDARIES_DAYS = (30, 90)
BOUNDARY_MARGIN_DAYS = 2
HISTORY_DAYS = 730
POS_LOCATION_ID = 71_234_567_890  # the till of "Loja Paulista" (see .commerce)

_CENT = Decimal("0.01")
_TAX_SHARE = 1 - 1 / Decimal("1.18")  # the 18% ICMS inside a tax-inclusive price


def shop_timestamp(moment: datetime) -> str:
    """Format an aware datetime the way Shopify does: ISO-8601, seconds, shop offset."""
    return moment.astimezone(SHOP_TZ).replace(microsecond=0).isoformat()


def money(amount: Decimal) -> str:
    """Shopify sends money as a string with two decimals."""
    return str(amount.quantize(_CENT, rounding=ROUND_HALF_UP))


class _Ids:
    """Increasing large ids, as Shopify hands them out in creation order."""

    def __init__(self, rng: random.Random, start: int) -> None:
        self._rng = rng
        self._last = start

    def next(self) -> int:
        self._last += self._rng.randint(1_000, 900_000)
        return self._last


@dataclass
class _Account:
    """One store account of a person while the store is being generated."""

    person: Person
    created: datetime
    order_times: list[datetime] = field(default_factory=list)
    updated: datetime | None = None
    canonical: bool = True
    customer_id: int = 0


@dataclass
class ShopifyStore:
    """Shopify's slice of the world: records in API shape plus the true owner of each.

    ``customer_person`` maps each customer id to the ``person_id`` it belongs to: the
    answer identity resolution should find. The emulator serves (and mutates) the
    records in place.
    """

    customers: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    customer_person: dict[int, str]
    #: The shop's warehouse and retail stores (REST ``Location`` shape).
    locations: list[dict[str, Any]] = field(default_factory=list)
    #: The catalogue the line items point at (REST ``Product`` shape, with ``variants``).
    products: list[dict[str, Any]] = field(default_factory=list)
    #: Checkouts people started and left (REST ``checkouts.json`` shape).
    abandoned_checkouts: list[dict[str, Any]] = field(default_factory=list)
    #: Per order id (as a string key in files): fulfillments, fulfillment orders (with
    #: their delivery method), returns and the store each refund was taken back at,
    #: which the GraphQL Admin API serves and the REST order does not carry.
    order_details: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: Customers deleted before ``as_of``, no longer served: ``{"id", "deleted_at",
    #: "record"}`` (the record as it was), the ground truth of what the shop deleted.
    deleted: list[dict[str, Any]] = field(default_factory=list)
    #: Products deleted through the emulator, in the same shape as ``deleted``.
    deleted_products: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "orders": self.orders,
            "customer_person": {str(k): v for k, v in self.customer_person.items()},
            "locations": self.locations,
            "products": self.products,
            "abandoned_checkouts": self.abandoned_checkouts,
            "order_details": {str(k): v for k, v in self.order_details.items()},
            "deleted": self.deleted,
            "deleted_products": self.deleted_products,
        }

    def email_consent_people(self) -> set[str]:
        """The people whose email-marketing consent a served customer states (every
        customer account does; a deleted account's went with it)."""
        return {
            self.customer_person[c["id"]] for c in self.customers if c["id"] in self.customer_person
        }

    def identity_records(self) -> list[IdentityRecord]:
        """The served customer accounts (email, phone, the CPF in the default address's
        company, the account id; consent when subscribed to email or SMS marketing) and
        the orders placed from an account (the account id and the order's name)."""
        records = []
        for customer in self.customers:
            person_id = self.customer_person.get(customer["id"])
            if person_id is None:
                continue
            address = customer.get("default_address") or {}
            consents = any(
                (customer.get(kind) or {}).get("state") == "subscribed"
                for kind in ("email_marketing_consent", "sms_marketing_consent")
            )
            records.append(
                identity_record(
                    f"shopify:{customer['id']}",
                    person_id,
                    (
                        email_id(customer.get("email")),
                        phone_id(customer.get("phone")),
                        cpf_id(address.get("company")),
                        platform_id("shopify_customer", customer["id"]),
                    ),
                    consents,
                )
            )
        for order in self.orders:
            account = (order.get("customer") or {}).get("id")
            person_id = self.customer_person.get(account)
            if person_id is None:
                continue
            records.append(
                identity_record(
                    f"shopify_orders:{order['id']}",
                    person_id,
                    (
                        platform_id("shopify_customer", account),
                        platform_id("shopify_order", order.get("name")),
                    ),
                )
            )
        return records

    def describe(self) -> str:
        """What the slice holds, for the demo's progress line."""
        return (
            f"{len(self.customers)} Shopify customers, {len(self.orders)} orders, "
            f"{len(self.abandoned_checkouts)} abandoned checkouts"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShopifyStore:
        return cls(
            customers=data["customers"],
            orders=data["orders"],
            customer_person={int(k): v for k, v in data["customer_person"].items()},
            locations=data.get("locations", []),
            products=data.get("products", []),
            abandoned_checkouts=data.get("abandoned_checkouts", []),
            order_details={int(k): v for k, v in data.get("order_details", {}).items()},
            deleted=data.get("deleted", []),
            deleted_products=data.get("deleted_products", []),
        )


def _order_time(rng: random.Random, as_of: datetime) -> datetime:
    """Draw an order moment in the last two years, leaning recent, away from boundaries."""
    while True:
        horizon = 120 if rng.random() < 0.3 else HISTORY_DAYS
        days_ago = rng.uniform(0.02, horizon)
        if all(abs(days_ago - b) > BOUNDARY_MARGIN_DAYS for b in SEGMENT_BOUNDARIES_DAYS):
            return (as_of - timedelta(days=days_ago)).replace(microsecond=0)


def _later(rng: random.Random, moment: datetime, cap: datetime, max_days: float) -> datetime:
    """A moment after ``moment`` by up to ``max_days``, never past ``cap``."""
    candidate = moment + timedelta(seconds=rng.uniform(60, max_days * 86_400))
    return max(moment, min(candidate, cap)).replace(microsecond=0)


def _plan_accounts(rng: random.Random, person: Person, as_of: datetime) -> list[_Account]:
    """Decide a person's store accounts and which account placed each order."""
    cap = as_of - timedelta(minutes=1)
    times = sorted(
        _order_time(rng, as_of) for _ in range(rng.choices(range(7), [15, 30, 20, 14, 10, 6, 5])[0])
    )
    first_seen = times[0] if times else as_of - timedelta(days=rng.uniform(1, HISTORY_DAYS))
    created = (first_seen - timedelta(days=rng.uniform(0.01, 400))).replace(microsecond=0)
    accounts = [_Account(person, created)]
    if rng.random() < DUPLICATE_ACCOUNT_SHARE:
        dup_created = _later(rng, created, cap - timedelta(days=1), (cap - created).days or 1)
        accounts.append(_Account(person, dup_created))
    for moment in times:
        eligible = [a for a in accounts if a.created <= moment]
        rng.choice(eligible).order_times.append(moment)
    for account in accounts:
        last_event = max([account.created, *account.order_times])
        account.updated = _later(rng, last_event, cap, 45) if rng.random() < 0.5 else last_event
    if len(accounts) > 1:
        accounts.sort(key=lambda a: a.updated or a.created)
        latest, older = accounts[-1], accounts[:-1]
        newest_other = max(a.updated for a in older if a.updated)
        if latest.updated is None or latest.updated <= newest_other:
            latest.updated = newest_other + timedelta(seconds=1)
        for account in older:
            account.canonical = False
    return accounts


def _address(
    rng: random.Random,
    person: Person,
    names: tuple[str, str],
    company: str | None,
    *,
    street: str | None = None,
) -> dict[str, Any]:
    first, last = names
    if rng.random() < 0.2:
        first, last = noisy_name_case(rng, first), noisy_name_case(rng, last)
    return {
        "first_name": first,
        "last_name": last,
        "company": company,
        "address1": street or person.address,
        "address2": rng.choice(ADDRESS_COMPLEMENTS) if rng.random() < 0.4 else None,
        "city": person.city,
        "province": STATE_NAMES[person.state],
        "country": "Brazil",
        "zip": person.postcode if rng.random() < 0.9 else person.postcode.replace("-", ""),
        "phone": noisy_phone(rng, person.phone),
        "name": f"{first} {last}",
        "province_code": person.state,
        "country_code": "BR",
        "country_name": "Brazil",
    }


def _account_names(rng: random.Random, person: Person, canonical: bool) -> tuple[str, str]:
    """Canonical names on the latest-updated account; an old duplicate may be dirty."""
    if canonical:
        return person.first_name, person.last_name
    if rng.random() < 0.6:
        return noisy_name_case(rng, person.first_name), noisy_name_case(rng, person.last_name)
    return name_typo(rng, person.first_name), person.last_name


def _consent_state(rng: random.Random, person: Person) -> str:
    """One state per person, shared by all their accounts: subscribed iff they accept."""
    if person.accepts_email_marketing:
        return "subscribed"
    return rng.choice(["not_subscribed", "unsubscribed"])


def _consent(rng: random.Random, state: str, created: datetime, updated: datetime) -> dict:
    """The email_marketing_consent object; only the timestamp varies between accounts."""
    consent_at = None if state == "not_subscribed" else _later(rng, created, updated, 30)
    return {
        "state": state,
        "opt_in_level": "single_opt_in",
        "consent_updated_at": shop_timestamp(consent_at) if consent_at else None,
    }


def _customer(
    rng: random.Random,
    account: _Account,
    email: str,
    consent_state: str,
    address_ids: _Ids,
) -> dict[str, Any]:
    person = account.person
    assert account.updated is not None
    first, last = _account_names(rng, person, account.canonical)
    company = noisy_cpf(rng, person.cpf)
    address_count = rng.choices([0, 1, 2], weights=[5, 85, 10])[0]
    addresses = []
    for index in range(address_count):
        street = None if index == 0 else f"{rng.choice(STREETS)}, {rng.randint(1, 3500)}"
        address = _address(rng, person, (first, last), company, street=street)
        addresses.append(
            {"id": address_ids.next(), "customer_id": account.customer_id, **address}
            | {"default": index == 0}
        )
    phone = noisy_phone(rng, person.phone)
    tags = sorted(rng.sample(CUSTOMER_TAGS, rng.choice([0, 0, 0, 1, 2])))
    return {
        "id": account.customer_id,
        "email": email,
        "created_at": shop_timestamp(account.created),
        "updated_at": shop_timestamp(account.updated),
        "first_name": first,
        "last_name": last,
        "orders_count": 0,  # filled in once the orders exist
        "state": rng.choices(["enabled", "disabled", "invited"], weights=[55, 35, 10])[0],
        "total_spent": "0.00",
        "last_order_id": None,
        "note": rng.choice(CUSTOMER_NOTES) if rng.random() < 0.1 else None,
        "verified_email": rng.random() < 0.9,
        "multipass_identifier": None,
        "tax_exempt": False,
        "tags": ", ".join(tags),
        "last_order_name": None,
        "currency": "BRL",
        "phone": phone,
        "addresses": addresses,
        "tax_exemptions": [],
        "email_marketing_consent": _consent(rng, consent_state, account.created, account.updated),
        # the mobile opt-in (SMS and WhatsApp) is the person's, timed at the account's
        # creation (checkout): no random draw, so the rest of the store is unchanged
        "sms_marketing_consent": (
            {
                "state": "subscribed" if person.accepts_phone_marketing else "not_subscribed",
                "opt_in_level": "single_opt_in",
                "consent_updated_at": (
                    shop_timestamp(account.created) if person.accepts_phone_marketing else None
                ),
                "consent_collected_from": "OTHER",
            }
            if phone
            else None
        ),
        "admin_graphql_api_id": f"gid://shopify/Customer/{account.customer_id}",
        "default_address": dict(addresses[0]) if addresses else None,
    }


@dataclass
class _OrderPlan:
    moment: datetime
    account: _Account
    customer: dict[str, Any]


def _line_items(rng: random.Random, ids: _Ids) -> list[dict[str, Any]]:
    items = []
    for product_index in rng.sample(
        range(len(PRODUCTS)), rng.choices([1, 2, 3, 4], [50, 30, 15, 5])[0]
    ):
        product = PRODUCTS[product_index]
        product_id = 8_100_000_000_000 + product_index * 104_729
        line_id = ids.next()
        items.append(
            {
                "id": line_id,
                "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
                "product_id": product_id,
                "variant_id": 45_000_000_000_000 + product_index * 7_919,
                "sku": f"{product.sku_prefix}-{product_index:03d}",
                "title": product.title,
                "name": product.title,
                "variant_title": None,
                "vendor": "Omnicanal Demo",
                "quantity": rng.choices([1, 2, 3], weights=[75, 20, 5])[0],
                "price": product.price,
                "total_discount": "0.00",
                "taxable": True,
                "requires_shipping": True,
                "fulfillment_status": None,
            }
        )
    return items


def _financial_status(rng: random.Random, cancelled: bool, age: timedelta) -> str:
    if cancelled:
        return rng.choice(["refunded", "voided"])
    status = rng.choices(
        ["paid", "partially_refunded", "refunded", "pending"], weights=[85, 5, 5, 5]
    )[0]
    return "paid" if status == "pending" and age > timedelta(days=10) else status


def _refund(
    rng: random.Random,
    ids: _Ids,
    order_id: int,
    at: datetime,
    lines: list[dict[str, Any]],
    amount: Decimal,
) -> dict[str, Any]:
    refund_id = ids.next()
    return {
        "id": refund_id,
        "order_id": order_id,
        "created_at": shop_timestamp(at),
        "processed_at": shop_timestamp(at),
        "note": rng.choice(["Troca de tamanho", "Produto com defeito", "Desistência", None]),
        "restock": True,
        "refund_line_items": [
            {
                "id": ids.next(),
                "line_item_id": line["id"],
                "quantity": line["quantity"],
                "restock_type": "return",
                # Shopify sends these two as JSON numbers, unlike most money fields
                "subtotal": float(money(Decimal(line["price"]) * line["quantity"])),
                "total_tax": float(money(Decimal(line["price"]) * line["quantity"] * _TAX_SHARE)),
            }
            for line in lines
        ],
        "transactions": [
            {
                "id": ids.next(),
                "order_id": order_id,
                "kind": "refund",
                "status": "success",
                "amount": money(amount),
                "currency": "BRL",
                "gateway": "mercado_pago",
                "created_at": shop_timestamp(at),
            }
        ],
    }


def _order(
    rng: random.Random,
    plan: _OrderPlan,
    order_id: int,
    number: int,
    ids: _Ids,
    as_of: datetime,
) -> dict[str, Any]:
    person, customer, created = plan.account.person, plan.customer, plan.moment
    cap = as_of - timedelta(seconds=1)
    source = "pos" if rng.random() < 0.12 else "web"
    cancelled = rng.random() < CANCELLED_SHARE
    items = _line_items(rng, ids)
    items_total = sum((Decimal(i["price"]) * i["quantity"] for i in items), Decimal(0))
    discount = (items_total * Decimal("0.10")).quantize(_CENT) if rng.random() < 0.2 else Decimal(0)
    subtotal = items_total - discount
    shipping = Decimal(0)
    if source == "web" and subtotal < 299:
        shipping = Decimal(rng.choice(["0.00", "19.90", "24.90", "32.50"]))
    total = subtotal + shipping
    tax = subtotal * _TAX_SHARE  # ICMS is included in Brazilian prices
    financial = _financial_status(rng, cancelled, as_of - created)

    events = [created]
    cancelled_at = _later(rng, created, cap, 3) if cancelled else None
    if cancelled_at:
        events.append(cancelled_at)
    fulfilled = not cancelled and financial != "pending" and as_of - created > timedelta(days=2)
    if fulfilled:
        events.append(_later(rng, created, cap, 5))
    refunds = []
    if financial in ("refunded", "partially_refunded"):
        refund_at = _later(rng, cancelled_at or created, cap, 20)
        events.append(refund_at)
        refunded_lines = items if financial == "refunded" else items[:1]
        amount = (
            total if financial == "refunded" else Decimal(items[0]["price"]) * items[0]["quantity"]
        )
        refunds.append(_refund(rng, ids, order_id, refund_at, refunded_lines, min(amount, total)))
    updated = max(events)
    if rng.random() < 0.1:
        updated = _later(rng, updated, cap, 60)
    for item in items:
        item["fulfillment_status"] = "fulfilled" if fulfilled else None

    company = noisy_cpf(rng, person.cpf)
    names = (customer["first_name"], customer["last_name"])
    if rng.random() < 0.15:
        names = (name_typo(rng, person.first_name), person.last_name)
    billing = _address(rng, person, names, company)
    email = noisy_email(rng, person.email)
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{number}",
        "number": number - 1000,
        "order_number": number,
        "email": email,
        "contact_email": email,
        "phone": noisy_phone(rng, person.phone) if rng.random() < 0.6 else None,
        "created_at": shop_timestamp(created),
        "updated_at": shop_timestamp(updated),
        "processed_at": shop_timestamp(created),
        "cancelled_at": shop_timestamp(cancelled_at) if cancelled_at else None,
        "cancel_reason": rng.choice(["customer", "inventory", "declined"]) if cancelled else None,
        "closed_at": None,
        "confirmed": True,
        "test": False,
        "financial_status": financial,
        "fulfillment_status": "fulfilled" if fulfilled else None,
        "currency": "BRL",
        "presentment_currency": "BRL",
        "total_line_items_price": money(items_total),
        "total_discounts": money(discount),
        "subtotal_price": money(subtotal),
        "total_tax": money(tax),
        "taxes_included": True,
        "total_price": money(total),
        "discount_codes": (
            [{"code": "BEMVINDO10", "amount": money(discount), "type": "percentage"}]
            if discount
            else []
        ),
        "shipping_lines": (
            [
                {
                    "id": ids.next(),
                    "title": "Correios - SEDEX",
                    "code": "SEDEX",
                    "price": money(shipping),
                }
            ]
            if source == "web"
            else []
        ),
        "source_name": source,
        "location_id": POS_LOCATION_ID if source == "pos" else None,
        "payment_gateway_names": ["mercado_pago"] if source == "web" else ["cash"],
        "customer_locale": "pt-BR",
        "total_outstanding": money(total) if financial == "pending" else "0.00",
        "buyer_accepts_marketing": person.accepts_email_marketing,
        "tags": "",
        "note": None,
        "customer": {key: customer[key] for key in EMBEDDED_CUSTOMER_KEYS},
        "line_items": items,
        "billing_address": billing,
        "shipping_address": None if source == "pos" else dict(billing),
        "refunds": refunds,
    }


def _add_current_totals(order: dict[str, Any]) -> None:
    """Shopify's ``current_*`` fields: the order's amounts after refunds and cancellation."""
    refunded = sum(
        (Decimal(t["amount"]) for r in order["refunds"] for t in r["transactions"]), Decimal(0)
    )
    total = Decimal(order["total_price"])
    current = Decimal(0) if order["cancelled_at"] else max(total - refunded, Decimal(0))
    share = current / total if total else Decimal(0)
    order["current_total_price"] = money(current)
    order["current_subtotal_price"] = money(Decimal(order["subtotal_price"]) * share)
    order["current_total_tax"] = money(Decimal(order["total_tax"]) * share)
    order["current_total_discounts"] = money(Decimal(order["total_discounts"]) * share)


def _spent(order: dict[str, Any]) -> Decimal:
    if order["cancelled_at"]:
        return Decimal(0)
    refunded = sum(
        (Decimal(t["amount"]) for r in order["refunds"] for t in r["transactions"]), Decimal(0)
    )
    return Decimal(order["total_price"]) - refunded


def build_shopify_store(rng: random.Random, people: list[Person], as_of: datetime) -> ShopifyStore:
    """Generate the store's customers and orders for ``people`` as of ``as_of``."""
    accounts: list[_Account] = []
    for person in people:
        if rng.random() < CUSTOMER_SHARE:
            accounts.extend(_plan_accounts(rng, person, as_of))

    customer_ids = _Ids(rng, 7_000_000_000_000)
    for account in sorted(accounts, key=lambda a: (a.created, a.person.person_id)):
        account.customer_id = customer_ids.next()

    address_ids = _Ids(rng, 9_000_000_000_000)
    customers: dict[int, dict[str, Any]] = {}
    first_seen: dict[str, tuple[str, str]] = {}  # person_id -> (raw email, consent state)
    for account in sorted(accounts, key=lambda a: a.customer_id):
        person = account.person
        if person.person_id in first_seen:
            taken, consent_state = first_seen[person.person_id]
            email = different_email_spelling(rng, person.email, taken)
        else:
            email, consent_state = noisy_email(rng, person.email), _consent_state(rng, person)
            first_seen[person.person_id] = (email, consent_state)
        customers[account.customer_id] = _customer(rng, account, email, consent_state, address_ids)

    plans = [
        _OrderPlan(moment, account, customers[account.customer_id])
        for account in accounts
        for moment in account.order_times
    ]
    plans.sort(key=lambda p: (p.moment, p.account.customer_id))
    order_ids = _Ids(rng, 5_600_000_000_000)
    line_ids = _Ids(rng, 14_000_000_000_000)
    orders = [
        _order(rng, plan, order_ids.next(), 1001 + index, line_ids, as_of)
        for index, plan in enumerate(plans)
    ]
    for order in orders:
        _add_current_totals(order)

    for order in orders:
        customer = customers[order["customer"]["id"]]
        customer["orders_count"] += 1
        customer["total_spent"] = money(Decimal(customer["total_spent"]) + _spent(order))
        customer["last_order_id"] = order["id"]
        customer["last_order_name"] = order["name"]

    # Everything below draws from a stream of its own, seeded by one last draw, so the
    # customers and orders above are the same for a seed with or without it.
    extras = random.Random(f"{rng.getrandbits(64)}:extras")
    customer_list = list(customers.values())
    like = customer_list[0]["created_at"] if customer_list else shop_timestamp(as_of)
    catalogue = commerce.products(extras, as_of, like)
    checkouts = commerce.abandoned_checkouts(
        extras, customer_list, catalogue, EMBEDDED_CUSTOMER_KEYS, as_of
    )
    details = commerce.order_details(extras, orders, as_of)
    deleted = _delete_customers(
        random.Random(f"{rng.getrandbits(64)}:deletions"),
        customer_list,
        {a.customer_id: a.person.person_id for a in accounts},
        checkouts,
        as_of,
    )

    return ShopifyStore(
        customers=customer_list,
        orders=orders,
        customer_person={a.customer_id: a.person.person_id for a in accounts},
        locations=commerce.locations(as_of, like),
        products=catalogue,
        abandoned_checkouts=checkouts,
        order_details=details,
        deleted=deleted,
    )


def _delete_customers(
    rng: random.Random,
    customers: list[dict[str, Any]],
    customer_person: dict[int, str],
    checkouts: list[dict[str, Any]],
    as_of: datetime,
) -> list[dict[str, Any]]:
    """Delete a share of the customers Shopify lets one delete; remove them from the list.

    ``customerDelete`` refuses a customer who placed an order. Only the one account of
    a person is deleted (a duplicate's deletion would leave the other with a dirty
    name as the latest), and none that left a checkout, so the checkouts stay whole.
    Each is deleted after its last update.
    """
    with_checkout = {(c.get("customer") or {}).get("id") for c in checkouts}
    accounts = Counter(customer_person.values())
    cap = as_of - timedelta(minutes=1)
    deleted = []
    for customer in customers:
        if customer["orders_count"] or customer["id"] in with_checkout:
            continue
        if accounts[customer_person[customer["id"]]] > 1:
            continue
        if rng.random() >= DELETED_SHARE:
            continue
        at = _later(rng, datetime.fromisoformat(customer["updated_at"]), cap, 60)
        deleted.append({"id": customer["id"], "deleted_at": shop_timestamp(at), "record": customer})
    gone = {entry["id"] for entry in deleted}
    customers[:] = [c for c in customers if c["id"] not in gone]
    return deleted
