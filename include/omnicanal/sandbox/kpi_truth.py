"""The channel KPIs of a sandbox world, from its records alone (plain Python).

What the KPI marts (dbt_project/models/marts/kpi) must find, computed without the
warehouse: the demo prints each next to the mart's value, and tests/dbt/test_kpi_marts
checks every period against it. Conversations are the marts' own:

- a Zendesk ticket: first public comment by someone other than the requester after it
  opened; resolved when solved or closed (never before its first response);
- an Instagram Direct thread: from the customer's first message, the business's first
  and last answer;
- a WhatsApp conversation: a customer message after 24 h of silence opens one; replies
  that never reached the customer (failed, or never reported) do not count.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

#: The retailer's calendar, as the marts' kpi_time_zone.
TZ = ZoneInfo("America/Sao_Paulo")
#: The marts' kpi_conversation_gap_hours.
WHATSAPP_GAP = timedelta(hours=24)


def parse(stamp: str) -> datetime:
    """Every platform's timestamp: ISO 8601 with Z, +00:00 or +0000."""
    if stamp[-5] in "+-" and stamp[-3] != ":":  # Graph API: +0000
        stamp = f"{stamp[:-2]}:{stamp[-2:]}"
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def epoch(seconds: str) -> datetime:
    return datetime.fromtimestamp(int(seconds)).astimezone(TZ)


def minutes(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds() / 60, 2)


def whatsapp_messages(world: Any) -> dict[str, list[tuple[datetime, str, str]]]:
    """Per wa_id, (time, interaction key, direction) of every inbound message and every
    reply that reached the customer (a failed one did not), in time order."""
    inbox = world.slices["whatsapp"]
    per_number: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
    for message in inbox.messages:
        key = f"whatsapp:message:{message['id']}"
        per_number[message["from"]].append((epoch(message["timestamp"]), key, "inbound"))
    statuses: dict[str, list[dict]] = defaultdict(list)
    for status in inbox.statuses:
        statuses[status["id"]].append(status)
    for reply in inbox.replies:
        seen = statuses.get(reply["id"], [])
        if not seen or any(s["status"] == "failed" for s in seen):
            continue  # never reported, or never delivered
        sent = [epoch(s["timestamp"]) for s in seen if s["status"] == "sent"]
        moment = min(sent or [epoch(s["timestamp"]) for s in seen])
        per_number[reply["to"]].append((moment, f"whatsapp:message:{reply['id']}", "outbound"))
    return {number: sorted(events) for number, events in per_number.items()}


def conversations(
    world: Any,
) -> dict[str, tuple[str, datetime, datetime | None, datetime | None]]:
    """conversation_key -> (channel, started, first response, resolved)."""
    found: dict[str, tuple[str, datetime, datetime | None, datetime | None]] = {}

    desk = world.slices["zendesk"]
    solved = {m["ticket_id"]: m.get("solved_at") for m in desk.ticket_metrics}
    for ticket in desk.tickets:
        created = parse(ticket["created_at"])
        answers = [
            parse(c["created_at"])
            for c in desk.comments[ticket["id"]]
            if c["public"] and c["author_id"] != ticket["requester_id"]
        ]
        first = min((a for a in answers if a >= created), default=None)
        done = solved.get(ticket["id"])
        resolved = None
        if ticket["status"] in ("solved", "closed") and done:
            resolved = max(parse(done), first) if first else parse(done)
        found[f"support:{ticket['id']}"] = ("support", created, first, resolved)

    account = world.slices["instagram"]
    business = account.account["id"]
    threads: dict[str, list[tuple[datetime, bool]]] = defaultdict(list)
    for message in account.messages:
        threads[message["conversation_id"]].append(
            (parse(message["created_time"]), message["from"]["id"] == business)
        )
    for thread, messages in threads.items():
        started = min(t for t, from_business in messages if not from_business)
        answers = [t for t, from_business in messages if from_business and t >= started]
        found[f"instagram:{thread}"] = (
            "instagram",
            started,
            min(answers, default=None),
            max(answers, default=None),
        )

    for number, events in whatsapp_messages(world).items():
        opened: list[list[tuple[datetime, str]]] = []
        previous = None
        for moment, _, direction in events:
            if direction == "inbound" and (previous is None or moment - previous > WHATSAPP_GAP):
                opened.append([])
            if opened:
                opened[-1].append((moment, direction))
            previous = moment
        for n, messages in enumerate(opened, start=1):
            started = min(t for t, d in messages if d == "inbound")
            answers = [t for t, d in messages if d == "outbound" and t >= started]
            found[f"whatsapp:{number}:{n}"] = (
                "whatsapp",
                started,
                min(answers, default=None),
                max(answers, default=None),
            )
    return found


def channel_kpis(world: Any) -> dict[tuple[str, str], float]:
    """(channel, KPI) -> value over the world's whole history, for the demo's table:
    conversations and the median first-response and resolution minutes (support,
    instagram, whatsapp), CSAT (support: good / rated), email open and click rates
    (unique, over delivered)."""
    found: dict[tuple[str, str], float] = {}
    per_channel: dict[str, list[tuple[float | None, float | None]]] = defaultdict(list)
    for channel, started, first, resolved in conversations(world).values():
        per_channel[channel].append((minutes(started, first), minutes(started, resolved)))
    for channel, measured in sorted(per_channel.items()):
        firsts = [f for f, _ in measured if f is not None]
        resolutions = [r for _, r in measured if r is not None]
        found[(channel, "conversations")] = len(measured)
        if firsts:
            found[(channel, "median first response (min)")] = round(median(firsts), 1)
        if resolutions:
            found[(channel, "median resolution (min)")] = round(median(resolutions), 1)
    scores = [r["score"] for r in world.slices["zendesk"].satisfaction_ratings]
    rated = [s for s in scores if s in ("good", "bad")]
    if rated:
        found[("support", "CSAT")] = round(rated.count("good") / len(rated), 4)
    delivered = opened = clicked = 0
    for recipients in world.slices["mailchimp"].email_activity.values():
        for recipient in recipients:
            actions = {a["action"] for a in recipient["activity"]}
            if "bounce" not in actions:
                delivered += 1
                opened += "open" in actions
                clicked += "click" in actions
    if delivered:
        found[("email", "open rate")] = round(opened / delivered, 4)
        found[("email", "click rate")] = round(clicked / delivered, 4)
    return found
