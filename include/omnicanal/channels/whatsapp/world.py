"""WhatsApp's slice of the world: the retailer's WhatsApp Business number and its chats.

The retailer answers customers on one WhatsApp Business number (Cloud API). People
write before buying ("tem no 40?", "qual o prazo pra Campinas?") and after ("meu pedido
#1043 não chegou", "quero trocar"); agents answer. What the platform holds about them
is only what WhatsApp itself knows:

- ``wa_id``: the number's digits as WhatsApp reports it. An account registered before
  Brazil added the ninth digit to mobiles (2012-2016) keeps the old 12-digit form
  (``55 11 8765 4321`` for ``+55 11 98765-4321``): about a third of them;
- the contact's ``profile.name``: whatever the person typed in the app, a first name, a
  nickname ("Nanda", "Gabi"), a name with emojis, a full name, sometimes just an emoji;
  a few people change it between two conversations.

Records are the Cloud API's webhook objects: inbound ``messages`` (``from``, ``id``
"wamid.…", ``timestamp`` in epoch seconds as a string, ``type`` text / image /
interactive / button / location …) with the ``contacts`` entry WhatsApp sends with
them, and the ``statuses`` of the agents' replies (sent, delivered, read, failed, with
``conversation`` and ``pricing`` as Meta sends them under per-message pricing). The
agents' replies themselves never come back by webhook; :attr:`WhatsAppInbox.replies`
keeps them as the ground truth of what was sent.

Marketing preferences: a WhatsApp user can stop a business's marketing messages (and
resume them) from the chat; Meta then posts a ``user_preferences`` webhook, ``{"wa_id",
"detail", "category": "marketing_messages", "value": "stop" | "resume", "timestamp"}``
(the timestamp an integer, unlike messages'). Some of the writers who accept no
marketing at all stop them, and a few of those resume them later: they then accept
WhatsApp marketing, and only that (:func:`marketing_preference`, from a hash of the
CPF, not from the inbox's random stream, so no other figure of any seed moved).

Ground truth: ``wa_person`` maps each ``wa_id`` to the person who owns the phone.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from omnicanal.sandbox.brazil import PRODUCTS
from omnicanal.sandbox.linkage import (
    IdentityRecord,
    identity_record,
    phone_id,
    platform_id,
)
from omnicanal.sandbox.noise import strip_accents, whatsapp_wa_id
from omnicanal.sandbox.people import Person

#: The retailer's WhatsApp Business account, its number and the number's Graph id.
WABA_ID = "104996852718431"
PHONE_NUMBER_ID = "110238476119052"
DISPLAY_PHONE_NUMBER = "551140028922"
VERIFIED_NAME = "Loja Omnicanal"

HISTORY_DAYS = 540
#: Share of the people who write to the retailer on WhatsApp at all.
WHATSAPP_SHARE = 0.45
#: Of a buyer's orders, the share preceded by a question, and followed by a message.
BEFORE_ORDER_SHARE = 0.45
AFTER_ORDER_SHARE = 0.35
#: Share of profile names changed between two conversations.
RENAMED_SHARE = 0.08
READ_SHARE = 0.8
FAILED_SHARE = 0.02
#: Of the people who accept no marketing, the share who stop the retailer's marketing
#: messages on WhatsApp, and of those the share who resume them later.
STOP_MARKETING_SHARE = 0.4
RESUME_MARKETING_SHARE = 0.3
#: A resume comes in the last hours before as_of (after anything else the person said).
RESUME_WITHIN_HOURS = 6
PREFERENCE_DETAILS = {
    "stop": "User requested to stop marketing messages",
    "resume": "User requested to resume marketing messages",
}

NICKNAMES: dict[str, tuple[str, ...]] = {
    "Fernanda": ("Nanda", "Fê"),
    "Gabriela": ("Gabi",),
    "Gabriel": ("Biel", "Gabi"),
    "Leandro": ("Léo",),
    "Letícia": ("Lê", "Leti"),
    "Mariana": ("Mari",),
    "Juliana": ("Ju", "Juju"),
    "Beatriz": ("Bia",),
    "Francisco": ("Chico",),
    "Francisca": ("Chica",),
    "José": ("Zé",),
    "Antônio": ("Toninho", "Tonho"),
    "Rafael": ("Rafa",),
    "Vinícius": ("Vini",),
    "Matheus": ("Math",),
    "Eduardo": ("Edu", "Dudu"),
    "Luíza": ("Lu",),
    "Luciana": ("Lu",),
    "Natália": ("Nati", "Naty"),
    "Vanessa": ("Nessa",),
    "Patrícia": ("Paty",),
    "Camila": ("Cami", "Mila"),
    "Amanda": ("Mandy",),
    "Bruna": ("Bru",),
    "Rodrigo": ("Digo",),
    "Gustavo": ("Guto", "Gus"),
    "Thiago": ("Thi",),
    "Daniel": ("Dani",),
    "Vitória": ("Vivi", "Vic"),
    "Conceição": ("Ceiça",),
}
EMOJIS = ("🌻", "💙", "✨", "🙏", "🌸", "⚽", "🦋", "😎", "🌈", "❤️", "☀️", "🎶")

_BEFORE = (
    "Oi, boa tarde! Vocês têm {product} no tamanho M?",
    "Olá! Qual o prazo de entrega pra {city}?",
    "Bom dia, o {product} ainda tá disponível?",
    "Oi! Aceita pix? Tem desconto?",
    "Vocês têm loja física em {city}?",
    "Oii, o {product} vem em outra cor?",
)
_AFTER = (
    "Oi, meu pedido {order} ainda não chegou",
    "Bom dia! Quero trocar o tamanho do pedido {order}",
    "Chegou certinho, obrigada!! 😍",
    "Oi, o rastreio do pedido {order} não atualiza",
    "Recebi o {product} com defeito, como faço a troca?",
    "Pedido {order}: posso retirar na loja?",
)
_QUESTION = (
    "Oi! Vocês abrem no feriado?",
    "Qual o horário da loja de {city}?",
    "Boa noite, tem cupom de primeira compra?",
    "Oi, vocês entregam em {city}?",
)
_FOLLOW_UP = ("ok", "Obrigado!", "Ah entendi", "Blz, vou ver aqui", "👍", "Perfeito, obrigada")
_REPLY = (
    "Olá! Aqui é a {agent}, da Loja Omnicanal. Vou verificar pra você 😊",
    "Oi! Temos sim. Posso te ajudar com mais alguma coisa?",
    "Olá! O prazo para {city} é de 3 a 5 dias úteis.",
    "Oi! Já abrimos a solicitação, você recebe as instruções por e-mail.",
    "Bom dia! Seu pedido saiu para entrega hoje.",
)
_AGENTS = ("Carla", "Diego", "Renata", "Paulo")
_IMAGE_CAPTIONS = ("Esse aqui", "Olha como chegou", "", "Tem esse?")
_BUTTONS = (("sim", "Sim, quero"), ("nao", "Não, obrigado"), ("atendente", "Falar com atendente"))


def epoch(moment: datetime) -> str:
    """A Cloud API ``timestamp``: Unix seconds, as a string."""
    return str(int(moment.timestamp()))


def from_epoch(value: str) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def wamid(rng: random.Random, wa_id: str, outbound: bool) -> str:
    """A message id in the shape Meta writes them: "wamid." and a base64 blob that
    carries the user's number and a random hex key."""
    key = "".join(rng.choice("0123456789ABCDEF") for _ in range(20 if outbound else 32))
    blob = (
        b"\x1c\x18"
        + bytes([len(wa_id)])
        + wa_id.encode()
        + b"\x15\x02\x00"
        + (b"\x11" if outbound else b"\x12")
        + b"\x18"
        + bytes([len(key)])
        + key.encode()
        + b"\x00"
    )
    return "wamid." + base64.b64encode(blob).decode()


