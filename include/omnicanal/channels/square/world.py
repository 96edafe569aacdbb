"""Square's slice of the world: the retailer's physical shops, as the Square API returns them.

The retailer runs a few shops (São Paulo, Rio, Belo Horizonte) on Square Point of Sale.
Records follow the Square API's JSON shape (Connect v2: locations, customers, orders,
payments, refunds, catalog items) so the real tap runs against them unchanged. Money is
``{"amount": <centavos, int>, "currency": "BRL"}``; timestamps are RFC 3339 in UTC with
milliseconds, as Square writes them.

What happens at the till, and why it matters to identity resolution:

- a share of the people buy in a shop, mostly the one in their own city. At the till
  some give the same email as online, some only a phone (typed the way a clerk types
  it, with or without the ninth digit), some a CPF (in the profile's ``reference_id`` or
  its ``note``), and some nothing at all: their orders carry no ``customer_id``;
- a clerk who does not find a returning customer creates a second profile;
- some orders are placed online in Square and picked up in the shop (a ``PICKUP``
  fulfillment with the recipient's contact);
- a shop takes back till orders (a return order linked to the sale, and a refund of its
  payment) and, importantly, **online Shopify orders**: a Square order whose ``returns``
  are unlinked (no ``source_order_id``) and whose ``reference_id`` carries the Shopify
  order name as the clerk typed it ("#1234", "1234", "PEDIDO #1234"), made by a Square
  customer who is the Shopify buyer, with an unlinked refund (money back) or a new line
  item (an exchange).

Ground truth: ``customer_person`` (Square customer id → person, deleted profiles
included) and ``order_person`` (every order, anonymous ones included, → person), and
``online_returns`` (Square order id → the Shopify order id it took back).

A few customer profiles were deleted before ``as_of`` (``deleted``): Square drops a
deleted profile from ListCustomers, SearchCustomers and RetrieveCustomer, and keeps the
orders, whose ``customer_id`` still names it. Only profiles of people who never ordered
online are deleted, so no Shopify order (and so neither ``World.expected_recent_buyers``
nor an online return) depends on them; they are drawn last, from a stream of their own,
so every other record of a seed is the same with or without them.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

from omnicanal.sandbox.brazil import ADDRESS_COMPLEMENTS, PRODUCTS
from omnicanal.sandbox.cpf import format_cpf
from omnicanal.sandbox.linkage import (
    IdentityRecord,
    cpf_id,
    email_id,
    identity_record,
    phone_id,
    platform_id,
)
from omnicanal.sandbox.noise import name_typo, noisy_email, noisy_name_case, phone_formats
from omnicanal.sandbox.people import Person

HISTORY_DAYS = 730
SEGMENT_BOUNDARIES_DAYS = (30, 90)
BOUNDARY_MARGIN_DAYS = 2
#: Share of people living in a city with a shop who buy at its till; elsewhere (visits).
TILL_SHARE_LOCAL = 0.45
TILL_SHARE_VISITOR = 0.06
#: How a till buyer identifies themselves: which identifier the clerk records.
CONTACT_MODES = {"email": 30, "phone": 30, "cpf": 20, "anonymous": 20}
DUPLICATE_PROFILE_SHARE = 0.06
#: Share of a known customer's till orders the clerk rang up without the profile.
UNATTACHED_ORDER_SHARE = 0.15
PICKUP_SHARE = 0.12
CANCELED_SHARE = 0.03
TILL_RETURN_SHARE = 0.04
#: Share of eligible online (Shopify web) orders brought back to a shop.
ONLINE_RETURN_SHARE = 0.08
ONLINE_EXCHANGE_SHARE = 0.4  # of those, exchanged for another item rather than refunded
#: Share of the deletable customer profiles (see the module docstring) deleted.
DELETED_SHARE = 0.05

_TAX_SHARE = 1 - 1 / Decimal("1.18")  # the 18% ICMS inside a tax-inclusive price
#: The shops' zone: opening hours are local.
_BRT = timezone(timedelta(hours=-3), "America/Sao_Paulo")
_ID_ALPHABET = string.ascii_uppercase + string.digits
_ORDER_ID_ALPHABET = string.ascii_letters + string.digits


class Shop(NamedTuple):
    """One physical shop and the cities whose people shop there."""

    name: str
    city: str
    state: str
    address: str
    postcode: str
    phone: str
    serves: tuple[str, ...]
    weight: int  # share of visitors from elsewhere


SHOPS: tuple[Shop, ...] = (
    Shop(
        "Loja Paulista",
        "São Paulo",
        "SP",
        "Avenida Paulista, 1578",
        "01310-200",
        "+55 11 3251-4400",
        ("São Paulo", "Campinas"),
        6,
    ),
    Shop(
        "Loja Copacabana",
        "Rio de Janeiro",
        "RJ",
        "Avenida Nossa Senhora de Copacabana, 680",
        "22050-001",
        "+55 21 2548-7310",
        ("Rio de Janeiro", "Niterói"),
        3,
    ),
    Shop(
        "Loja Savassi",
        "Belo Horizonte",
        "MG",
        "Rua Pernambuco, 1077",
        "30130-151",
        "+55 31 3261-9020",
        ("Belo Horizonte",),
        2,
    ),
)


def square_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as Square writes every timestamp."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def parse_timestamp(value: str) -> datetime:
    """Read an RFC 3339 timestamp (``Z`` or an offset) into an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def money(cents: int) -> dict[str, Any]:
    """Square's Money: an integer amount in the currency's smallest unit."""
    return {"amount": int(cents), "currency": "BRL"}


