"""HubSpot's write side: the emulation as HubSpot's own client sees it, and the destination.

``hubspot-api-client`` drives the emulated batch upsert (200, and 207 with an error per
refused input when every input has an ``objectWriteTraceId``; a 400 that writes nothing
without), the properties and property-groups API, and Lists v3 (create, read by name,
memberships add/remove/page). Then :class:`HubSpotDestination` over HTTP: properties it
creates with the right types, a refused row failing alone, list membership in audience
mode (removal leaves the list, not the CRM), retries of 429s, and a bad token naming
its setting.
"""

from __future__ import annotations

import json

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInputUpsert,
    SimplePublicObjectBatchInputUpsert,
)
from hubspot.crm.lists import ApiException as ListsApiException
from hubspot.crm.lists import ListCreateRequest
from hubspot.crm.properties import ApiException as PropertiesApiException
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate

from omnicanal.activation.destination import Row
from omnicanal.channels.hubspot import SANDBOX_ACCESS_TOKEN
from omnicanal.channels.hubspot.destination import HubSpotDestination, property_type
from omnicanal.errors import SyncError
from omnicanal.sandbox import SandboxServer
from omnicanal.sandbox.world import generate_world


@pytest.fixture(scope="module")
def server():
    # a world of its own: these tests write contacts into the portal
    with SandboxServer(generate_world(12, seed=41), hubspot={"search_per_second": None}) as running:
        yield running


@pytest.fixture
def emulator(server):
    emulator = server.app.state.hubspot
    emulator.writes.reset()
    emulator.faults.clear()
    emulator.set_rate_limits()
    return emulator


@pytest.fixture
def client(server, emulator) -> HubSpot:
    return HubSpot(access_token=SANDBOX_ACCESS_TOKEN, host=server.url)


def destination(server, **options) -> HubSpotDestination:
    return HubSpotDestination(server.url, SANDBOX_ACCESS_TOKEN, backoff=0.01, **options)


def upsert_input(email: str, trace: str | None = None, **properties: str):
    return SimplePublicObjectBatchInputUpsert(
        id=email, id_property="email", object_write_trace_id=trace, properties=properties
    )


# -- the emulation through the official client --------------------------------------------


def test_batch_upsert_creates_then_updates_contacts_by_email(client, emulator) -> None:
    batch = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[upsert_input("Bia.Nova@lojaexemplo.com.br", firstname="Bia", lastname="Nova")]
    )
    first = client.crm.contacts.batch_api.upsert(batch)
    assert first.status == "COMPLETE"
    assert [r.new for r in first.results] == [True]
    created = first.results[0].id
    held = emulator.writes.contacts()["bia.nova@lojaexemplo.com.br"]
    assert (held["firstname"], held["lastname"], held["hs_object_id"]) == ("Bia", "Nova", created)

    again = client.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[upsert_input("bia.nova@lojaexemplo.com.br", lastname="Nova Silva")]
        )
    )
    assert [(r.id, r.new) for r in again.results] == [(created, False)]
    held = emulator.writes.contacts()["bia.nova@lojaexemplo.com.br"]
    assert (held["firstname"], held["lastname"]) == ("Bia", "Nova Silva")
    # and the read side serves the new contact like any other
    read = client.crm.contacts.basic_api.get_by_id(created, properties=["lastname"])
    assert read.properties["lastname"] == "Nova Silva"


def test_an_invalid_input_fails_the_whole_batch_without_multi_status(client, emulator) -> None:
    batch = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[
            upsert_input("caio@lojaexemplo.com.br", firstname="Caio"),
            upsert_input("caio@lojaexemplo.com.br", no_such_property="x"),
            upsert_input("not-an-email", firstname="Sem"),
        ]
    )
    with pytest.raises(ApiException) as raised:
        client.crm.contacts.batch_api.upsert(batch)
    assert raised.value.status == 400
    body = json.loads(raised.value.body)
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid")
    codes = {e["code"] for e in body["errors"]}
    assert codes == {"PROPERTY_DOESNT_EXIST", "INVALID_EMAIL"}
    assert "caio@lojaexemplo.com.br" not in emulator.writes.contacts()  # nothing written


