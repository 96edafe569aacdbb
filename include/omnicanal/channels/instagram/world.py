"""Instagram's slice of the world: the retailer's professional account, its posts, the
people who comment on them and the Direct conversations, as the Graph API returns them.

What Instagram knows about a person, and why it is hard for identity resolution:

- a handle (``username``) and a display ``name`` the person chose: a nickname and a
  surname ("bia.santos_"), a nickname alone ("mari_2209"), the name of their small
  business or a mood ("doces.da.ju", "vida.leve.rj"), often with no name in it at all;
  display names carry emojis and decorations ("Bia Santos 🌸", "Ju ✨ | moda") or are
  empty. Neither is an identifier of the person elsewhere: only the handle itself links,
  and only to records that carry the same handle;
- an Instagram-scoped id (IGSID) per person for this account: ``from.id`` of their
  comments and messages;
- what they type in a Direct message: some give their email (as they type it, often
  capitalised or with spaces) or their phone (in every local habit, with or without the
  ninth digit) so the shop can find their order; those are real identifiers.

The account's own comments (replies to customers) and messages come ``from`` the
business itself and belong to nobody. Conversations happen before a first online order
(questions) and after one (tracking, exchanges), when the person bought at all.

Ground truth: ``user_person`` (IGSID → person) and ``handle_person`` (handle → person).
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from omnicanal.channels.meta import graph_time
from omnicanal.sandbox.linkage import (
    IdentityRecord,
    email_id,
    identity_record,
    phone_id,
    platform_id,
)
from omnicanal.sandbox.noise import noisy_email, phone_formats, strip_accents
from omnicanal.sandbox.people import Person

HISTORY_DAYS = 540
#: Share of the people who follow the shop on Instagram (and have an IGSID for it).
ON_INSTAGRAM_SHARE = 0.45
COMMENTER_SHARE = 0.6  # of those on Instagram
DM_SHARE = 0.35  # of those on Instagram
BUSINESS_REPLY_SHARE = 0.4  # of customer comments
FAN_FOLLOW_UP_SHARE = 0.3  # of business replies, the customer answers in the thread
EMAIL_IN_DM_SHARE = 0.3
PHONE_IN_DM_SHARE = 0.25

ACCOUNT_USERNAME = "casa.omnicanal"
ACCOUNT_NAME = "Casa Omnicanal | Moda & Casa"

NICKNAMES = {
    "beatriz": ["bia", "bea"], "mariana": ["mari", "mah"], "juliana": ["ju", "juh"],
    "fernanda": ["nanda", "fer"], "gabriela": ["gabi"], "rafael": ["rafa"],
    "gabriel": ["biel", "gabs"], "carolina": ["carol"], "leticia": ["lele", "leti"],
    "amanda": ["mandy", "amandinha"], "ana": ["aninha", "nana"], "pedro": ["pedrinho", "pedrao"],
    "lucas": ["luquinhas", "luk"], "felipe": ["lipe", "fe"], "vitoria": ["vivi", "vick"],
    "patricia": ["paty", "pati"], "rodrigo": ["digo", "rod"], "eduardo": ["dudu", "edu"],
    "francisco": ["chico"], "jose": ["ze", "zezinho"], "antonio": ["tonho", "toni"],
    "francisca": ["chica", "fran"], "antonia": ["toninha"], "maria": ["mah", "mari"],
    "julia": ["juju", "ju"], "luiza": ["lu", "lulu"], "luiz": ["lu"], "luis": ["lu"],
    "camila": ["cami", "mila"], "jessica": ["jeh", "jess"], "bruna": ["bru", "bruninha"],
    "natalia": ["nati", "nat"], "cecilia": ["ceci"], "debora": ["debs", "debi"],
    "thiago": ["thi", "tiaguinho"], "matheus": ["matheuzinho", "teteu"],
    "gustavo": ["guga", "guto"],
    "vinicius": ["vini"], "marcelo": ["celo"], "daniel": ["dani"], "andre": ["dede"],
    "conceicao": ["ceicinha"], "simone": ["si", "mone"], "vanessa": ["van", "nessa"],
    "adriana": ["dri"], "luciana": ["lu", "luci"], "sandra": ["sandrinha"],
}  # fmt: skip
NO_NAME_HANDLES = (
    "vida.leve", "amo.cafe", "mundo.colorido", "sol_e_mar", "lookdodia", "pets.and.love",
    "cantinho.fit", "receitas.da.vovo", "viajante.sonhadora", "mae.de.pet", "fitness.diario",
    "arte.em.croche", "meu.jardim", "leitora.voraz", "cafe.com.livros", "modafeminina.br",
)  # fmt: skip
DECORATIONS = ("🌸", "✨", "💛", "🦋", "🌻", "☀️", "💕", "🐶", "🏖️", "🌿", "| moda", "🇧🇷")
COMMENTS = (
    "Amei! 😍", "Qual o preço?", "Tem no tamanho M?", "Chegou hoje, perfeito! 💛",
    "Quero muito!!", "Vocês entregam em {city}?", "Que lindo 😍😍", "Ainda tem?",
    "Comprei e amei, super recomendo", "Tem em outras cores?", "Preço por direct, por favor",
    "😍🔥", "Meu pedido atrasou 😕", "Maravilhoso!", "Quando volta ao estoque?",
)  # fmt: skip
CAPTIONS = (
    "Novidades da semana! ✨ Qual é a sua favorita?", "Coleção nova chegando 🛍️",
    "Promoção de fim de semana: 20% off em tudo! 🔥", "Look do dia com a nossa camiseta básica 💛",
    "Para deixar a casa mais aconchegante 🌿", "Últimas unidades! Corre que acaba 🏃‍♀️",
    "Bastidores da nossa loja em São Paulo 📦", "Dia das mães: presentes que elas vão amar 💐",
)  # fmt: skip
BUSINESS_REPLIES = (
    "Oi @{handle}! Te chamamos no direct 💛", "Obrigada, @{handle}! 🥰",
    "@{handle} temos sim! Chama a gente no direct", "@{handle} que bom que gostou! 💛",
    "@{handle} vamos verificar seu pedido, pode mandar o número no direct?",
)  # fmt: skip


def _ascii(text: str) -> str:
    return strip_accents(text).lower().replace(" ", "")


#: An email or a phone typed in a Direct message, as stg_instagram__message_contacts
#: finds them.
_MESSAGE_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_MESSAGE_PHONE = re.compile(r"(?:\+?55[ ]?)?\(?[1-9][0-9]\)?[ ]?9?[0-9]{4}[- ]?[0-9]{4}")


@dataclass
class InstagramAccount:
    """The professional account's Graph nodes, in API shape, and whose each one is."""

    account: dict[str, Any]
    users: list[dict[str, Any]]  # IGSID profiles: id, username, name
    media: list[dict[str, Any]]
    comments: list[dict[str, Any]]  # top-level and replies (``parent_id``), with ``media_id``
    conversations: list[dict[str, Any]]
    messages: list[dict[str, Any]]  # with ``conversation_id``
    user_person: dict[str, str] = field(default_factory=dict)
    handle_person: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "users": self.users,
            "media": self.media,
            "comments": self.comments,
            "conversations": self.conversations,
            "messages": self.messages,
            "user_person": self.user_person,
            "handle_person": self.handle_person,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstagramAccount:
        return cls(**data)

    def identity_records(self) -> list[IdentityRecord]:
        """The users (IGSID and handle) and each Direct message a user wrote with an email
        or a phone in it (tied to the sender's IGSID)."""
        records = []
        for user in self.users:
            person_id = self.user_person.get(user["id"])
            if person_id is None:
                continue
            handle = str(user.get("username") or "").strip().lstrip("@").lower()
            records.append(
                identity_record(
                    f"instagram:{user['id']}",
                    person_id,
                    (
                        platform_id("instagram_user", user["id"]),
                        platform_id("instagram", handle),
                    ),
                )
            )
        business = self.account.get("id")
        for message in self.messages:
            sender = (message.get("from") or {}).get("id")
            person_id = self.user_person.get(sender)
            text = message.get("message") or ""
            if person_id is None or sender == business:
                continue
            email = _MESSAGE_EMAIL.search(text)
            phone = _MESSAGE_PHONE.search(text)
            if email is None and phone is None:
                continue
            records.append(
                identity_record(
                    f"instagram:{message['id']}",
                    person_id,
                    (
                        email_id(email.group()) if email else None,
                        phone_id(phone.group()) if phone else None,
                        platform_id("instagram_user", sender),
                    ),
                )
            )
        return records

    def describe(self) -> str:
        return (
            f"{len(self.users)} Instagram users, {len(self.media)} posts, "
            f"{len(self.comments)} comments, {len(self.conversations)} conversations, "
            f"{len(self.messages)} messages"
        )


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set()

    def digits(self, prefix: str, length: int) -> str:
        while True:
            value = prefix + "".join(
                str(self.rng.randrange(10)) for _ in range(length - len(prefix))
            )
            if value not in self.taken:
                self.taken.add(value)
                return value


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _handle(rng: random.Random, person: Person, taken: set[str]) -> str:
    first = _ascii(person.first_name)
    last = _ascii(person.last_name.split()[-1])
    nick = rng.choice(NICKNAMES.get(first, [first]))
    digits = str(rng.randint(1, 99)) if rng.random() < 0.5 else f"{person.birth_date:%d%m}"
    while True:
        pattern = rng.choices(
            [
                "{n}.{l}_", "{f}_{l}{d}", "{f}{l}", "{n}.{l}", "{n}_{d}", "{f}.{c}",
                "{nn}", "{nn}{d}", "{n}{l[0]}", "doces.da.{n}", "ateliê.{f}",
            ],
            weights=[12, 12, 10, 10, 8, 6, 10, 8, 6, 4, 4],
        )[0]  # fmt: skip
        handle = pattern.format(
            f=first, l=last, n=nick, d=digits, c=_ascii(person.city)[:6],
            nn=rng.choice(NO_NAME_HANDLES),
        ).replace("ê", "e")  # fmt: skip
        if handle not in taken:
            taken.add(handle)
            return handle
        digits = str(rng.randint(100, 999))


