"""Mailchimp's slice of the world: the retailer's newsletter audiences, campaigns and opens.

Long before omnicanal, the retailer collected newsletter sign-ups in Mailchimp: a pop-up
on the store, a form at the till, a spreadsheet imported once. Records follow the
Marketing API v3 JSON shape (``/lists``, ``/lists/{id}/members``, ``/campaigns``,
``/reports/{id}/email-activity``, ``/reports/{id}/unsubscribed``) so the real tap runs
against them unchanged. Timestamps are ISO 8601 in UTC with ``+00:00`` and whole
seconds, as Mailchimp writes them; an unknown one is ``""``.

What the audiences hold, and why it matters to identity resolution:

- a share of the people are members of the main newsletter audience, fewer of a second
  one (launch alerts); the same person may be in both;
- most members signed up with the email they use everywhere, some typed it with capitals,
  and some with a *second* address (an old Hotmail, a work address) that no store
  account holds: only their name and, sometimes, their phone can tie them to a person;
- merge fields are as the person typed them: ``FNAME`` in capitals or lower case, a full
  name crammed into ``FNAME``, ``LNAME`` left empty, a ``PHONE`` in any local habit;
- status agrees with the person's consent (``Person.accepts_email_marketing``), so the
  warehouse's consent stays the ground truth: people who accept are ``subscribed`` (or
  ``pending``, never confirmed, or ``cleaned`` after a hard bounce); people who do not
  are ``unsubscribed`` (with a reason and, often, the campaign they left from) or
  ``transactional`` (a buyer who never opted in), or ``cleaned``;
- ``marketing_permissions`` (the audience's GDPR/LGPD "Email" permission) is enabled for
  subscribed members only;
- campaigns were sent to the audience every few weeks; every member subscribed at the
  time received it, and the report holds, per recipient, their opens, clicks and
  bounces with timestamps, and who unsubscribed from it.

Ground truth: ``member_person`` maps ``"<list_id>/<member id>"`` (the subscriber hash)
to the ``person_id``.

The sync audience (``omnicanal-demo``, where the reverse-ETL writes) is not part of the
world: it starts empty and fills from the warehouse, so the syncs' figures stay exact.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from omnicanal.sandbox.linkage import (
    IdentityRecord,
    email_id,
    identity_record,
    phone_id,
)
from omnicanal.sandbox.noise import (
    name_typo,
    noisy_name_case,
    noisy_phone,
    strip_accents,
)
from omnicanal.sandbox.people import Person

HISTORY_DAYS = 730
#: Share of the people in the main newsletter, and of those in the launches audience.
NEWSLETTER_SHARE = 0.5
LAUNCHES_SHARE = 0.25
#: Share of members who signed up with an address no other system holds.
SECOND_EMAIL_SHARE = 0.12
#: Share of members whose address is typed with capitals (Mailchimp keeps it as given).
CAPITALS_SHARE = 0.12
PHONE_SHARE = 0.35
CAMPAIGN_EVERY_DAYS = (18, 30)
OPEN_SHARE = 0.38
CLICK_SHARE = 0.3  # of those who opened
SOFT_BOUNCE_SHARE = 0.01
MARKETING_PERMISSION_ID = "4d2b1c7a9e"
#: How each member came in: Mailchimp's ``source`` values and their weights.
SOURCES = {"Hosted Signup Form": 45, "Embedded Form": 25, "Import": 15, "API - Generic": 15}
UNSUBSCRIBE_REASONS = (
    "N/A (Unsubscribed by admin)",
    "I no longer want to receive these emails",
    "The emails are too frequent",
    "The emails are spam and should be reported",
    "I never signed up for this mailing list",
    "Other",
)
LINK_URLS = (
    "https://loja.omnicanal.example/colecao/verao",
    "https://loja.omnicanal.example/promocoes",
    "https://loja.omnicanal.example/lojas",
    "https://loja.omnicanal.example/produto/camiseta-basica",
)
SECOND_EMAIL_DOMAINS = ("hotmail.com", "yahoo.com.br", "bol.com.br", "empresa.com.br")


def mailchimp_time(moment: datetime) -> str:
    """ISO 8601 in UTC, whole seconds, ``+00:00``: how Mailchimp writes a timestamp."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def parse_time(value: str) -> datetime:
    """Read a Mailchimp (or any ISO 8601) timestamp into an aware UTC datetime."""
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: MD5 hex digest of the lower-cased email address."""
    return md5(email.lower())


def _hex_id(rng: random.Random, length: int = 10) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(length))


@dataclass
class MailchimpAccount:
    """What the retailer's Mailchimp account held before omnicanal: audiences in API
    shape, their members, campaigns, per-recipient activity, and whose each member is."""

    lists: list[dict[str, Any]]
    #: list id → members (API shape), in the order they joined.
    members: dict[str, list[dict[str, Any]]]
    campaigns: list[dict[str, Any]]
    #: campaign id → recipients, each ``{email_id, email_address, list_id, activity}``.
    email_activity: dict[str, list[dict[str, Any]]]
    #: campaign id → unsubscribes from that campaign (``/reports/{id}/unsubscribed``).
    unsubscribes: dict[str, list[dict[str, Any]]]
    member_person: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lists": self.lists,
            "members": self.members,
            "campaigns": self.campaigns,
            "email_activity": self.email_activity,
            "unsubscribes": self.unsubscribes,
            "member_person": self.member_person,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MailchimpAccount:
        return cls(
            lists=data["lists"],
            members=data["members"],
            campaigns=data["campaigns"],
            email_activity=data["email_activity"],
            unsubscribes=data["unsubscribes"],
            member_person=dict(data["member_person"]),
        )

    def person_of(self, list_id: str, email: str) -> str | None:
        """Ground truth: whose is the member with ``email`` in ``list_id``."""
        return self.member_person.get(f"{list_id}/{subscriber_hash(email)}")

    def email_consent_people(self) -> set[str]:
        """The people whose email-marketing consent a member's status states
        (subscribed, unsubscribed, transactional; pending, cleaned and archived say
        nothing)."""
        return {
            person
            for list_id, members in self.members.items()
            for member in members
            if member.get("status") in ("subscribed", "unsubscribed", "transactional")
            and (person := self.person_of(list_id, member["email_address"])) is not None
        }

    def identity_records(self) -> list[IdentityRecord]:
        """Every member of every audience (email, the PHONE merge field; consent when
        subscribed)."""
        records = []
        for list_id, members in self.members.items():
            for member in members:
                person_id = self.person_of(list_id, member["email_address"])
                if person_id is None:
                    continue
                merge = member.get("merge_fields") or {}
                records.append(
                    identity_record(
                        f"mailchimp:{list_id}/{member['id']}",
                        person_id,
                        (email_id(member["email_address"]), phone_id(merge.get("PHONE"))),
                        consents=member.get("status") == "subscribed",
                    )
                )
        return records

    def describe(self) -> str:
        members = sum(len(m) for m in self.members.values())
        actions = sum(
            len(r["activity"]) for recipients in self.email_activity.values() for r in recipients
        )
        return (
            f"{len(self.lists)} Mailchimp audiences, {members} members, "
            f"{len(self.campaigns)} campaigns, {actions} opens/clicks/bounces"
        )


# -- people → members -----------------------------------------------------------------


class _SecondEmails:
    """Each person's second address, the same in every audience and nobody else's.

    A second address that happened to be someone else's would tie two people together:
    in life a typo can do that, but here it would blur the ground truth.
    """

    def __init__(self, rng: random.Random, people: list[Person]) -> None:
        self._rng = rng
        self._taken = {p.email for p in people}
        self._given: dict[str, str] = {}

    def of(self, person: Person) -> str:
        if person.person_id not in self._given:
            given = strip_accents(person.first_name).lower()
            family = strip_accents(person.last_name.split()[-1]).lower()
            # an old address with a number, as people took when the plain one was gone
            # (other systems' second addresses, drawn apart, do not meet it)
            number = self._rng.randint(100, 999)
            local = self._rng.choice(
                [f"{given}{family}{number}", f"{given[0]}{family}{number}", f"{given}_{number}"]
            )
            domain = self._rng.choice(SECOND_EMAIL_DOMAINS)
            email, n = f"{local}@{domain}", 1
            while email in self._taken:
                n += 1
                email = f"{local}{n}@{domain}"
            self._taken.add(email)
            self._given[person.person_id] = email
        return self._given[person.person_id]


def _typed_email(rng: random.Random, person: Person, seconds: _SecondEmails) -> str:
    roll = rng.random()
    if roll < SECOND_EMAIL_SHARE:
        return seconds.of(person)
    if roll < SECOND_EMAIL_SHARE + CAPITALS_SHARE:
        local, _, domain = person.email.partition("@")
        return rng.choice([person.email.upper(), f"{local.capitalize()}@{domain}"])
    return person.email


def _merge_names(rng: random.Random, person: Person) -> tuple[str, str]:
    """FNAME and LNAME as people type them into a sign-up form."""
    roll = rng.random()
    if roll < 0.1:  # the whole name in the first box
        return noisy_name_case(rng, person.full_name), ""
    if roll < 0.2:  # first name only
        return noisy_name_case(rng, person.first_name), ""
    first, last = person.first_name, person.last_name
    if rng.random() < 0.1:
        first = name_typo(rng, first)
    if rng.random() < 0.35:
        first, last = noisy_name_case(rng, first), noisy_name_case(rng, last)
    return first, last


def _status(rng: random.Random, person: Person) -> str:
    """A status that agrees with the person's consent (see the module docstring)."""
    if person.accepts_email_marketing:
        return rng.choices(["subscribed", "pending", "cleaned"], weights=[86, 6, 8])[0]
    return rng.choices(["unsubscribed", "transactional", "cleaned"], weights=[60, 30, 10])[0]