def cents(amount: str | Decimal) -> int:
    """A decimal BRL amount ("59.90") in centavos (5990)."""
    return int((Decimal(amount) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _tax(total_cents: int) -> int:
    """The ICMS included in a tax-inclusive amount."""
    return int((Decimal(total_cents) * _TAX_SHARE).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _amounts(total: int, tax: int, discount: int = 0) -> dict[str, Any]:
    """An OrderMoneyAmounts object."""
    return {
        "total_money": money(total),
        "tax_money": money(tax),
        "discount_money": money(discount),
        "tip_money": money(0),
        "service_charge_money": money(0),
    }


class _Ids:
    """Square-looking ids drawn from the generator's stream (unique within the slice)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._seen: set[str] = set()

    def make(self, length: int, alphabet: str = _ID_ALPHABET, suffix: str = "") -> str:
        while True:
            value = "".join(self._rng.choice(alphabet) for _ in range(length)) + suffix
            if value not in self._seen:
                self._seen.add(value)
                return value

    def location(self) -> str:
        return self.make(13)

    def customer(self) -> str:
        return self.make(26)

    def order(self) -> str:
        return self.make(24, _ORDER_ID_ALPHABET, suffix=self._rng.choice(["eV", "3es", "YIs"]))

    def payment(self) -> str:
        return self.make(29, _ORDER_ID_ALPHABET)

    def catalog(self) -> str:
        return self.make(24)

    def uid(self) -> str:
        return self.make(22, _ORDER_ID_ALPHABET)


@dataclass
class SquareShop:
    """Square's slice of the world: records in API shape plus whose each one is.

    ``customer_person`` maps each customer profile id to its ``person_id``;
    ``order_person`` maps every order (anonymous ones included) to the person at the
    till; ``online_returns`` maps each Square order that took back an online order to
    that Shopify order's id. The emulator serves (and mutates) the records in place.
    """

    locations: list[dict[str, Any]]
    customers: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    refunds: list[dict[str, Any]]
    catalog_items: list[dict[str, Any]]
    customer_person: dict[str, str]
    order_person: dict[str, str]
    online_returns: dict[str, int] = field(default_factory=dict)
    #: Profiles deleted before ``as_of``, no longer served: ``{"id", "deleted_at",
    #: "record"}`` (the record as it was).
    deleted: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "locations": self.locations,
            "customers": self.customers,
            "orders": self.orders,
            "payments": self.payments,
            "refunds": self.refunds,
            "catalog_items": self.catalog_items,
            "customer_person": self.customer_person,
            "order_person": self.order_person,
            "online_returns": self.online_returns,
            "deleted": self.deleted,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SquareShop:
        return cls(
            locations=data["locations"],
            customers=data["customers"],
            orders=data["orders"],
            payments=data["payments"],
            refunds=data["refunds"],
            catalog_items=data["catalog_items"],
            customer_person=dict(data["customer_person"]),
            order_person=dict(data["order_person"]),
            online_returns={k: int(v) for k, v in data.get("online_returns", {}).items()},
            deleted=data.get("deleted", []),
        )

    def email_consent_people(self) -> set[str]:
        """The people whose email-marketing consent a served profile states: one with an
        email address (``preferences.email_unsubscribed`` means nothing without one)."""
        return {
            self.customer_person[c["id"]]
            for c in self.customers
            if c.get("email_address") and c["id"] in self.customer_person
        }

    def identity_records(self) -> list[IdentityRecord]:
        """The served customer profiles (email, phone, the CPF in the reference id or the
        note, the profile id; consent when they hold an email not unsubscribed) and the
        online orders taken back at a till (the profile id and the Shopify order name
        the clerk typed: the tie between a till profile and an online account)."""
        records = []
        for customer in self.customers:
            person_id = self.customer_person.get(customer["id"])
            if person_id is None:
                continue
            email = email_id(customer.get("email_address"))
            unsubscribed = (customer.get("preferences") or {}).get("email_unsubscribed")
            records.append(
                identity_record(
                    f"square:{customer['id']}",
                    person_id,
                    (
                        email,
                        phone_id(customer.get("phone_number")),
                        cpf_id(customer.get("reference_id")) or cpf_id(customer.get("note")),
                        platform_id("square_customer", customer["id"]),
                    ),
                    consents=email is not None and not unsubscribed,
                )
            )
        orders = {order["id"]: order for order in self.orders}
        for order_id in self.online_returns:
            order = orders.get(order_id)
            person_id = self.order_person.get(order_id)
            if order is None or person_id is None or not order.get("customer_id"):
                continue
            number = re.search(r"[0-9]{4,}", order.get("reference_id") or "")
            records.append(
                identity_record(
                    f"square:{order_id}",
                    person_id,
                    (
                        platform_id("square_customer", order["customer_id"]),
                        platform_id("shopify_order", f"#{number.group()}" if number else None),
                    ),
                )
            )
        return records

    def describe(self) -> str:
        """What the slice holds, for the demo's progress line."""
        return (
            f"{len(self.locations)} Square shops, {len(self.customers)} customers, "
            f"{len(self.orders)} orders ({len(self.online_returns)} online returns), "
            f"{len(self.payments)} payments, {len(self.refunds)} refunds"
        )


# -- drawing moments ----------------------------------------------------------------------


def _visit_time(rng: random.Random, as_of: datetime) -> datetime:
    """A till moment in the last two years, in opening hours, away from segment windows."""
    while True:
        days_ago = rng.randint(1, HISTORY_DAYS) if rng.random() < 0.7 else rng.randint(1, 120)
        day = (as_of - timedelta(days=days_ago)).astimezone(_BRT)
        moment = day.replace(
            hour=rng.randint(10, 20), minute=rng.randrange(60), second=rng.randrange(60)
        )
        moment = moment.replace(microsecond=rng.randrange(1000) * 1000)
        age = (as_of - moment).total_seconds() / 86_400
        if moment < as_of and all(
            abs(age - b) > BOUNDARY_MARGIN_DAYS for b in SEGMENT_BOUNDARIES_DAYS
        ):
            return moment.astimezone(UTC)


def _after(rng: random.Random, moment: datetime, cap: datetime, max_days: float) -> datetime:
    """A moment after ``moment`` by up to ``max_days``, never past ``cap``."""
    candidate = moment + timedelta(seconds=rng.uniform(30, max_days * 86_400))
    candidate = candidate.replace(microsecond=rng.randrange(1000) * 1000)
    return max(moment, min(candidate, cap))


# -- shops and catalog --------------------------------------------------------------------


def _locations(rng: random.Random, ids: _Ids, as_of: datetime) -> list[dict[str, Any]]:
    merchant_id = ids.make(13)
    locations = []
    for index, shop in enumerate(SHOPS):
        opened = as_of - timedelta(days=HISTORY_DAYS + 200 + 90 * index)
        locations.append(
            {
                "id": ids.location(),
                "name": shop.name,
                "address": {
                    "address_line_1": shop.address,
                    "locality": shop.city,
                    "administrative_district_level_1": shop.state,
                    "postal_code": shop.postcode,
                    "country": "BR",
                },
                "timezone": "America/Sao_Paulo",
                "capabilities": ["CREDIT_CARD_PROCESSING"],
                "status": "ACTIVE",
                "created_at": square_timestamp(opened.replace(microsecond=0)),
                "merchant_id": merchant_id,
                "country": "BR",
                "language_code": "pt-BR",
                "currency": "BRL",
                "phone_number": shop.phone,
                "business_name": "Omnicanal Demo",
                "type": "PHYSICAL",
                "business_email": f"{shop.city.split()[0].lower()}@omnicanal.example",
                "mcc": "5651",
            }
        )
    return locations


class _Product(NamedTuple):
    item_id: str
    variation_id: str
    name: str
    price: int  # centavos


def _catalog(
    rng: random.Random, ids: _Ids, as_of: datetime
) -> tuple[list[dict[str, Any]], list[_Product]]:
    items, products = [], []
    for index, product in enumerate(PRODUCTS):
        item_id, variation_id = ids.catalog(), ids.catalog()
        updated = as_of - timedelta(days=rng.uniform(1, 400))
        version = int(updated.timestamp() * 1000)
        sku = f"{product.sku_prefix}-{index:03d}"
        items.append(
            {
                "type": "ITEM",
                "id": item_id,
                "updated_at": square_timestamp(updated),
                "created_at": square_timestamp(updated - timedelta(days=rng.uniform(30, 600))),
                "version": version,
                "is_deleted": False,
                "present_at_all_locations": True,
                "item_data": {
                    "name": product.title,
                    "is_taxable": True,
                    "product_type": "REGULAR",
                    "variations": [
                        {
                            "type": "ITEM_VARIATION",
                            "id": variation_id,
                            "updated_at": square_timestamp(updated),
                            "version": version,
                            "is_deleted": False,
                            "present_at_all_locations": True,
                            "item_variation_data": {
                                "item_id": item_id,
                                "name": "Regular",
                                "sku": sku,
                                "ordinal": 0,
                                "pricing_type": "FIXED_PRICING",
                                "price_money": money(cents(product.price)),
                                "sellable": True,
                                "stockable": True,
                            },
                        }
                    ],
                },
            }
        )
        products.append(_Product(item_id, variation_id, product.title, cents(product.price)))
    return items, products


# -- people at the till ---------------------------------------------------------------------


def _home_shop(person: Person) -> int | None:
    for index, shop in enumerate(SHOPS):
        if person.city in shop.serves:
            return index
    return None


def _visited_shop(rng: random.Random, home: int | None) -> int:
    if home is not None and rng.random() < 0.9:
        return home
    return rng.choices(range(len(SHOPS)), weights=[s.weight for s in SHOPS])[0]


def till_phone(rng: random.Random, e164: str) -> str:
    """A mobile as a clerk types it into the till: masks, spaces, old eight digits."""
    formats = phone_formats(e164)
    kind = rng.choices(
        ["national_masked", "digits", "no_ninth_digit_masked", "no_ninth_digit", "e164"],
        weights=[35, 25, 15, 10, 15],
    )[0]
    return formats[kind]


def _typed_name(rng: random.Random, name: str) -> str:
    """Names keyed in at the till: often in capitals, sometimes with a slip."""
    roll = rng.random()
    if roll < 0.35:
        return name.upper()
    if roll < 0.45:
        return name_typo(rng, name)
    if roll < 0.55:
        return noisy_name_case(rng, name)
    return name


@dataclass
class _Profile:
    person: Person
    created: datetime
    location: int
    mode: str
    record: dict[str, Any] = field(default_factory=dict)
    last_event: datetime | None = None


def _profile_record(
    rng: random.Random, ids: _Ids, profile: _Profile, *, source: str = "DIRECTORY"
) -> dict[str, Any]:
    person, mode = profile.person, profile.mode
    record: dict[str, Any] = {
        "id": ids.customer(),
        "created_at": square_timestamp(profile.created),
        "updated_at": square_timestamp(profile.created),
        "given_name": _typed_name(rng, person.first_name),
        "family_name": _typed_name(rng, person.last_name),
    }
    if mode == "email" or (mode != "phone" and rng.random() < 0.15):
        record["email_address"] = noisy_email(rng, person.email)
    if mode == "phone" or rng.random() < 0.45:
        record["phone_number"] = till_phone(rng, person.phone)
    if mode == "cpf":
        cpf = format_cpf(person.cpf) if rng.random() < 0.6 else person.cpf
        if rng.random() < 0.65:
            record["reference_id"] = cpf
        else:
            record["note"] = rng.choice(["CPF na nota: {}", "Pediu nota com CPF {}", "CPF {}"])
            record["note"] = record["note"].format(cpf)
    if rng.random() < 0.2:
        record["birthday"] = person.birth_date.isoformat()
    if rng.random() < 0.2:
        address: dict[str, Any] = {"address_line_1": person.address}
        if rng.random() < 0.4:
            address["address_line_2"] = rng.choice(ADDRESS_COMPLEMENTS)
        address |= {
            "locality": person.city,
            "administrative_district_level_1": person.state,
            "postal_code": person.postcode,
            "country": "BR",
        }
        record["address"] = address
    record["preferences"] = {
        "email_unsubscribed": not (person.accepts_email_marketing and "email_address" in record)
    }
    record["creation_source"] = source
    record["segment_ids"] = []
    record["version"] = 0
    return record


# -- orders ---------------------------------------------------------------------------------


@dataclass
class _Builder:
    """Collects the records while the shop's history is generated."""

    rng: random.Random
    ids: _Ids
    as_of: datetime
    locations: list[dict[str, Any]]
    products: list[_Product]
    orders: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    order_person: dict[str, str] = field(default_factory=dict)
    card_fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def cap(self) -> datetime:
        return self.as_of - timedelta(minutes=5)

    def line_items(self) -> list[dict[str, Any]]:
        rng = self.rng
        items = []
        for product in rng.sample(self.products, rng.choices([1, 2, 3, 4], [45, 30, 18, 7])[0]):
            quantity = rng.choices([1, 2, 3], weights=[80, 16, 4])[0]
            gross = product.price * quantity
            items.append(
                {
                    "uid": self.ids.uid(),
                    "catalog_object_id": product.variation_id,
                    "catalog_version": 1,
                    "quantity": str(quantity),
                    "name": product.name,
                    "variation_name": "Regular",
                    "item_type": "ITEM",
                    "base_price_money": money(product.price),
                    "variation_total_price_money": money(gross),
                    "gross_sales_money": money(gross),
                    "total_tax_money": money(_tax(gross)),
                    "total_discount_money": money(0),
                    "total_money": money(gross),
                }
            )
        return items

    def card(self, person: Person | None) -> dict[str, Any]:
        """A card's details; one person keeps paying with the same card (fingerprint)."""
        rng = self.rng
        if person is not None and person.person_id not in self.card_fingerprints:
            self.card_fingerprints[person.person_id] = "sq-1-" + self.ids.make(
                40, _ORDER_ID_ALPHABET
            )
        fingerprint = (
            self.card_fingerprints[person.person_id]
            if person is not None
            else "sq-1-" + self.ids.make(40, _ORDER_ID_ALPHABET)
        )
        seed = random.Random(fingerprint)
        return {
            "card_brand": seed.choice(["VISA", "MASTERCARD", "MASTERCARD", "AMERICAN_EXPRESS"]),
            "last_4": f"{seed.randrange(10_000):04d}",
            "exp_month": seed.randint(1, 12),
            "exp_year": self.as_of.year + seed.randint(1, 5),
            "fingerprint": fingerprint,
            "card_type": rng.choice(["CREDIT", "DEBIT"]),
            "bin": f"{seed.randrange(400_000, 560_000)}",
        }

    def payment(
        self,
        order: dict[str, Any],
        person: Person | None,
        at: datetime,
        amount: int,
    ) -> dict[str, Any]:
        rng = self.rng
        payment_id = self.ids.payment()
        by_card = rng.random() < 0.72
        payment: dict[str, Any] = {
            "id": payment_id,
            "created_at": square_timestamp(at),
            "updated_at": square_timestamp(at + timedelta(seconds=rng.uniform(1, 4))),
            "amount_money": money(amount),
            "total_money": money(amount),
            "approved_money": money(amount),
            "status": "COMPLETED",
            "delay_action": "CANCEL",
            "source_type": "CARD" if by_card else "CASH",
            "location_id": order["location_id"],
            "order_id": order["id"],
            "reference_id": order.get("reference_id"),
            "customer_id": order.get("customer_id"),
            "receipt_number": payment_id[:4],
            "receipt_url": f"https://squareup.com/receipt/preview/{payment_id}",
            "application_details": {
                "square_product": "SQUARE_POS",
                "application_id": "sq0idp-omnicanal-pos",
            },
            "version_token": self.ids.make(40, _ORDER_ID_ALPHABET),
        }
        if by_card:
            fee = int(amount * Decimal("0.0299")) + 39
            payment["card_details"] = {
                "status": "CAPTURED",
                "card": self.card(person),
                "entry_method": rng.choice(["EMV", "CONTACTLESS", "CONTACTLESS"]),
                "cvv_status": "CVV_NOT_CHECKED",
                "avs_status": "AVS_NOT_CHECKED",
                "statement_description": "SQ *OMNICANAL DEMO",
            }
            payment["processing_fee"] = [
                {
                    "effective_at": payment["created_at"],
                    "type": "INITIAL",
                    "amount_money": money(fee),
                }
            ]
        else:
            given = -(-amount // 1000) * 1000  # paid with notes, change back
            payment["cash_details"] = {
                "buyer_supplied_money": money(given),
                "change_back_money": money(given - amount),
            }
        payment = {k: v for k, v in payment.items() if v is not None}
        self.payments.append(payment)
        return payment

    def sale(
        self,
        person: Person,
        profile: _Profile | None,
        location: int,
        at: datetime,
        *,
        pickup: bool = False,
    ) -> dict[str, Any]:
        """A sale at the till (or a pick-up): the order, and its payment when completed."""
        rng = self.rng
        items = self.line_items()
        total = sum(i["total_money"]["amount"] for i in items)
        tax = sum(i["total_tax_money"]["amount"] for i in items)
        order_id = self.ids.order()
        recent = self.as_of - at < timedelta(days=2)
        if pickup and recent and rng.random() < 0.5:
            state = "OPEN"
        elif rng.random() < CANCELED_SHARE:
            state = "CANCELED"
        else:
            state = "COMPLETED"
        closed = _after(rng, at, self.cap, 0.02 if not pickup else 3) if state != "OPEN" else None
        order: dict[str, Any] = {
            "id": order_id,
            "location_id": self.locations[location]["id"],
            "source": {"name": "Square Online" if pickup else "Square Point of Sale"},
            "line_items": items,
            "taxes": [
                {
                    "uid": "icms",
                    "name": "ICMS",
                    "percentage": "18",
                    "type": "INCLUSIVE",
                    "scope": "ORDER",
                    "applied_money": money(tax),
                }
            ],
            "net_amounts": _amounts(total, tax),
            "created_at": square_timestamp(at),
            "updated_at": square_timestamp(closed or at),
            "state": state,
            "version": 1,
            "total_money": money(total),
            "total_tax_money": money(tax),
            "total_discount_money": money(0),
            "total_tip_money": money(0),
            "total_service_charge_money": money(0),
            "net_amount_due_money": money(total if state == "OPEN" else 0),
        }
        if profile is not None:
            order["customer_id"] = profile.record["id"]
            profile.last_event = max(profile.last_event or at, closed or at)
        if pickup:
            recipient = {"display_name": f"{person.first_name} {person.last_name}"}
            if rng.random() < 0.7:
                recipient["email_address"] = noisy_email(rng, person.email)
            recipient["phone_number"] = till_phone(rng, person.phone)
            order["fulfillments"] = [
                {
                    "uid": self.ids.uid(),
                    "type": "PICKUP",
                    "state": {"OPEN": "PREPARED", "CANCELED": "CANCELED"}.get(state, "COMPLETED"),
                    "pickup_details": {
                        "recipient": recipient,
                        "schedule_type": "ASAP",
                        "placed_at": square_timestamp(at),
                        **(
                            {"picked_up_at": square_timestamp(closed)}
                            if state == "COMPLETED" and closed
                            else {}
                        ),
                    },
                }
            ]
        if closed is not None:
            order["closed_at"] = square_timestamp(closed)
        if state == "COMPLETED":
            payment = self.payment(order, person, at, total)
            order["tenders"] = [
                {
                    "id": payment["id"],
                    "location_id": order["location_id"],
                    "transaction_id": order_id,
                    "created_at": payment["created_at"],
                    "amount_money": money(total),
                    "type": payment["source_type"],
                    **({"customer_id": order["customer_id"]} if "customer_id" in order else {}),
                    "payment_id": payment["id"],
                }
            ]
        self.orders.append(order)
        self.order_person[order_id] = person.person_id
        return order

    def till_return(self, sale: dict[str, Any], person: Person, profile: _Profile | None) -> None:
        """Take back part of a till sale: a linked return order and a refund of its payment."""
        rng = self.rng
        closed = parse_timestamp(sale["closed_at"])
        if self.cap - closed < timedelta(days=1):
            return
        at = _after(rng, closed, self.cap, 30)
        lines = sale["line_items"][: max(1, len(sale["line_items"]) // 2)]
        returned = [self._return_line(line, line["uid"]) for line in lines]
        amount = sum(line["total_money"]["amount"] for line in returned)
        tax = sum(line["total_tax_money"]["amount"] for line in returned)
        order = self._return_order(
            sale["location_id"], at, returned, amount, tax, source_order_id=sale["id"]
        )
        if profile is not None and "customer_id" in sale:
            order["customer_id"] = sale["customer_id"]
            profile.last_event = max(profile.last_event or at, at)
        self.orders.append(order)
        self.order_person[order["id"]] = person.person_id
        payment = next(p for p in self.payments if p["id"] == sale["tenders"][0]["payment_id"])
        refund = self._refund(order, at, amount, reason="Troca/devolução na loja", payment=payment)
        payment["refunded_money"] = money(amount)
        payment["refund_ids"] = [refund["id"]]
        payment["updated_at"] = refund["updated_at"]

    def online_return(
        self,
        online: dict[str, Any],
        person: Person,
        customer_id: str,
        location: int,
        at: datetime,
    ) -> dict[str, Any]:
        """Take back an online (Shopify) order in a shop: unlinked returns, refund or swap."""
        rng = self.rng
        lines = online.get("line_items") or []
        chosen = lines[: rng.randint(1, len(lines))] if lines else []
        returned = []
        for line in chosen:
            price = cents(line.get("price") or "0")
            quantity = int(line.get("quantity") or 1)
            product = next((p for p in self.products if p.name == line.get("title")), None)
            gross = price * quantity
            returned.append(
                {
                    "uid": self.ids.uid(),
                    "name": line.get("title") or line.get("name"),
                    "quantity": str(quantity),
                    **({"catalog_object_id": product.variation_id} if product else {}),
                    "variation_name": "Regular",
                    "item_type": "ITEM",
                    "base_price_money": money(price),
                    "variation_total_price_money": money(gross),
                    "gross_return_money": money(gross),
                    "total_tax_money": money(_tax(gross)),
                    "total_discount_money": money(0),
                    "total_money": money(gross),
                }
            )
        amount = sum(line["total_money"]["amount"] for line in returned)
        tax = sum(line["total_tax_money"]["amount"] for line in returned)
        name = online["name"]
        number = name.lstrip("#")
        reference = rng.choices(
            [name, number, f"PEDIDO {name}", f"Shopify {name}"], weights=[55, 20, 15, 10]
        )[0]
        exchange = rng.random() < ONLINE_EXCHANGE_SHARE
        order = self._return_order(
            self.locations[location]["id"], at, returned, amount, tax, source_order_id=None
        )
        order["customer_id"] = customer_id
        order["reference_id"] = reference
        if exchange:
            # the same products again (another size): nothing to pay, nothing to refund
            new_lines = []
            for line in returned:
                new_lines.append(
                    {
                        "uid": self.ids.uid(),
                        **(
                            {"catalog_object_id": line["catalog_object_id"]}
                            if "catalog_object_id" in line
                            else {}
                        ),
                        "quantity": line["quantity"],
                        "name": line["name"],
                        "variation_name": "Regular",
                        "note": f"Troca do pedido online {name}",
                        "item_type": "ITEM",
                        "base_price_money": line["base_price_money"],
                        "variation_total_price_money": line["variation_total_price_money"],
                        "gross_sales_money": line["gross_return_money"],
                        "total_tax_money": line["total_tax_money"],
                        "total_discount_money": money(0),
                        "total_money": line["total_money"],
                    }
                )
            order["line_items"] = new_lines
            order["total_money"] = money(amount)
            order["total_tax_money"] = money(tax)
            order["net_amounts"] = _amounts(0, 0)
        self.orders.append(order)
        self.order_person[order["id"]] = person.person_id
        if not exchange and amount:
            self._refund(
                order,
                at,
                amount,
                reason=f"Devolução do pedido online {name}",
                payment=None,
            )
        return order

    def _return_line(self, line: dict[str, Any], source_uid: str) -> dict[str, Any]:
        return {
            "uid": self.ids.uid(),
            "source_line_item_uid": source_uid,
            "name": line["name"],
            "quantity": line["quantity"],
            "catalog_object_id": line["catalog_object_id"],
            "variation_name": line["variation_name"],
            "item_type": "ITEM",
            "base_price_money": line["base_price_money"],
            "variation_total_price_money": line["variation_total_price_money"],
            "gross_return_money": line["gross_sales_money"],
            "total_tax_money": line["total_tax_money"],
            "total_discount_money": money(0),
            "total_money": line["total_money"],
        }

    def _return_order(
        self,
        location_id: str,
        at: datetime,
        returned: list[dict[str, Any]],
        amount: int,
        tax: int,
        *,
        source_order_id: str | None,
    ) -> dict[str, Any]:
        order_return: dict[str, Any] = {"uid": self.ids.uid()}
        if source_order_id:
            order_return["source_order_id"] = source_order_id
        order_return["return_line_items"] = returned
        order_return["return_amounts"] = _amounts(amount, tax)
        return {
            "id": self.ids.order(),
            "location_id": location_id,
            "source": {"name": "Square Point of Sale"},
            "returns": [order_return],
            "return_amounts": _amounts(amount, tax),
            "net_amounts": _amounts(-amount, -tax),
            "created_at": square_timestamp(at),
            "updated_at": square_timestamp(at),
            "closed_at": square_timestamp(at),
            "state": "COMPLETED",
            "version": 1,
            "total_money": money(0),
            "total_tax_money": money(0),
            "total_discount_money": money(0),
            "total_tip_money": money(0),
            "total_service_charge_money": money(0),
            "net_amount_due_money": money(0),
        }

    def _refund(
        self,
        order: dict[str, Any],
        at: datetime,
        amount: int,
        *,
        reason: str,
        payment: dict[str, Any] | None,
    ) -> dict[str, Any]:
        rng = self.rng
        done = at + timedelta(seconds=rng.uniform(2, 90))
        refund: dict[str, Any] = {
            "id": f"{payment['id'] if payment else self.ids.payment()}_{self.ids.make(40)}",
            "status": "COMPLETED",
            "location_id": order["location_id"],
            "unlinked": payment is None,
            "destination_type": (payment or {}).get("source_type") or rng.choice(["CASH", "CARD"]),
            "amount_money": money(amount),
            "order_id": order["id"],
            "reason": reason,
            "created_at": square_timestamp(at),
            "updated_at": square_timestamp(done),
        }
        if payment is not None:
            refund["payment_id"] = payment["id"]
        if refund["destination_type"] == "CASH":
            refund["destination_details"] = {
                "cash_details": {"seller_supplied_money": money(amount)}
            }
        order["refunds"] = [
            {
                "id": refund["id"],
                "location_id": order["location_id"],
                "transaction_id": order["id"],
                "created_at": refund["created_at"],
                "reason": reason,
                "amount_money": money(amount),
                "status": "COMPLETED",
            }
        ]
        order["updated_at"] = refund["updated_at"]
        self.refunds.append(refund)
        return refund


def _shopify_orders(store: Any) -> list[dict[str, Any]]:
    """The online orders a shop may take back: not cancelled, shipped, with a buyer."""
    orders = getattr(store, "orders", None) or []
    eligible = []
    for order in orders:
        customer = order.get("customer") or {}
        if order.get("cancelled_at") or not customer.get("id") or not order.get("name"):
            continue
        if order.get("source_name", "web") != "web" or not order.get("line_items"):
            continue
        eligible.append(order)
    return eligible


def build_square_shop(
    rng: random.Random,
    people: list[Person],
    as_of: datetime,
    earlier: Mapping[str, Any] | None = None,
) -> SquareShop:
    """Generate the shops' history for ``people`` as of ``as_of``.

    ``earlier["shopify"]``, when present, is the online store: a share of its orders come
    back to a shop (returns and exchanges made by the same person).
    """
    ids = _Ids(rng)
    locations = _locations(rng, ids, as_of)
    catalog_items, products = _catalog(rng, ids, as_of)
    builder = _Builder(rng, ids, as_of, locations, products)
    profiles: dict[str, list[_Profile]] = {}
    people_by_id = {p.person_id: p for p in people}

    visits: list[tuple[datetime, Person, int, str]] = []
    for person in people:
        home = _home_shop(person)
        if rng.random() >= (TILL_SHARE_LOCAL if home is not None else TILL_SHARE_VISITOR):
            continue
        mode = rng.choices(list(CONTACT_MODES), weights=list(CONTACT_MODES.values()))[0]
        count = rng.choices([1, 2, 3, 4, 5], weights=[40, 28, 16, 10, 6])[0]
        for _ in range(count):
            visits.append((_visit_time(rng, as_of), person, _visited_shop(rng, home), mode))
    visits.sort(key=lambda v: (v[0], v[1].person_id))

    sales: list[tuple[dict[str, Any], Person, _Profile | None]] = []
    for at, person, location, mode in visits:
        profile = None
        if mode != "anonymous":
            own = profiles.setdefault(person.person_id, [])
            if not own or (len(own) == 1 and rng.random() < DUPLICATE_PROFILE_SHARE):
                source = "DIRECTORY" if rng.random() < 0.8 else "INSTANT_PROFILE"
                created = at - timedelta(seconds=rng.uniform(20, 240))
                new = _Profile(person, created, location, mode)
                new.record = _profile_record(rng, ids, new, source=source)
                own.append(new)
                profile = new
            elif rng.random() >= UNATTACHED_ORDER_SHARE:
                profile = rng.choice(own)
        pickup = profile is not None and rng.random() < PICKUP_SHARE
        order = builder.sale(person, profile, location, at, pickup=pickup)
        sales.append((order, person, profile))

    for order, person, profile in sales:
        if order["state"] == "COMPLETED" and rng.random() < TILL_RETURN_SHARE:
            builder.till_return(order, person, profile)

    online_returns: dict[str, int] = {}
    store = (earlier or {}).get("shopify")
    customer_person = getattr(store, "customer_person", {}) or {}
    for online in _shopify_orders(store):
        person_id = customer_person.get(online["customer"]["id"])
        person = people_by_id.get(person_id or "")
        if person is None:
            continue
        placed = parse_timestamp(online["created_at"])
        if builder.cap - placed < timedelta(days=4) or rng.random() >= ONLINE_RETURN_SHARE:
            continue
        at = _after(rng, placed + timedelta(days=3), builder.cap, 27)
        location = _visited_shop(rng, _home_shop(person))
        own = [p for p in profiles.get(person.person_id, []) if p.created <= at]
        if own and rng.random() < 0.85:
            profile = own[-1]
        else:
            # the clerk looks the online order up and registers the buyer
            profile = _Profile(person, at - timedelta(seconds=rng.uniform(30, 300)), location, "")
            profile.mode = "email" if rng.random() < 0.6 else "phone"
            profile.record = _profile_record(rng, ids, profile)
            profiles.setdefault(person.person_id, []).append(profile)
        order = builder.online_return(online, person, profile.record["id"], location, at)
        profile.last_event = max(profile.last_event or at, at)
        online_returns[order["id"]] = online["id"]

    customers = []
    customer_person_map: dict[str, str] = {}
    for own in profiles.values():
        for profile in own:
            record = profile.record
            last = profile.last_event or profile.created
            updated = last if rng.random() < 0.6 else _after(rng, last, builder.cap, 40)
            record["updated_at"] = square_timestamp(max(updated, profile.created))
            record["version"] = rng.randint(0, 6)
            customers.append(record)
            customer_person_map[record["id"]] = profile.person.person_id
    customers.sort(key=lambda c: (c["created_at"], c["id"]))
    builder.orders.sort(key=lambda o: (o["created_at"], o["id"]))
    builder.payments.sort(key=lambda p: (p["created_at"], p["id"]))
    builder.refunds.sort(key=lambda r: (r["created_at"], r["id"]))
    online_buyers = {
        customer_person.get((o.get("customer") or {}).get("id"))
        for o in getattr(store, "orders", None) or []
    }
    deleted = _delete_customers(
        random.Random(f"{rng.getrandbits(64)}:deletions"),
        customers,
        customer_person_map,
        online_buyers,
        builder.cap,
    )

    return SquareShop(
        locations=locations,
        customers=customers,
        orders=builder.orders,
        payments=builder.payments,
        refunds=builder.refunds,
        catalog_items=catalog_items,
        customer_person=customer_person_map,
        order_person=builder.order_person,
        online_returns=online_returns,
        deleted=deleted,
    )


def _delete_customers(
    rng: random.Random,
    customers: list[dict[str, Any]],
    customer_person: dict[str, str],
    online_buyers: set[str | None],
    cap: datetime,
) -> list[dict[str, Any]]:
    """Delete a share of the profiles of people who never ordered online; drop them."""
    deleted = []
    for customer in customers:
        if customer_person[customer["id"]] in online_buyers or rng.random() >= DELETED_SHARE:
            continue
        at = _after(rng, parse_timestamp(customer["updated_at"]), cap, 60)
        deleted.append(
            {"id": customer["id"], "deleted_at": square_timestamp(at), "record": customer}
        )
    gone = {entry["id"] for entry in deleted}
    customers[:] = [c for c in customers if c["id"] not in gone]
    return deleted
