"""VTEX's slice of the world: a second web store and marketplace seller on VTEX.

A share of the world's people also shop in the retailer's VTEX store. What VTEX holds
follows its APIs' JSON shapes so the real tap runs unchanged against it:

- **Master Data v2 ``CL`` documents** (the customer profiles): the real email, names,
  ``document`` (the CPF, which a Brazilian VTEX checkout requires), ``phone`` and
  ``homePhone`` typed as Brazilians type them (+55 or not, with or without the ninth
  digit, masked or bare), ``birthDate``, ``isNewsletterOptIn``, ``userId``,
  ``createdIn``/``updatedIn``;
- **OMS orders** in the detail shape of ``GET /api/oms/pvt/orders/{orderId}``: money in
  cents, ``clientProfileData`` whose ``email`` is VTEX's **masked alias**
  (``<32 hex>@ct.vtex.com.br``, or for some stores the conversation-tracker form
  ``<real email>-<digits>b.ct.vtex.com.br``) and whose ``userProfileId`` is the CL
  profile's ``userId``: the only way back to the real email; statuses from
  ``payment-pending`` to ``invoiced`` and ``canceled``; pickup in a shop
  (``deliveryChannel`` ``pickup-in-point``) for some orders.

Some people who also have a Shopify account use another address here (their second
email), so only the CPF or the phone ties the two stores together. The ground truth
(``profile_person``, ``order_person``) says whose each profile and order is.

Invariants the tests and models rely on: every order's ``userProfileId`` is the
``userId`` of exactly one CL profile of the same person; no order is older than the
two years the OMS list shows; every timestamp is before ``as_of``.

Not everyone with an account buys: a share of the other people registered in the store
(a newsletter sign-up, an abandoned first checkout) and have a CL profile without
orders. Some of those asked the store to delete their data (an LGPD erasure request)
before ``as_of``: Master Data no longer serves their document, which is in ``deleted``
(``{"id", "deleted_at", "record"}``) and still in ``profile_person``. A profile with
orders is never deleted by the world (its orders would keep pointing at it);
``VtexEmulator.delete_profile`` deletes any one as Master Data does, into ``deleted``.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from omnicanal.sandbox.brazil import ADDRESS_COMPLEMENTS, EMAIL_DOMAINS, PRODUCTS
from omnicanal.sandbox.cpf import format_cpf
from omnicanal.sandbox.linkage import (
    IdentityRecord,
    cpf_id,
    email_id,
    identity_record,
    phone_id,
    platform_id,
)
from omnicanal.sandbox.noise import (
    name_typo,
    noisy_email,
    noisy_name_case,
    noisy_phone,
    phone_formats,
    strip_accents,
)
from omnicanal.sandbox.people import Person

#: The VTEX account the sandbox plays (``https://{account}.vtexcommercestable.com.br``).
ACCOUNT_NAME = "omnicanal"
ACCOUNT_ID = "5e2f8a4c-2b1d-4c7e-9a61-0d3f4b8e7c21"
#: The domain VTEX's data masking gives order emails.
MASKED_EMAIL_DOMAIN = "ct.vtex.com.br"

SHOPPER_SHARE = 0.35
#: Of the people who never bought on VTEX, how many registered an account anyway.
ACCOUNT_ONLY_SHARE = 0.08
#: Of those accounts without orders, how many were deleted (erasure) before ``as_of``.
ERASED_SHARE = 0.3
#: Of the shoppers who also have a Shopify account, how many use another email here.
SECOND_EMAIL_SHARE = 0.3
MISSING_DOCUMENT_SHARE = 0.04
CANCELED_SHARE = 0.06
PICKUP_SHARE = 0.2
MARKETPLACE_SHARE = 0.15
#: Orders whose email comes in the conversation-tracker form, which embeds the address.
TRACKER_ALIAS_SHARE = 0.1
#: The OMS list shows two years of orders; the store's history stays inside them.
HISTORY_DAYS = 700

STATUS_DESCRIPTIONS = {
    "payment-pending": "Pagamento Pendente",
    "payment-approved": "Pagamento Aprovado",
    "ready-for-handling": "Pronto para o manuseio",
    "handling": "Preparando Entrega",
    "invoiced": "Faturado",
    "canceled": "Cancelado",
}

#: Shops a web order can be picked up in: (pickup point id, friendly name, address).
PICKUP_POINTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "1_loja-paulista",
        "Loja Avenida Paulista",
        {"street": "Avenida Paulista", "number": "1578", "neighborhood": "Bela Vista",
         "city": "São Paulo", "state": "SP", "postalCode": "01310-200"},
    ),
    (
        "1_loja-copacabana",
        "Loja Copacabana",
        {"street": "Avenida Nossa Senhora de Copacabana", "number": "680",
         "neighborhood": "Copacabana", "city": "Rio de Janeiro", "state": "RJ",
         "postalCode": "22050-001"},
    ),
    (
        "1_loja-savassi",
        "Loja Savassi",
        {"street": "Rua Pernambuco", "number": "1000", "neighborhood": "Savassi",
         "city": "Belo Horizonte", "state": "MG", "postalCode": "30130-151"},
    ),
)  # fmt: skip

PAYMENT_SYSTEMS = (
    ("Pix", "instantPayment", 40),
    ("Visa", "creditCard", 22),
    ("Mastercard", "creditCard", 20),
    ("Boleto Bancário", "bankInvoice", 12),
    ("Elo", "creditCard", 6),
)

SHIPPING_SLAS = (("Normal", 1990, "5bd"), ("Expressa", 3290, "2bd"), ("Econômica", 1290, "8bd"))


def vtex_timestamp(moment: datetime) -> str:
    """OMS detail timestamps: UTC, seven fractional digits, ``+00:00``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00"