def _moment(rng: random.Random, low: datetime, high: datetime) -> datetime:
    span = max(1.0, (high - low).total_seconds())
    return (low + timedelta(seconds=rng.uniform(0, span))).replace(microsecond=0)


def _member(
    rng: random.Random,
    person: Person,
    audience: dict[str, Any],
    web_id: int,
    as_of: datetime,
    seconds: _SecondEmails,
) -> tuple[dict[str, Any], datetime]:
    """One member as GET /lists/{id}/members returns it, and when it entered the list."""
    email = _typed_email(rng, person, seconds)
    key = subscriber_hash(email)
    status = _status(rng, person)
    source = rng.choices(list(SOURCES), weights=list(SOURCES.values()))[0]
    joined = _moment(rng, as_of - timedelta(days=HISTORY_DAYS), as_of - timedelta(days=2))
    form = source in ("Hosted Signup Form", "Embedded Form")
    confirmed = joined + timedelta(minutes=rng.randint(1, 600)) if form else joined
    first, last = _merge_names(rng, person)
    phone = noisy_phone(rng, person.phone, missing=False) if rng.random() < PHONE_SHARE else None
    birthday = f"{person.birth_date:%m/%d}" if rng.random() < 0.2 else ""
    timestamp_opt = "" if status in ("pending", "transactional") else mailchimp_time(confirmed)
    last_changed = max(joined, confirmed) if timestamp_opt else joined
    reason = None
    if status in ("unsubscribed", "cleaned"):
        last_changed = _moment(rng, last_changed + timedelta(days=1), as_of - timedelta(hours=1))
        if status == "unsubscribed":
            reason = rng.choice(UNSUBSCRIBE_REASONS)
    merge = {
        "FNAME": first,
        "LNAME": last,
        "ADDRESS": "",
        "PHONE": phone or "",
        "BIRTHDAY": birthday,
    }
    member: dict[str, Any] = {
        "id": key,
        "email_address": email,
        "unique_email_id": md5(f"{audience['id']}:{key}")[:10],
        "contact_id": md5(f"contact:{key}"),
        "full_name": f"{first} {last}".strip(),
        "web_id": web_id,
        "email_type": "html",
        "status": status,
        "consents_to_one_to_one_messaging": True,
        "sms_phone_number": "",
        "sms_subscription_status": "",
        "sms_subscription_last_updated": "",
        "merge_fields": merge,
        "interests": {},
        "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
        "ip_signup": f"177.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        if form
        else "",
        "timestamp_signup": mailchimp_time(joined) if form else "",
        "ip_opt": "",
        "timestamp_opt": timestamp_opt,
        "member_rating": rng.randint(1, 5),
        "last_changed": mailchimp_time(last_changed),
        "language": "pt",
        "vip": rng.random() < 0.03,
        "email_client": "",
        "location": {
            "latitude": 0,
            "longitude": 0,
            "gmtoff": -3,
            "dstoff": -3,
            "country_code": "BR",
            "timezone": "America/Sao_Paulo",
        },
        "marketing_permissions": [
            {
                "marketing_permission_id": MARKETING_PERMISSION_ID,
                "text": "Email",
                "enabled": status == "subscribed",
            }
        ],
        "source": source,
        "tags_count": 0,
        "tags": [],
        "list_id": audience["id"],
    }
    if reason is not None:
        member["unsubscribe_reason"] = reason
    if form:
        member["ip_opt"] = member["ip_signup"]
    return member, joined


