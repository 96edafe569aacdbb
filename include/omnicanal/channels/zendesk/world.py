"""Zendesk's slice of the world: the retailer's help desk, as the Zendesk Support API returns it.

Records follow the Support API's JSON shapes (``/api/v2``: users, tickets, ticket
metrics, satisfaction ratings, ticket comments). Timestamps are ISO 8601 in UTC to the
second (``2026-03-01T14:05:09Z``), ids are integers, as Zendesk writes them.

What happens at the desk, and why it matters to identity resolution:

- a share of the people open tickets: by email, through the web form, on WhatsApp or in
  an Instagram DM. Zendesk makes a user (role ``end-user``) of whoever writes in, keyed
  by what the channel gives: an email address, a WhatsApp number, an Instagram profile;
- so one person often has several users: one per channel, since Zendesk does not merge
  them unless an agent does. Some write from a second address (work, an old Hotmail);
  WhatsApp numbers come as the app holds them, 30 % without the ninth digit; names are
  what the email client, the form or the WhatsApp profile says ("ANA", "ana.silva",
  "Ana 🌸"); on some messaging tickets the agent asks for the email and adds it;
- Instagram DM users hold neither email nor phone: nothing links them;
- agents (``agent``/``admin``) answer: first replies within minutes on messaging, hours
  by email, in and out of business hours (09:00-18:00 Brasília, Monday to Friday, the
  ``business`` figures of the ticket metrics); some tickets are reopened; solved tickets
  close four days later;
- a survey is offered for some solved tickets; some requesters rate them ``good`` or
  ``bad``, with a comment now and then.

Ground truth: ``user_person`` (requester user id → person; agents are nobody's) and
``ticket_person`` (ticket id → person).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from omnicanal.sandbox.brazil import EMAIL_DOMAINS, FIRST_NAMES, SURNAMES
from omnicanal.sandbox.linkage import (
    IdentityRecord,
    email_id,
    identity_record,
    phone_id,
    platform_id,
)
from omnicanal.sandbox.noise import strip_accents, whatsapp_wa_id
from omnicanal.sandbox.people import Person

#: The account's subdomain: the records' ``url`` fields point there.
SUBDOMAIN = "omnicanal"
HISTORY_DAYS = 365
#: Share of the people who open at least one ticket.
REQUESTER_SHARE = 0.35
#: Where tickets come from (Zendesk's ``via.channel``), by weight.
CHANNEL_WEIGHTS = {"email": 35, "web": 20, "whatsapp": 30, "instagram_dm": 15}
MESSAGING = ("whatsapp", "instagram_dm")
#: Share of a person's email-like contacts made from a second address.
SECOND_EMAIL_SHARE = 0.2
#: Share of messaging users the agent completes with the person's email.
EMAIL_ADDED_SHARE = 0.25
REOPEN_SHARE = 0.08
SURVEY_OFFERED_SHARE = 0.6
SURVEY_ANSWERED_SHARE = 0.45
GOOD_SHARE = 0.78
CLOSE_AFTER = timedelta(days=4)
#: Nothing happens in the last minutes before ``as_of`` (the export hides the last minute).
QUIET = timedelta(minutes=10)

_BRT = timezone(timedelta(hours=-3), "America/Sao_Paulo")
_OPEN, _CLOSE = 9, 18  # business hours, local

SUBJECTS = {
    "pedido": ("Pedido atrasado", "Onde está meu pedido?", "Pedido não chegou"),
    "troca": ("Troca de tamanho", "Quero trocar um produto", "Troca na loja física"),
    "devolucao": ("Devolução e reembolso", "Produto com defeito", "Estorno não caiu"),
    "pagamento": ("Pagamento recusado", "Boleto não compensou", "Cobrança em dobro"),
    "duvida": ("Dúvida sobre tamanho", "Produto volta ao estoque?", "Cupom não funciona"),
}
OPENERS = {
    "pedido": "Olá, fiz um pedido há uma semana e ainda não recebi. Podem verificar?",
    "troca": "Boa tarde! Comprei uma peça que ficou pequena, como faço a troca?",
    "devolucao": "O produto veio com defeito e gostaria de devolver.",
    "pagamento": "Meu pagamento foi recusado mas o valor apareceu na fatura.",
    "duvida": "Oi! Queria tirar uma dúvida sobre um produto do site.",
}
REPLIES = (
    "Olá! Obrigado pelo contato. Já estou verificando para você.",
    "Oi, tudo bem? Pode me passar o número do pedido, por favor?",
    "Olá! Sinto muito pelo transtorno, vou resolver isso agora.",
)
SOLUTIONS = (
    "Pronto! O reembolso foi solicitado e cai em até 5 dias úteis.",
    "Troca liberada: é só levar a peça a qualquer loja ou usar a etiqueta enviada.",
    "O pedido foi localizado e sai para entrega amanhã.",
    "Cupom reativado, pode usar até o fim do mês.",
)
GOOD_COMMENTS = ("Atendimento rápido, obrigada!", "Resolveram tudo, nota 10", "Muito atenciosos")
BAD_COMMENTS = ("Demoraram muito para responder", "Problema não foi resolvido", "Péssimo")
BAD_REASONS = (
    (5, "The issue took too long to resolve"),
    (6, "The issue was not resolved"),
    (7, "The agent's knowledge is unsatisfactory"),
    (8, "The agent's attitude is unsatisfactory"),
)
NOTES = ("Cliente recorrente, verificar histórico no CRM.", "Pedido conferido no OMS.")


def zendesk_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC to the second, as Zendesk writes every timestamp."""
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def parse_timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def business_minutes(start: datetime, end: datetime) -> int:
    """Whole minutes of ``start``..``end`` inside business hours (Mon-Fri 09-18, Brasília)."""
    if end <= start:
        return 0
    total = 0.0
    day = start.astimezone(_BRT).replace(hour=0, minute=0, second=0, microsecond=0)
    last = end.astimezone(_BRT)
    while day <= last:
        if day.weekday() < 5:
            opens, closes = day.replace(hour=_OPEN), day.replace(hour=_CLOSE)
            low, high = max(opens, start), min(closes, end)
            if high > low:
                total += (high - low).total_seconds()
        day += timedelta(days=1)
    return int(total // 60)


def _minutes(start: datetime, end: datetime | None) -> dict[str, int | None]:
    """A metric's ``{calendar, business}`` minutes, or nulls when it is not fulfilled."""
    if end is None:
        return {"calendar": None, "business": None}
    return {
        "calendar": int((end - start).total_seconds() // 60),
        "business": business_minutes(start, end),
    }


@dataclass
class ZendeskDesk:
    """Zendesk's slice of the world: records in API shape plus whose each one is.

    ``comments`` maps a ticket id to its comments in order. The emulator serves (and
    mutates) the records in place.
    """

    users: list[dict[str, Any]]
    tickets: list[dict[str, Any]]
    ticket_metrics: list[dict[str, Any]]
    satisfaction_ratings: list[dict[str, Any]]
    comments: dict[int, list[dict[str, Any]]]
    user_person: dict[int, str]
    ticket_person: dict[int, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "tickets": self.tickets,
            "ticket_metrics": self.ticket_metrics,
            "satisfaction_ratings": self.satisfaction_ratings,
            "comments": {str(k): v for k, v in self.comments.items()},
            "user_person": {str(k): v for k, v in self.user_person.items()},
            "ticket_person": {str(k): v for k, v in self.ticket_person.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ZendeskDesk:
        return cls(
            users=data["users"],
            tickets=data["tickets"],
            ticket_metrics=data["ticket_metrics"],
            satisfaction_ratings=data["satisfaction_ratings"],
            comments={int(k): v for k, v in data["comments"].items()},
            user_person={int(k): v for k, v in data["user_person"].items()},
            ticket_person={int(k): v for k, v in data["ticket_person"].items()},
        )

    def identity_records(self) -> list[IdentityRecord]:
        """The end users with an email or a phone (an Instagram requester has neither)."""
        records = []
        for user in self.users:
            person_id = self.user_person.get(user["id"])
            if person_id is None or user.get("role") != "end-user":
                continue
            email, phone = email_id(user.get("email")), phone_id(user.get("phone"))
            if email is None and phone is None:
                continue
            records.append(
                identity_record(
                    f"zendesk:{user['id']}",
                    person_id,
                    (email, phone, platform_id("zendesk_user", user["id"])),
                )
            )
        return records

    def describe(self) -> str:
        requesters = sum(1 for u in self.users if u["role"] == "end-user")
        received = sum(1 for r in self.satisfaction_ratings if r["score"] in ("good", "bad"))
        return (
            f"{len(self.tickets)} Zendesk tickets from {requesters} requesters, "
            f"{received} satisfaction ratings"
        )


# -- drawing --------------------------------------------------------------------------


def _lognormal_minutes(rng: random.Random, median: float, sigma: float = 0.9) -> float:
    return max(1.0, rng.lognormvariate(math.log(median), sigma))


class _Ids:
    """Increasing ids, gaps of up to ``step`` (other accounts share the id space)."""

    def __init__(self, rng: random.Random, start: int, step: int = 97) -> None:
        self._rng, self._next, self._step = rng, start, step

    def take(self) -> int:
        self._next += self._rng.randint(1, self._step)
        return self._next


def _url(kind: str, record_id: int) -> str:
    return f"https://{SUBDOMAIN}.zendesk.com/api/v2/{kind}/{record_id}.json"


def _user(
    user_id: int,
    name: str,
    *,
    email: str | None,
    phone: str | None,
    created: datetime,
    role: str = "end-user",
) -> dict[str, Any]:
    staff = role != "end-user"
    return {
        "id": user_id,
        "url": _url("users", user_id),
        "name": name,
        "email": email,
        "phone": phone,
        "shared_phone_number": False if phone else None,
        "role": role,
        "role_type": None,
        "custom_role_id": None,
        "verified": email is not None,
        "active": True,
        "suspended": False,
        "locale": "pt-BR",
        "locale_id": 19,
        "time_zone": "Brasilia",
        "iana_time_zone": "America/Sao_Paulo",
        "organization_id": None,
        "default_group_id": 360001 if staff else None,
        "external_id": None,
        "alias": None,
        "details": "",
        "notes": "",
        "tags": [],
        "photo": None,
        "signature": None,
        "moderator": staff,
        "only_private_comments": False,
        "restricted_agent": not staff,
        "ticket_restriction": None if staff else "requested",
        "two_factor_auth_enabled": None,
        "shared": False,
        "shared_agent": False,
        "report_csv": staff,
        "user_fields": {},
        "last_login_at": zendesk_timestamp(created + timedelta(days=1)) if staff else None,
        "created_at": zendesk_timestamp(created),
        "updated_at": zendesk_timestamp(created),
    }


def _agents(rng: random.Random, ids: _Ids, as_of: datetime) -> list[dict[str, Any]]:
    from omnicanal.channels.zendesk import SANDBOX_EMAIL

    created = as_of - timedelta(days=HISTORY_DAYS + 120)
    agents = [
        _user(
            ids.take(),
            "Integração Omnicanal",
            email=SANDBOX_EMAIL,
            phone=None,
            created=created,
            role="admin",
        )
    ]
    for _ in range(6):
        first, last = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
        local = f"{strip_accents(first).lower()}.{strip_accents(last).lower()}"
        agents.append(
            _user(
                ids.take(),
                f"{first} {last}",
                email=f"{local}@omnicanal.example",
                phone=None,
                created=created + timedelta(days=rng.randint(0, 90)),
                role="agent",
            )
        )
    return agents


def _second_email(rng: random.Random, person: Person) -> str:
    given = strip_accents(person.first_name).lower()
    family = strip_accents(person.last_name.split()[-1]).lower()
    domains = [d for d, _ in EMAIL_DOMAINS if not person.email.endswith("@" + d)]
    local = rng.choice(
        [f"{given}{family}", f"{given}.{family}.{rng.randint(1, 99)}", f"{given[0]}{family}"]
    )
    return f"{local}@{rng.choice(domains)}"


def _email_name(rng: random.Random, person: Person, address: str) -> str:
    """The display name an email client or the web form gives."""
    roll = rng.random()
    if roll < 0.45:
        return person.full_name
    if roll < 0.6:
        return person.first_name
    if roll < 0.72:
        return person.full_name.upper()
    if roll < 0.84:
        return strip_accents(person.full_name).lower()
    return address.split("@")[0]  # no name given: Zendesk shows the address's local part


def _whatsapp_name(rng: random.Random, person: Person) -> str:
    roll = rng.random()
    if roll < 0.35:
        return person.first_name
    if roll < 0.55:
        return f"{person.first_name} {person.last_name.split()[0][0]}."
    if roll < 0.7:
        return f"{person.first_name} {rng.choice(['🌸', '✨', '💙', '🙏'])}"
    return person.full_name


def _instagram_name(rng: random.Random, person: Person) -> str:
    given = strip_accents(person.first_name).lower()
    family = strip_accents(person.last_name.split()[-1]).lower()
    return rng.choice(
        [f"{given}.{family}", f"{given}_{family}{rng.randint(1, 99)}", f"{given}{family}"]
    )


@dataclass
class _Contact:
    """One way a person reaches the desk, which Zendesk keys one user on."""

    kind: str  # email | phone | instagram
    value: str
    name: str
    user: dict[str, Any] = field(default_factory=dict)


def _contact(rng: random.Random, person: Person, channel: str, contacts: dict, second: str | None):
    if channel in ("email", "web"):
        address = second if second and rng.random() < 0.5 else person.email
        key = ("email", address)
        if key not in contacts:
            contacts[key] = _Contact("email", address, _email_name(rng, person, address))
    elif channel == "whatsapp":
        key = ("phone", "+" + whatsapp_wa_id(rng, person.phone))
        if not [k for k in contacts if k[0] == "phone"]:
            contacts[key] = _Contact("phone", key[1], _whatsapp_name(rng, person))
        key = next(k for k in contacts if k[0] == "phone")
    else:
        key = ("instagram", "")
        if key not in contacts:
            contacts[key] = _Contact("instagram", "", _instagram_name(rng, person))
    return contacts[key]


def _ticket_moment(rng: random.Random, as_of: datetime) -> datetime:
    while True:
        if rng.random() < 0.1:
            moment = as_of - timedelta(minutes=rng.uniform(30, 4 * 1440))
        else:
            moment = as_of - timedelta(days=rng.uniform(4, HISTORY_DAYS))
        local = moment.astimezone(_BRT)
        # people write at any hour, mostly in the day
        if 7 <= local.hour <= 23 or rng.random() < 0.15:
            return moment.replace(microsecond=0)


def build_zendesk_desk(rng: random.Random, people: list[Person], as_of: datetime) -> ZendeskDesk:
    """Draw the desk: agents, requester users, tickets, their metrics, comments and ratings."""
    user_ids, ticket_ids = _Ids(rng, 381_000_000_000), _Ids(rng, 1000, 1)
    comment_ids, metric_ids = _Ids(rng, 19_000_000_000_000), _Ids(rng, 26_000_000_000)
    rating_ids = _Ids(rng, 41_000_000_000)
    agents = _agents(rng, user_ids, as_of)
    staff = [a for a in agents if a["role"] == "agent"]
    horizon = as_of - QUIET

    # who writes in, how and when (ids follow creation order, as Zendesk's do)
    drafts: list[tuple[datetime, Person, str, _Contact]] = []
    for person in people:
        if rng.random() >= REQUESTER_SHARE:
            continue
        contacts: dict[tuple[str, str], _Contact] = {}
        second = _second_email(rng, person) if rng.random() < SECOND_EMAIL_SHARE else None
        for _ in range(rng.choices([1, 2, 3], weights=[65, 25, 10])[0]):
            channel = rng.choices(list(CHANNEL_WEIGHTS), weights=list(CHANNEL_WEIGHTS.values()))[0]
            contact = _contact(rng, person, channel, contacts, second)
            drafts.append((_ticket_moment(rng, as_of), person, channel, contact))
    drafts.sort(key=lambda d: (d[0], d[1].person_id))

    users: list[dict[str, Any]] = list(agents)
    tickets, metrics, ratings = [], [], []
    comments: dict[int, list[dict[str, Any]]] = {}
    user_person: dict[int, str] = {}
    ticket_person: dict[int, str] = {}

    for created, person, channel, contact in drafts:
        if not contact.user:
            phone = contact.value if contact.kind == "phone" else None
            email = contact.value if contact.kind == "email" else None
            if contact.kind == "email" and channel == "web" and rng.random() < 0.3:
                phone = person.phone  # the form's optional phone field
            contact.user = _user(
                user_ids.take(),
                contact.name,
                email=email,
                phone=phone,
                created=created - timedelta(seconds=rng.randint(1, 20)),
            )
            users.append(contact.user)
            user_person[contact.user["id"]] = person.person_id
        user = contact.user
        agent = rng.choice(staff)
        ticket_id = ticket_ids.take()
        topic = rng.choice(list(SUBJECTS))
        subject = rng.choice(SUBJECTS[topic])
        messaging = channel in MESSAGING

        # the timeline: first reply, resolution(s), closing
        reply = created + timedelta(minutes=_lognormal_minutes(rng, 12 if messaging else 190))
        if (as_of - created) < timedelta(days=1) and rng.random() < 0.3:
            reply = horizon + timedelta(days=1)  # nobody answered yet
        first_solved = reply + timedelta(
            minutes=_lognormal_minutes(rng, 150 if messaging else 1300)
        )
        reopened = rng.random() < REOPEN_SHARE
        full_solved = (
            first_solved + timedelta(minutes=_lognormal_minutes(rng, 2000))
            if reopened
            else first_solved
        )
        reply_at = reply if reply <= horizon else None
        first_at = first_solved if first_solved <= horizon else None
        solved_at = full_solved if full_solved <= horizon else None
        if reopened and first_at and not solved_at:
            first_at = None  # reopened and not solved again yet: keep it simple, still open
        closed_at = (
            solved_at + CLOSE_AFTER if solved_at and solved_at + CLOSE_AFTER <= horizon else None
        )
        status = "closed" if closed_at else "solved" if solved_at else "open" if reply_at else "new"
        if status == "open" and rng.random() < 0.3:
            status = "pending"

        # comments: the requester's opening, the agent's reply, a note, the solution
        thread: list[dict[str, Any]] = []

        def comment(
            author: int,
            body: str,
            at: datetime,
            via: str,
            public: bool = True,
            thread: list[dict[str, Any]] = thread,
        ) -> None:
            thread.append(
                {
                    "id": comment_ids.take(),
                    "type": "Comment",
                    "author_id": author,
                    "body": body,
                    "html_body": f'<div class="zd-comment"><p>{body}</p></div>',
                    "plain_body": body,
                    "public": public,
                    "attachments": [],
                    "audit_id": comment_ids.take(),
                    "via": {"channel": via, "source": {"from": {}, "to": {}, "rel": None}},
                    "metadata": {
                        "system": {"client": "Mozilla/5.0", "location": "São Paulo, SP, Brazil"},
                        "custom": {},
                    },
                    "created_at": zendesk_timestamp(at),
                }
            )

        comment(user["id"], OPENERS[topic], created, channel)
        if channel == "email":
            thread[0]["via"]["source"] = {
                "from": {"address": user["email"], "name": user["name"]},
                "to": {"address": "suporte@omnicanal.example", "name": "Omnicanal Suporte"},
                "rel": None,
            }
        agent_via = channel if messaging else rng.choices(["web", "api"], weights=[9, 1])[0]
        if reply_at:
            comment(agent["id"], rng.choice(REPLIES), reply_at, agent_via)
            if rng.random() < 0.15:
                comment(
                    agent["id"], rng.choice(NOTES), reply_at + timedelta(minutes=2), "web", False
                )
            if rng.random() < 0.5 and (first_at or horizon) > reply_at + timedelta(minutes=5):
                follow = reply_at + ((first_at or horizon) - reply_at) * rng.uniform(0.1, 0.6)
                comment(user["id"], "Obrigado, fico no aguardo.", follow, channel)
        if first_at:
            comment(agent["id"], rng.choice(SOLUTIONS), first_at, agent_via)
        if reopened and solved_at:
            comment(
                user["id"],
                "Ainda não resolveu, podem ver de novo?",
                first_at + (solved_at - first_at) / 3,
                channel,
            )
            comment(agent["id"], rng.choice(SOLUTIONS), solved_at, agent_via)
        if messaging and reply_at and not user["email"] and rng.random() < EMAIL_ADDED_SHARE:
            user["email"] = person.email  # the agent asked for it and filled it in
            user["updated_at"] = zendesk_timestamp(reply_at + timedelta(minutes=3))

        # the survey
        rating: dict[str, Any] | None = None
        if solved_at and rng.random() < SURVEY_OFFERED_SHARE:
            offered = solved_at + timedelta(hours=1)
            if offered <= horizon:
                rating = {
                    "id": rating_ids.take(),
                    "url": "",
                    "assignee_id": agent["id"],
                    "group_id": 360001,
                    "requester_id": user["id"],
                    "ticket_id": ticket_id,
                    "score": "offered",
                    "comment": None,
                    "reason": None,
                    "reason_id": None,
                    "reason_code": None,
                    "created_at": zendesk_timestamp(offered),
                    "updated_at": zendesk_timestamp(offered),
                }
                rating["url"] = _url("satisfaction_ratings", rating["id"])
                answered = offered + timedelta(minutes=rng.uniform(5, 2 * 1440))
                if rng.random() < SURVEY_ANSWERED_SHARE and answered <= horizon:
                    good = rng.random() < GOOD_SHARE
                    rating["score"] = "good" if good else "bad"
                    if rng.random() < (0.4 if good else 0.65):
                        rating["comment"] = rng.choice(GOOD_COMMENTS if good else BAD_COMMENTS)
                    if not good:
                        code, reason = rng.choice(BAD_REASONS)
                        rating["reason_code"], rating["reason"] = code, reason
                    rating["updated_at"] = zendesk_timestamp(answered)
                ratings.append(rating)

        events = [created, *(parse_timestamp(c["created_at"]) for c in thread)]
        if closed_at:
            events.append(closed_at)
        if rating:
            events.append(parse_timestamp(rating["updated_at"]))
        updated = max(events)
        ticket = {
            "id": ticket_id,
            "url": _url("tickets", ticket_id),
            "external_id": None,
            "via": thread[0]["via"],
            "created_at": zendesk_timestamp(created),
            "updated_at": zendesk_timestamp(updated),
            "generated_timestamp": int(updated.timestamp()),
            "type": rng.choice(["question", "incident", "problem", "task", None]),
            "subject": subject,
            "raw_subject": subject,
            "description": OPENERS[topic],
            "priority": rng.choice(["low", "normal", "normal", "high", None]),
            "status": status,
            "recipient": "suporte@omnicanal.example" if channel == "email" else None,
            "requester_id": user["id"],
            "submitter_id": user["id"],
            "assignee_id": agent["id"] if reply_at else None,
            "organization_id": None,
            "group_id": 360001,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "problem_id": None,
            "has_incidents": False,
            "is_public": True,
            "due_at": None,
            "tags": [topic, channel],
            "custom_fields": [],
            "fields": [],
            "satisfaction_rating": (
                {"id": rating["id"], "score": rating["score"], "comment": rating["comment"]}
                if rating
                else {"score": "unoffered"}
            ),
            "sharing_agreement_ids": [],
            "followup_ids": [],
            "ticket_form_id": 360000,
            "brand_id": 360002,
            "allow_channelback": messaging,
            "allow_attachments": True,
            "from_messaging_channel": messaging,
            "custom_status_id": None,
        }
        tickets.append(ticket)
        comments[ticket_id] = thread
        ticket_person[ticket_id] = person.person_id
        user["updated_at"] = max(user["updated_at"], zendesk_timestamp(created))

        public_agent = [c for c in thread if c["author_id"] != user["id"] and c["public"]]
        requester_last = max(
            parse_timestamp(c["created_at"]) for c in thread if c["author_id"] == user["id"]
        )
        metric_updated = max(e for e in events if e != closed_at) if closed_at else updated
        metric_id = metric_ids.take()
        metrics.append(
            {
                "id": metric_id,
                "url": _url("ticket_metrics", metric_id),
                "ticket_id": ticket_id,
                "group_stations": 1,
                "assignee_stations": 1 if reply_at else 0,
                "reopens": 1 if reopened and solved_at else 0,
                "replies": len(public_agent),
                "assignee_updated_at": zendesk_timestamp(
                    max(parse_timestamp(c["created_at"]) for c in public_agent)
                )
                if public_agent
                else None,
                "requester_updated_at": zendesk_timestamp(requester_last),
                "status_updated_at": zendesk_timestamp(
                    closed_at or solved_at or reply_at or created
                ),
                "initially_assigned_at": zendesk_timestamp(reply_at) if reply_at else None,
                "assigned_at": zendesk_timestamp(reply_at) if reply_at else None,
                "solved_at": zendesk_timestamp(solved_at) if solved_at else None,
                "latest_comment_added_at": thread[-1]["created_at"],
                "custom_status_updated_at": zendesk_timestamp(
                    closed_at or solved_at or reply_at or created
                ),
                "reply_time_in_minutes": _minutes(created, reply_at),
                "reply_time_in_seconds": {
                    "calendar": int((reply_at - created).total_seconds()) if reply_at else None
                },
                "first_resolution_time_in_minutes": _minutes(created, first_at),
                "full_resolution_time_in_minutes": _minutes(created, solved_at),
                "agent_wait_time_in_minutes": _minutes(created, created if reply_at else None),
                "requester_wait_time_in_minutes": _minutes(created, solved_at),
                "on_hold_time_in_minutes": {"calendar": 0, "business": 0},
                "created_at": zendesk_timestamp(created),
                "updated_at": zendesk_timestamp(metric_updated),
            }
        )

    for user in users:
        user["updated_at"] = max(user["updated_at"], user["created_at"])
    return ZendeskDesk(
        users=users,
        tickets=tickets,
        ticket_metrics=metrics,
        satisfaction_ratings=ratings,
        comments=comments,
        user_person=user_person,
        ticket_person=ticket_person,
    )