def list_timestamp(moment: datetime | None) -> str | None:
    """OMS list timestamps: UTC to the second, ``+00:00``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def md_timestamp(moment: datetime) -> str:
    """Master Data timestamps: UTC, seven fractional digits, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_timestamp(value: str) -> datetime:
    """Read any of the timestamp forms above (and plain ISO-8601) as an aware datetime."""
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        digits = ""
        rest = ""
        for index, char in enumerate(tail):
            if not char.isdigit():
                rest = tail[index:]
                break
            digits += char
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _moment(rng: random.Random, moment: datetime) -> datetime:
    """Give a moment VTEX-like sub-second precision, deterministically."""
    return moment.replace(microsecond=rng.randrange(1_000_000))


def second_email(rng: random.Random, person: Person) -> str:
    """Another address of the person's own: a different provider, the name spelled out."""
    given = strip_accents(person.first_name).lower()
    family = strip_accents(person.last_name.split()[-1]).lower()
    own_domain = person.email.split("@")[1]
    domains = [d for d, _ in EMAIL_DOMAINS if d != own_domain]
    while True:
        local = rng.choice([f"{given}.{family}", f"{given}{family}", f"{family}.{given}"])
        candidate = f"{local}{rng.randint(1, 999)}@{rng.choice(domains)}"
        if candidate != person.email:
            return candidate


def masked_email(rng: random.Random, real_email: str) -> str:
    """The alias VTEX's data masking puts on an order instead of the shopper's email."""
    if rng.random() < TRACKER_ALIAS_SHARE:
        tracker = rng.randrange(10**11, 10**12)
        return f"{real_email.strip().lower()}-{tracker}b.{MASKED_EMAIL_DOMAIN}"
    return f"{uuid.UUID(int=rng.getrandbits(128)).hex}@{MASKED_EMAIL_DOMAIN}"


def _typed_phone(rng: random.Random, e164: str) -> str:
    """A phone as a Brazilian types it into a checkout (always given: VTEX requires it)."""
    phone = noisy_phone(rng, e164, missing=False)
    assert phone is not None
    return phone


def _document(rng: random.Random, cpf: str) -> str | None:
    if rng.random() < MISSING_DOCUMENT_SHARE:
        return None
    return format_cpf(cpf) if rng.random() < 0.35 else cpf


