"""The VTEX emulator over real HTTP: auth, OMS list paging and its 30-page limit, order
detail with the masked email, Master Data scroll and search, errors, rate limit, faults.

VTEX publishes no official Python client, so these drive the emulation with plain HTTP
the way its API reference describes, and check the world slice's invariants (the masked
alias leads back to the real email only through the CL profile).
"""

from __future__ import annotations

import json
import math
import random
import re
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from omnicanal.channels.vtex import SANDBOX_APP_KEY, SANDBOX_APP_TOKEN
from omnicanal.channels.vtex.emulation import MAX_PAGE_EXCEEDED, VtexEmulator
from omnicanal.channels.vtex.world import (
    MASKED_EMAIL_DOMAIN,
    VtexStore,
    build_vtex_store,
    md_timestamp,
    parse_timestamp,
)
from omnicanal.sandbox import SandboxServer, World
from omnicanal.sandbox.cpf import cpf_is_valid

AUTH = {"X-VTEX-API-AppKey": SANDBOX_APP_KEY, "X-VTEX-API-AppToken": SANDBOX_APP_TOKEN}
ORDERS = "/api/oms/pvt/orders"
SCROLL = "/api/dataentities/CL/scroll"
SEARCH = "/api/dataentities/CL/search"
EVERYTHING = "creationDate:[2000-01-01T00:00:00.000Z TO 2100-01-01T00:00:00.000Z]"
HEX_ALIAS = re.compile(r"^[0-9a-f]{32}@ct\.vtex\.com\.br$")
TRACKER_ALIAS = re.compile(r"^(.+@.+)-\d{12}b\.ct\.vtex\.com\.br$")


def store(world: World) -> VtexStore:
    return world.slices["vtex"]


def get(server: SandboxServer, path: str, **kwargs) -> httpx.Response:
    headers = {**AUTH, **kwargs.pop("headers", {})}
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=10, **kwargs)


# --- auth -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-VTEX-API-AppKey": SANDBOX_APP_KEY},
        {"X-VTEX-API-AppKey": SANDBOX_APP_KEY, "X-VTEX-API-AppToken": "WRONG"},
        {"X-VTEX-API-AppKey": "vtexappkey-other-ABCDEF", "X-VTEX-API-AppToken": SANDBOX_APP_TOKEN},
    ],
)
def test_missing_or_wrong_credentials_are_401_in_each_apis_body(server, headers) -> None:
    oms = httpx.get(f"{server.url}{ORDERS}", headers=headers)
    assert oms.status_code == 401
    assert oms.json() == {
        "error": {"code": "1", "message": "Unauthorized access", "exception": None}
    }
    md = httpx.get(f"{server.url}{SCROLL}", headers=headers)
    assert md.status_code == 401
    assert md.json() == {"Message": "Unauthorized"}


def test_a_key_whose_role_lacks_the_resource_is_403(fresh_server) -> None:
    fresh_server.app.state.vtex.add_app_key(
        "vtexappkey-omnicanal-MDONLY", "T" * 128, ("masterdata",)
    )
    headers = {"X-VTEX-API-AppKey": "vtexappkey-omnicanal-MDONLY", "X-VTEX-API-AppToken": "T" * 128}
    oms = httpx.get(f"{fresh_server.url}{ORDERS}", headers=headers)
    assert oms.status_code == 403
    assert oms.json()["error"]["message"] == (
        "The credentials are not enabled to access the service"
    )
    assert httpx.get(f"{fresh_server.url}{SCROLL}", headers=headers).status_code == 200


# --- OMS list ---------------------------------------------------------------------------