def test_multi_status_writes_the_valid_inputs_and_answers_207(client, emulator) -> None:
    batch = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[
            upsert_input("duda@lojaexemplo.com.br", "0", firstname="Duda"),
            upsert_input("fake@example.com", "1", firstname="Fake"),
            upsert_input("eva@lojaexemplo.com.br", "2", createdate="2020-01-01"),
        ]
    )
    answer = client.crm.contacts.batch_api.upsert(batch)
    assert answer.num_errors == 2
    assert [r.object_write_trace_id for r in answer.results] == ["0"]
    errors = {e.context["objectWriteTraceId"][0]: e for e in answer.errors}
    assert set(errors) == {"1", "2"}
    assert errors["1"].errors[0].code == "INVALID_EMAIL"
    assert errors["2"].errors[0].code == "READ_ONLY_VALUE"
    held = emulator.writes.contacts()
    assert "duda@lojaexemplo.com.br" in held and "fake@example.com" not in held


def test_a_batch_holds_at_most_100_inputs(client) -> None:
    batch = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[upsert_input(f"c{n}@lojaexemplo.com.br") for n in range(101)]
    )
    with pytest.raises(ApiException) as raised:
        client.crm.contacts.batch_api.upsert(batch)
    assert raised.value.status == 400
    assert "limit" in json.loads(raised.value.body)["message"]


def test_properties_and_groups_are_created_and_validated(client, emulator) -> None:
    client.crm.properties.groups_api.create(
        "contacts", PropertyGroupCreate(name="loja", label="Loja")
    )
    made = client.crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name="loja_pedidos",
            label="Pedidos",
            type="number",
            field_type="number",
            group_name="loja",
        ),
    )
    assert (made.name, made.type, made.hubspot_defined) == ("loja_pedidos", "number", False)
    names = {p.name for p in client.crm.properties.core_api.get_all("contacts").results}
    assert {"email", "firstname", "loja_pedidos"} <= names

    with pytest.raises(PropertiesApiException) as taken:
        client.crm.properties.core_api.create(
            "contacts",
            PropertyCreate(
                name="loja_pedidos",
                label="x",
                type="number",
                field_type="number",
                group_name="loja",
            ),
        )
    assert taken.value.status == 409
    assert json.loads(taken.value.body)["category"] == "OBJECT_ALREADY_EXISTS"
    with pytest.raises(PropertiesApiException) as mismatched:
        client.crm.properties.core_api.create(
            "contacts",
            PropertyCreate(
                name="loja_vip", label="VIP", type="bool", field_type="text", group_name="loja"
            ),
        )
    assert mismatched.value.status == 400
    with pytest.raises(PropertiesApiException) as no_group:
        client.crm.properties.core_api.create(
            "contacts",
            PropertyCreate(
                name="loja_vip",
                label="VIP",
                type="bool",
                field_type="booleancheckbox",
                group_name="nowhere",
            ),
        )
    assert no_group.value.status == 400

    # a number property refuses what is not a number
    refused = client.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                upsert_input("gil@lojaexemplo.com.br", "a", loja_pedidos="3"),
                upsert_input("hugo@lojaexemplo.com.br", "b", loja_pedidos="três"),
            ]
        )
    )
    assert [e.errors[0].code for e in refused.errors] == ["INVALID_INTEGER"]
    assert emulator.writes.contacts()["gil@lojaexemplo.com.br"]["loja_pedidos"] == "3"


