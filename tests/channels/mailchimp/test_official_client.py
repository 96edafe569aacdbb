"""Mailchimp's official Python client (mailchimp-marketing) drives the sandbox's emulation.

The calls a sync makes (read the audience, batch subscribe, read a member, archive
it) and the client's error type must behave as against the real Marketing API; only
the client's host is pointed at the sandbox.
"""

from __future__ import annotations

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