def _display_name(rng: random.Random, person: Person, handle: str) -> str:
    nick = rng.choice(NICKNAMES.get(_ascii(person.first_name), [person.first_name]))
    kind = rng.choices(
        ["full", "nick_last", "nick", "emoji", "empty", "business"],
        weights=[25, 25, 20, 10, 10, 10],
    )[0]
    decoration = rng.choice(DECORATIONS)
    if kind == "full":
        return f"{person.first_name} {person.last_name.split()[-1]} {decoration}".strip()
    if kind == "nick_last":
        return f"{nick.capitalize()} {person.last_name.split()[-1]}"
    if kind == "nick":
        return f"{nick.capitalize()} {decoration}"
    if kind == "emoji":
        return decoration * rng.randint(1, 3)
    if kind == "business":
        return handle.replace(".", " ").replace("_", " ").title()
    return ""


def _first_orders(earlier: Mapping[str, Any]) -> dict[str, tuple[datetime, str]]:
    """Each person's first online order (time and name), from the Shopify slice if any."""
    store = earlier.get("shopify")
    if store is None:
        return {}
    first: dict[str, tuple[datetime, str]] = {}
    for order in store.orders:
        person = store.customer_person.get((order.get("customer") or {}).get("id"))
        if person is None:
            continue
        moment = datetime.fromisoformat(order["created_at"]).astimezone(UTC)
        if person not in first or moment < first[person][0]:
            first[person] = (moment, order.get("name", ""))
    return first