@dataclass
class VtexStore:
    """VTEX's slice: CL profiles and OMS orders in API shape, plus whose each one is.

    ``profile_person`` maps a CL document ``id`` and ``order_person`` an ``orderId`` to
    the ``person_id`` it belongs to. The emulator serves (and mutates) the records.
    """

    profiles: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    profile_person: dict[str, str]
    order_person: dict[str, str]
    #: CL documents deleted, no longer served: ``{"id", "deleted_at", "record"}``.
    deleted: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profiles": self.profiles,
            "orders": self.orders,
            "profile_person": self.profile_person,
            "order_person": self.order_person,
            "deleted": self.deleted,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VtexStore:
        return cls(
            profiles=data["profiles"],
            orders=data["orders"],
            profile_person=dict(data["profile_person"]),
            order_person=dict(data["order_person"]),
            deleted=data.get("deleted", []),
        )

    def email_consent_people(self) -> set[str]:
        """The people whose email-marketing consent a served profile states
        (``isNewsletterOptIn``)."""
        return {
            self.profile_person[p["id"]]
            for p in self.profiles
            if p.get("isNewsletterOptIn") is not None and p["id"] in self.profile_person
        }

    def identity_records(self) -> list[IdentityRecord]:
        """The served CL profiles (email, phone, CPF document, userId; consent when opted
        in to the newsletter) and the orders (phone, CPF, userId, and the email: the
        profile's behind VTEX's masked alias, or the one a tracker alias wraps)."""
        records = []
        served = {}
        for profile in self.profiles:
            person_id = self.profile_person.get(profile["id"])
            if person_id is None:
                continue
            served[profile.get("userId")] = profile
            cpf = profile.get("document")
            records.append(
                identity_record(
                    f"vtex:{profile['id']}",
                    person_id,
                    (
                        email_id(profile.get("email")),
                        phone_id(profile.get("phone")),
                        cpf_id(cpf) if (profile.get("documentType") or "cpf") == "cpf" else None,
                        platform_id("vtex_user", profile.get("userId")),
                    ),
                    consents=profile.get("isNewsletterOptIn") is True,
                )
            )
        for order in self.orders:
            person_id = self.order_person.get(order["orderId"])
            if person_id is None:
                continue
            client = order.get("clientProfileData") or {}
            user = client.get("userProfileId")
            email = str(client.get("email") or "").strip()
            if re.search(r"[@.]ct\.vtex\.com\.br$", email.lower()):
                tracker = re.match(r"^(.+@.+)-\d+[a-z]?\.ct\.vtex\.com\.br$", email)
                email = (served.get(user) or {}).get("email") or (
                    tracker.group(1) if tracker else ""
                )
            records.append(
                identity_record(
                    f"vtex_orders:{order['orderId']}",
                    person_id,
                    (
                        email_id(email),
                        phone_id(client.get("phone")),
                        cpf_id(client.get("document")),
                        platform_id("vtex_user", user),
                    ),
                )
            )
        return records

    def describe(self) -> str:
        """What the slice holds, for the demo's progress line."""
        return f"{len(self.profiles)} VTEX customer profiles, {len(self.orders)} orders"

    def profile_by_user_id(self) -> dict[str, dict[str, Any]]:
        return {p["userId"]: p for p in self.profiles}


def _shopify_people(earlier: Mapping[str, Any]) -> set[str]:
    store = earlier.get("shopify")
    return set(getattr(store, "customer_person", {}).values()) if store is not None else set()


