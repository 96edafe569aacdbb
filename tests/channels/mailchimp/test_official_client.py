"""Mailchimp's official Python client (mailchimp-marketing) drives the sandbox's emulation.

The calls a sync makes (read the audience, batch subscribe, read a member, archive
it), the calls tap-mailchimp makes (audiences, members by offset with total_items and
since/before_last_changed, campaigns, email activity, unsubscribes) and the client's
error type must behave as against the real Marketing API; only the client's host is
pointed at the sandbox.
"""

from __future__ import annotations

import json

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
    emulator.response_delay = 0.5

    def get(_: int):
        try:
            return _client(fresh_server.url).lists.get_all_lists()["total_items"]
        except ApiClientError as error:
            return error

    with ThreadPoolExecutor(max_workers=14) as pool:
        results = list(pool.map(get, range(14)))
    refused = [r for r in results if isinstance(r, ApiClientError)]
    assert len(refused) == 4 and all(r.status_code == 429 for r in refused)
    body = json.loads(refused[0].text)
    assert body["title"] == "Too Many Requests"
    assert "10 simultaneous connections" in body["detail"]
    assert set(body) >= {"type", "title", "status", "detail", "instance"}
    emulator.response_delay = 0.0
    assert isinstance(get(0), int)


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