def _audience(rng: random.Random, name: str, created: datetime, subject: str) -> dict[str, Any]:
    list_id = _hex_id(rng)
    return {
        "id": list_id,
        "web_id": rng.randint(100_000, 999_999),
        "name": name,
        "contact": {
            "company": "Loja Omnicanal",
            "address1": "Avenida Paulista, 1578",
            "city": "São Paulo",
            "state": "SP",
            "zip": "01310-200",
            "country": "BR",
        },
        "permission_reminder": "Você se inscreveu na nossa newsletter no site ou numa loja.",
        "use_archive_bar": True,
        "notify_on_subscribe": "",
        "notify_on_unsubscribe": "",
        "date_created": mailchimp_time(created),
        "list_rating": rng.randint(2, 4),
        "email_type_option": False,
        "subscribe_url_short": f"https://eepurl.com/{_hex_id(rng, 6)}",
        "subscribe_url_long": f"https://omnicanal.us1.list-manage.com/subscribe?u={_hex_id(rng)}"
        f"&id={list_id}",
        "beamer_address": f"us1-{_hex_id(rng)}@inbound.mailchimp.com",
        "visibility": "pub",
        "double_optin": True,
        "has_welcome": False,
        "marketing_permissions": True,
        "campaign_defaults": {
            "from_name": "Loja Omnicanal",
            "from_email": "novidades@loja.omnicanal.example",
            "subject": subject,
            "language": "pt",
        },
    }