def profile_name(rng: random.Random, person: Person) -> str:
    """What a person calls themselves in the app: rarely their whole documented name."""
    first = person.first_name
    kind = rng.choices(
        ["first", "nickname", "emoji_first", "full", "lower", "emoji_only", "initial"],
        weights=[35, 15, 15, 15, 8, 5, 7],
    )[0]
    if kind == "nickname" and first in NICKNAMES:
        return rng.choice(NICKNAMES[first])
    if kind == "emoji_first":
        return f"{first} {rng.choice(EMOJIS)}"
    if kind == "full":
        return person.full_name
    if kind == "lower":
        return strip_accents(first).lower()
    if kind == "emoji_only":
        return rng.choice(EMOJIS)
    if kind == "initial":
        return f"{first} {person.last_name.split()[-1][0]}."
    return first


@dataclass
class WhatsAppInbox:
    """The retailer's WhatsApp number: webhook objects in time order, and whose they are.

    ``events`` are what Meta will post to the webhook, oldest first: ``{"kind":
    "message", "contact": {"profile": {"name"}, "wa_id"}, "message": {...}}``,
    ``{"kind": "status", "status": {...}}`` or ``{"kind": "user_preference", "contact":
    {...}, "preference": {...}}``. ``replies`` are the agents' messages (what
    the statuses are about), ``wa_person`` the ground truth.
    """

    waba_id: str
    phone_number_id: str
    display_phone_number: str
    events: list[dict[str, Any]]
    replies: list[dict[str, Any]]
    wa_person: dict[str, str]
    verified_name: str = VERIFIED_NAME
    #: Profile names each wa_id used, in order (a few people rename themselves).
    profile_names: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "waba_id": self.waba_id,
            "phone_number_id": self.phone_number_id,
            "display_phone_number": self.display_phone_number,
            "verified_name": self.verified_name,
            "events": self.events,
            "replies": self.replies,
            "wa_person": self.wa_person,
            "profile_names": self.profile_names,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WhatsAppInbox:
        return cls(**data)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [e["message"] for e in self.events if e["kind"] == "message"]

    @property
    def statuses(self) -> list[dict[str, Any]]:
        return [e["status"] for e in self.events if e["kind"] == "status"]

    @property
    def user_preferences(self) -> list[dict[str, Any]]:
        return [e["preference"] for e in self.events if e["kind"] == "user_preference"]

    def marketing_choices(self) -> dict[str, str]:
        """Each person's latest marketing preference the webhooks carry (``stop`` or
        ``resume``), by person id."""
        latest: dict[str, tuple[int, str]] = {}
        for preference in self.user_preferences:
            person_id = self.wa_person[preference["wa_id"]]
            moment = int(preference["timestamp"])
            if person_id not in latest or moment >= latest[person_id][0]:
                latest[person_id] = (moment, preference["value"])
        return {person_id: value for person_id, (_, value) in latest.items()}

    def identity_records(self) -> list[IdentityRecord]:
        """One contact per number that wrote (its wa_id, a phone without the ninth
        digit as often as with it). A "resume" consents to WhatsApp only: no consent."""
        writers = {
            event["contact"]["wa_id"] for event in self.events if event.get("kind") == "message"
        }
        return [
            identity_record(
                f"whatsapp:{wa_id}",
                person_id,
                (phone_id(wa_id), platform_id("whatsapp", wa_id)),
            )
            for wa_id, person_id in self.wa_person.items()
            if wa_id in writers
        ]

    def describe(self) -> str:
        return (
            f"{len(self.wa_person)} WhatsApp contacts, {len(self.messages)} messages, "
            f"{len(self.statuses)} statuses"
        )