def _profile(
    rng: random.Random, person: Person, email: str, created: datetime, updated: datetime
) -> dict[str, Any]:
    first, last = person.first_name, person.last_name
    if rng.random() < 0.25:
        first, last = noisy_name_case(rng, first), noisy_name_case(rng, last)
    elif rng.random() < 0.08:
        first = name_typo(rng, first)
    home = phone_formats(person.phone)["no_ninth_digit"] if rng.random() < 0.15 else None
    return {
        "id": _uuid(rng),
        "accountId": ACCOUNT_ID,
        "accountName": ACCOUNT_NAME,
        "dataEntityId": "CL",
        "email": email,
        "firstName": first,
        "lastName": last,
        "document": _document(rng, person.cpf),
        "documentType": "cpf",
        "phone": _typed_phone(rng, person.phone) if rng.random() < 0.92 else None,
        "homePhone": home,
        "birthDate": (
            f"{person.birth_date.isoformat()}T00:00:00Z" if rng.random() < 0.55 else None
        ),
        "gender": None,
        "isCorporate": False,
        "isNewsletterOptIn": person.accepts_email_marketing,
        "localeDefault": "pt-BR",
        "userId": _uuid(rng),
        "approved": True,
        "createdIn": md_timestamp(created),
        "updatedIn": md_timestamp(updated),
        "lastInteractionIn": md_timestamp(updated),
    }


def _order_moment(rng: random.Random, as_of: datetime) -> datetime:
    horizon = 90 if rng.random() < 0.3 else HISTORY_DAYS
    return _moment(rng, as_of - timedelta(days=rng.uniform(0.01, horizon)))


def _later(rng: random.Random, moment: datetime, cap: datetime, max_days: float) -> datetime:
    candidate = moment + timedelta(seconds=rng.uniform(60, max_days * 86_400))
    return _moment(rng, max(moment, min(candidate, cap)))


def _status(rng: random.Random, age: timedelta) -> str:
    if rng.random() < CANCELED_SHARE:
        return "canceled"
    if age < timedelta(days=1):
        return rng.choice(["payment-pending", "payment-approved", "ready-for-handling"])
    if age < timedelta(days=4):
        return rng.choice(["ready-for-handling", "handling", "invoiced", "invoiced"])
    return "invoiced"


def _items(rng: random.Random) -> list[dict[str, Any]]:
    items = []
    count = rng.choices([1, 2, 3, 4], [50, 30, 15, 5])[0]
    for product_index in rng.sample(range(len(PRODUCTS)), count):
        product = PRODUCTS[product_index]
        price = int(Decimal(product.price) * 100)
        selling = price if rng.random() < 0.8 else int(price * 0.9)
        quantity = rng.choices([1, 2, 3], weights=[75, 20, 5])[0]
        items.append(
            {
                "uniqueId": uuid.UUID(int=rng.getrandbits(128)).hex.upper(),
                "id": str(1000 + product_index),
                "productId": str(200 + product_index),
                "ean": f"789{rng.randrange(10**9, 10**10)}",
                "refId": f"{product.sku_prefix}-{product_index:03d}",
                "name": product.title,
                "quantity": quantity,
                "seller": "1",
                "price": selling,
                "listPrice": price,
                "sellingPrice": selling,
                "measurementUnit": "un",
                "unitMultiplier": 1.0,
                "isGift": False,
                "imageUrl": None,
                "detailUrl": f"/{product.sku_prefix.lower()}-{product_index:03d}/p",
            }
        )
    return items


def _address(rng: random.Random, person: Person, receiver: str) -> dict[str, Any]:
    street, _, number = person.address.rpartition(", ")
    return {
        "addressType": "residential",
        "receiverName": receiver,
        "addressId": uuid.UUID(int=rng.getrandbits(128)).hex[:13],
        "postalCode": person.postcode if rng.random() < 0.8 else person.postcode.replace("-", ""),
        "city": person.city,
        "state": person.state,
        "country": "BRA",
        "street": street or person.address,
        "number": number or "S/N",
        "neighborhood": "Centro",
        "complement": rng.choice(ADDRESS_COMPLEMENTS) if rng.random() < 0.4 else None,
        "reference": None,
        "geoCoordinates": [],
    }