# -- campaigns and what recipients did with them -----------------------------------------


def _received(member: dict[str, Any], sent: datetime) -> bool:
    """Whether a member was on the list (opted in, not yet gone) when a campaign went out."""
    if not member["timestamp_opt"] or parse_time(member["timestamp_opt"]) >= sent:
        return False
    if member["status"] in ("unsubscribed", "cleaned"):
        return parse_time(member["last_changed"]) >= sent
    return member["status"] == "subscribed"


def _campaigns(
    rng: random.Random,
    audience: dict[str, Any],
    members: list[dict[str, Any]],
    as_of: datetime,
    every_days: tuple[int, int],
) -> tuple[list[dict], dict[str, list[dict]], dict[str, list[dict]]]:
    campaigns: list[dict[str, Any]] = []
    activity: dict[str, list[dict[str, Any]]] = {}
    unsubscribes: dict[str, list[dict[str, Any]]] = {}
    moment = as_of - timedelta(days=365)
    sends: list[tuple[dict[str, Any], datetime]] = []
    number = 0
    while True:
        moment += timedelta(days=rng.randint(*every_days))
        if moment >= as_of - timedelta(days=1):
            break
        number += 1
        sent = moment.replace(hour=rng.choice([12, 13, 21, 22]), minute=0, second=0, microsecond=0)
        campaign_id = _hex_id(rng)
        recipients = [m for m in members if _received(m, sent)]
        campaign = _campaign(
            rng, campaign_id, audience, number, sent, "sent", len(recipients), as_of
        )
        campaigns.append(campaign)
        sends.append((campaign, sent))
        activity[campaign_id] = [
            _recipient(rng, campaign_id, audience["id"], member, sent, as_of)
            for member in recipients
        ]
        unsubscribes[campaign_id] = []
    # A member who unsubscribed or was cleaned did so from the last campaign they got.
    by_campaign = {c["id"]: {r["email_id"]: r for r in activity[c["id"]]} for c, _ in sends}
    for member in members:
        if member["status"] not in ("unsubscribed", "cleaned"):
            continue
        left = parse_time(member["last_changed"])
        got = [(c, s) for c, s in sends if member["id"] in by_campaign[c["id"]] and s <= left]
        if not got:
            continue
        campaign, sent = got[-1]
        recipient = by_campaign[campaign["id"]][member["id"]]
        if member["status"] == "cleaned":
            # cleaned after a hard bounce: the bounce is the moment it happened
            recipient["activity"] = [
                {"action": "bounce", "type": "hard", "timestamp": mailchimp_time(sent)}
            ]
            member["last_changed"] = mailchimp_time(sent + timedelta(minutes=5))
            continue
        when = sent + timedelta(minutes=rng.randint(5, 60 * 48))
        when = min(when, as_of - timedelta(minutes=1)).replace(microsecond=0)
        member["last_changed"] = mailchimp_time(when)
        unsubscribes[campaign["id"]].append(
            {
                "email_id": member["id"],
                "email_address": member["email_address"],
                "merge_fields": member["merge_fields"],
                "vip": member["vip"],
                "timestamp": mailchimp_time(when),
                "reason": member.get("unsubscribe_reason", ""),
                "campaign_id": campaign["id"],
                "list_id": audience["id"],
                "list_is_active": True,
            }
        )
    for campaign in campaigns:
        recipients = activity[campaign["id"]]
        opened = sum(1 for r in recipients if any(a["action"] == "open" for a in r["activity"]))
        clicked = sum(1 for r in recipients if any(a["action"] == "click" for a in r["activity"]))
        total = max(1, len(recipients))
        campaign["report_summary"] = {
            "opens": sum(1 for r in recipients for a in r["activity"] if a["action"] == "open"),
            "unique_opens": opened,
            "open_rate": round(opened / total, 4),
            "clicks": sum(1 for r in recipients for a in r["activity"] if a["action"] == "click"),
            "subscriber_clicks": clicked,
            "click_rate": round(clicked / total, 4),
        }
    # One campaign still being written and one scheduled: not sent, no report.
    for status in ("save", "schedule"):
        number += 1
        campaigns.append(_campaign(rng, _hex_id(rng), audience, number, None, status, 0, as_of))
    return campaigns, activity, unsubscribes