def test_manual_lists_take_memberships_by_record_id(client, emulator) -> None:
    created = client.crm.lists.lists_api.create(
        ListCreateRequest(name="VIPs da loja", object_type_id="0-1", processing_type="MANUAL")
    ).list
    assert created.processing_type == "MANUAL" and created.size == 0
    found = client.crm.lists.lists_api.get_by_name("VIPs da loja", "0-1").list
    assert found.list_id == created.list_id

    contacts = list(emulator.portal.objects["contacts"])[:3]
    ids = [c["id"] for c in contacts]
    added = client.crm.lists.memberships_api.add(created.list_id, [*ids, "999999999"])
    assert sorted(added.records_ids_added) == sorted(ids)
    assert added.record_ids_missing == ["999999999"]
    page = client.crm.lists.memberships_api.get_page(created.list_id, limit=2)
    assert len(page.results) == 2 and page.paging.next.after
    removed = client.crm.lists.memberships_api.remove(created.list_id, ids[:1])
    assert removed.record_ids_removed == ids[:1]
    assert set(emulator.writes.lists[created.list_id].members) == set(ids[1:])

    with pytest.raises(ListsApiException) as missing:
        client.crm.lists.lists_api.get_by_name("Ninguém", "0-1")
    assert missing.value.status == 404
    dynamic = emulator.writes.list_create(
        {
            "name": "Ativos",
            "objectTypeId": "0-1",
            "processingType": "DYNAMIC",
            "filterBranch": {"filterBranchType": "OR"},
        }
    )["list"]
    with pytest.raises(ListsApiException) as refused:
        client.crm.lists.memberships_api.add(dynamic["listId"], ids[:1])
    assert refused.value.status == 400


# -- the destination ------------------------------------------------------------------------


def test_property_types_follow_the_values() -> None:
    assert property_type(12.5) == ("number", "number")
    assert property_type(True) == ("bool", "booleancheckbox")
    assert property_type("2025-05-01") == ("date", "date")
    assert property_type("2025-05-01T10:00:00+00:00") == ("datetime", "date")
    assert property_type("web") == ("string", "text")


def test_upsert_creates_missing_properties_then_writes_them(server, emulator) -> None:
    rows = [
        Row(
            "ana@lojaexemplo.com.br",
            {
                "email": "ana@lojaexemplo.com.br",
                "omnicanal_lifetime_value": 1234.5,
                "omnicanal_orders_count": 3,
                "omnicanal_is_omnichannel": True,
                "omnicanal_last_order_date": "2025-05-01",
                "omnicanal_preferred_channel": "web",
            },
        ),
        Row("bad", {"email": "bad@", "omnicanal_orders_count": 1}),
    ]
    dest = destination(server, mode="upsert")
    try:
        dest.check()
        outcomes = dest.upsert(rows)
    finally:
        dest.close()
    assert [(o.key, o.ok) for o in outcomes] == [("ana@lojaexemplo.com.br", True), ("bad", False)]
    assert "INVALID_EMAIL" in outcomes[1].error
    assert outcomes[0].ref == emulator.writes.contacts()["ana@lojaexemplo.com.br"]["hs_object_id"]
    types = {n: emulator.writes.properties[n]["type"] for n in rows[0].payload if n != "email"}
    assert types == {
        "omnicanal_lifetime_value": "number",
        "omnicanal_orders_count": "number",
        "omnicanal_is_omnichannel": "bool",
        "omnicanal_last_order_date": "date",
        "omnicanal_preferred_channel": "string",
    }
    assert emulator.writes.properties["omnicanal_orders_count"]["groupName"] == "omnicanal"
    held = emulator.writes.contacts()["ana@lojaexemplo.com.br"]
    assert held["omnicanal_lifetime_value"] == "1234.5"
    assert held["omnicanal_is_omnichannel"] == "true"
    assert held["omnicanal_last_order_date"] == "2025-05-01"
    assert dest.stats()["properties_created"] == 5
    assert dest.consent_channel is None


def test_audience_mode_keeps_a_manual_list(server, emulator) -> None:
    rows = [
        Row(f"m{n}@lojaexemplo.com.br", {"email": f"m{n}@lojaexemplo.com.br", "firstname": f"M{n}"})
        for n in range(3)
    ]
    dest = destination(server, mode="audience", list_name="omnicanal: teste")
    try:
        assert dest.consent_channel == "email"
        dest.check()
        assert emulator.writes.list_by_name("omnicanal: teste").processing_type == "MANUAL"
        outcomes = dest.upsert([*rows, Row("x", {"email": "x@example.com"})])
        assert [o.ok for o in outcomes] == [True, True, True, False]
        assert set(emulator.writes.list_members("omnicanal: teste")) == {r.key for r in rows}
        removed = dest.remove(rows[:1] + [Row("nobody@lojaexemplo.com.br", {})])
        assert [o.ok for o in removed] == [True, True]
    finally:
        dest.close()
    assert set(emulator.writes.list_members("omnicanal: teste")) == {r.key for r in rows[1:]}
    # left the list, still a contact
    assert emulator.writes.contacts()["m0@lojaexemplo.com.br"]["firstname"] == "M0"