class _Chat:
    """Builds one person's conversations on the retailer's number."""

    def __init__(
        self, rng: random.Random, person: Person, wa_id: str, inbox: WhatsAppInbox, as_of: datetime
    ) -> None:
        self.rng, self.person, self.wa_id, self.inbox, self.as_of = rng, person, wa_id, inbox, as_of
        self.name = profile_name(rng, person)
        inbox.profile_names[wa_id] = [self.name]

    def _fill(self, template: str, order: str | None) -> str:
        return template.format(
            product=self.rng.choice(PRODUCTS).title.lower(),
            city=self.person.city,
            order=order or "",
            agent=self.rng.choice(_AGENTS),
        )

    def _inbound(self, at: datetime, text: str, context: str | None = None) -> dict[str, Any]:
        rng = self.rng
        message: dict[str, Any] = {
            "from": self.wa_id,
            "id": wamid(rng, self.wa_id, outbound=False),
            "timestamp": epoch(at),
        }
        roll = rng.random()
        if context is not None:
            button_id, title = rng.choice(_BUTTONS)
            message["context"] = {"from": self.inbox.display_phone_number, "id": context}
            message["type"] = "interactive"
            message["interactive"] = {
                "type": "button_reply",
                "button_reply": {"id": button_id, "title": title},
            }
        elif roll < 0.08:
            caption = rng.choice(_IMAGE_CAPTIONS)
            message["type"] = "image"
            message["image"] = {
                "mime_type": "image/jpeg",
                "sha256": base64.b64encode(rng.randbytes(32)).decode(),
                "id": str(rng.randrange(10**15, 10**16)),
                **({"caption": caption} if caption else {}),
            }
        elif roll < 0.10:
            message["type"] = "location"
            message["location"] = {
                "latitude": round(-23.5 + rng.uniform(-0.3, 0.3), 6),
                "longitude": round(-46.6 + rng.uniform(-0.3, 0.3), 6),
            }
        else:
            message["type"] = "text"
            message["text"] = {"body": text}
        contact = {"profile": {"name": self.name}, "wa_id": self.wa_id}
        self.inbox.events.append({"kind": "message", "contact": contact, "message": message})
        return message

    def _reply(self, at: datetime, text: str, interactive: bool) -> str:
        """An agent's reply and its statuses (sent, delivered, read, or failed)."""
        rng, inbox = self.rng, self.inbox
        message_id = wamid(rng, self.wa_id, outbound=True)
        inbox.replies.append(
            {
                "id": message_id,
                "to": self.wa_id,
                "timestamp": epoch(at),
                "type": "interactive" if interactive else "text",
                "text": {"body": text},
            }
        )
        conversation = {
            "id": "".join(rng.choice("0123456789abcdef") for _ in range(32)),
            "origin": {"type": "service"},
        }
        pricing = {
            "billable": False,
            "pricing_model": "PMP",
            "category": "service",
            "type": "free_customer_service",
        }

        def status(kind: str, moment: datetime, **extra: Any) -> None:
            if moment > self.as_of:
                return
            body = {
                "id": message_id,
                "status": kind,
                "timestamp": epoch(moment),
                "recipient_id": self.wa_id,
                **extra,
            }
            inbox.events.append({"kind": "status", "status": body})

        if rng.random() < FAILED_SHARE:
            status(
                "failed",
                at + timedelta(seconds=rng.randint(1, 5)),
                errors=[
                    {
                        "code": 131026,
                        "title": "Message undeliverable",
                        "message": "Message undeliverable",
                        "error_data": {
                            "details": "Message could not be delivered to the recipient."
                        },
                        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                    }
                ],
            )
            return message_id
        expires = {**conversation, "expiration_timestamp": epoch(at + timedelta(hours=24))}
        status("sent", at, conversation=expires, pricing=pricing)
        delivered = at + timedelta(seconds=rng.randint(1, 40))
        read = delivered + timedelta(minutes=rng.expovariate(1 / 20))
        if rng.random() < READ_SHARE and rng.random() < 0.15:
            # read while in the chat screen: Meta sends no "delivered", only "read"
            status("read", delivered)
        else:
            status("delivered", delivered, conversation=conversation, pricing=pricing)
            if rng.random() < READ_SHARE:
                status("read", read)
        return message_id

    def conversation(self, start: datetime, templates: tuple[str, ...], order: str | None) -> None:
        rng = self.rng
        if start >= self.as_of:
            return
        if len(self.inbox.profile_names[self.wa_id]) == 1 and rng.random() < RENAMED_SHARE:
            self.name = profile_name(rng, self.person)
            if self.name != self.inbox.profile_names[self.wa_id][-1]:
                self.inbox.profile_names[self.wa_id].append(self.name)
        at = start
        self._inbound(at, self._fill(rng.choice(templates), order))
        for _ in range(rng.choices([0, 1, 2], weights=[55, 30, 15])[0]):
            at += timedelta(seconds=rng.randint(5, 180))
            self._inbound(at, self._fill(rng.choice(templates), order))
        # agents answer within minutes in opening hours, hours otherwise
        at += timedelta(minutes=rng.choice([rng.uniform(1, 15), rng.uniform(30, 480)]))
        if at >= self.as_of:
            return
        interactive = rng.random() < 0.25
        reply = self._reply(at, self._fill(rng.choice(_REPLY), order), interactive)
        at += timedelta(minutes=rng.uniform(1, 90))
        if at >= self.as_of:
            return
        if interactive:
            self._inbound(at, "", context=reply)
        elif rng.random() < 0.5:
            self._inbound(at, rng.choice(_FOLLOW_UP))


