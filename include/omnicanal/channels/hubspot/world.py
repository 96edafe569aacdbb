"""HubSpot's slice of the world: the retailer's sales team and its CRM, in the CRM v3 API shape.

The retailer's sales staff (corporate gifts, uniforms, wholesale for small shops, and
service for big spenders) work a share of the world's people in HubSpot. Records follow
the CRM v3 objects' JSON shape, ``{"id", "properties", "createdAt", "updatedAt",
"archived"}``, with every property a string (or null) as HubSpot returns them, so the
real tap and HubSpot's own client read them unchanged. Ids are numeric strings, one
sequence per object type, growing with creation.

What staff type into a CRM, and why it matters to identity resolution:

- the email as heard on the phone or copied from a card: often right, sometimes in
  capitals or with stray spaces, sometimes with a typo (``gmial.com``, a dropped letter),
  sometimes the person's **work** email as the main one with the personal address kept
  in ``hs_additional_emails`` (HubSpot's semicolon-separated list of secondary emails),
  or the personal one first and the work one second; some contacts have no email at all;
- phones in every local habit (masks, the old eight digits without the ninth, +55 or
  trunk prefix), in ``phone`` or ``mobilephone``;
- a lead met at a fair may be only a first name and a phone;
- two reps now and then create the same person twice (a different email spelling or
  only the phone the second time).

Beside contacts: companies (the employers of contacts with a work email, and small shop
customers), deals (some closed won, with an amount), tickets (support cases with their
pipeline stage and source) and engagements (calls, emails, notes and meetings logged by
staff), tied together by associations ``[from_type, from_id, to_type, to_id]``.

Consent: HubSpot's ``hs_email_optout`` ("Unsubscribed from all email") is ``"true"`` on
the contacts of some people who accept no email marketing (they unsubscribed from all of
the retailer's HubSpot email), ``"false"`` on every other contact; HubSpot keeps no time
of its own for it, so the contact's ``lastmodifieddate`` is when it last changed. Who
opted out is derived from a hash of the person's CPF (:func:`opted_out_of_email`), not
drawn from the portal's random stream, so it changed no other figure of any seed.

Ground truth: ``contact_person`` maps each contact id to its ``person_id`` (duplicates
included); every contact has an email or a phone.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from omnicanal.sandbox.brazil import SURNAMES
from omnicanal.sandbox.linkage import (
    IdentityRecord,
    email_id,
    identity_record,
    phone_id,
    platform_id,
)
from omnicanal.sandbox.noise import noisy_email, noisy_name_case, phone_formats, strip_accents
from omnicanal.sandbox.people import Person

HISTORY_DAYS = 730
#: Share of the world's people the sales team has worked.
CRM_SHARE = 0.35
DUPLICATE_SHARE = 0.05
#: How the rep recorded the email (the rest of the contact is drawn apart).
EMAIL_MODES = {
    "personal": 48,
    "typo": 10,
    "work_first": 9,
    "personal_then_work": 8,
    "none": 25,
}
FIRST_NAME_ONLY_SHARE = 0.1
DEAL_SHARE = 0.3
#: Of the people who accept no email marketing, the share whose contacts are opted out of
#: all email (``hs_email_optout``).
EMAIL_OPTOUT_SHARE = 0.5
TICKET_SHARE = 0.25

#: Object types of the CRM v3 API, in the order the tap reads them.
OBJECT_TYPES = ("contacts", "companies", "deals", "tickets", "calls", "emails", "notes", "meetings")
ENGAGEMENT_TYPES = ("calls", "emails", "notes", "meetings")

OWNERS = (
    ("71234501", "Renata", "Moura"),
    ("71234502", "Diego", "Pacheco"),
    ("71234503", "Priscila", "Teles"),
    ("71234504", "Henrique", "Bastos"),
    ("71234505", "Larissa", "Quintela"),
)

_TYPO_DOMAINS = {
    "gmail.com": ("gmial.com", "gmail.con", "gmal.com", "gmail.com.br"),
    "hotmail.com": ("hotmial.com", "hotmail.con", "hotmal.com"),
    "outlook.com": ("outlok.com", "outlook.con"),
    "yahoo.com.br": ("yaho.com.br", "yahoo.com"),
}
_COMPANY_KINDS = (
    ("Mercado", "RETAIL"),
    ("Boutique", "APPAREL_FASHION"),
    ("Construtora", "CONSTRUCTION"),
    ("Clínica", "HOSPITAL_HEALTH_CARE"),
    ("Escola", "EDUCATION_MANAGEMENT"),
    ("Transportes", "TRANSPORTATION_TRUCKING_RAILROAD"),
    ("Tecnologia", "INFORMATION_TECHNOLOGY_AND_SERVICES"),
    ("Restaurante", "RESTAURANTS"),
)
_DEAL_STAGES = (
    ("appointmentscheduled", 15),
    ("qualifiedtobuy", 12),
    ("presentationscheduled", 8),
    ("decisionmakerboughtin", 6),
    ("contractsent", 6),
    ("closedwon", 35),
    ("closedlost", 18),
)
_DEAL_NAMES = (
    "Uniformes {}",
    "Brindes de fim de ano - {}",
    "Atacado {}",
    "Kit boas-vindas {}",
    "Compra corporativa {}",
)
_TICKET_SUBJECTS = (
    ("Pedido não chegou", "SHIPPING_ISSUE"),
    ("Troca de tamanho", "PRODUCT_ISSUE"),
    ("Cobrança em duplicidade", "BILLING_ISSUE"),
    ("Produto com defeito", "PRODUCT_ISSUE"),
    ("Dúvida sobre prazo de entrega", "GENERAL_INQUIRY"),
    ("Cancelamento de pedido", "BILLING_ISSUE"),
)
#: Ticket pipeline "0" (Support Pipeline): New, Waiting on contact, Waiting on us, Closed.
_TICKET_STAGES = (("1", 10), ("2", 10), ("3", 10), ("4", 70))
_TICKET_SOURCES = ("EMAIL", "CHAT", "PHONE", "FORM")
_CALL_TITLES = ("Retorno sobre orçamento", "Ligação de boas-vindas", "Follow-up do pedido")
_NOTE_BODIES = (
    "Cliente prefere contato por WhatsApp.",
    "Pediu catálogo atualizado.",
    "Aguardando aprovação do financeiro.",
    "Já compra na loja física.",
)


def hubspot_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as HubSpot writes dates."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def parse_timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


#: The property each object type keeps its last modification in (contacts have their own).
def last_modified_property(object_type: str) -> str:
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


@dataclass
class HubSpotPortal:
    """HubSpot's slice of the world: records per object type, associations, the truth.

    ``objects`` maps an object type (``contacts``, ``companies``, ``deals``, ``tickets``,
    ``calls``, ``emails``, ``notes``, ``meetings``) to its records in API shape;
    ``associations`` lists ``[from_type, from_id, to_type, to_id]`` once per pair (the
    emulator serves both directions); ``contact_person`` maps each contact id to its
    ``person_id``. The emulator serves (and mutates) the records in place.
    """

    objects: dict[str, list[dict[str, Any]]]
    associations: list[list[str]]
    contact_person: dict[str, str]
    owners: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "associations": self.associations,
            "contact_person": self.contact_person,
            "owners": self.owners,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HubSpotPortal:
        return cls(
            objects={k: list(v) for k, v in data["objects"].items()},
            associations=[list(a) for a in data["associations"]],
            contact_person=dict(data["contact_person"]),
            owners=list(data.get("owners", [])),
        )

    def identity_records(self) -> list[IdentityRecord]:
        """The contacts not archived: email, the secondary emails a rep kept, mobile (else
        the landline), the contact id. Opting out of email states no consent."""
        records = []
        for contact in self.objects.get("contacts", []):
            person_id = self.contact_person.get(contact["id"])
            if person_id is None or contact.get("archived"):
                continue
            properties = contact.get("properties") or {}
            extra = (properties.get("hs_additional_emails") or "").split(";")
            records.append(
                identity_record(
                    f"hubspot:{contact['id']}",
                    person_id,
                    (
                        email_id(properties.get("email")),
                        *(email_id(email) for email in extra),
                        phone_id(
                            (properties.get("mobilephone") or "").strip() or properties.get("phone")
                        ),
                        platform_id("hubspot_contact", contact["id"]),
                    ),
                )
            )
        return records

    def describe(self) -> str:
        counts = ", ".join(f"{len(self.objects[t])} {t}" for t in OBJECT_TYPES)
        return f"HubSpot CRM: {counts}, {len(self.associations)} associations"


class _Builder:
    def __init__(self, rng: random.Random, as_of: datetime) -> None:
        self.rng = rng
        self.as_of = as_of
        self.objects: dict[str, list[dict[str, Any]]] = {t: [] for t in OBJECT_TYPES}
        self.associations: list[list[str]] = []
        # one id sequence per object type, as a portal has
        self._next_id = {t: rng.randint(10, 99) * 1000 + 1 for t in OBJECT_TYPES}
        self._next_id["contacts"] = rng.randint(100, 999) * 100 + 1

    def moment(self, after: datetime | None = None, max_days: float = HISTORY_DAYS) -> datetime:
        """A moment before as_of: anywhere in the history, or up to max_days after ``after``."""
        start = after or self.as_of - timedelta(days=HISTORY_DAYS)
        span = min((self.as_of - start).total_seconds(), max_days * 86400)
        return start + timedelta(seconds=self.rng.uniform(0, max(span, 1)))

    def record(
        self, object_type: str, created: datetime, properties: dict[str, Any]
    ) -> dict[str, Any]:
        object_id = str(self._next_id[object_type])
        self._next_id[object_type] += self.rng.randint(1, 3)
        modified = created if self.rng.random() < 0.4 else self.moment(created, 120)
        stamp, changed = hubspot_timestamp(created), hubspot_timestamp(modified)
        props = {k: (None if v is None else str(v)) for k, v in properties.items()}
        props |= {
            "createdate": stamp,
            last_modified_property(object_type): changed,
            "hs_object_id": object_id,
        }
        if object_type != "contacts":
            props.setdefault("hs_createdate", stamp)
        record = {
            "id": object_id,
            "properties": props,
            "createdAt": stamp,
            "updatedAt": changed,
            "archived": False,
        }
        self.objects[object_type].append(record)
        return record

    def associate(self, left: dict[str, Any], left_type: str, right: dict, right_type: str):
        self.associations.append([left_type, left["id"], right_type, right["id"]])


def opted_out_of_email(person: Person) -> bool:
    """Whether the person unsubscribed from all of the retailer's HubSpot email: only
    people who accept no email marketing (so no consent elsewhere contradicts it), from a
    hash of their CPF."""
    if person.accepts_email_marketing:
        return False
    digest = hashlib.sha256(f"hubspot-email-optout:{person.cpf}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < EMAIL_OPTOUT_SHARE


def _typo_email(rng: random.Random, email: str, taken: set[str]) -> str:
    local, _, domain = email.partition("@")
    options = _TYPO_DOMAINS.get(domain)
    if options and rng.random() < 0.6:
        typed = f"{local}@{rng.choice(options)}"
    elif len(local) > 4:
        i = rng.randrange(1, len(local) - 1)
        typed = f"{local[:i]}{local[i + 1 :]}@{domain}"
    else:
        typed = f"{local}@{domain}.br"
    if typed in taken:  # a slip must not land on someone else's address
        return email
    taken.add(typed)
    return typed


def _phone(rng: random.Random, e164: str) -> str:
    formats = phone_formats(e164)
    kind = rng.choices(
        ["e164", "national_masked", "no_ninth_digit_masked", "international_spaced", "digits",
         "trunk_prefix", "no_ninth_digit"],
        weights=[25, 30, 10, 12, 10, 5, 8],
    )[0]  # fmt: skip
    return formats[kind]


def _companies(builder: _Builder, rng: random.Random, count: int) -> list[dict[str, Any]]:
    companies, domains = [], set()
    for _ in range(count):
        kind, industry = rng.choice(_COMPANY_KINDS)
        family = rng.choice(SURNAMES)
        name = f"{kind} {family}"
        slug = strip_accents(f"{kind}{family}").lower()
        domain = f"{slug}.com.br"
        while domain in domains:
            domain = f"{slug}{rng.randint(2, 99)}.com.br"
        domains.add(domain)
        created = builder.moment()
        companies.append(
            builder.record(
                "companies",
                created,
                {
                    "name": name if rng.random() < 0.8 else f"{name.upper()} LTDA",
                    "domain": domain,
                    "industry": industry,
                    "city": None,
                    "state": None,
                    "country": "Brazil",
                    "phone": None,
                    "lifecyclestage": rng.choice(["lead", "opportunity", "customer"]),
                    "hubspot_owner_id": rng.choice(OWNERS)[0],
                },
            )
        )
    return companies


def _work_email(person: Person, company: dict[str, Any], taken: set[str]) -> str:
    given = strip_accents(person.first_name).lower()
    family = strip_accents(person.last_name.split()[-1]).lower()
    domain = company["properties"]["domain"]
    email = f"{given}.{family}@{domain}"
    n = 2
    while email in taken:
        email = f"{given}.{family}{n}@{domain}"
        n += 1
    taken.add(email)
    return email


def _contact(
    builder: _Builder,
    rng: random.Random,
    person: Person,
    company: dict[str, Any] | None,
    taken: set[str],
    *,
    duplicate: bool = False,
) -> dict[str, Any]:
    mode = rng.choices(list(EMAIL_MODES), weights=list(EMAIL_MODES.values()))[0]
    if mode in ("work_first", "personal_then_work") and company is None:
        mode = "personal"
    if duplicate:
        mode = rng.choice(["personal", "none"])
    email: str | None = None
    additional: list[str] = []
    if mode == "personal":
        email = noisy_email(rng, person.email, dirty_share=0.35)
    elif mode == "typo":
        email = _typo_email(rng, person.email, taken)
    elif mode == "work_first":
        email = _work_email(person, company, taken)  # type: ignore[arg-type]
        additional.append(noisy_email(rng, person.email, dirty_share=0.2))
    elif mode == "personal_then_work":
        email = noisy_email(rng, person.email, dirty_share=0.2)
        additional.append(_work_email(person, company, taken))  # type: ignore[arg-type]
    phone = _phone(rng, person.phone) if (email is None or rng.random() < 0.6) else None
    first_only = rng.random() < FIRST_NAME_ONLY_SHARE and phone is not None
    first = person.first_name if rng.random() < 0.7 else noisy_name_case(rng, person.first_name)
    last = None if first_only else person.last_name
    if last and rng.random() < 0.15:
        last = noisy_name_case(rng, last)
    phone_field = "mobilephone" if rng.random() < 0.6 else "phone"
    created = builder.moment()
    properties: dict[str, Any] = {
        "email": email,
        "hs_additional_emails": ";".join(additional) or None,
        "firstname": first,
        "lastname": last,
        "phone": phone if phone_field == "phone" else None,
        "mobilephone": phone if phone_field == "mobilephone" else None,
        "company": company["properties"]["name"] if company and rng.random() < 0.7 else None,
        "jobtitle": rng.choice([None, None, "Compras", "Gerente", "Sócia", "Diretor"])
        if company
        else None,
        "city": person.city if rng.random() < 0.5 else None,
        "state": person.state if rng.random() < 0.3 else None,
        "zip": person.postcode if rng.random() < 0.2 else None,
        "address": None,
        "lifecyclestage": rng.choice(
            [
                "subscriber",
                "lead",
                "marketingqualifiedlead",
                "salesqualifiedlead",
                "opportunity",
                "customer",
            ]
        ),  # fmt: skip
        "hs_lead_status": rng.choice([None, "NEW", "OPEN", "IN_PROGRESS", "CONNECTED"]),
        "hubspot_owner_id": rng.choice(OWNERS)[0],
        "hs_whatsapp_phone_number": None,
        # "Unsubscribed from all email", a boolean HubSpot writes as "true" / "false"
        "hs_email_optout": "true" if opted_out_of_email(person) else "false",
    }
    return builder.record("contacts", created, properties)


def _deal(builder: _Builder, rng: random.Random, contact: dict, company: dict | None) -> dict:
    stages, weights = zip(*_DEAL_STAGES, strict=True)
    stage = rng.choices(stages, weights=weights)[0]
    created = builder.moment(parse_timestamp(contact["createdAt"]), 200)
    closed = stage in ("closedwon", "closedlost")
    closedate = builder.moment(created, 60) if closed else created + timedelta(days=30)
    who = (company or contact)["properties"].get("name") or contact["properties"]["firstname"]
    deal = builder.record(
        "deals",
        created,
        {
            "dealname": rng.choice(_DEAL_NAMES).format(who),
            "amount": f"{rng.randint(8, 400) * 50}" if rng.random() < 0.9 else None,
            "deal_currency_code": "BRL",
            "dealstage": stage,
            "pipeline": "default",
            "closedate": hubspot_timestamp(closedate),
            "hs_is_closed_won": "true" if stage == "closedwon" else "false",
            "hs_is_closed": "true" if closed else "false",
            "hubspot_owner_id": contact["properties"]["hubspot_owner_id"],
        },
    )
    builder.associate(deal, "deals", contact, "contacts")
    if company is not None:
        builder.associate(deal, "deals", company, "companies")
    return deal


def _ticket(builder: _Builder, rng: random.Random, contact: dict) -> dict:
    subject, category = rng.choice(_TICKET_SUBJECTS)
    stages, weights = zip(*_TICKET_STAGES, strict=True)
    stage = rng.choices(stages, weights=weights)[0]
    created = builder.moment(parse_timestamp(contact["createdAt"]), 300)
    closed = builder.moment(created, 10) if stage == "4" else None
    ticket = builder.record(
        "tickets",
        created,
        {
            "subject": subject,
            "content": f"{subject}. Cliente entrou em contato pelo canal indicado.",
            "hs_pipeline": "0",
            "hs_pipeline_stage": stage,
            "hs_ticket_priority": rng.choice(["LOW", "MEDIUM", "HIGH"]),
            "hs_ticket_category": category,
            "source_type": rng.choice(_TICKET_SOURCES),
            "closed_date": hubspot_timestamp(closed) if closed else None,
            "hubspot_owner_id": rng.choice(OWNERS)[0],
        },
    )
    builder.associate(ticket, "tickets", contact, "contacts")
    return ticket


def _engagement(
    builder: _Builder, rng: random.Random, kind: str, contact: dict, related: list[tuple[str, dict]]
) -> None:
    when = builder.moment(parse_timestamp(contact["createdAt"]), 300)
    owner = contact["properties"]["hubspot_owner_id"]
    base: dict[str, Any] = {"hs_timestamp": hubspot_timestamp(when), "hubspot_owner_id": owner}
    if kind == "calls":
        base |= {
            "hs_call_title": rng.choice(_CALL_TITLES),
            "hs_call_body": "Conversa registrada pela equipe de vendas.",
            "hs_call_direction": rng.choice(["OUTBOUND", "OUTBOUND", "INBOUND"]),
            "hs_call_duration": str(rng.randint(20, 900) * 1000),
            "hs_call_status": rng.choice(["COMPLETED", "COMPLETED", "NO_ANSWER", "BUSY"]),
        }
    elif kind == "emails":
        base |= {
            "hs_email_subject": rng.choice(["Orçamento", "Seu pedido", "Proposta comercial"]),
            "hs_email_text": "Olá! Seguem os detalhes conversados.",
            "hs_email_direction": rng.choice(["EMAIL", "INCOMING_EMAIL"]),
            "hs_email_status": "SENT",
        }
    elif kind == "notes":
        base |= {"hs_note_body": rng.choice(_NOTE_BODIES)}
    else:
        start = when
        base |= {
            "hs_meeting_title": rng.choice(["Apresentação do catálogo", "Reunião de proposta"]),
            "hs_meeting_body": "Reunião com o cliente.",
            "hs_meeting_start_time": hubspot_timestamp(start),
            "hs_meeting_end_time": hubspot_timestamp(start + timedelta(minutes=45)),
            "hs_meeting_outcome": rng.choice(["COMPLETED", "SCHEDULED", "NO_SHOW", "RESCHEDULED"]),
        }
    record = builder.record(kind, when, base)
    builder.associate(record, kind, contact, "contacts")
    for other_type, other in related:
        if rng.random() < 0.5:
            builder.associate(record, kind, other, other_type)


def build_hubspot_portal(
    rng: random.Random,
    people: list[Person],
    as_of: datetime,
    earlier: Mapping[str, Any] | None = None,
) -> HubSpotPortal:
    """Generate the sales team's CRM for ``people`` as of ``as_of``."""
    builder = _Builder(rng, as_of)
    worked = [p for p in people if rng.random() < CRM_SHARE]
    companies = _companies(builder, rng, max(3, len(worked) // 8))
    taken = {p.email for p in people}
    contact_person: dict[str, str] = {}
    for person in worked:
        company = rng.choice(companies) if rng.random() < 0.35 else None
        contact = _contact(builder, rng, person, company, taken)
        contact_person[contact["id"]] = person.person_id
        if company is not None:
            builder.associate(contact, "contacts", company, "companies")
        related: list[tuple[str, dict]] = []
        if rng.random() < DEAL_SHARE:
            for _ in range(rng.choice([1, 1, 2])):
                deal = _deal(builder, rng, contact, company)
                related.append(("deals", deal))
        if rng.random() < TICKET_SHARE:
            ticket = _ticket(builder, rng, contact)
            related.append(("tickets", ticket))
        for _ in range(rng.choices([0, 1, 2, 3, 4], weights=[20, 30, 25, 15, 10])[0]):
            _engagement(builder, rng, rng.choice(ENGAGEMENT_TYPES), contact, related)
        if rng.random() < DUPLICATE_SHARE:
            again = _contact(builder, rng, person, None, taken, duplicate=True)
            contact_person[again["id"]] = person.person_id
    for object_type in OBJECT_TYPES:
        builder.objects[object_type].sort(key=lambda r: int(r["id"]))
    return HubSpotPortal(
        objects=builder.objects,
        associations=builder.associations,
        contact_person=contact_person,
        owners=[{"id": i, "firstName": f, "lastName": la} for i, f, la in OWNERS],
    )
