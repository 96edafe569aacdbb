"""Customer groups and custom attributes at Square, and the destination on them.

The emulation's Customer Groups API, group membership and customer custom attributes
are driven with Square's official SDK (``squareup``) and must answer as Square does:
validation and ``NOT_FOUND`` in Square's error body, idempotent creation, the version
the groups API needs, bulk upserts answered one by one. Then omnicanal's destination:
find-or-create of its group, a profile Square does not have failing alone with
Square's reason, pacing at the rate limit (and 429s retried when it is exceeded), and
a bad token or version stopping it naming the setting.
"""

from __future__ import annotations

import httpx
import pytest
from square import Square
from square.core.api_error import ApiError

from omnicanal.activation.destination import Row
from omnicanal.channels.square import API_VERSION, SANDBOX_ACCESS_TOKEN
from omnicanal.channels.square.destination import SquareDestination
from omnicanal.channels.square.writes import SCHEMA_BASE
from omnicanal.errors import SyncError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:square")


@pytest.fixture
def seller(fresh_server):
    return fresh_server.app.state.emulators["square"]


@pytest.fixture
def sdk(fresh_server) -> Square:
    return Square(token=SANDBOX_ACCESS_TOKEN, base_url=fresh_server.url)


def error_of(call) -> dict:
    with pytest.raises(ApiError) as caught:
        call()
    (error,) = caught.value.body["errors"]
    return {"status": caught.value.status_code, **error}


def test_groups_and_membership_as_square_answers_them(sdk, seller, fresh_server):
    created = sdk.customers.groups.create(group={"name": "Loja Paulista"}, idempotency_key="k-1")
    again = sdk.customers.groups.create(group={"name": "Loja Paulista"}, idempotency_key="k-1")
    assert again.group.id == created.group.id and len(seller.writes.groups) == 1
    other = sdk.customers.groups.create(group={"name": "VIP"}).group
    assert [g.name for g in sdk.customers.groups.list(limit=1)] == ["Loja Paulista", "VIP"]
    assert error_of(lambda: sdk.customers.groups.list(limit=51))["code"] == "VALUE_TOO_HIGH"
    assert error_of(lambda: sdk.customers.groups.create(group={"name": ""})) == {
        "status": 400,
        "category": "INVALID_REQUEST_ERROR",
        "code": "MISSING_REQUIRED_PARAMETER",
        "detail": "Field must be set",
        "field": "group.name",
    }

    customer = seller.shop.customers[0]
    version = customer.get("version", 0)
    sdk.customers.groups.add(customer_id=customer["id"], group_id=created.group.id)
    sdk.customers.groups.add(customer_id=customer["id"], group_id=created.group.id)
    sdk.customers.groups.add(customer_id=customer["id"], group_id=other.id)
    profile = sdk.customers.get(customer_id=customer["id"]).customer
    assert profile.group_ids == [created.group.id, other.id]
    assert profile.version == version + 2 and profile.updated_at > customer["updated_at"]
    # the till's view: search by group membership
    in_both = sdk.customers.search(
        query={"filter": {"group_ids": {"all": [created.group.id, other.id]}}}
    ).customers
    assert [c.id for c in in_both] == [customer["id"]]
    outside = sdk.customers.search(
        query={"filter": {"group_ids": {"none": [created.group.id]}}}, limit=100
    ).customers
    assert customer["id"] not in {c.id for c in outside} and len(outside) > 10
    sdk.customers.groups.remove(customer_id=customer["id"], group_id=created.group.id)
    assert sdk.customers.get(customer_id=customer["id"]).customer.group_ids == [other.id]

    missing = error_of(
        lambda: sdk.customers.groups.add(customer_id="NOPE", group_id=created.group.id)
    )
    assert (missing["status"], missing["code"], missing["field"]) == (
        404,
        "NOT_FOUND",
        "customer_id",
    )
    gone = error_of(lambda: sdk.customers.groups.add(customer_id=customer["id"], group_id="NOPE"))
    assert (gone["status"], gone["field"]) == (404, "group_id")

    # deleting a group takes it off every profile
    sdk.customers.groups.delete(group_id=other.id)
    assert not sdk.customers.get(customer_id=customer["id"]).customer.group_ids

    old = httpx.get(
        f"{fresh_server.url}/v2/customers/groups",
        headers={"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}", "Square-Version": "2020-01-22"},
    )
    assert old.status_code == 400
    assert old.json()["errors"][0]["code"] == "API_VERSION_INCOMPATIBLE"