def _shipping(
    rng: random.Random, person: Person, receiver: str, items: list[dict[str, Any]], pickup: bool
) -> tuple[dict[str, Any], int]:
    """``shippingData`` for home delivery or pickup in a shop, and the freight in cents."""
    address = _address(rng, person, receiver)
    if pickup:
        point_id, name, point_address = rng.choice(PICKUP_POINTS)
        store_address = {
            "addressType": "pickup",
            "receiverName": receiver,
            "addressId": point_id.split("_", 1)[1],
            "country": "BRA",
            "complement": None,
            "reference": None,
            "geoCoordinates": [],
            **point_address,
        }
        sla = {
            "selectedSla": f"Retirada em {name}",
            "deliveryChannel": "pickup-in-point",
            "pickupPointId": point_id,
            "pickupStoreInfo": {
                "isPickupStore": True,
                "friendlyName": name,
                "address": store_address,
                "additionalInfo": "Retire com documento com foto.",
                "dockId": "doca-loja",
            },
            "price": 0,
            "shippingEstimate": "1bd",
        }
        shipping_address = store_address
        freight = 0
    else:
        sla_name, price, estimate = rng.choice(SHIPPING_SLAS)
        if sum(i["sellingPrice"] * i["quantity"] for i in items) >= 29_900:
            price = 0
        sla = {
            "selectedSla": sla_name,
            "deliveryChannel": "delivery",
            "pickupPointId": None,
            "pickupStoreInfo": {
                "isPickupStore": False,
                "friendlyName": None,
                "address": None,
                "additionalInfo": None,
                "dockId": None,
            },
            "price": 0,
            "shippingEstimate": estimate,
        }
        shipping_address = address
        freight = price
    logistics = []
    for index, _item in enumerate(items):
        share = freight if index == 0 else 0  # VTEX puts the freight on the lines; keep it whole
        logistics.append(
            {
                "itemIndex": index,
                **sla,
                "price": share,
                "listPrice": share,
                "sellingPrice": share,
                "deliveryCompany": "Loja" if pickup else "Correios",
                "addressId": shipping_address["addressId"],
            }
        )
    return {
        "id": "shippingData",
        "address": shipping_address,
        "logisticsInfo": logistics,
        "selectedAddresses": [shipping_address],
        "trackingHints": None,
    }, freight