def build_instagram_account(
    rng: random.Random, people: list[Person], as_of: datetime, earlier: Mapping[str, Any]
) -> InstagramAccount:
    from omnicanal.channels.instagram import SANDBOX_IG_USER_ID, SANDBOX_PAGE_ID

    ids = _Ids(rng)
    business_id, page_id = SANDBOX_IG_USER_ID, SANDBOX_PAGE_ID
    start = as_of - timedelta(days=HISTORY_DAYS)
    account = {
        "id": business_id,
        "username": ACCOUNT_USERNAME,
        "name": ACCOUNT_NAME,
        "page_id": page_id,
        "biography": "Moda e casa com entrega para todo o Brasil 🇧🇷",
        "followers_count": 0,
    }
    business = {"id": business_id, "username": ACCOUNT_USERNAME}

    media: list[dict[str, Any]] = []
    for _ in range(max(10, len(people) // 8)):
        moment = start + timedelta(seconds=rng.uniform(0, HISTORY_DAYS * 86400 - 3600))
        media_id = ids.digits("179", 17)
        shortcode = _b64(media_id)[:11]
        kind = rng.choices(["IMAGE", "CAROUSEL_ALBUM", "VIDEO"], weights=[55, 25, 20])[0]
        media.append(
            {
                "id": media_id,
                "caption": rng.choice(CAPTIONS),
                "media_type": kind,
                "media_product_type": "REELS" if kind == "VIDEO" else "FEED",
                "media_url": f"https://scontent.cdninstagram.com/v/{shortcode}.jpg",
                "permalink": f"https://www.instagram.com/p/{shortcode}/",
                "shortcode": shortcode,
                "timestamp": graph_time(moment),
                "username": ACCOUNT_USERNAME,
                "owner": {"id": business_id},
                "like_count": 0,
                "comments_count": 0,
                "is_comment_enabled": True,
            }
        )
    media.sort(key=lambda m: m["timestamp"], reverse=True)  # newest first, as Graph lists

    first_orders = _first_orders(earlier)
    users: list[dict[str, Any]] = []
    comments: list[dict[str, Any]] = []
    conversations: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    user_person: dict[str, str] = {}
    handle_person: dict[str, str] = {}
    handles: set[str] = set()

    for person in people:
        if rng.random() >= ON_INSTAGRAM_SHARE:
            continue
        igsid = ids.digits(rng.choice("12345678"), 16)
        handle = _handle(rng, person, handles)
        users.append({"id": igsid, "username": handle, "name": _display_name(rng, person, handle)})
        user_person[igsid] = person.person_id
        handle_person[handle] = person.person_id
        fan = {"id": igsid, "username": handle}
        nick = rng.choice(NICKNAMES.get(_ascii(person.first_name), [person.first_name.lower()]))

        if rng.random() < COMMENTER_SHARE:
            for post in rng.sample(media, k=min(len(media), rng.randint(1, 4))):
                posted = datetime.fromisoformat(post["timestamp"].replace("+0000", "+00:00"))
                moment = min(
                    posted + timedelta(hours=rng.expovariate(1 / 30)), as_of - timedelta(minutes=5)
                )
                comment = _comment(
                    ids, post, fan, rng.choice(COMMENTS).format(city=person.city), moment
                )
                comments.append(comment)
                if rng.random() < BUSINESS_REPLY_SHARE:
                    reply_at = min(
                        moment + timedelta(hours=rng.uniform(0.2, 20)), as_of - timedelta(minutes=2)
                    )
                    text = rng.choice(BUSINESS_REPLIES).format(handle=handle)
                    comments.append(_comment(ids, post, business, text, reply_at, comment["id"]))
                    if rng.random() < FAN_FOLLOW_UP_SHARE:
                        again = min(
                            reply_at + timedelta(hours=rng.uniform(0.1, 5)),
                            as_of - timedelta(minutes=1),
                        )
                        comments.append(
                            _comment(ids, post, fan, "Obrigada!! 💛", again, comment["id"])
                        )

        if rng.random() < DM_SHARE:
            thread = _conversation(
                rng,
                ids,
                person,
                fan,
                business,
                nick,
                first_orders.get(person.person_id),
                as_of,
                start,
            )
            conversations.append(thread[0])
            messages.extend(thread[1])

    for post in media:
        post["comments_count"] = sum(1 for c in comments if c["media_id"] == post["id"])
        post["like_count"] = rng.randint(post["comments_count"], 40 + post["comments_count"] * 8)
    for comment in comments:
        comment["like_count"] = rng.choices([0, 1, 2, 5], weights=[60, 25, 10, 5])[0]
    account["followers_count"] = len(users) + rng.randint(200, 900)
    account["media_count"] = len(media)
    comments.sort(key=lambda c: c["timestamp"])
    conversations.sort(key=lambda c: c["updated_time"], reverse=True)
    return InstagramAccount(
        account=account,
        users=users,
        media=media,
        comments=comments,
        conversations=conversations,
        messages=messages,
        user_person=user_person,
        handle_person=handle_person,
    )


def _comment(
    ids: _Ids,
    post: dict[str, Any],
    author: dict[str, str],
    text: str,
    moment: datetime,
    parent_id: str | None = None,
) -> dict[str, Any]:
    comment = {
        "id": ids.digits("178", 17),
        "media_id": post["id"],
        "text": text,
        "timestamp": graph_time(moment),
        "username": author["username"],
        "from": dict(author),
        "like_count": 0,
        "hidden": False,
    }
    if parent_id:
        comment["parent_id"] = parent_id
    return comment


def _conversation(
    rng: random.Random,
    ids: _Ids,
    person: Person,
    fan: dict[str, str],
    business: dict[str, str],
    nick: str,
    first_order: tuple[datetime, str] | None,
    as_of: datetime,
    start: datetime,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One Direct thread: a question before buying or a follow-up after an order."""
    if (
        first_order is not None
        and rng.random() < 0.5
        and first_order[0] - timedelta(days=2) > start
    ):
        begin = first_order[0] - timedelta(hours=rng.uniform(2, 72))  # asked, then bought
        lines = [
            (fan, f"Oi! Vocês entregam em {person.city}?"),
            (business, f"Oi, {nick}! Entregamos sim, em até 5 dias úteis 💛"),
            (fan, "Perfeito, vou fazer o pedido pelo site"),
        ]
    elif first_order is not None:
        begin = first_order[0] + timedelta(days=rng.uniform(1, 20))
        lines = [
            (fan, f"Oi, fiz o pedido {first_order[1]} e ainda não chegou"),
            (business, "Oi! Pode nos passar o email ou telefone da compra?"),
        ]
    else:
        begin = start + timedelta(seconds=rng.uniform(0, (as_of - start).total_seconds() - 86400))
        lines = [
            (fan, "Oi, tem essa peça no tamanho G?"),
            (business, "Oi! Temos sim, quer que a gente reserve?"),
        ]
    if rng.random() < EMAIL_IN_DM_SHARE:
        lines.append((fan, f"meu email é {noisy_email(rng, person.email, dirty_share=0.5)}"))
    if rng.random() < PHONE_IN_DM_SHARE:
        formats = phone_formats(person.phone)
        kind = rng.choice(["national_masked", "no_ninth_digit", "digits", "international_spaced"])
        lines.append((fan, f"me chama no whats {formats[kind]}"))
    lines.append((business, "Obrigada! Qualquer coisa estamos por aqui 💛"))

    thread_id = _b64(f"ig_d:1:IGMessageThread:{business['id']}:{fan['id']}")
    messages = []
    moment = min(begin, as_of - timedelta(hours=len(lines)))
    for author, text in lines:
        moment = min(moment + timedelta(minutes=rng.uniform(1, 90)), as_of - timedelta(minutes=1))
        recipient = business if author is fan else fan
        messages.append(
            {
                "id": _b64(f"ig_item:1:IGMessageID:{ids.digits('3', 19)}"),
                "conversation_id": thread_id,
                "created_time": graph_time(moment),
                "from": dict(author),
                "to": {"data": [dict(recipient)]},
                "message": text,
            }
        )
    messages.reverse()  # newest first, as the messages edge lists them
    conversation = {
        "id": thread_id,
        "updated_time": messages[0]["created_time"],
        "participants": {"data": [dict(fan), dict(business)]},
    }
    return conversation, messages