def test_custom_attributes_are_validated_and_answered_one_by_one(sdk, seller):
    definitions = sdk.customers.custom_attribute_definitions
    definitions.create(
        custom_attribute_definition={
            "key": "omnicanal.visits",
            "name": "Visitas",
            "schema": {"$ref": f"{SCHEMA_BASE}Number"},
            "visibility": "VISIBILITY_READ_WRITE_VALUES",
        }
    )
    bad_schema = error_of(
        lambda: definitions.create(
            custom_attribute_definition={"key": "x", "schema": {"$ref": "nope"}}
        )
    )
    assert (bad_schema["code"], bad_schema["field"]) == (
        "INVALID_VALUE",
        "custom_attribute_definition.schema",
    )
    customer_id = seller.shop.customers[0]["id"]

    def upsert(value, key="omnicanal.visits", customer=customer_id):
        return {"customer_id": customer, "custom_attribute": {"key": key, "value": value}}

    answers = definitions.batch_upsert(
        values={
            "ok": upsert("3"),
            "word": upsert("três"),
            "nobody": upsert("1", customer="NOPE"),
            "undefined": upsert("1", key="omnicanal.other"),
        }
    ).values
    assert answers["ok"].custom_attribute.value == "3" and not answers["ok"].errors
    assert [answers[k].errors[0].code for k in ("word", "nobody", "undefined")] == [
        "INVALID_VALUE",
        "NOT_FOUND",
        "NOT_FOUND",
    ]
    listed = list(sdk.customers.custom_attributes.list(customer_id=customer_id))
    assert [(a.key, a.value, a.version) for a in listed] == [("omnicanal.visits", "3", 1)]
    too_many = error_of(
        lambda: definitions.batch_upsert(values={f"u{n}": upsert(str(n)) for n in range(26)})
    )
    assert too_many["code"] == "TOO_MANY_MAP_ENTRIES"


def destination(server, **options) -> SquareDestination:
    return SquareDestination(server.url, SANDBOX_ACCESS_TOKEN, API_VERSION, **options)


def test_a_profile_square_lacks_fails_alone_and_the_group_is_found_not_made_twice(
    fresh_server, seller
):
    customers = [c["id"] for c in seller.shop.customers[:3]]
    dest = destination(fresh_server, group="Fiéis", attribute_types={"omnicanal.visits": "Number"})
    try:
        dest.check()
        outcomes = dest.upsert(
            [
                Row(customers[0], {"omnicanal.visits": 3}),
                Row("NO0SUCH0CUSTOMER", {"omnicanal.visits": 1}),
                Row(customers[1], {"omnicanal.visits": None}),
            ]
        )
    finally:
        dest.close()
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].error == "NOT_FOUND: Customer with ID `NO0SUCH0CUSTOMER` not found."
    group = seller.writes.group_named("Fiéis")
    assert seller.writes.members(group["id"]) == {customers[0], customers[1]}
    assert seller.writes.attributes[customers[0]]["omnicanal.visits"]["value"] == "3"
    assert customers[1] not in seller.writes.attributes  # null: left out
    assert seller.writes.definitions["omnicanal.visits"]["schema"]["$ref"].endswith("Number")

    again = destination(fresh_server, group="Fiéis")
    try:
        again.check()
        assert again.group_id == group["id"] and len(seller.writes.groups) == 1
        removed = again.remove([Row(customers[0], {}), Row("NO0SUCH0CUSTOMER", {})])
    finally:
        again.close()
    assert [o.ok for o in removed] == [True, True]  # a profile Square lacks is in no group
    assert seller.writes.members(group["id"]) == {customers[1]}