def test_a_dynamic_list_of_that_name_is_refused(server, emulator) -> None:
    emulator.writes.list_create(
        {
            "name": "ativa",
            "objectTypeId": "0-1",
            "processingType": "DYNAMIC",
            "filterBranch": {"filterBranchType": "OR"},
        }
    )
    dest = destination(server, mode="audience", list_name="ativa")
    try:
        with pytest.raises(SyncError, match="MANUAL"):
            dest.check()
    finally:
        dest.close()


def test_throttled_and_failing_calls_are_retried(server, emulator) -> None:
    dest = destination(server, mode="upsert")
    try:
        dest.check()
        emulator.fail_next(2, 429)
        emulator.fail_next(1, 502)
        outcomes = dest.upsert([Row("r@lojaexemplo.com.br", {"email": "r@lojaexemplo.com.br"})])
    finally:
        dest.close()
    assert [o.ok for o in outcomes] == [True]
    assert "r@lojaexemplo.com.br" in emulator.writes.contacts()


def test_bad_token_names_the_setting(server, emulator) -> None:
    dest = HubSpotDestination(server.url, "pat-na1-wrong")
    try:
        with pytest.raises(SyncError, match="OMNICANAL_HUBSPOT_ACCESS_TOKEN") as raised:
            dest.check()
        assert "pat-na1-wrong" not in str(raised.value)
    finally:
        dest.close()


def test_an_audience_sync_needs_its_list() -> None:
    with pytest.raises(SyncError, match="list"):
        HubSpotDestination("http://localhost:1", SANDBOX_ACCESS_TOKEN, mode="audience")


def test_requests_are_paced_at_the_rate_limit(server, emulator) -> None:
    import time

    emulator.set_rate_limits(burst=25)  # 25 per 10 s: more than 20 at once is refused
    dest = destination(server, mode="upsert", rate_limit=20.0)
    try:
        dest.check()
        started = time.monotonic()
        for n in range(20):
            email = f"p{n}@lojaexemplo.com.br"
            assert [o.ok for o in dest.upsert([Row(email, {"email": email})])] == [True]
        elapsed = time.monotonic() - started
    finally:
        dest.close()
    assert elapsed >= 19 / 20 - 0.05  # 20 requests, evenly spaced at 20 a second
    assert emulator.throttled == {}


def test_what_a_sync_wrote_survives_a_sandbox_restart(tmp_path) -> None:
    state = tmp_path / "hubspot.json"
    rows = [
        Row(f"s{n}@lojaexemplo.com.br", {"email": f"s{n}@lojaexemplo.com.br", "omnicanal_x": n})
        for n in range(3)
    ]
    world = generate_world(8, seed=47)
    with SandboxServer(world, hubspot={"state_path": str(state)}) as first:
        dest = destination(first, mode="audience", list_name="omnicanal: restart")
        try:
            assert all(o.ok for o in dest.upsert(rows))
            assert all(o.ok for o in dest.remove(rows[:1]))
        finally:
            dest.close()
        first.app.state.hubspot.writes.flush()
    # a new sandbox over the same world, as after `omnicanal sandbox serve` again
    with SandboxServer(generate_world(8, seed=47), hubspot={"state_path": str(state)}) as again:
        writes = again.app.state.hubspot.writes
        assert set(writes.list_members("omnicanal: restart")) == {r.key for r in rows[1:]}
        assert writes.contacts()["s0@lojaexemplo.com.br"]["omnicanal_x"] == "0"
        assert writes.properties["omnicanal_x"]["type"] == "number"
        dest = destination(again, mode="audience", list_name="omnicanal: restart")
        try:
            dest.check()  # finds the list it made before, makes no second one
        finally:
            dest.close()
        assert len(writes.lists) == 1
