"""The rest of the shop around customers and orders: stores, catalogue, checkouts, and
what happened to orders after they were placed.

Drawn after the customers and orders, from a random stream of its own, so a seed's
customers and orders (and so ``World.expected_recent_buyers``) are the same with or
without it. What it adds:

- **locations**: the online warehouse, three retail stores (the till's
  ``POS_LOCATION_ID`` among them) and one closed store (inactive);
- **products** with variants, from the catalogue the line items already point at (the
  ordered variant is each product's first; apparel and shoes get sizes);
- **abandoned checkouts** for about a fifth of the customer accounts;
- per order (``order_details``): its fulfillment order with a delivery method
  (``SHIPPING``, ``PICK_UP`` in a store, or ``RETAIL`` at the till), its fulfillment
  with the location it left from, returns behind most refunds of delivered orders and
  the store each refund was taken back at (online orders are often returned in a shop);
- **closed orders**: about half the settled, fulfilled orders older than two weeks
  are closed (archived), ``closed_at`` being their last update, so ``updated_at`` and
  every total stay as they were. Online orders picked up in a store have their free
  shipping line renamed to the pick-up.
"""

from __future__ import annotations

import random
import re
import unicodedata
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from omnicanal.sandbox.brazil import PRODUCTS, STATE_NAMES

WAREHOUSE_ID = 71_234_500_001
STORE_IDS = (71_234_567_890, 71_234_567_891, 71_234_567_892)
CLOSED_STORE_ID = 71_234_567_899
CHECKOUT_SHARE = 0.2
PICKUP_SHARE = 0.25
RETURN_SHARE = 0.7
RETURNED_IN_STORE_SHARE = 0.4
CLOSED_SHARE = 0.5

_SIZES = {
    "CAM": ("P", "M", "G"),
    "CAL": ("38", "40", "42"),
    "VES": ("P", "M", "G"),
    "JAQ": ("P", "M", "G"),
    "BER": ("38", "40", "42"),
    "BLU": ("P", "M", "G"),
    "TEN": ("37", "39", "41"),
    "SAN": ("35", "36", "37"),
}
_TYPES = {
    "CAM": "Camisetas",
    "CAL": "Calças",
    "TEN": "Calçados",
    "VES": "Vestidos",
    "BOL": "Bolsas",
    "JAQ": "Jaquetas",
    "BER": "Bermudas",
    "BLU": "Blusas",
    "SAN": "Calçados",
    "BON": "Acessórios",
    "MEI": "Acessórios",
    "MOC": "Bolsas",
    "OCU": "Acessórios",
    "REL": "Acessórios",
    "PER": "Beleza",
    "HID": "Beleza",
    "GAR": "Casa",
    "FON": "Eletrônicos",
    "CAN": "Casa",
    "JOG": "Casa",
    "TOA": "Casa",
    "ALM": "Casa",
}
_RETURN_REASONS = (
    ("SIZE_TOO_SMALL", "Ficou pequeno"),
    ("SIZE_TOO_LARGE", "Ficou grande"),
    ("DEFECTIVE", "Veio com defeito"),
    ("UNWANTED", "Desisti da compra"),
    ("COLOR", "A cor é diferente da foto"),
    ("NOT_AS_DESCRIBED", "Diferente do anunciado"),
)

_STORES = (
    (STORE_IDS[0], "Loja Paulista", "Av. Paulista, 1578", "São Paulo", "SP", "01310-200"),
    (STORE_IDS[1], "Loja Savassi", "Rua Pernambuco, 1000", "Belo Horizonte", "MG", "30130-151"),
    (STORE_IDS[2], "Loja Barra", "Av. das Américas, 4666", "Rio de Janeiro", "RJ", "22640-102"),
)


def _stamp(moment: datetime, like: str) -> str:
    """Format ``moment`` in the zone of the REST timestamp ``like``."""
    zone = datetime.fromisoformat(like).tzinfo
    return moment.astimezone(zone).replace(microsecond=0).isoformat()


def _at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    if end <= start:
        return start
    return start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))


