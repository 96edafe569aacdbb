"""Mailchimp's official Python client (mailchimp-marketing) drives the sandbox's emulation.

The calls a sync makes (read the audience, PUT a member with status_if_new, member
tags, merge fields, /batches and their results archive, archive a member), the rules
it lives with (batch subscribe's schema, fake-looking addresses, undefined merge
fields, the pending-batch limit), search, the calls tap-mailchimp makes (audiences,
members by offset with total_items and since/before_last_changed, campaigns, email
activity, unsubscribes) and the client's error type must behave as against the real
Marketing API; only the client's host is pointed at the sandbox.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import mailchimp_marketing
import pytest
from mailchimp_marketing.api_client import ApiClientError

from omnicanal.channels.mailchimp import DEFAULT_LIST_ID, SANDBOX_API_KEY
from omnicanal.channels.mailchimp.emulation import subscriber_hash


def _client(url: str, api_key: str = SANDBOX_API_KEY) -> mailchimp_marketing.Client:
    client = mailchimp_marketing.Client()
    client.set_config({"api_key": api_key, "server": api_key.rsplit("-", 1)[1]})
    client.api_client.host = f"{url}/3.0"
    return client


def test_batch_subscribe_read_and_archive(fresh_server):
    client = _client(fresh_server.url)
    assert client.lists.get_list(DEFAULT_LIST_ID)["id"] == DEFAULT_LIST_ID

    result = client.lists.batch_list_members(
        DEFAULT_LIST_ID,
        {
            "members": [
                {
                    "email_address": "ana.souza@example.com.br",
                    "status": "subscribed",
                    "merge_fields": {"FNAME": "Ana", "LNAME": "Souza"},
                },
                {"email_address": "not-an-email", "status": "subscribed"},
            ],
            "update_existing": True,
        },
    )
    assert result["total_created"] == 1 and result["error_count"] == 1
    assert result["errors"][0]["email_address"] == "not-an-email"

    member_hash = subscriber_hash("Ana.Souza@example.com.br")
    member = client.lists.get_list_member(DEFAULT_LIST_ID, member_hash)
    assert (member["status"], member["merge_fields"]["FNAME"]) == ("subscribed", "Ana")
    listed = client.lists.get_list_members_info(DEFAULT_LIST_ID, status="subscribed")
    assert [m["email_address"] for m in listed["members"]] == ["ana.souza@example.com.br"]

    client.lists.delete_list_member(DEFAULT_LIST_ID, member_hash)
    assert client.lists.get_list_member(DEFAULT_LIST_ID, member_hash)["status"] == "archived"


def test_errors_are_the_clients_api_client_error(server):
    with pytest.raises(ApiClientError) as unknown:
        _client(server.url).lists.get_list("no-such-list")
    assert unknown.value.status_code == 404
    with pytest.raises(ApiClientError) as bad_key:
        _client(server.url, "wrong-key-us1").lists.get_list(DEFAULT_LIST_ID)
    assert bad_key.value.status_code == 401


# --- the retailer's own audiences, as tap-mailchimp reads them -------------------------


def _newsletter(world) -> dict:
    return world.slices["mailchimp"].lists[0]


def _all_members(client, list_id: str, count: int, **params) -> tuple[list[dict], list[int]]:
    """Every member by offset paging; also each page's total_items."""
    members, totals, offset = [], [], 0
    while True:
        page = client.lists.get_list_members_info(list_id, count=count, offset=offset, **params)
        totals.append(page["total_items"])
        members.extend(page["members"])
        offset += count
        if offset >= page["total_items"]:
            return members, totals


