"""Realistic order records (~1 KB, nested customer, address and line items) as Singer."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

STREAM = "orders"
STATE_EVERY = 10_000

_STR = {"type": ["string", "null"]}
_INT = {"type": ["integer", "null"]}
_NUM = {"type": ["number", "null"]}
_TS = {"type": ["string", "null"], "format": "date-time"}

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "order_number": {"type": "string"},
        "created_at": _TS,
        "updated_at": {"type": "string", "format": "date-time"},
        "currency": _STR,
        "total_price": _NUM,
        "subtotal_price": _NUM,
        "total_tax": _NUM,
        "total_discounts": _NUM,
        "financial_status": _STR,
        "fulfillment_status": _STR,
        "source_name": _STR,
        "tags": _STR,
        "note": _STR,
        "buyer_accepts_marketing": {"type": ["boolean", "null"]},
        "items_count": _INT,
        "customer": {
            "type": ["object", "null"],
            "properties": {
                "id": _INT,
                "email": _STR,
                "first_name": _STR,
                "last_name": _STR,
                "phone": _STR,
                "cpf": _STR,
            },
        },
        "shipping_address": {"type": ["object", "null"], "properties": {"city": _STR}},
        "line_items": {"type": ["array", "null"], "items": {"type": "object"}},
    },
}
# the same columns, typed, for the bare COPY anchor
COLUMNS = [
    ("id", "bigint primary key"),
    ("order_number", "text"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("currency", "text"),
    ("total_price", "numeric"),
    ("subtotal_price", "numeric"),
    ("total_tax", "numeric"),
    ("total_discounts", "numeric"),
    ("financial_status", "text"),
    ("fulfillment_status", "text"),
    ("source_name", "text"),
    ("tags", "text"),
    ("note", "text"),
    ("buyer_accepts_marketing", "boolean"),
    ("items_count", "bigint"),
    ("customer", "jsonb"),
    ("shipping_address", "jsonb"),
    ("line_items", "jsonb"),
]

FIRST = ["Ana", "João", "Maria", "Pedro", "Luiza", "Carlos", "Fernanda", "Rafael", "Juliana"]
LAST = ["Silva", "Santos", "Oliveira", "Souza", "Lima", "Pereira", "Costa", "Ferreira"]
CITIES = ["São Paulo", "Rio de Janeiro", "Belo Horizonte", "Curitiba", "Recife", "Salvador"]
PRODUCTS = ["Tênis corrida", "Camiseta dry-fit", "Mochila 20L", "Garrafa térmica", "Boné"]
BASE = datetime(2024, 1, 1, tzinfo=UTC)


def _order(rng: random.Random, order_id: int, version: int) -> dict:
    created = BASE + timedelta(seconds=order_id * 7)
    updated = created + timedelta(hours=version, minutes=rng.randrange(60))
    first, last = rng.choice(FIRST), rng.choice(LAST)
    items = []
    for n in range(rng.randint(2, 4)):
        qty = rng.randint(1, 3)
        price = round(rng.uniform(19.9, 499.9), 2)
        items.append(
            {
                "id": order_id * 10 + n,
                "sku": f"SKU-{rng.randrange(10_000):05d}",
                "title": rng.choice(PRODUCTS),
                "variant_title": rng.choice(["P", "M", "G", "GG"]),
                "quantity": qty,
                "price": f"{price:.2f}",
                "total_discount": "0.00",
                "vendor": "omnicanal",
                "requires_shipping": True,
            }
        )
    subtotal = round(sum(float(i["price"]) * i["quantity"] for i in items), 2)
    tax = round(subtotal * 0.1, 2)
    return {
        "id": order_id,
        "order_number": f"#{1000 + order_id}",
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "updated_at": updated.isoformat().replace("+00:00", "Z"),
        "currency": "BRL",
        "total_price": round(subtotal + tax, 2),
        "subtotal_price": subtotal,
        "total_tax": tax,
        "total_discounts": 0,
        "financial_status": ["paid", "pending", "refunded"][version % 3],
        "fulfillment_status": rng.choice(["fulfilled", None, "partial"]),
        "source_name": rng.choice(["web", "pos", "whatsapp", "instagram"]),
        "tags": "vip, recompra" if order_id % 7 == 0 else "",
        "note": None,
        "buyer_accepts_marketing": order_id % 3 == 0,
        "items_count": len(items),
        "customer": {
            "id": order_id // 3,
            "email": f"{first.lower()}.{last.lower()}{order_id % 997}@exemplo.com.br",
            "first_name": first,
            "last_name": last,
            "phone": f"+55119{rng.randrange(10**8):08d}",
            "cpf": f"{rng.randrange(10**11):011d}",
        },
        "shipping_address": {
            "address1": f"Rua {rng.choice(LAST)}, {rng.randint(1, 3000)}",
            "city": rng.choice(CITIES),
            "province_code": "SP",
            "zip": f"{rng.randrange(10**8):08d}",
            "country_code": "BR",
        },
        "line_items": items,
    }


def generate(path: Path, records: int, *, version: int = 0) -> Path:
    """Write ``records`` orders (ids 1..records) as Singer messages, once; reuse after."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(records * 31 + version)
    tmp = path.with_suffix(".tmp")
    extracted = (BASE + timedelta(days=400 + version)).isoformat().replace("+00:00", "Z")
    with tmp.open("w") as out:
        out.write(
            json.dumps(
                {
                    "type": "SCHEMA",
                    "stream": STREAM,
                    "schema": SCHEMA,
                    "key_properties": ["id"],
                    "bookmark_properties": ["updated_at"],
                }
            )
            + "\n"
        )
        for order_id in range(1, records + 1):
            message = {
                "type": "RECORD",
                "stream": STREAM,
                "record": _order(rng, order_id, version),
                "time_extracted": extracted,
            }
            out.write(json.dumps(message, ensure_ascii=False) + "\n")
            if order_id % STATE_EVERY == 0 or order_id == records:
                state = {"bookmarks": {STREAM: {"replication_key_value": order_id}}}
                out.write(json.dumps({"type": "STATE", "value": state}) + "\n")
    tmp.rename(path)
    return path