def _order(
    rng: random.Random,
    person: Person,
    profile: dict[str, Any],
    moment: datetime,
    sequence: int,
    as_of: datetime,
) -> dict[str, Any]:
    cap = as_of - timedelta(seconds=1)
    marketplace = rng.random() < MARKETPLACE_SHARE
    if marketplace:
        marketplace_order_id = str(rng.randrange(2_000_000_000, 2_999_999_999))
        order_id = f"MLB-{marketplace_order_id}-01"
    else:
        marketplace_order_id = None
        order_id = f"v{sequence}{ACCOUNT_NAME[:4]}-01"
    status = _status(rng, as_of - moment)
    items = _items(rng)
    pickup = not marketplace and rng.random() < PICKUP_SHARE
    receiver = f"{profile['firstName']} {profile['lastName']}"
    shipping, freight = _shipping(rng, person, receiver, items, pickup)
    items_total = sum(i["listPrice"] * i["quantity"] for i in items)
    selling_total = sum(i["sellingPrice"] * i["quantity"] for i in items)
    discounts = selling_total - items_total  # negative, as VTEX sends it
    value = selling_total + freight
    payment_name, group, _ = rng.choices(PAYMENT_SYSTEMS, [w for *_, w in PAYMENT_SYSTEMS])[0]
    installments = rng.choice([1, 1, 2, 3, 6]) if group == "creditCard" else 1

    authorized = None
    invoiced = None
    canceled_at = None
    events = [moment]
    paid = status not in ("payment-pending", "canceled")
    if paid or (status == "canceled" and rng.random() < 0.5):
        authorized = _later(rng, moment, cap, 0.2)
        events.append(authorized)
    if status == "invoiced":
        invoiced = _later(rng, authorized or moment, cap, 3)
        events.append(invoiced)
    if status == "canceled":
        canceled_at = _later(rng, authorized or moment, cap, 3)
        events.append(canceled_at)
    last_change = max(events)
    if rng.random() < 0.1:
        last_change = _later(rng, last_change, cap, 30)

    real_email = profile["email"]
    document = profile["document"] or (person.cpf if rng.random() < 0.5 else None)
    return {
        "orderId": order_id,
        "sequence": str(sequence),
        "marketplaceOrderId": marketplace_order_id,
        "origin": "Marketplace" if marketplace else "Fulfillment",
        "affiliateId": "MLB" if marketplace else "",
        "salesChannel": "1",
        "merchantName": None,
        "status": status,
        "statusDescription": STATUS_DESCRIPTIONS[status],
        "workflowIsInError": False,
        "value": value,
        "creationDate": vtex_timestamp(moment),
        "lastChange": vtex_timestamp(last_change),
        "orderGroup": order_id.rsplit("-", 1)[0].lstrip("v"),
        "followUpEmail": f"{uuid.UUID(int=rng.getrandbits(128)).hex}@{MASKED_EMAIL_DOMAIN}",
        "hostname": ACCOUNT_NAME,
        "isCompleted": True,
        "authorizedDate": vtex_timestamp(authorized) if authorized else None,
        "invoicedDate": vtex_timestamp(invoiced) if invoiced else None,
        "cancelReason": (
            rng.choice(["Desistência da compra", "Pagamento não aprovado", "Endereço incorreto"])
            if canceled_at
            else None
        ),
        "cancellationData": (
            {
                "RequestedByUser": True,
                "RequestedBySystem": False,
                "RequestedBySellerNotification": False,
                "RequestedByPaymentNotification": False,
                "Reason": "Solicitado pelo cliente",
                "CancellationDate": md_timestamp(canceled_at),
            }
            if canceled_at
            else None
        ),
        "totals": [
            {"id": "Items", "name": "Total dos Itens", "value": items_total},
            {"id": "Discounts", "name": "Total dos Descontos", "value": discounts},
            {"id": "Shipping", "name": "Total do Frete", "value": freight},
            {"id": "Tax", "name": "Total da Taxa", "value": 0},
        ],
        "sellers": [{"id": "1", "name": "Omnicanal Moda", "logo": None}],
        "clientPreferencesData": {
            "locale": "pt-BR",
            "optinNewsLetter": profile["isNewsletterOptIn"],
        },
        "storePreferencesData": {
            "countryCode": "BRA",
            "currencyCode": "BRL",
            "currencySymbol": "R$",
            "timeZone": "E. South America Standard Time",
        },
        "clientProfileData": {
            "id": "clientProfileData",
            "email": masked_email(rng, real_email),
            "firstName": profile["firstName"],
            "lastName": profile["lastName"],
            "documentType": "cpf",
            "document": document,
            "phone": _typed_phone(rng, person.phone),
            "corporateName": None,
            "tradeName": None,
            "corporateDocument": None,
            "stateInscription": None,
            "corporatePhone": None,
            "isCorporate": False,
            "userProfileId": profile["userId"],
            "customerClass": None,
        },
        "paymentData": {
            "transactions": [
                {
                    "isActive": True,
                    "transactionId": uuid.UUID(int=rng.getrandbits(128)).hex.upper(),
                    "merchantName": ACCOUNT_NAME.upper(),
                    "payments": [
                        {
                            "id": uuid.UUID(int=rng.getrandbits(128)).hex.upper(),
                            "paymentSystemName": payment_name,
                            "group": group,
                            "value": value,
                            "installments": installments,
                        }
                    ],
                }
            ]
        },
        "shippingData": shipping,
        "items": items,
        "marketingData": None,
        "invoiceData": None,
        # present on every real detail, usually empty for a plain web or marketplace sale
        "marketplaceServicesEndpoint": None,
        "sellerOrderId": f"00-{order_id}",
        "lastMessage": None,
        "roundingError": 0,
        "orderFormId": uuid.UUID(int=rng.getrandbits(128)).hex,
        "allowCancellation": status in ("payment-pending", "payment-approved"),
        "allowEdition": False,
        "isCheckedIn": False,
        "checkedInPickupPointId": None,
        "ratesAndBenefitsData": {"id": "ratesAndBenefitsData", "rateAndBenefitsIdentifiers": []},
        "packageAttachment": {"packages": []},
        "changesAttachment": None,
        "openTextField": None,
        "customData": None,
        "commercialConditionData": None,
        "giftRegistryData": None,
        "callCenterOperatorData": None,
        "marketplace": None,
        "subscriptionData": None,
        "taxData": None,
        "itemMetadata": None,
        "marketplaceItems": [],
    }