def test_audiences_and_offset_paging_totals(server, world):
    client = _client(server.url)
    account = world.slices["mailchimp"]
    lists = client.lists.get_all_lists(count=1000)
    assert lists["total_items"] == len(account.lists) + 1  # + the sync audience
    assert {a["id"] for a in account.lists} < {item["id"] for item in lists["lists"]}
    first = client.lists.get_all_lists(count=1, offset=1)
    assert len(first["lists"]) == 1 and first["total_items"] == lists["total_items"]

    newsletter = _newsletter(world)
    held = account.members[newsletter["id"]]
    members, totals = _all_members(client, newsletter["id"], 37)
    assert set(totals) == {len(held)}
    assert [m["id"] for m in members] == [m["id"] for m in held]  # each once, list order
    subscribed = client.lists.get_list_members_info(newsletter["id"], status="subscribed")
    assert subscribed["total_items"] == sum(m["status"] == "subscribed" for m in held)
    assert len(subscribed["members"]) == 10  # Mailchimp's default count
    info = client.lists.get_list(newsletter["id"])
    assert info["stats"]["member_count"] == subscribed["total_items"]
    assert info["stats"]["unsubscribe_count"] == sum(m["status"] == "unsubscribed" for m in held)
    # the client refuses count > 1000 itself; the API answers it with a problem body
    too_many = httpx.get(
        f"{server.url}/3.0/lists/{newsletter['id']}/members",
        params={"count": 1001},
        auth=("omnicanal", SANDBOX_API_KEY),
    )
    assert too_many.status_code == 400 and too_many.json()["title"] == "Invalid Resource"