def _handle(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")


def locations(as_of: datetime, like: str) -> list[dict[str, Any]]:
    """The warehouse, the three stores and the closed one (REST ``Location`` shape)."""
    opened = _stamp(as_of - timedelta(days=1200), like)
    rows = [
        (WAREHOUSE_ID, "CD Barueri (e-commerce)", "Av. Tamboré, 267", "Barueri", "SP", "06460-000")
    ]
    rows += list(_STORES)
    rows.append(
        (
            CLOSED_STORE_ID,
            "Loja Iguatemi",
            "Av. Brig. Faria Lima, 2232",
            "São Paulo",
            "SP",
            "01489-900",
        )
    )
    result = []
    for location_id, name, street, city, state, zip_code in rows:
        closed = location_id == CLOSED_STORE_ID
        result.append(
            {
                "id": location_id,
                "name": name,
                "address1": street,
                "address2": None,
                "city": city,
                "zip": zip_code,
                "province": STATE_NAMES[state],
                "country": "BR",
                "phone": "+551130000000",
                "created_at": opened,
                "updated_at": _stamp(as_of - timedelta(days=400 if closed else 90), like),
                "country_code": "BR",
                "country_name": "Brazil",
                "province_code": state,
                "legacy": False,
                "active": not closed,
                "fulfills_online_orders": not closed,
                "deactivated_at": _stamp(as_of - timedelta(days=400), like) if closed else None,
                "admin_graphql_api_id": f"gid://shopify/Location/{location_id}",
            }
        )
    return result


def products(rng: random.Random, as_of: datetime, like: str) -> list[dict[str, Any]]:
    """The catalogue: ids, SKUs and prices as the orders' line items carry them."""
    catalogue = []
    for index, product in enumerate(PRODUCTS):
        product_id = 8_100_000_000_000 + index * 104_729
        base_variant = 45_000_000_000_000 + index * 7_919
        prefix = product.sku_prefix.split("-")[0]
        sizes = _SIZES.get(prefix)
        created = as_of - timedelta(days=900 - index * 3)
        updated = _between(rng, created + timedelta(days=30), as_of - timedelta(days=1))
        variants = []
        for position, size in enumerate(sizes or ("Default Title",), start=1):
            variant_id = base_variant + position - 1
            sku = f"{product.sku_prefix}-{index:03d}"
            variants.append(
                {
                    "id": variant_id,
                    "product_id": product_id,
                    "title": size,
                    "price": product.price,
                    "sku": sku if position == 1 else f"{sku}-{size}",
                    "position": position,
                    "compare_at_price": None,
                    "option1": size,
                    "created_at": _stamp(created, like),
                    "updated_at": _stamp(updated, like),
                    "taxable": True,
                    "barcode": f"789{rng.randrange(10**9, 10**10)}",
                    "inventory_quantity": rng.randint(0, 120),
                    "admin_graphql_api_id": f"gid://shopify/ProductVariant/{variant_id}",
                }
            )
        catalogue.append(
            {
                "id": product_id,
                "title": product.title,
                "body_html": f"<p>{product.title}.</p>",
                "vendor": "Omnicanal Demo",
                "product_type": _TYPES.get(prefix, "Diversos"),
                "created_at": _stamp(created, like),
                "handle": _handle(product.title),
                "updated_at": _stamp(updated, like),
                "published_at": _stamp(created + timedelta(hours=2), like),
                "status": "active",
                "tags": "",
                "option_names": ["Tamanho"] if sizes else ["Title"],
                "variants": variants,
                "admin_graphql_api_id": f"gid://shopify/Product/{product_id}",
            }
        )
    return catalogue


def abandoned_checkouts(
    rng: random.Random,
    customers: list[dict[str, Any]],
    catalogue: list[dict[str, Any]],
    embedded_keys: tuple[str, ...],
    as_of: datetime,
) -> list[dict[str, Any]]:
    """Checkouts some customers started and left, oldest first."""
    drafts = []
    for customer in customers:
        if rng.random() >= CHECKOUT_SHARE:
            continue
        for _ in range(2 if rng.random() < 0.2 else 1):
            created = _between(rng, _at(customer["created_at"]), as_of - timedelta(minutes=30))
            drafts.append((created, customer))
    drafts.sort(key=lambda pair: (pair[0], pair[1]["id"]))
    checkouts = []
    checkout_id = 30_000_000_000_000
    line_id = 31_000_000_000_000
    for created, customer in drafts:
        checkout_id += rng.randint(1_000, 900_000)
        token = f"{rng.getrandbits(128):032x}"
        items = []
        for product in rng.sample(catalogue, rng.choice([1, 1, 2, 3])):
            variant = rng.choice(product["variants"])
            line_id += rng.randint(1_000, 900_000)
            items.append(
                {
                    "id": line_id,
                    "key": f"{variant['id']}:{token[:8]}",
                    "product_id": product["id"],
                    "variant_id": variant["id"],
                    "title": product["title"],
                    "variant_title": None
                    if variant["title"] == "Default Title"
                    else variant["title"],
                    "sku": variant["sku"],
                    "vendor": product["vendor"],
                    "quantity": rng.choices([1, 2], weights=[85, 15])[0],
                    "price": variant["price"],
                }
            )
        total = sum((Decimal(i["price"]) * i["quantity"] for i in items), Decimal(0))
        updated = min(created + timedelta(minutes=rng.uniform(1, 90)), as_of)
        like = customer["created_at"]
        address = customer.get("default_address")
        checkouts.append(
            {
                "id": checkout_id,
                "token": token,
                "cart_token": f"{rng.getrandbits(96):024x}",
                "name": f"#{checkout_id}",
                "email": customer.get("email"),
                "created_at": _stamp(created, like),
                "updated_at": _stamp(updated, like),
                "completed_at": None,
                "abandoned_checkout_url": (
                    f"https://omnicanal-demo.myshopify.com/61234567890/checkouts/{token}/"
                    f"recover?key={token[:16]}"
                ),
                "currency": "BRL",
                "taxes_included": True,
                "subtotal_price": str(total.quantize(Decimal("0.01"))),
                "total_discounts": "0.00",
                "total_tax": str((total - total / Decimal("1.18")).quantize(Decimal("0.01"))),
                "total_price": str(total.quantize(Decimal("0.01"))),
                "discount_codes": [],
                "note": None,
                "line_items": items,
                "customer": {k: customer.get(k) for k in embedded_keys},
                "billing_address": dict(address) if address else None,
                "shipping_address": dict(address) if address else None,
            }
        )
    return checkouts


def order_details(
    rng: random.Random, orders: list[dict[str, Any]], as_of: datetime
) -> dict[int, dict[str, Any]]:
    """Fulfillment, delivery method, returns and return stores per order; closes orders.

    Changes only ``closed_at`` (of settled, fulfilled orders) and the title and code of
    the free shipping line of orders picked up in a store.
    """
    details: dict[int, dict[str, Any]] = {}
    ids = 40_000_000_000_000
    for order in orders:
        created = _at(order["created_at"])
        updated = _at(order["updated_at"])
        like = order["created_at"]
        pos = order.get("source_name") == "pos"
        fulfilled = order.get("fulfillment_status") == "fulfilled"
        shipping = order.get("shipping_lines") or []
        free_shipping = bool(shipping) and Decimal(shipping[0]["price"]) == 0
        if pos:
            method, location_id = "RETAIL", order.get("location_id") or STORE_IDS[0]
        elif free_shipping and rng.random() < PICKUP_SHARE:
            method, location_id = "PICK_UP", rng.choice(STORE_IDS)
            shipping[0]["title"] = "Retirada na loja"
            shipping[0]["code"] = "pickup"
        else:
            method, location_id = "SHIPPING", WAREHOUSE_ID
        ids += rng.randint(1_000, 900_000)
        fulfilled_at = (
            created if pos else _between(rng, created, min(updated, created + timedelta(days=5)))
        )
        if order.get("cancelled_at"):
            fo_status = "CANCELLED"
        elif fulfilled:
            fo_status = "CLOSED"
        else:
            fo_status = "OPEN"
        entry: dict[str, Any] = {
            "delivery_method": method,
            "fulfillment_orders": [
                {
                    "id": ids,
                    "status": fo_status,
                    "request_status": "UNSUBMITTED",
                    "delivery_method": method,
                    "location_id": location_id,
                    "created_at": order["created_at"],
                    "updated_at": _stamp(fulfilled_at, like) if fulfilled else order["created_at"],
                }
            ],
            "fulfillments": [],
            "returns": [],
            "refund_locations": {},
        }
        fulfillment_lines: dict[int, int] = {}
        if fulfilled:
            ids += rng.randint(1_000, 900_000)
            lines = []
            for item in order.get("line_items") or []:
                ids += rng.randint(1, 999)
                fulfillment_lines[item["id"]] = ids
                lines.append({"id": ids, "line_item_id": item["id"], "quantity": item["quantity"]})
            tracking = []
            if method == "SHIPPING":
                number = f"{rng.choice(['QB', 'OS', 'NX'])}{rng.randrange(10**8, 10**9)}BR"
                tracking.append(
                    {
                        "company": "Correios",
                        "number": number,
                        "url": f"https://rastreamento.correios.com.br/app/index.php?objeto={number}",
                    }
                )
            delivered = as_of - fulfilled_at > timedelta(days=8)
            display = {
                "RETAIL": "FULFILLED",
                "PICK_UP": "PICKED_UP",
                "SHIPPING": "DELIVERED" if delivered else "IN_TRANSIT",
            }[method]
            entry["fulfillments"].append(
                {
                    "id": ids + 1,
                    "name": f"{order['name']}.1",
                    "status": "SUCCESS",
                    "display_status": display,
                    "created_at": _stamp(fulfilled_at, like),
                    "updated_at": _stamp(fulfilled_at, like),
                    "delivered_at": (
                        _stamp(fulfilled_at + timedelta(days=rng.uniform(1, 7)), like)
                        if method == "SHIPPING" and delivered
                        else None
                    ),
                    "location_id": location_id,
                    "tracking": tracking,
                    "line_items": lines,
                }
            )
        for number, refund in enumerate(order.get("refunds") or [], start=1):
            refunded_at = _at(refund["created_at"])
            returned_here = pos or rng.random() < RETURNED_IN_STORE_SHARE
            back_at = (
                (order.get("location_id") if pos else rng.choice(STORE_IDS))
                if returned_here
                else WAREHOUSE_ID
            )
            entry["refund_locations"][str(refund["id"])] = back_at
            if not fulfilled or order.get("cancelled_at") or rng.random() >= RETURN_SHARE:
                continue
            ids += rng.randint(1_000, 900_000)
            opened = _between(rng, max(fulfilled_at, refunded_at - timedelta(days=3)), refunded_at)
            return_lines = []
            for line in refund.get("refund_line_items") or []:
                ids += rng.randint(1, 999)
                reason, note = rng.choice(_RETURN_REASONS)
                return_lines.append(
                    {
                        "id": ids,
                        "line_item_id": line["line_item_id"],
                        "fulfillment_line_item_id": fulfillment_lines.get(
                            line["line_item_id"], ids
                        ),
                        "quantity": line["quantity"],
                        "reason": reason,
                        "reason_note": note,
                        "customer_note": None,
                    }
                )
            entry["returns"].append(
                {
                    "id": ids + 1,
                    "name": f"{order['name']}-R{number}",
                    "status": "CLOSED",
                    "created_at": _stamp(opened, like),
                    "closed_at": refund["created_at"],
                    "refund_id": refund["id"],
                    "location_id": back_at,
                    "line_items": return_lines,
                }
            )
        settled = order.get("financial_status") in ("paid", "refunded", "partially_refunded")
        if (
            fulfilled
            and settled
            and not order.get("cancelled_at")
            and as_of - updated > timedelta(days=14)
            and rng.random() < CLOSED_SHARE
        ):
            order["closed_at"] = order["updated_at"]
        details[order["id"]] = entry
    return details
