"""The HubSpot emulation over raw HTTP: what the real API does that the client tests do not
reach (limits and their errors, the search cap, filters, faults), and the world slice."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from omnicanal.channels.hubspot import SANDBOX_ACCESS_TOKEN
from omnicanal.channels.hubspot.world import OBJECT_TYPES, HubSpotPortal
from omnicanal.sandbox import generate_world
from omnicanal.sandbox.people import Person

AUTH = {"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}"}


def get(server, path: str, **params) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params=params, headers=AUTH, timeout=10)


def search(server, object_type: str, body: dict) -> httpx.Response:
    return httpx.post(
        f"{server.url}/crm/v3/objects/{object_type}/search", json=body, headers=AUTH, timeout=10
    )


def _millis(stamp: str) -> str:
    return str(int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000))


def assert_hubspot_error(response: httpx.Response, status: int, category: str | None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and body["correlationId"] and "detail" not in body
    assert response.headers["X-HubSpot-Correlation-Id"] == body["correlationId"]
    if category:
        assert body["category"] == category
    return body


# --- list and read -----------------------------------------------------------------------


def test_list_defaults_to_ten_with_the_default_properties(server, world) -> None:
    response = get(server, "/crm/v3/objects/contacts")
    body = response.json()
    assert len(body["results"]) == 10
    first = body["results"][0]
    assert set(first["properties"]) == {
        "firstname",
        "lastname",
        "email",
        "createdate",
        "hs_object_id",
        "lastmodifieddate",
    }
    assert body["paging"]["next"]["link"].endswith(f"after={body['paging']['next']['after']}")
    assert response.headers["X-HubSpot-RateLimit-Max"] == "190"
    assert int(response.headers["X-HubSpot-RateLimit-Daily-Remaining"]) > 0


def test_list_limit_is_at_most_100_and_unknown_properties_are_left_out(server) -> None:
    assert_hubspot_error(get(server, "/crm/v3/objects/deals", limit=101), 400, "VALIDATION_ERROR")
    body = get(server, "/crm/v3/objects/deals", limit=100, properties="dealname,no_such").json()
    assert len(body["results"]) <= 100
    assert "no_such" not in body["results"][0]["properties"]
    assert "dealname" in body["results"][0]["properties"]


def test_objects_by_type_id_and_read_one(server, world) -> None:
    deal = world.slices["hubspot"].objects["deals"][0]
    by_id = get(server, "/crm/v3/objects/0-3", limit=1).json()["results"][0]
    assert by_id["id"] == deal["id"]
    one = get(server, f"/crm/v3/objects/deals/{deal['id']}", properties="amount").json()
    assert one["properties"]["amount"] == deal["properties"]["amount"]
    assert_hubspot_error(get(server, "/crm/v3/objects/deals/1"), 404, "OBJECT_NOT_FOUND")
    assert_hubspot_error(get(server, "/crm/v3/objects/unicorns"), 400, "VALIDATION_ERROR")
    assert_hubspot_error(get(server, "/crm/v3/nothing/here"), 404, None)


# --- search ------------------------------------------------------------------------------


def test_search_filters_dates_as_millis_or_iso_and_sorts(server, world) -> None:
    calls = world.slices["hubspot"].objects["calls"]
    stamps = sorted(c["updatedAt"] for c in calls)
    low, high = stamps[3], stamps[-4]
    expected = sorted(c["id"] for c in calls if low <= c["updatedAt"] < high)
    for value in (low, _millis(low)):
        body = search(
            server,
            "calls",
            {
                "filterGroups": [
                    {
                        "filters": [
                            {
                                "propertyName": "hs_lastmodifieddate",
                                "operator": "GTE",
                                "value": value,
                            },
                            {
                                "propertyName": "hs_lastmodifieddate",
                                "operator": "LT",
                                "value": high,
                            },
                        ]
                    }
                ],
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}],
                "limit": 200,
            },
        ).json()
        assert sorted(r["id"] for r in body["results"]) == expected
        assert body["total"] == len(expected)
        got = [r["properties"]["hs_lastmodifieddate"] for r in body["results"]]
        assert got == sorted(got, reverse=True)


def test_search_or_groups_in_has_property_and_between(server, world) -> None:
    contacts = world.slices["hubspot"].objects["contacts"]
    with_extra = {c["id"] for c in contacts if c["properties"]["hs_additional_emails"]}
    body = search(
        server,
        "contacts",
        {
            "filterGroups": [
                {"filters": [{"propertyName": "hs_additional_emails", "operator": "HAS_PROPERTY"}]},
                {
                    "filters": [
                        {
                            "propertyName": "hs_object_id",
                            "operator": "IN",
                            "values": [contacts[0]["id"]],
                        }
                    ]
                },
            ],
            "limit": 200,
        },
    ).json()
    assert {r["id"] for r in body["results"]} == with_extra | {contacts[0]["id"]}
    deals = world.slices["hubspot"].objects["deals"]
    between = search(
        server,
        "deals",
        {
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": "amount",
                            "operator": "BETWEEN",
                            "value": "1000",
                            "highValue": "5000",
                        }
                    ]
                }
            ],
            "limit": 200,
        },
    ).json()
    amounts = {d["id"]: d["properties"]["amount"] for d in deals if d["properties"]["amount"]}
    assert {r["id"] for r in between["results"]} == {
        i for i, amount in amounts.items() if 1000 <= float(amount) <= 5000
    }


def _where(name: str, operator: str) -> dict:
    return {"propertyName": name, "operator": operator, "value": "x"}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"limit": 201}, "limit"),
        ({"after": "10000"}, "10,000"),
        ({"sorts": ["createdate", "-hs_object_id"]}, "one sort"),
        ({"filterGroups": [{"filters": [_where("nope", "EQ")]}]}, "nope"),
        ({"filterGroups": [{"filters": [_where("email", "LIKE")]}]}, "operator"),
        ({"filterGroups": [{"filters": []}] * 6}, "filter groups"),
    ],
)  # fmt: skip
def test_search_validation_errors(server, body, why) -> None:
    error = assert_hubspot_error(search(server, "contacts", body), 400, "VALIDATION_ERROR")
    assert why in error["message"]


def test_search_serves_at_most_the_cap_and_refuses_pages_beyond(fresh_server) -> None:
    emulator = fresh_server.app.state.hubspot
    emulator.search_cap = 25
    emulator.set_rate_limits(search_per_second=None)
    total = len(emulator.records("notes"))
    assert total > 25
    ids, after = [], None
    while True:
        body = search(fresh_server, "notes", {"limit": 10, **({"after": after} if after else {})})
        page = body.json()
        assert page["total"] == total  # the true count, even past the cap
        ids += [r["id"] for r in page["results"]]
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert len(ids) == 25
    error = assert_hubspot_error(search(fresh_server, "notes", {"after": "25"}), 400, None)
    assert "25" in error["message"]


def test_touch_moves_the_last_modified_date_into_a_search(fresh_server) -> None:
    emulator = fresh_server.app.state.hubspot
    contact = emulator.records("contacts")[5]
    latest = max(c["updatedAt"] for c in emulator.records("contacts"))
    query = {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": latest}]}
        ]
    }
    assert search(fresh_server, "contacts", query).json()["total"] == 0
    response = httpx.post(
        f"{fresh_server.url}/_sandbox/hubspot/contacts/{contact['id']}/touch",
        json={"email": "nova@exemplo.com.br"},
    )
    assert response.status_code == 200
    found = search(fresh_server, "contacts", query).json()["results"]
    assert [(r["id"], r["properties"]["email"]) for r in found] == [
        (contact["id"], "nova@exemplo.com.br")
    ]


def test_email_optout_is_served_as_hubspot_does(fresh_server, world) -> None:
    """hs_email_optout ("Unsubscribed from all email"): a boolean HubSpot writes as the
    strings "true" / "false", served when asked for, searchable, defined read-only (the
    CRM API cannot set it); an opt-out moves the contact's lastmodifieddate, the only
    time HubSpot keeps of it."""
    portal: HubSpotPortal = world.slices["hubspot"]
    wanted = {c["id"]: c["properties"]["hs_email_optout"] for c in portal.objects["contacts"]}
    served = {}
    after = None
    while True:
        page = get(
            fresh_server, "/crm/v3/objects/contacts", limit=100, properties="hs_email_optout",
            **({"after": after} if after else {}),
        ).json()  # fmt: skip
        served |= {r["id"]: r["properties"]["hs_email_optout"] for r in page["results"]}
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert served == wanted and set(served.values()) == {"true", "false"}
    query = {
        "filterGroups": [
            {"filters": [{"propertyName": "hs_email_optout", "operator": "EQ", "value": "true"}]}
        ],
        "limit": 100,
    }
    found = search(fresh_server, "contacts", query).json()
    assert found["total"] == sum(v == "true" for v in wanted.values())
    spec = get(fresh_server, "/crm/v3/properties/contacts/hs_email_optout").json()
    assert (spec["label"], spec["type"], spec["fieldType"]) == (
        "Unsubscribed from all email",
        "enumeration",
        "booleancheckbox",
    )
    assert spec["modificationMetadata"]["readOnlyValue"] is True
    assert {o["value"] for o in spec["options"]} == {"true", "false"}
    # a contact who opts out now
    contact = next(i for i, v in wanted.items() if v == "false")
    before = next(c for c in portal.objects["contacts"] if c["id"] == contact)["updatedAt"]
    touched = fresh_server.app.state.hubspot.touch("contacts", contact, hs_email_optout="true")
    read = get(fresh_server, f"/crm/v3/objects/contacts/{contact}", properties="hs_email_optout")
    assert read.json()["properties"]["hs_email_optout"] == "true"
    assert read.json()["updatedAt"] == touched["updatedAt"] > before


def test_an_archived_record_leaves_lists_reads_searches_and_associations(fresh_server) -> None:
    emulator = fresh_server.app.state.hubspot
    emulator.set_rate_limits(search_per_second=None)
    portal = emulator.portal
    deal_id, contact_id = next(
        (a[1], a[3]) for a in portal.associations if a[0] == "deals" and a[2] == "contacts"
    )
    emulator.archive("contacts", contact_id)
    listed = get(fresh_server, "/crm/v3/objects/contacts", limit=100).json()["results"]
    assert contact_id not in {c["id"] for c in listed}
    gone = get(fresh_server, f"/crm/v3/objects/contacts/{contact_id}")
    assert_hubspot_error(gone, 404, "OBJECT_NOT_FOUND")
    found = search(fresh_server, "contacts", {"limit": 200}).json()["results"]
    assert contact_id not in {c["id"] for c in found}
    archived = get(fresh_server, "/crm/v3/objects/contacts", archived="true").json()["results"]
    assert [(c["id"], c["archived"]) for c in archived] == [(contact_id, True)]
    assert archived[0]["archivedAt"]
    links = get(fresh_server, f"/crm/v4/objects/deals/{deal_id}/associations/contacts").json()
    assert contact_id not in {str(r["toObjectId"]) for r in links["results"]}


# --- associations ------------------------------------------------------------------------


def test_v4_associations_of_one_object_page_by_after(fresh_server, world) -> None:
    portal = fresh_server.app.state.hubspot.portal
    contact = next(
        c["id"]
        for c in portal.objects["contacts"]
        if sum(1 for a in portal.associations if a[3] == c["id"] and a[2] == "contacts") >= 2
    )
    kinds = {a[0] for a in portal.associations if a[3] == contact and a[2] == "contacts"}
    kind = sorted(kinds)[0]
    wanted = sorted(
        (a[1] for a in portal.associations if a[3] == contact and a[0] == kind), key=int
    )
    assert len(wanted) >= 1
    path = f"/crm/v4/objects/contacts/{contact}/associations/{kind}"
    got, after = [], None
    while True:
        page = get(fresh_server, path, limit=1, **({"after": after} if after else {})).json()
        got += [str(r["toObjectId"]) for r in page["results"]]
        assert page["results"][0]["associationTypes"][0]["category"] == "HUBSPOT_DEFINED"
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert got == wanted


# --- auth, limits and faults -------------------------------------------------------------


def test_missing_or_wrong_token_is_hubspots_401(server) -> None:
    for headers in ({}, {"Authorization": "Bearer pat-na1-wrong"}, {"Authorization": "Basic x"}):
        response = httpx.get(f"{server.url}/crm/v3/objects/contacts", headers=headers)
        body = assert_hubspot_error(response, 401, "INVALID_AUTHENTICATION")
        assert body["message"].startswith("Authentication credentials not found.")
        assert response.headers["X-HubSpot-Auth-Failure"] == "401 Unauthorized"


def test_faults_knob_5xx_expired_token_and_hang(fresh_server) -> None:
    emulator = fresh_server.app.state.hubspot
    httpx.post(f"{fresh_server.url}/_sandbox/hubspot/fail_next", json={"n": 1, "status": 502})
    emulator.fail_next(1, expired=True)
    emulator.fail_next(1, 500, hang_seconds=1.0)
    # a request without the token is refused before any fault is spent
    assert httpx.get(f"{fresh_server.url}/crm/v3/objects/contacts").status_code == 401
    assert get(fresh_server, "/crm/v3/objects/contacts").status_code == 502
    expired = get(fresh_server, "/crm/v3/objects/contacts")
    body = assert_hubspot_error(expired, 401, "EXPIRED_AUTHENTICATION")
    assert "expired" in body["message"]
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{fresh_server.url}/crm/v3/objects/contacts", headers=AUTH, timeout=0.3)
    time.sleep(0.8)
    assert emulator.faults.pending == 0
    assert get(fresh_server, "/crm/v3/objects/contacts").status_code == 200


def test_daily_limit_is_a_429_of_its_own(fresh_server) -> None:
    emulator = fresh_server.app.state.hubspot
    emulator.set_rate_limits(burst=None, daily=2)
    for remaining in ("1", "0"):
        response = get(fresh_server, "/crm/v3/objects/tickets")
        assert response.headers["X-HubSpot-RateLimit-Daily-Remaining"] == remaining
    refused = get(fresh_server, "/crm/v3/objects/tickets")
    body = assert_hubspot_error(refused, 429, None)
    assert body["policyName"] == "DAILY" and body["errorType"] == "RATE_LIMIT"
    assert "Retry-After" not in refused.headers


# --- the world slice ---------------------------------------------------------------------


def test_every_contact_is_someones_and_reachable(world) -> None:
    portal: HubSpotPortal = world.slices["hubspot"]
    contacts = portal.objects["contacts"]
    assert set(portal.contact_person) == {c["id"] for c in contacts}
    people = {p.person_id for p in world.people}
    assert set(portal.contact_person.values()) <= people
    for contact in contacts:
        props = contact["properties"]
        assert props["email"] or props["phone"] or props["mobilephone"], contact["id"]
        assert props["lastmodifieddate"] >= props["createdate"]
        assert contact["updatedAt"] == props["lastmodifieddate"]
        assert contact["updatedAt"] <= world.as_of.isoformat().replace("+00:00", "Z")


def test_email_optouts_agree_with_the_peoples_consent(world) -> None:
    """Opted out of all email: some of those who accept no email marketing, never one who
    does; each person's contacts agree."""
    portal: HubSpotPortal = world.slices["hubspot"]
    by_person: dict[str, set[str]] = {}
    for contact in portal.objects["contacts"]:
        person_id = portal.contact_person[contact["id"]]
        by_person.setdefault(person_id, set()).add(contact["properties"]["hs_email_optout"])
    opted_out = {p for p, values in by_person.items() if values == {"true"}}
    assert all(len(values) == 1 for values in by_person.values())
    assert not any(world.person(p).accepts_email_marketing for p in opted_out)
    refusing = [p for p in by_person if not world.person(p).accepts_email_marketing]
    assert 0 < len(opted_out) < len(refusing)


