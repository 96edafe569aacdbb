"""WhatsApp's case for the destination test kit (omnicanal.activation.testkit).

Rows are template messages of the sandbox's ``carrinho_abandonado`` (pt_BR, named
variables ``first_name``, ``cart_total``, ``checkout_url``); what the emulation holds is
the last template message sent for each key (``biz_opaque_callback_data``), in the rows'
field names. A message cannot be unsent, so the case declares ``removes=False``.
"""

from __future__ import annotations

from dataclasses import replace

from omnicanal.activation.destination import Row
from omnicanal.activation.testkit import DestinationCase

TEMPLATE = "carrinho_abandonado"
LANGUAGE = "pt_BR"
FIRST = ["Ana", "João", "Maria", "José", "Luíza", "Pedro"]


def row(n: int) -> Row:
    # a Brazilian mobile, with its ninth digit, distinct for each n
    phone = f"+55 11 9{7000_0000 + n * 7919:08d}"
    return Row(
        f"C{n:05d}:3000000{n:05d}",
        {
            "to": phone,
            "first_name": FIRST[n % len(FIRST)],
            "cart_total": f"{100 + n},90",
            "checkout_url": f"https://omnicanal-demo.myshopify.com/checkouts/{n:032x}/recover",
        },
    )


def _held(emulator) -> dict[str, dict]:
    held: dict[str, dict] = {}
    for message in emulator.templates_sent():
        key = message["biz_opaque_callback_data"]
        if key and message["name"] == TEMPLATE and message["language"] == LANGUAGE:
            held[key] = {"to": message["to"], **message["parameters"]}
    return held


def destination_case() -> DestinationCase:
    return DestinationCase(
        row=row,
        change=lambda row: replace(row, payload={**row.payload, "cart_total": "99,00"}),
        # eight digits after the DDD must not start with 1: no Brazilian number
        refused=Row("C99999:30000099999", {**row(99).payload, "to": "+55 11 1234-567"}),
        env=lambda url: {
            "OMNICANAL_WHATSAPP_API_URL": url,
            "OMNICANAL_WHATSAPP_TEMPLATE": TEMPLATE,
            "OMNICANAL_WHATSAPP_TEMPLATE_LANGUAGE": LANGUAGE,
        },
        bad_credentials={"OMNICANAL_WHATSAPP_ACCESS_TOKEN": "EAAG-not-a-valid-token"},
        credential_setting="OMNICANAL_WHATSAPP_ACCESS_TOKEN",
        held=_held,
        removes=False,  # a message cannot be unsent
    )