SUBJECTS = (
    "Novidades da semana",
    "Só hoje: frete grátis",
    "A coleção de verão chegou",
    "Seu cupom de aniversário",
    "Últimas peças em promoção",
    "Conheça nossas lojas",
)


def _campaign(
    rng: random.Random,
    campaign_id: str,
    audience: dict[str, Any],
    number: int,
    sent: datetime | None,
    status: str,
    recipients: int,
    as_of: datetime,
) -> dict[str, Any]:
    created = (sent or as_of) - timedelta(days=rng.randint(1, 6))
    subject = rng.choice(SUBJECTS)
    return {
        "id": campaign_id,
        "web_id": rng.randint(1_000_000, 9_999_999),
        "parent_campaign_id": "",
        "type": "regular",
        "create_time": mailchimp_time(created),
        "archive_url": f"https://mailchi.mp/omnicanal/{campaign_id}",
        "long_archive_url": f"https://us1.campaign-archive.com/?u=omnicanal&id={campaign_id}",
        "status": status,
        "emails_sent": recipients,
        "send_time": mailchimp_time(sent) if sent else "",
        "content_type": "template",
        "needs_block_refresh": False,
        "resendable": False,
        "recipients": {
            "list_id": audience["id"],
            "list_is_active": True,
            "list_name": audience["name"],
            "segment_text": "",
            "recipient_count": recipients,
        },
        "settings": {
            "subject_line": subject,
            "preview_text": "",
            "title": f"{audience['name']} #{number}",
            "from_name": "Loja Omnicanal",
            "reply_to": "novidades@loja.omnicanal.example",
            "use_conversation": False,
            "to_name": "*|FNAME|*",
            "authenticate": True,
            "auto_footer": False,
            "inline_css": False,
            "timewarp": False,
        },
        "tracking": {"opens": True, "html_clicks": True, "text_clicks": False},
        "delivery_status": {"enabled": False},
    }