def build_vtex_store(
    rng: random.Random, people: list[Person], as_of: datetime, earlier: Mapping[str, Any]
) -> VtexStore:
    """Generate the store's CL profiles and OMS orders for ``people`` as of ``as_of``."""
    on_shopify = _shopify_people(earlier)
    cap = as_of - timedelta(minutes=1)
    plans: list[tuple[Person, dict[str, Any], list[datetime]]] = []
    for person in people:
        if rng.random() >= SHOPPER_SHARE:
            continue
        count = rng.choices([1, 2, 3, 4, 5], [35, 30, 18, 10, 7])[0]
        moments = sorted(_order_moment(rng, as_of) for _ in range(count))
        created = _moment(rng, moments[0] - timedelta(days=rng.uniform(0, 30)))
        updated = _later(rng, moments[-1], cap, 60) if rng.random() < 0.4 else _moment(rng, created)
        updated = max(updated, created)
        if person.person_id in on_shopify and rng.random() < SECOND_EMAIL_SHARE:
            email = second_email(rng, person)
        else:
            email = noisy_email(rng, person.email, dirty_share=0.15)
        plans.append((person, _profile(rng, person, email, created, updated), moments))

    profiles = sorted((profile for _, profile, _ in plans), key=lambda p: p["createdIn"])
    placed = sorted(
        ((moment, person, profile) for person, profile, moments in plans for moment in moments),
        key=lambda entry: (entry[0], entry[2]["userId"]),
    )
    orders = []
    order_person = {}
    for index, (moment, person, profile) in enumerate(placed):
        order = _order(rng, person, profile, moment, 500_000 + index * 3, as_of)
        orders.append(order)
        order_person[order["orderId"]] = person.person_id
    profile_person = {profile["id"]: person.person_id for person, profile, _ in plans}
    shoppers = {person.person_id for person, _, _ in plans}
    accounts, deleted = _accounts_without_orders(
        random.Random(f"{rng.getrandbits(64)}:accounts"),
        [p for p in people if p.person_id not in shoppers],
        as_of,
        cap,
    )
    for person, profile in accounts:
        profile_person[profile["id"]] = person.person_id
    gone = {entry["id"] for entry in deleted}
    profiles = sorted(
        [*profiles, *(profile for _, profile in accounts if profile["id"] not in gone)],
        key=lambda p: p["createdIn"],
    )
    return VtexStore(
        profiles=profiles,
        orders=orders,
        profile_person=profile_person,
        order_person=order_person,
        deleted=deleted,
    )


def _accounts_without_orders(
    rng: random.Random, people: list[Person], as_of: datetime, cap: datetime
) -> tuple[list[tuple[Person, dict[str, Any]]], list[dict[str, Any]]]:
    """CL profiles of people who registered and never ordered, and which of them were
    deleted before ``as_of`` (their entries for ``VtexStore.deleted``)."""
    accounts, deleted = [], []
    for person in people:
        if rng.random() >= ACCOUNT_ONLY_SHARE:
            continue
        created = _moment(rng, as_of - timedelta(days=rng.uniform(1, HISTORY_DAYS)))
        updated = max(_later(rng, created, cap, 30) if rng.random() < 0.3 else created, created)
        email = noisy_email(rng, person.email, dirty_share=0.15)
        profile = _profile(rng, person, email, created, updated)
        accounts.append((person, profile))
        if rng.random() < ERASED_SHARE:
            at = _later(rng, updated, cap, 90)
            deleted.append({"id": profile["id"], "deleted_at": md_timestamp(at), "record": profile})
    return accounts, deleted