def marketing_preference(person: Person) -> str | None:
    """What the person did with the retailer's marketing messages on WhatsApp: ``stop``
    (stopped them), ``resume`` (stopped, then resumed them: they accept WhatsApp marketing
    only) or None. Only people who accept no marketing stop (so no consent elsewhere
    contradicts the revocation); from a hash of their CPF."""
    if person.accepts_email_marketing:
        return None
    digest = hashlib.sha256(f"whatsapp-marketing:{person.cpf}".encode()).digest()
    if int.from_bytes(digest[:4], "big") / 2**32 >= STOP_MARKETING_SHARE:
        return None
    resumed = int.from_bytes(digest[4:8], "big") / 2**32 < RESUME_MARKETING_SHARE
    return "resume" if resumed else "stop"


def event_timestamp(event: dict[str, Any]) -> int:
    """When an inbox event happened, in Unix seconds."""
    body = event.get("message") or event.get("status") or event["preference"]
    return int(body["timestamp"])


def _preferences(inbox: WhatsAppInbox, people: list[Person], as_of: datetime) -> None:
    """The writers' stop and resume of marketing messages, as user_preferences events."""
    by_id = {p.person_id: p for p in people}
    first: dict[str, int] = {}
    for message in inbox.messages:
        first.setdefault(message["from"], int(message["timestamp"]))
    end = int(as_of.timestamp())
    for wa_id, person_id in inbox.wa_person.items():
        person = by_id[person_id]
        choice = marketing_preference(person)
        if choice is None:
            continue
        # the person's own stream: the inbox's draws stay as they were
        rng = random.Random(f"whatsapp-preferences:{person.cpf}")
        resume_at = end - rng.randint(60, RESUME_WITHIN_HOURS * 3600)
        if resume_at - first[wa_id] < 120:  # wrote first in the very last hours
            continue
        stop_at = first[wa_id] + int(rng.uniform(0.1, 0.9) * max(resume_at - first[wa_id], 2))
        contact = {"profile": {"name": inbox.profile_names[wa_id][-1]}, "wa_id": wa_id}
        steps = [("stop", stop_at)] + ([("resume", resume_at)] if choice == "resume" else [])
        for value, moment in steps:
            preference = {
                "wa_id": wa_id,
                "detail": PREFERENCE_DETAILS[value],
                "category": "marketing_messages",
                "value": value,
                "timestamp": moment,
            }
            inbox.events.append(
                {"kind": "user_preference", "contact": contact, "preference": preference}
            )
    inbox.events.sort(key=event_timestamp)


