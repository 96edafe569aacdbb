"""HubSpot's official Python client (``hubspot-api-client``) drives the sandbox's emulation.

Its typed models, its ``get_all`` pager (which follows ``paging.next.after``), its search
request models, the v4 association batch read (200 or 207) and its ``ApiException`` for
401 and 429 must work unchanged against the emulated portal, as against
``api.hubapi.com``; only ``host`` differs.
"""

from __future__ import annotations

import json

import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.contacts import ApiException, PublicObjectSearchRequest
from hubspot.crm.deals import PublicObjectSearchRequest as DealSearchRequest

from omnicanal.channels.hubspot import SANDBOX_ACCESS_TOKEN


@pytest.fixture
def client(server) -> HubSpot:
    return HubSpot(access_token=SANDBOX_ACCESS_TOKEN, host=server.url)


def test_get_all_walks_every_contact_with_the_asked_properties(client, world) -> None:
    portal = world.slices["hubspot"]
    contacts = client.crm.contacts.get_all(properties=["email", "hs_additional_emails", "phone"])
    assert [c.id for c in contacts] == [c["id"] for c in portal.objects["contacts"]]
    by_id = {c["id"]: c for c in portal.objects["contacts"]}
    for contact in contacts:
        props = contact.properties
        assert props["email"] == by_id[contact.id]["properties"]["email"]
        assert (
            props["hs_additional_emails"] == by_id[contact.id]["properties"]["hs_additional_emails"]
        )
        assert "firstname" not in props  # not asked for: not sent
        assert contact.updated_at is not None and contact.archived is False


def test_a_page_carries_paging_and_associations(client, world) -> None:
    page = client.crm.contacts.basic_api.get_page(limit=5, associations=["companies"])
    assert len(page.results) == 5
    following = client.crm.contacts.basic_api.get_page(limit=5, after=page.paging.next.after)
    assert following.results[0].id != page.results[-1].id
    assert int(following.results[0].id) > int(page.results[-1].id)
    with_company = [
        c
        for c in client.crm.contacts.get_all(associations=["companies"])
        if c.associations and "companies" in c.associations
    ]
    assert with_company
    linked = with_company[0].associations["companies"].results[0]
    assert linked.type == "contact_to_company"
    portal = world.slices["hubspot"]
    assert ["contacts", with_company[0].id, "companies", linked.id] in portal.associations


def test_search_on_last_modified_pages_with_after(client, world) -> None:
    deals = world.slices["hubspot"].objects["deals"]
    stamps = sorted(d["updatedAt"] for d in deals)
    start = stamps[len(stamps) // 3]
    found, after = [], None
    while True:
        request = DealSearchRequest(
            filter_groups=[
                {
                    "filters": [
                        {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": start}
                    ]
                }
            ],
            sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            properties=["dealname", "dealstage", "amount"],
            limit=7,
            after=after,
        )
        page = client.crm.deals.search_api.do_search(public_object_search_request=request)
        assert page.total == sum(1 for d in deals if d["updatedAt"] >= start)
        found += page.results
        if page.paging is None:
            break
        after = page.paging.next.after
    assert sorted(d.id for d in found) == sorted(d["id"] for d in deals if d["updatedAt"] >= start)
    modified = [d.properties["hs_lastmodifieddate"] for d in found]
    assert modified == sorted(modified)


def test_search_a_contact_by_email(client, world) -> None:
    contact = next(
        c for c in world.slices["hubspot"].objects["contacts"] if c["properties"]["email"]
    )
    email = contact["properties"]["email"].strip()
    request = PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}]
    )
    page = client.crm.contacts.search_api.do_search(public_object_search_request=request)
    assert contact["id"] in [c.id for c in page.results]


def test_association_batch_read_answers_207_for_objects_without_any(client, world) -> None:
    portal = world.slices["hubspot"]
    linked = {a[1] for a in portal.associations if a[0] == "deals" and a[2] == "contacts"}
    deal = next(d["id"] for d in portal.objects["deals"] if d["id"] in linked)
    request = BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[PublicFetchAssociationsBatchRequest(id=deal)]
    )
    found = client.crm.associations.v4.batch_api.get_page(
        "deals", "contacts", batch_input_public_fetch_associations_batch_request=request
    )
    assert found.status == "COMPLETE"
    assert found.results[0].to[0].association_types[0].type_id == 3
    lonely = next(c["id"] for c in portal.objects["contacts"] if not any(
        a[3] == c["id"] for a in portal.associations if a[0] == "deals"
    ))  # fmt: skip
    request = BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[PublicFetchAssociationsBatchRequest(id=lonely)]
    )
    partial = client.crm.associations.v4.batch_api.get_page(
        "contacts", "deals", batch_input_public_fetch_associations_batch_request=request
    )
    assert partial.num_errors == 1 and partial.results == []


def test_a_wrong_token_surfaces_as_a_401_api_exception(server) -> None:
    wrong = HubSpot(access_token="pat-na1-not-this-one", host=server.url)
    with pytest.raises(ApiException) as raised:
        wrong.crm.contacts.basic_api.get_page(limit=1)
    assert raised.value.status == 401
    body = json.loads(raised.value.body)
    assert body["category"] == "INVALID_AUTHENTICATION" and body["status"] == "error"
    assert raised.value.headers["X-HubSpot-Auth-Failure"] == "401 Unauthorized"


def test_rate_limits_surface_as_429_api_exceptions(fresh_server) -> None:
    emulator = fresh_server.app.state.hubspot
    emulator.set_rate_limits(burst=3, search_per_second=1)
    client = HubSpot(access_token=SANDBOX_ACCESS_TOKEN, host=fresh_server.url)
    pages = [client.crm.contacts.basic_api.get_page_with_http_info(limit=1) for _ in range(3)]
    remaining = [int(p[2]["X-HubSpot-RateLimit-Remaining"]) for p in pages]
    assert remaining == [2, 1, 0]
    assert pages[0][2]["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    with pytest.raises(ApiException) as raised:
        client.crm.contacts.basic_api.get_page(limit=1)
    assert raised.value.status == 429
    body = json.loads(raised.value.body)
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["correlationId"]
    # search has its own per-second limit, and no rate-limit headers
    search = PublicObjectSearchRequest(limit=1)
    _, status, headers = client.crm.contacts.search_api.do_search_with_http_info(
        public_object_search_request=search
    )
    assert status == 200 and "X-HubSpot-RateLimit-Remaining" not in headers
    with pytest.raises(ApiException) as raised:
        client.crm.contacts.search_api.do_search(public_object_search_request=search)
    assert raised.value.status == 429
    assert json.loads(raised.value.body)["policyName"] == "SECONDLY"