def _recipient(
    rng: random.Random,
    campaign_id: str,
    list_id: str,
    member: dict[str, Any],
    sent: datetime,
    as_of: datetime,
) -> dict[str, Any]:
    actions: list[dict[str, Any]] = []
    if rng.random() < SOFT_BOUNCE_SHARE:
        actions.append({"action": "bounce", "type": "soft", "timestamp": mailchimp_time(sent)})
    elif rng.random() < OPEN_SHARE:
        opened = sent + timedelta(minutes=rng.randint(1, 60 * 72))
        ip = f"189.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        for n in range(rng.choice([1, 1, 1, 2, 3])):
            moment = opened + timedelta(hours=12 * n)
            if moment < as_of:
                actions.append({"action": "open", "timestamp": mailchimp_time(moment), "ip": ip})
        if actions and rng.random() < CLICK_SHARE:
            clicked = opened + timedelta(seconds=rng.randint(5, 600))
            if clicked < as_of:
                actions.append(
                    {
                        "action": "click",
                        "timestamp": mailchimp_time(clicked),
                        "url": rng.choice(LINK_URLS),
                        "ip": ip,
                    }
                )
    return {
        "campaign_id": campaign_id,
        "list_id": list_id,
        "list_is_active": True,
        "email_id": member["id"],
        "email_address": member["email_address"],
        "activity": actions,
    }


def build_mailchimp_account(
    rng: random.Random, people: list[Person], as_of: datetime, earlier: Any = None
) -> MailchimpAccount:
    """Generate the retailer's Mailchimp account for ``people`` (see the module docstring)."""
    created = as_of - timedelta(days=HISTORY_DAYS + 30)
    newsletter = _audience(rng, "Newsletter Loja Omnicanal", created, "Novidades da Loja")
    launches = _audience(rng, "Lançamentos e pré-vendas", created, "Chegou!")
    lists, members, person_of = [newsletter, launches], {}, {}
    seconds = _SecondEmails(rng, people)
    campaigns, activity, unsubscribes = [], {}, {}
    for audience, share, every in (
        (newsletter, NEWSLETTER_SHARE, CAMPAIGN_EVERY_DAYS),
        (launches, LAUNCHES_SHARE, (45, 75)),
    ):
        joined: list[tuple[datetime, dict[str, Any]]] = []
        seen: set[str] = set()
        for person in people:
            if rng.random() >= share:
                continue
            member, when = _member(rng, person, audience, 0, as_of, seconds)
            if member["id"] in seen:  # Mailchimp holds one member per address
                continue
            seen.add(member["id"])
            joined.append((when, member))
            person_of[f"{audience['id']}/{member['id']}"] = person.person_id
        # The list's own order: by when each member joined (web_id follows it)
        joined.sort(key=lambda pair: pair[0])
        held = [member for _, member in joined]
        for web_id, member in enumerate(held, start=1):
            member["web_id"] = web_id
        sent, got, left = _campaigns(rng, audience, held, as_of, every)
        campaigns.extend(sent)
        activity.update(got)
        unsubscribes.update(left)
        members[audience["id"]] = held
    return MailchimpAccount(
        lists=lists,
        members=members,
        campaigns=campaigns,
        email_activity=activity,
        unsubscribes=unsubscribes,
        member_person=person_of,
    )