def _orders_by_person(earlier: Mapping[str, Any]) -> dict[str, list[tuple[datetime, str]]]:
    """Each person's Shopify orders (created_at, name), when the world has a shop."""
    store = earlier.get("shopify")
    if store is None:
        return {}
    found: dict[str, list[tuple[datetime, str]]] = {}
    for order in store.orders:
        person_id = store.customer_person.get((order.get("customer") or {}).get("id"))
        if person_id:
            created = datetime.fromisoformat(order["created_at"]).astimezone(UTC)
            found.setdefault(person_id, []).append((created, order["name"]))
    return found


def build_whatsapp_inbox(
    rng: random.Random,
    people: list[Person],
    as_of: datetime,
    earlier: Mapping[str, Any],
) -> WhatsAppInbox:
    """Who writes to the retailer on WhatsApp, when (around their orders) and what."""
    inbox = WhatsAppInbox(
        waba_id=WABA_ID,
        phone_number_id=PHONE_NUMBER_ID,
        display_phone_number=DISPLAY_PHONE_NUMBER,
        events=[],
        replies=[],
        wa_person={},
    )
    orders = _orders_by_person(earlier)
    first_day = as_of - timedelta(days=HISTORY_DAYS)
    for person in people:
        if rng.random() >= WHATSAPP_SHARE:
            continue
        wa_id = whatsapp_wa_id(rng, person.phone)
        inbox.wa_person[wa_id] = person.person_id
        chat = _Chat(rng, person, wa_id, inbox, as_of)
        bought = sorted(orders.get(person.person_id, []))
        talked = False
        for created, name in bought[:3]:
            if rng.random() < BEFORE_ORDER_SHARE:
                before = created - timedelta(hours=rng.uniform(1, 72))
                chat.conversation(max(before, first_day), _BEFORE, None)
                talked = True
            if rng.random() < AFTER_ORDER_SHARE:
                after = created + timedelta(days=rng.uniform(1, 12))
                written = name if rng.random() < 0.7 else name.lstrip("#")
                chat.conversation(after, _AFTER, written)
                talked = True
        if not talked:
            start = first_day + timedelta(seconds=rng.uniform(0, HISTORY_DAYS * 86400))
            chat.conversation(start, _QUESTION, None)
    inbox.events.sort(key=lambda e: int((e.get("message") or e.get("status"))["timestamp"]))
    # someone whose only conversation would start after as_of never wrote
    wrote = {e["message"]["from"] for e in inbox.events if e["kind"] == "message"}
    inbox.wa_person = {w: p for w, p in inbox.wa_person.items() if w in wrote}
    inbox.profile_names = {w: n for w, n in inbox.profile_names.items() if w in wrote}
    _preferences(inbox, people, as_of)
    return inbox


#: Share of the people with no WhatsApp account on their mobile (a message to them fails
#: with 131026, undeliverable). In Brazil nearly every smartphone has WhatsApp.
NOT_ON_WHATSAPP_SHARE = 0.06


def whatsapp_accounts(seed: int, people: list[Person], inbox: WhatsAppInbox) -> dict[str, str]:
    """Every WhatsApp account of the world, ``wa_id`` → person id.

    The inbox knows only the people who wrote to the retailer; most others have an account
    too, which a template can reach. Their ``wa_id`` is drawn as WhatsApp keeps it (a third
    without the ninth digit), from a stream of its own, so the inbox is unchanged.
    """
    accounts = dict(inbox.wa_person)
    known = set(accounts.values())
    rng = random.Random(f"{seed}:whatsapp-accounts")
    for person in people:
        on_whatsapp = rng.random() >= NOT_ON_WHATSAPP_SHARE
        wa_id = whatsapp_wa_id(rng, person.phone)
        if person.person_id not in known and on_whatsapp:
            accounts[wa_id] = person.person_id
    return accounts