def test_since_and_before_last_changed_are_honoured(server, world):
    client = _client(server.url)
    newsletter = _newsletter(world)
    held = world.slices["mailchimp"].members[newsletter["id"]]
    stamps = sorted(m["last_changed"] for m in held)
    middle = stamps[len(stamps) // 2]
    since, _ = _all_members(client, newsletter["id"], 100, since_last_changed=middle)
    assert {m["id"] for m in since} == {m["id"] for m in held if m["last_changed"] > middle}
    before, _ = _all_members(client, newsletter["id"], 100, before_last_changed=middle)
    assert {m["id"] for m in before} == {m["id"] for m in held if m["last_changed"] < middle}
    ordered, _ = _all_members(
        client, newsletter["id"], 50, sort_field="last_changed", sort_dir="DESC"
    )
    assert [m["last_changed"] for m in ordered] == sorted(stamps, reverse=True)
    with pytest.raises(ApiClientError) as bad:
        client.lists.get_list_members_info(newsletter["id"], since_last_changed="yesterday")
    assert bad.value.status_code == 400
    assert json.loads(bad.value.text)["title"] == "Invalid Resource"


def test_fields_and_exclude_fields(server, world):
    client = _client(server.url)
    newsletter = _newsletter(world)
    page = client.lists.get_list_members_info(
        newsletter["id"], fields=["members.email_address", "members.status", "total_items"]
    )
    assert set(page) == {"members", "total_items"}
    assert all(set(m) == {"email_address", "status"} for m in page["members"])
    trimmed = client.lists.get_list_members_info(
        newsletter["id"], exclude_fields=["members.merge_fields", "_links"]
    )
    assert "_links" not in trimmed and "list_id" in trimmed
    assert all("merge_fields" not in m and "status" in m for m in trimmed["members"])


def test_campaigns_and_email_activity(server, world):
    client = _client(server.url)
    account = world.slices["mailchimp"]
    sent = [c for c in account.campaigns if c["status"] == "sent"]
    listed = client.campaigns.list(status="sent", count=1000, sort_field="send_time")
    assert listed["total_items"] == len(sent)
    times = [c["send_time"] for c in listed["campaigns"]]
    assert times == sorted(times)
    middle = times[len(times) // 2]
    later = client.campaigns.list(status="sent", since_send_time=middle, count=1000)
    assert {c["send_time"] for c in later["campaigns"]} == {t for t in times if t > middle}
    drafts = client.campaigns.list(status="save")
    assert drafts["total_items"] >= 1 and all(not c["send_time"] for c in drafts["campaigns"])

    campaign = max(sent, key=lambda c: len(account.email_activity[c["id"]]))
    recipients = account.email_activity[campaign["id"]]
    report = client.reports.get_email_activity_for_campaign(campaign["id"], count=1000)
    assert report["total_items"] == len(recipients) == campaign["emails_sent"]
    assert {e["email_id"] for e in report["emails"]} == {r["email_id"] for r in recipients}
    actions = {a["action"] for e in report["emails"] for a in e["activity"]}
    assert actions <= {"open", "click", "bounce"} and "open" in actions
    clicks = [a for e in report["emails"] for a in e["activity"] if a["action"] == "click"]
    assert all(a["url"].startswith("https://") for a in clicks)
    paged = client.reports.get_email_activity_for_campaign(campaign["id"], count=5, offset=5)
    assert [e["email_id"] for e in paged["emails"]] == [r["email_id"] for r in recipients[5:10]]

    stamps = sorted(a["timestamp"] for r in recipients for a in r["activity"])
    since = stamps[len(stamps) // 2]
    after = client.reports.get_email_activity_for_campaign(campaign["id"], since=since, count=1000)
    got = [a["timestamp"] for e in after["emails"] for a in e["activity"]]
    assert sorted(got) == [s for s in stamps if s > since]
    assert after["total_items"] == len(after["emails"]) < len(recipients)

    left = [c for c in sent if account.unsubscribes[c["id"]]][0]
    unsubscribed = client.reports.get_unsubscribed_list_for_campaign(left["id"])
    assert unsubscribed["total_items"] == len(account.unsubscribes[left["id"]])
    assert unsubscribed["unsubscribes"][0]["reason"]
    with pytest.raises(ApiClientError) as unsent:
        client.reports.get_email_activity_for_campaign(drafts["campaigns"][0]["id"])
    assert unsent.value.status_code == 404


def test_simultaneous_connections_get_a_429_problem(fresh_server):
    """Mailchimp allows 10 simultaneous connections per key; the 11th is refused."""
    from concurrent.futures import ThreadPoolExecutor

    emulator = fresh_server.app.state.mailchimp
    # each request is held open long enough that all 14 overlap even on a busy machine:
    # the clients are built first and start their requests together
    emulator.response_delay = 3.0
    clients = [_client(fresh_server.url) for _ in range(14)]
    start = threading.Barrier(len(clients))

    def get(client):
        start.wait(timeout=30)
        try:
            return client.lists.get_all_lists()["total_items"]
        except ApiClientError as error:
            return error

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        results = list(pool.map(get, clients))
    refused = [r for r in results if isinstance(r, ApiClientError)]
    assert len(refused) == 4 and all(r.status_code == 429 for r in refused)
    body = json.loads(refused[0].text)
    assert body["title"] == "Too Many Requests"
    assert "10 simultaneous connections" in body["detail"]
    assert set(body) >= {"type", "title", "status", "detail", "instance"}
    emulator.response_delay = 0.0
    assert isinstance(_client(fresh_server.url).lists.get_all_lists()["total_items"], int)


def test_faults_knob_over_http(fresh_server):
    client = _client(fresh_server.url)
    knob = f"{fresh_server.url}/_sandbox/mailchimp/faults"
    httpx.post(knob, json={"n": 1, "status": 503}).raise_for_status()
    with pytest.raises(ApiClientError) as outage:
        client.lists.get_all_lists()
    assert outage.value.status_code == 503
    httpx.post(knob, json={"n": 1, "status": 401}).raise_for_status()  # a revoked key
    with pytest.raises(ApiClientError) as revoked:
        client.lists.get_all_lists()
    assert json.loads(revoked.value.text)["title"] == "API Key Invalid"
    assert client.lists.get_all_lists()["total_items"] >= 1

    # batches held pending, then let go, over HTTP too
    httpx.post(knob, json={"hold_batches": True}).raise_for_status()
    batch = client.batches.start({"operations": [{"method": "GET", "path": "/ping"}]})
    assert client.batches.status(batch["id"])["status"] == "pending"
    httpx.post(knob, json={"hold_batches": False}).raise_for_status()
    for _ in range(100):
        if client.batches.status(batch["id"])["status"] == "finished":
            break
        time.sleep(0.05)
    assert client.batches.status(batch["id"])["finished_operations"] == 1


# --- the calls the sync makes, and the rules it must live with --------------------------


def _problem(error: ApiClientError) -> dict:
    return json.loads(error.text)


def test_batch_subscribe_needs_status_and_has_no_status_if_new(fresh_server):
    """Batch subscribe's member schema has ``status`` (required) and no
    ``status_if_new``: without status the whole call is refused with the errors array;
    with it, update_existing sets the status of members already there."""
    client = _client(fresh_server.url)
    with pytest.raises(ApiClientError) as refused:
        client.lists.batch_list_members(
            DEFAULT_LIST_ID,
            {
                "members": [
                    {"email_address": "ana.souza@gmail.com", "status_if_new": "subscribed"}
                ],
                "update_existing": True,
            },
        )
    body = _problem(refused.value)
    assert refused.value.status_code == 400 and body["title"] == "Invalid Resource"
    assert body["errors"] == [
        {"field": "members.item:0", "message": "Required fields were not provided: status"}
    ]
    assert client.lists.get_list_members_info(DEFAULT_LIST_ID)["total_items"] == 0

    client.lists.add_list_member(
        DEFAULT_LIST_ID, {"email_address": "saiu@gmail.com", "status": "unsubscribed"}
    )
    result = client.lists.batch_list_members(
        DEFAULT_LIST_ID,
        {
            "members": [
                {
                    "email_address": "saiu@gmail.com",
                    "status": "subscribed",
                    "status_if_new": "unsubscribed",  # not in this schema: ignored
                },
                {
                    "email_address": "novo@gmail.com",
                    "status": "pending",
                    "status_if_new": "subscribed",
                },
            ],
            "update_existing": True,
        },
    )
    assert (result["total_created"], result["total_updated"]) == (1, 1)
    statuses = {
        m["email_address"]: m["status"]
        for m in client.lists.get_list_members_info(DEFAULT_LIST_ID)["members"]
    }
    # why the sync does not use this call: it re-subscribes whoever had left
    assert statuses == {"saiu@gmail.com": "subscribed", "novo@gmail.com": "pending"}


def test_put_with_status_if_new_keeps_an_existing_status_and_ignores_tags(fresh_server):
    client = _client(fresh_server.url)
    email = "Joana.Prado@hotmail.com"
    member_hash = subscriber_hash(email)
    created = client.lists.set_list_member(
        DEFAULT_LIST_ID,
        member_hash,
        {"email_address": email, "status_if_new": "subscribed", "tags": ["vip"]},
    )
    assert created["status"] == "subscribed"
    assert created["tags_count"] == 0  # tags are not part of the PUT schema
    client.lists.update_list_member(DEFAULT_LIST_ID, member_hash, {"status": "unsubscribed"})
    again = client.lists.set_list_member(
        DEFAULT_LIST_ID,
        member_hash,
        {
            "email_address": email,
            "status_if_new": "subscribed",
            "merge_fields": {"FNAME": "Joana"},
            "tags": ["vip"],
        },
    )
    assert again["status"] == "unsubscribed" and again["merge_fields"]["FNAME"] == "Joana"
    assert again["tags"] == []
    with pytest.raises(ApiClientError) as no_status:
        client.lists.set_list_member(
            DEFAULT_LIST_ID,
            subscriber_hash("outra@gmail.com"),
            {"email_address": "outra@gmail.com"},
        )
    assert no_status.value.status_code == 400


def test_member_tags(fresh_server):
    client = _client(fresh_server.url)
    email = "bruno.lima@uol.com.br"
    member_hash = subscriber_hash(email)
    client.lists.add_list_member(
        DEFAULT_LIST_ID, {"email_address": email, "status": "subscribed", "tags": ["loja"]}
    )
    client.lists.update_list_member_tags(
        DEFAULT_LIST_ID,
        member_hash,
        {"tags": [{"name": "compradores-90d", "status": "active"}]},
    )
    tags = client.lists.get_list_member_tags(DEFAULT_LIST_ID, member_hash)
    assert [t["name"] for t in tags["tags"]] == ["loja", "compradores-90d"]
    assert tags["total_items"] == 2 and all(t["date_added"] for t in tags["tags"])
    member = client.lists.get_list_member(DEFAULT_LIST_ID, member_hash)
    assert member["tags_count"] == 2

    client.lists.update_list_member_tags(
        DEFAULT_LIST_ID, member_hash, {"tags": [{"name": "loja", "status": "inactive"}]}
    )
    tags = client.lists.get_list_member_tags(DEFAULT_LIST_ID, member_hash)
    assert [t["name"] for t in tags["tags"]] == ["compradores-90d"]

    with pytest.raises(ApiClientError) as bad:
        client.lists.update_list_member_tags(
            DEFAULT_LIST_ID, member_hash, {"tags": [{"name": "x", "status": "on"}]}
        )
    assert bad.value.status_code == 400
    assert _problem(bad.value)["errors"][0]["field"] == "tags.item:0.status"
    with pytest.raises(ApiClientError) as missing:
        client.lists.update_list_member_tags(
            DEFAULT_LIST_ID,
            subscriber_hash("ninguem@gmail.com"),
            {"tags": [{"name": "x", "status": "active"}]},
        )
    assert missing.value.status_code == 404


def test_merge_fields_must_be_defined(fresh_server):
    client = _client(fresh_server.url)
    fields = client.lists.get_list_merge_fields(DEFAULT_LIST_ID)
    assert [f["tag"] for f in fields["merge_fields"]] == [
        "FNAME",
        "LNAME",
        "ADDRESS",
        "PHONE",
        "BIRTHDAY",
    ]
    assert fields["total_items"] == 5
    member = {
        "email_address": "carla.mendes@gmail.com",
        "status": "subscribed",
        "merge_fields": {"FNAME": "Carla", "CIDADE": "Recife"},
    }
    with pytest.raises(ApiClientError) as undefined:
        client.lists.add_list_member(DEFAULT_LIST_ID, member)
    body = _problem(undefined.value)
    assert (body["title"], body["detail"]) == (
        "Invalid Resource",
        "Your merge fields were invalid.",
    )
    assert [e["field"] for e in body["errors"]] == ["CIDADE"]
    assert client.lists.get_list_members_info(DEFAULT_LIST_ID)["total_items"] == 0

    created = client.lists.add_list_merge_field(
        DEFAULT_LIST_ID, {"name": "Cidade", "tag": "CIDADE", "type": "text"}
    )
    assert (created["tag"], created["type"], created["merge_id"]) == ("CIDADE", "text", 6)
    assert client.lists.get_list_merge_field(DEFAULT_LIST_ID, "6")["name"] == "Cidade"
    added = client.lists.add_list_member(DEFAULT_LIST_ID, member)
    assert added["merge_fields"]["CIDADE"] == "Recife"
    with pytest.raises(ApiClientError) as duplicate:
        client.lists.add_list_merge_field(
            DEFAULT_LIST_ID, {"name": "Outra", "tag": "CIDADE", "type": "text"}
        )
    assert duplicate.value.status_code == 400
    with pytest.raises(ApiClientError) as untyped:
        client.lists.add_list_merge_field(DEFAULT_LIST_ID, {"name": "Sem tipo"})
    assert "type" in _problem(untyped.value)["errors"][0]["message"]
    # the batch subscribe call reports it per member
    result = client.lists.batch_list_members(
        DEFAULT_LIST_ID,
        {
            "members": [
                {
                    "email_address": "d@gmail.com",
                    "status": "subscribed",
                    "merge_fields": {"UF": "PE"},
                }
            ]
        },
    )
    assert result["error_count"] == 1 and result["errors"][0]["field"] == "UF"


@pytest.mark.parametrize(
    "email",
    [
        "test@test.com",
        "fulano@example.com",
        "maria@mail.example.org",
        "x@yopmail.com",
        "teste@gmail.com",
    ],
)
def test_fake_looking_addresses_are_refused(fresh_server, email):
    client = _client(fresh_server.url)
    with pytest.raises(ApiClientError) as refused:
        client.lists.add_list_member(
            DEFAULT_LIST_ID, {"email_address": email, "status": "subscribed"}
        )
    body = _problem(refused.value)
    assert refused.value.status_code == 400 and body["title"] == "Invalid Resource"
    assert body["detail"] == f"{email} looks fake or invalid, please enter a real email address."
    with pytest.raises(ApiClientError):
        client.lists.set_list_member(
            DEFAULT_LIST_ID,
            subscriber_hash(email),
            {"email_address": email, "status_if_new": "subscribed"},
        )
    result = client.lists.batch_list_members(
        DEFAULT_LIST_ID,
        {
            "members": [
                {"email_address": email, "status": "subscribed"},
                {"email_address": "real.pessoa@gmail.com", "status": "subscribed"},
            ]
        },
    )
    assert result["total_created"] == 1 and result["errors"][0]["email_address"] == email
    assert "looks fake or invalid" in result["errors"][0]["error"]


def test_search_members(fresh_server):
    client = _client(fresh_server.url)
    for email, first, last in [
        ("ana.souza@gmail.com", "Ana", "Souza"),
        ("joao.souza@uol.com.br", "João", "Souza"),
        ("pedro.reis@gmail.com", "Pedro", "Reis"),
    ]:
        client.lists.add_list_member(
            DEFAULT_LIST_ID,
            {
                "email_address": email,
                "status": "subscribed",
                "merge_fields": {"FNAME": first, "LNAME": last},
            },
        )
    exact = client.searchMembers.search("ana.souza@gmail.com", list_id=DEFAULT_LIST_ID)
    assert [m["email_address"] for m in exact["exact_matches"]["members"]] == [
        "ana.souza@gmail.com"
    ]
    by_name = client.searchMembers.search("souza", list_id=DEFAULT_LIST_ID)
    assert by_name["exact_matches"]["total_items"] == 0
    assert {m["email_address"] for m in by_name["full_search"]["members"]} == {
        "ana.souza@gmail.com",
        "joao.souza@uol.com.br",
    }
    assert client.searchMembers.search("Pedro")["full_search"]["total_items"] >= 1
    with pytest.raises(ApiClientError) as unknown:
        client.searchMembers.search("x", list_id="no-such-list")
    assert unknown.value.status_code == 404


def _results(url: str) -> list[dict]:
    """Every operation result in a batch's results archive (fetched without the key)."""
    import io
    import tarfile

    archive = httpx.get(url)
    assert archive.status_code == 200
    out: list[dict] = []
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        for member in tar.getmembers():
            assert member.name.endswith(".json")
            out += json.load(tar.extractfile(member))
    return out


def test_batches_run_and_give_per_operation_results(fresh_server):
    emulator = fresh_server.app.state.mailchimp
    client = _client(fresh_server.url)
    emulator.hold_batches()
    members = f"/lists/{DEFAULT_LIST_ID}/members"
    operations = [
        {
            "method": "PUT",
            "path": f"{members}/{subscriber_hash('lia.rocha@gmail.com')}",
            "operation_id": "lia",
            "body": json.dumps(
                {"email_address": "lia.rocha@gmail.com", "status_if_new": "subscribed"}
            ),
        },
        {
            "method": "PUT",
            "path": f"{members}/{subscriber_hash('test@test.com')}",
            "operation_id": "fake",
            "body": json.dumps({"email_address": "test@test.com", "status_if_new": "subscribed"}),
        },
        {
            "method": "POST",
            "path": f"{members}/{subscriber_hash('lia.rocha@gmail.com')}/tags",
            "operation_id": "tag",
            "body": json.dumps({"tags": [{"name": "recentes", "status": "active"}]}),
        },
        {"method": "GET", "path": f"/lists/{DEFAULT_LIST_ID}", "operation_id": "read"},
        {"method": "PATCH", "path": "/lists", "operation_id": "wrong-method"},
    ]
    started = client.batches.start({"operations": operations})
    assert started["status"] == "pending" and started["total_operations"] == 5
    assert client.batches.status(started["id"])["status"] == "pending"
    assert emulator.members(DEFAULT_LIST_ID) == []

    emulator.batch_operation_delay = 0.1
    emulator.hold_batches(False)
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = client.batches.status(started["id"])
        seen.append((status["status"], status["finished_operations"]))
        if status["status"] == "finished":
            break
        time.sleep(0.05)
    assert any(state == "started" for state, _ in seen), seen
    assert status["status"] == "finished" and status["completed_at"]
    assert (status["total_operations"], status["finished_operations"]) == (5, 5)
    assert status["errored_operations"] == 2

    results = {r["operation_id"]: r for r in _results(status["response_body_url"])}
    assert {k: r["status_code"] for k, r in results.items()} == {
        "lia": 200,
        "fake": 400,
        "tag": 204,
        "read": 200,
        "wrong-method": 405,
    }
    assert json.loads(results["lia"]["response"])["status"] == "subscribed"
    assert "looks fake or invalid" in json.loads(results["fake"]["response"])["detail"]
    assert json.loads(results["read"]["response"])["id"] == DEFAULT_LIST_ID
    assert emulator.tags(DEFAULT_LIST_ID, "lia.rocha@gmail.com") == ["recentes"]

    listed = client.batches.list()
    assert [b["id"] for b in listed["batches"]] == [started["id"]]
    client.batches.delete_request(started["id"])
    with pytest.raises(ApiClientError) as gone:
        client.batches.status(started["id"])
    assert gone.value.status_code == 404


def test_batch_schema_and_pending_limit(fresh_server, monkeypatch):
    from omnicanal.channels.mailchimp import emulation

    client = _client(fresh_server.url)
    with pytest.raises(ApiClientError) as bad:
        client.batches.start(
            {"operations": [{"method": "PUT", "path": "/lists/x", "body": {"not": "a string"}}]}
        )
    assert _problem(bad.value)["errors"] == [
        {
            "field": "operations.item:0.body",
            "message": "Schema describes string, object found instead",
        }
    ]
    # Mailchimp keeps at most 500 batches pending; the next one is a 429
    assert emulation.MAX_PENDING_BATCHES == 500
    monkeypatch.setattr(emulation, "MAX_PENDING_BATCHES", 2)
    fresh_server.app.state.mailchimp.hold_batches()
    for _ in range(2):
        client.batches.start({"operations": [{"method": "GET", "path": "/ping"}]})
    with pytest.raises(ApiClientError) as limited:
        client.batches.start({"operations": [{"method": "GET", "path": "/ping"}]})
    assert limited.value.status_code == 429
    assert _problem(limited.value)["title"] == "Too Many Requests"


def test_who_unsubscribed_themselves_cannot_be_subscribed_by_the_api(fresh_server):
    emulator = fresh_server.app.state.mailchimp
    client = _client(fresh_server.url)
    email = "rita.alves@gmail.com"
    member_hash = subscriber_hash(email)
    client.lists.add_list_member(DEFAULT_LIST_ID, {"email_address": email, "status": "subscribed"})
    emulator.touch_member(DEFAULT_LIST_ID, email, status="unsubscribed")  # her own click
    with pytest.raises(ApiClientError) as refused:
        client.lists.update_list_member(DEFAULT_LIST_ID, member_hash, {"status": "subscribed"})
    body = _problem(refused.value)
    assert body["title"] == "Member In Compliance State"
    assert body["detail"] == (
        f"{email} is in a compliance state due to unsubscribe, bounce, or compliance review "
        "and cannot be subscribed."
    )
    # archiving does not clear it: adding her again as subscribed is refused too
    client.lists.delete_list_member(DEFAULT_LIST_ID, member_hash)
    with pytest.raises(ApiClientError) as again:
        client.lists.set_list_member(
            DEFAULT_LIST_ID, member_hash, {"email_address": email, "status_if_new": "subscribed"}
        )
    assert _problem(again.value)["title"] == "Member In Compliance State"
    assert client.lists.get_list_member(DEFAULT_LIST_ID, member_hash)["status"] == "archived"
    # an unsubscribe made through the API is the account's own: the API may undo it
    client.lists.add_list_member(
        DEFAULT_LIST_ID, {"email_address": "leo@gmail.com", "status": "unsubscribed"}
    )
    back = client.lists.update_list_member(
        DEFAULT_LIST_ID, subscriber_hash("leo@gmail.com"), {"status": "subscribed"}
    )
    assert back["status"] == "subscribed"