def test_list_shape_defaults_and_newest_first(server, world) -> None:
    response = get(server, ORDERS)
    assert response.status_code == 200
    body = response.json()
    total = len(store(world).orders)
    assert body["paging"] == {
        "total": total,
        "pages": math.ceil(total / 15),
        "currentPage": 1,
        "perPage": 15,
    }
    assert body["facets"] == [] and body["stats"]["stats"]["totalValue"]["Count"] == total
    summaries = body["list"]
    assert len(summaries) == 15
    newest = sorted(store(world).orders, key=lambda o: o["creationDate"], reverse=True)[:15]
    assert [s["orderId"] for s in summaries] == [o["orderId"] for o in newest]
    first = summaries[0]
    # the list is a summary: no items (since 2018), no lastChange, no shopper profile
    assert first["items"] is None
    assert "lastChange" not in first and "clientProfileData" not in first
    assert isinstance(first["totalValue"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", first["creationDate"])


def test_walking_a_date_filter_reads_every_order_once(server, world) -> None:
    seen: list[str] = []
    page = 1
    while True:
        params = {"f_creationDate": EVERYTHING, "orderBy": "creationDate,asc"}
        body = get(server, ORDERS, params={**params, "page": page, "per_page": 10}).json()
        seen += [s["orderId"] for s in body["list"]]
        if page >= body["paging"]["pages"]:
            break
        page += 1
    assert len(seen) == len(set(seen)) == len(store(world).orders)
    created = [parse_timestamp(o["creationDate"]) for o in store(world).orders]
    assert seen == [o["orderId"] for _, o in sorted(zip(created, store(world).orders, strict=True))]


def test_pages_beyond_30_are_refused_whatever_per_page(server) -> None:
    assert get(server, ORDERS, params={"page": 30, "per_page": 1}).status_code == 200
    for per_page in (1, 100):
        refused = get(server, ORDERS, params={"page": 31, "per_page": per_page})
        assert refused.status_code == 400
        assert refused.json() == {
            "error": {"code": "1", "message": MAX_PAGE_EXCEEDED, "exception": None}
        }
    assert MAX_PAGE_EXCEEDED == "Max page exceed ( 30 ), refine filter"


def test_the_paging_reports_the_whole_total_so_a_client_knows_to_split(server, world) -> None:
    body = get(server, ORDERS, params={"per_page": 1}).json()
    assert body["paging"]["pages"] == len(store(world).orders) > 30


def test_date_filters_are_inclusive_to_the_millisecond(server, world) -> None:
    order = store(world).orders[len(store(world).orders) // 2]
    moment = parse_timestamp(order["creationDate"])
    exact = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    stamp = exact.strftime("%Y-%m-%dT%H:%M:%S.") + f"{exact.microsecond // 1000:03d}Z"
    body = get(server, ORDERS, params={"f_creationDate": f"creationDate:[{stamp} TO {stamp}]"})
    assert [s["orderId"] for s in body.json()["list"]] == [order["orderId"]]
    later = exact + timedelta(milliseconds=1)
    stamp = later.strftime("%Y-%m-%dT%H:%M:%S.") + f"{later.microsecond // 1000:03d}Z"
    body = get(server, ORDERS, params={"f_creationDate": f"creationDate:[{stamp} TO {stamp}]"})
    assert body.json()["list"] == []


def test_status_and_invoiced_date_filters(server, world) -> None:
    canceled = {o["orderId"] for o in store(world).orders if o["status"] == "canceled"}
    body = get(server, ORDERS, params={"f_status": "canceled", "per_page": 100}).json()
    assert {s["orderId"] for s in body["list"]} == canceled and canceled
    invoiced = get(
        server,
        ORDERS,
        params={"f_invoicedDate": EVERYTHING.replace("creationDate", "invoicedDate")},
    ).json()
    assert invoiced["paging"]["total"] == sum(1 for o in store(world).orders if o["invoicedDate"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"per_page": 101}, "per_page must be between 1 and 100"),
        ({"per_page": "ten"}, "not valid for per_page"),
        ({"page": 0}, "not valid for page"),
        ({"f_creationDate": "creationDate:2024-01-01"}, "Invalid f_creationDate filter"),
        ({"f_creationDate": "invoicedDate:[* TO *]"}, "Invalid f_creationDate filter"),
        ({"f_creationDate": "creationDate:[yesterday TO today]"}, "Invalid date"),
        ({"orderBy": "lastChange,asc"}, "orderBy must be"),
    ],
)
def test_validation_errors_are_400_in_the_oms_envelope(server, params, message) -> None:
    response = get(server, ORDERS, params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error["message"] and error["exception"] is None


# --- OMS detail and the masked email -----------------------------------------------------


def test_detail_carries_a_masked_email_that_only_the_cl_profile_resolves(server, world) -> None:
    vtex = store(world)
    profiles = vtex.profile_by_user_id()
    for order in random.Random(7).sample(vtex.orders, 25):
        detail = get(server, f"{ORDERS}/{order['orderId']}").json()
        client = detail["clientProfileData"]
        email = client["email"]
        assert email.endswith(MASKED_EMAIL_DOMAIN)
        assert HEX_ALIAS.match(email) or TRACKER_ALIAS.match(email), email
        profile = profiles[client["userProfileId"]]
        person = world.person(vtex.order_person[order["orderId"]])
        assert vtex.profile_person[profile["id"]] == person.person_id
        assert MASKED_EMAIL_DOMAIN not in profile["email"]
        assert isinstance(detail["value"], int)
        assert detail["value"] == sum(t["value"] for t in detail["totals"])
        assert detail["lastChange"] >= detail["creationDate"]


def test_detail_of_an_unknown_order_is_404_in_the_oms_envelope(server) -> None:
    response = get(server, f"{ORDERS}/v000000omni-01")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Order not found"


# --- Master Data v2 ---------------------------------------------------------------------


def test_scroll_pages_with_its_token_until_an_empty_page(server, world) -> None:
    first = get(server, SCROLL, params={"_size": 25, "_fields": "id,email,userId"})
    assert first.status_code == 200
    token = first.headers["X-VTEX-MD-TOKEN"]
    assert first.headers["REST-Content-Total"] == str(len(store(world).profiles))
    documents = first.json()
    assert len(documents) == 25 and set(documents[0]) == {"id", "email", "userId"}
    while True:
        page = get(server, SCROLL, params={"_token": token}).json()
        if not page:
            break
        documents += page
    ids = [d["id"] for d in documents]
    assert len(ids) == len(set(ids)) == len(store(world).profiles)
    # once drained, the token is gone
    assert get(server, SCROLL, params={"_token": token}).status_code == 400


def test_scroll_defaults_and_limits(server, world) -> None:
    default = get(server, SCROLL).json()
    assert len(default) == min(100, len(store(world).profiles))
    assert set(default[0]) == {"id", "accountId", "accountName", "dataEntityId"}
    too_big = get(server, SCROLL, params={"_size": 1001})
    assert too_big.status_code == 400 and "1000" in too_big.json()["Message"]
    assert len(get(server, SCROLL, params={"_size": 1000}).json()) <= 1000


def test_an_idle_scroll_token_expires(fresh_server) -> None:
    first = get(fresh_server, SCROLL, params={"_size": 5})
    token = first.headers["X-VTEX-MD-TOKEN"]
    fresh_server.app.state.vtex.expire_scroll_tokens()
    expired = get(fresh_server, SCROLL, params={"_token": token})
    assert expired.status_code == 400
    assert expired.json() == {"Message": f"Operation not found for this token: '{token}'"}


def test_scroll_filters_on_updated_in_and_sorts(server, world) -> None:
    stamps = sorted(p["updatedIn"] for p in store(world).profiles)
    middle = stamps[len(stamps) // 2]
    params = {
        "_where": f"updatedIn between {middle} AND 2100-01-01",
        "_sort": "updatedIn ASC",
        "_fields": "id,updatedIn",
        "_size": 1000,
    }
    documents = get(server, SCROLL, params=params).json()
    assert [d["updatedIn"] for d in documents] == [s for s in stamps if s >= middle]


def test_search_pages_with_rest_range(server, world) -> None:
    total = len(store(world).profiles)
    response = get(
        server,
        SEARCH,
        params={"_fields": "id", "_sort": "createdIn ASC"},
        headers={"REST-Range": "resources=10-20"},
    )
    assert response.status_code == 200
    assert len(response.json()) == 10
    assert response.headers["REST-Content-Range"] == f"resources 10-20/{total}"
    ordered = sorted(store(world).profiles, key=lambda p: p["createdIn"])
    assert [d["id"] for d in response.json()] == [p["id"] for p in ordered[10:20]]


@pytest.mark.parametrize(
    ("params", "headers", "message"),
    [
        ({}, {"REST-Range": "resources=0-101"}, "maximum number of documents per page is 100"),
        ({}, {"REST-Range": "resources=9950-10050"}, "returned by search is 10000"),
        ({}, {"REST-Range": "items=0-10"}, "Invalid REST-Range"),
        ({"_fields": "id,shoeSize"}, {}, "Field 'shoeSize' not found in schema"),
        ({"_where": "shoeSize=42"}, {}, "Field 'shoeSize' not found in schema"),
        ({"_where": "(firstName=Ana"}, {}, "Invalid where clause"),
        ({"_where": "updatedIn>yesterday"}, {}, "Invalid date value"),
        ({"_sort": "updatedIn UP"}, {}, "Invalid sort"),
    ],
)
def test_master_data_validation_errors(server, params, headers, message) -> None:
    response = get(server, SEARCH, params=params, headers=headers)
    assert response.status_code == 400
    assert message in response.json()["Message"]


def test_where_combines_and_or_and_null_checks(server, world) -> None:
    profiles = store(world).profiles
    params = {
        "_where": "document is null OR isNewsletterOptIn=true AND birthDate is not null",
        "_fields": "id",
        "_size": 1000,
    }
    found = {d["id"] for d in get(server, SCROLL, params=params).json()}
    expected = {
        p["id"]
        for p in profiles
        if p["document"] is None or (p["isNewsletterOptIn"] and p["birthDate"] is not None)
    }
    assert found == expected


def test_other_data_entities_and_unknown_paths_answer_in_the_platforms_body(server) -> None:
    entity = get(server, "/api/dataentities/XX/scroll")
    assert entity.status_code == 404 and "Data entity 'XX' not found" in entity.json()["Message"]
    oms = get(server, "/api/oms/pvt/nothing-here")
    assert oms.status_code == 404 and "No route matches" in oms.json()["error"]["message"]
    md = get(server, "/api/dataentities/CL/nothing/here")
    assert md.status_code == 404 and set(md.json()) == {"Message"}


# --- rate limit and faults ----------------------------------------------------------------


def test_rate_limit_is_429_with_retry_after(fresh_server) -> None:
    vtex = fresh_server.app.state.vtex
    vtex.set_rate_limit(3)
    answers = [get(fresh_server, ORDERS, params={"per_page": 1}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 60
    assert answers[3].headers["Retry-After"] == answers[3].headers["X-RateLimit-Reset"]
    assert answers[3].json()["error"]["message"] == "Too Many Requests"


def test_rate_limit_window_resets_each_minute(world) -> None:
    """Fixed one-minute windows: refused until the window ends, then the full rate again."""
    now = [1000.0]
    emulator = VtexEmulator(world, requests_per_minute=2, clock=lambda: now[0])
    app = FastAPI()
    app.include_router(emulator.router)
    client = TestClient(app)
    assert [client.get(ORDERS, headers=AUTH).status_code for _ in range(3)] == [200, 200, 429]
    now[0] += 59.2
    refused = client.get(SCROLL, headers=AUTH)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.json() == {"Message": "Too Many Requests"}
    now[0] += 1.0
    assert [client.get(ORDERS, headers=AUTH).status_code for _ in range(3)] == [200, 200, 429]


def test_faults_by_method_and_over_http(fresh_server) -> None:
    vtex = fresh_server.app.state.vtex
    vtex.fail_next(1, status=429)
    throttled = get(fresh_server, SCROLL)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    knob = httpx.post(f"{fresh_server.url}/_sandbox/vtex/faults", json={"n": 2, "status": 503})
    assert knob.json()["pending_failures"] == 2
    assert [get(fresh_server, ORDERS).status_code for _ in range(3)] == [503, 503, 200]
    httpx.post(f"{fresh_server.url}/_sandbox/vtex/faults", json={"n": 1, "timeout_seconds": 1.5})
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{fresh_server.url}{ORDERS}", headers=AUTH, timeout=0.5)
    assert get(fresh_server, ORDERS).status_code == 200


def test_touched_records_move_their_change_stamps(fresh_server) -> None:
    vtex = fresh_server.app.state.vtex
    order = vtex.store.orders[0]
    touched = httpx.post(
        f"{fresh_server.url}/_sandbox/vtex/orders/{order['orderId']}/touch",
        json={"status": "canceled", "statusDescription": "Cancelado"},
    ).json()
    assert touched["lastChange"] > max(o["lastChange"] for o in vtex.store.orders[1:])
    detail = get(fresh_server, f"{ORDERS}/{order['orderId']}").json()
    assert detail["status"] == "canceled"
    profile = vtex.touch_profile(vtex.store.profiles[0]["id"], firstName="Renomeada")
    assert profile["updatedIn"] == max(p["updatedIn"] for p in vtex.store.profiles)


# --- the world slice ------------------------------------------------------------------------


def test_world_slice_is_deterministic_and_round_trips(world) -> None:
    vtex = store(world)
    again = build_vtex_store(
        random.Random(f"{world.seed}:vtex"),
        world.people,
        world.as_of,
        {name: piece for name, piece in world.slices.items() if name != "vtex"},
    )
    assert json.dumps(again.to_dict()) == json.dumps(vtex.to_dict())
    loaded = VtexStore.from_dict(json.loads(json.dumps(vtex.to_dict())))
    assert loaded.to_dict() == vtex.to_dict()
    assert "VTEX customer profiles" in vtex.describe()


def test_world_slice_has_the_mess_and_the_truth(world) -> None:
    vtex = store(world)
    profiles = vtex.profile_by_user_id()
    assert len(profiles) == len(vtex.profiles)
    # every order leads to one profile of the same person
    for order in vtex.orders:
        profile = profiles[order["clientProfileData"]["userProfileId"]]
        assert vtex.profile_person[profile["id"]] == vtex.order_person[order["orderId"]]
        assert parse_timestamp(order["lastChange"]) < world.as_of
        assert world.as_of - parse_timestamp(order["creationDate"]) < timedelta(days=730)
    statuses = {o["status"] for o in vtex.orders}
    assert {"invoiced", "canceled"} <= statuses
    # accounts without orders, some erased before as_of: never served, still in the truth
    buyers = {o["clientProfileData"]["userProfileId"] for o in vtex.orders}
    assert any(p["userId"] not in buyers for p in vtex.profiles)
    deleted = {entry["id"]: entry for entry in vtex.deleted}
    assert deleted and not deleted.keys() & {p["id"] for p in vtex.profiles}
    assert set(vtex.profile_person) == {p["id"] for p in vtex.profiles} | deleted.keys()
    for entry in deleted.values():
        assert entry["record"]["userId"] not in buyers
        assert entry["record"]["updatedIn"] <= entry["deleted_at"] < md_timestamp(world.as_of)
    channels = [o["shippingData"]["logisticsInfo"][0]["deliveryChannel"] for o in vtex.orders]
    assert "pickup-in-point" in channels and "delivery" in channels
    documents = [p["document"] for p in vtex.profiles]
    assert sum(1 for d in documents if d and cpf_is_valid(d)) > 0.85 * len(documents)
    # people who also shop on Shopify: some sign up here with another address
    shopify_people = set(world.slices["shopify"].customer_person.values())
    other_address = [
        p
        for p in vtex.profiles
        if vtex.profile_person[p["id"]] in shopify_people
        and p["email"].strip().lower() != world.person(vtex.profile_person[p["id"]]).email
    ]
    assert other_address
    # phones as typed: with and without +55 and the ninth digit
    phones = [o["clientProfileData"]["phone"] for o in vtex.orders]
    assert any(p.startswith("+55") for p in phones)
    assert any(not p.startswith("+") for p in phones)
    assert any(len(re.sub(r"\D", "", p)) == 10 for p in phones)  # DDD + 8 digits