def test_crm_data_is_messy_as_staff_type_it(world) -> None:
    portal: HubSpotPortal = world.slices["hubspot"]
    person: dict[str, Person] = {p.person_id: p for p in world.people}
    kinds = {"exact": 0, "typo": 0, "work": 0, "extra": 0, "first_only": 0, "no_email": 0}
    for contact in portal.objects["contacts"]:
        props = contact["properties"]
        truth = person[portal.contact_person[contact["id"]]]
        email = (props["email"] or "").strip().lower()
        if not email:
            kinds["no_email"] += 1
        elif email == truth.email:
            kinds["exact"] += 1
        elif email.split("@")[1] not in truth.email:
            kinds["work" if email.split("@")[0].count(".") else "typo"] += 1
        else:
            kinds["typo"] += 1
        if props["hs_additional_emails"]:
            kinds["extra"] += 1
        if props["lastname"] is None:
            kinds["first_only"] += 1
    assert all(count > 0 for count in kinds.values()), kinds
    duplicates = len(portal.contact_person) - len(set(portal.contact_person.values()))
    assert duplicates >= 0
    assert {t for t in OBJECT_TYPES if portal.objects[t]} == set(OBJECT_TYPES)
    won = [d for d in portal.objects["deals"] if d["properties"]["dealstage"] == "closedwon"]
    assert won and all(d["properties"]["hs_is_closed_won"] == "true" for d in won)


def test_the_slice_is_reproducible_and_survives_a_round_trip(world) -> None:
    again = generate_world(len(world.people), world.seed, as_of=world.as_of)
    assert again.slices["hubspot"].to_dict() == world.slices["hubspot"].to_dict()
    loaded = HubSpotPortal.from_dict(world.slices["hubspot"].to_dict())
    assert loaded.to_dict() == world.slices["hubspot"].to_dict()
    assert "contacts" in loaded.describe()