def test_paced_at_the_rate_limit_and_429s_retried_beyond_it(fresh_server, seller):
    customers = [c["id"] for c in seller.shop.customers[:12]]
    seller.set_rate_limit(5)
    # paced just under the seller's limit (an even spacing at exactly 5/s meets network
    # jitter at the window's edge)
    paced = destination(fresh_server, group="Ritmo", rate_limit=4.5)
    try:
        paced.check()
        assert all(o.ok for o in paced.upsert([Row(c, {}) for c in customers[:6]]))
        # the group lookup, its creation, one request a row: no 429, nothing sent twice
        assert paced.client.requests_sent == 2 + 6
    finally:
        paced.close()
    seller.set_rate_limit(5)
    eager = destination(fresh_server, group="Ritmo", rate_limit=50)
    try:
        assert all(o.ok for o in eager.remove([Row(c, {}) for c in customers[:12]]))
        assert eager.client.requests_sent > 1 + 12  # some answered 429 and were sent again
    finally:
        eager.close()
    assert seller.writes.members(seller.writes.group_named("Ritmo")["id"]) == set()


def test_a_bad_token_or_version_names_the_setting(fresh_server):
    bad = SquareDestination(fresh_server.url, "EAAAwrong", API_VERSION)
    try:
        with pytest.raises(SyncError, match="OMNICANAL_SQUARE_ACCESS_TOKEN"):
            bad.check()
    finally:
        bad.close()
    old = SquareDestination(fresh_server.url, SANDBOX_ACCESS_TOKEN, "2019-06-12")
    try:
        with pytest.raises(SyncError, match="OMNICANAL_SQUARE_API_VERSION"):
            old.check()
    finally:
        old.close()


def test_what_syncs_wrote_survives_a_sandbox_restart(tmp_path):
    from omnicanal.sandbox import SandboxServer, generate_world

    state = tmp_path / "square.json"
    with SandboxServer(generate_world(30, 5), square={"state_path": state}) as first:
        seller = first.app.state.emulators["square"]
        customers = [c["id"] for c in seller.shop.customers[:3]]
        dest = destination(first, group="Fica")
        try:
            dest.check()
            outcomes = dest.upsert([Row(c, {"omnicanal.nota": c[:4]}) for c in customers])
            assert all(o.ok for o in outcomes)
            assert all(o.ok for o in dest.remove([Row(customers[2], {})]))
        finally:
            dest.close()
        seller.writes.flush()  # a save a second later, or now
        versions = {c["id"]: c["version"] for c in seller.shop.customers[:3]}
    with SandboxServer(generate_world(30, 5), square={"state_path": state}) as again:
        seller = again.app.state.emulators["square"]
        group = seller.writes.group_named("Fica")
        assert seller.writes.members(group["id"]) == set(customers[:2])
        assert seller.writes.attributes[customers[0]]["omnicanal.nota"]["value"] == customers[0][:4]
        # the membership is remembered, not written again
        assert seller.writes.membership_writes == 0
        profile = Square(token=SANDBOX_ACCESS_TOKEN, base_url=again.url).customers.get(
            customer_id=customers[0]
        )
        assert profile.customer.group_ids == [group["id"]]
        assert profile.customer.version == versions[customers[0]]


def test_transient_failures_are_retried_and_a_lasting_one_stops_the_run(fresh_server, seller):
    customers = [c["id"] for c in seller.shop.customers[:2]]
    dest = destination(fresh_server, group="Tempestade", max_attempts=3, backoff=0.01)
    try:
        dest.check()
        seller.fail_next(2, 503)
        assert [o.ok for o in dest.upsert([Row(customers[0], {})])] == [True]
        seller.fail_next(3, 500)
        with pytest.raises(SyncError, match="Square kept failing"):
            dest.upsert([Row(customers[1], {})])
    finally:
        dest.close()
    group = seller.writes.group_named("Tempestade")
    assert seller.writes.members(group["id"]) == {customers[0]}
