"""Meta's official Python SDK (``facebook-business``) drives the sandbox's Custom Audiences.

``AdAccount.create_custom_audience`` / ``get_custom_audiences``,
``CustomAudience.add_users`` / ``remove_users`` (the SDK normalises and hashes raw
multi-key rows itself), ``create_users_replace`` (a replace session) and
``FacebookRequestError`` (Graph's error envelope) must work unchanged against the
emulation, as against ``graph.facebook.com``; only ``FacebookSession.GRAPH`` differs.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.customaudience import CustomAudience
from facebook_business.api import FacebookAdsApi, FacebookSession
from facebook_business.exceptions import FacebookRequestError
from fastapi import FastAPI

from omnicanal.activation.hashing import normalize_email, normalize_phone
from omnicanal.channels.meta_ads import (
    API_VERSION,
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_AD_ACCOUNT_ID,
    SANDBOX_AUDIENCE_ID,
)
from omnicanal.channels.meta_ads.emulation import MetaAdsEmulator
from omnicanal.sandbox import SandboxServer

Schema = CustomAudience.Schema.MultiKeySchema


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture
def emulated():
    """The Meta Ads emulation alone on a local port (no world needed: audiences start empty)."""
    emulator = MetaAdsEmulator()
    app = FastAPI()
    app.include_router(emulator.router)
    app.get("/healthz")(lambda: {"status": "ok"})
    with SandboxServer(app) as server:
        yield emulator, server


def _api(url: str, token: str = SANDBOX_ACCESS_TOKEN) -> FacebookAdsApi:
    session = FacebookSession(access_token=token)
    session.GRAPH = url
    return FacebookAdsApi(session, api_version=API_VERSION)


def test_the_sdk_targets_the_version_the_sandbox_serves() -> None:
    assert FacebookAdsApi.API_VERSION == API_VERSION


def test_create_list_add_and_remove_users_with_the_sdk(emulated) -> None:
    emulator, server = emulated
    api = _api(server.url)
    account = AdAccount(f"act_{SANDBOX_AD_ACCOUNT_ID}", api=api)
    created = account.create_custom_audience(
        params={
            "name": "Clientes inativos",
            "subtype": CustomAudience.Subtype.custom,
            "customer_file_source": CustomAudience.CustomerFileSource.user_provided_only,
            "description": "made by the SDK",
        }
    )
    audience_id = created["id"]
    listed = {
        a["id"]: a["name"] for a in account.get_custom_audiences(fields=["id", "name", "subtype"])
    }
    assert listed[audience_id] == "Clientes inativos"
    assert SANDBOX_AUDIENCE_ID in listed

    audience = CustomAudience(audience_id, api=api)
    schema = [Schema.email, Schema.phone, Schema.fn, Schema.ln]
    people = [
        [" Ana.Souza@Exemplo.com.br ", "+55 (11) 98765-4321", "Ana", "Souza"],
        ["bruno@exemplo.com.br", "+55 21 99876-5432", "Bruno", "Lima"],
    ]
    answer = audience.add_users(schema, people, is_raw=True).json()
    assert answer["audience_id"] == audience_id
    assert (answer["num_received"], answer["num_invalid_entries"]) == (2, 0)
    assert answer["invalid_entry_samples"] == {}
    # What Meta holds is the SDK's hashes; ours hash email and phone to the same values.
    assert emulator.hashes(audience_id, "EMAIL") == {
        sha(normalize_email(" Ana.Souza@Exemplo.com.br ")),
        sha(normalize_email("bruno@exemplo.com.br")),
    }
    assert emulator.hashes(audience_id, "PHONE") == {
        sha(normalize_phone("+55 (11) 98765-4321")),
        sha(normalize_phone("+55 21 99876-5432")),
    }
    assert emulator.hashes(audience_id, "FN") == {sha("ana"), sha("bruno")}
    info = audience.api_get(
        fields=["name", "approximate_count_lower_bound", "data_source", "subtype"]
    )
    assert info["approximate_count_lower_bound"] == 2
    assert info["data_source"].export_all_data() == {
        "type": "FILE_IMPORTED",
        "sub_type": "MULTI_HASHES",
    }

    removed = audience.remove_users(schema, people[:1], is_raw=True).json()
    assert removed["num_received"] == 1
    assert emulator.hashes(audience_id, "EMAIL") == {sha("bruno@exemplo.com.br")}

    # An audience fed multi-key rows refuses single-key uploads, as Meta does.
    with pytest.raises(FacebookRequestError) as refused:
        audience.add_users(CustomAudience.Schema.email_hash, ["carla@exemplo.com.br"])
    assert refused.value.api_error_code() == 2650


def test_hashed_fields_are_validated_and_sessions_echoed(emulated) -> None:
    emulator, server = emulated
    audience = CustomAudience(SANDBOX_AUDIENCE_ID, api=_api(server.url))
    session = {"session_id": 9001, "batch_seq": 1, "last_batch_flag": True}
    answer = audience.add_users(
        ["EMAIL_SHA256", "PHONE_SHA256"],
        [
            [sha("ana@exemplo.com.br"), sha("5511987654321")],
            ["Plain@Exemplo.com.br", ""],  # unhashed email in a hashed field
            ["", ""],  # nothing to match on
        ],
        pre_hashed=True,
        is_raw=True,
        session=session,
    ).json()
    assert answer["session_id"] == "9001"
    assert (answer["num_received"], answer["num_invalid_entries"]) == (3, 2)
    assert "Plain@Exemplo.com.br" in answer["invalid_entry_samples"]
    assert emulator.hashes(SANDBOX_AUDIENCE_ID, "EMAIL") == {sha("ana@exemplo.com.br")}


def test_more_than_10000_rows_in_one_request_is_refused(emulated) -> None:
    emulator, server = emulated
    audience = CustomAudience(SANDBOX_AUDIENCE_ID, api=_api(server.url))
    rows = [[sha(f"p{n}@exemplo.com.br")] for n in range(10_001)]
    with pytest.raises(FacebookRequestError) as refused:
        audience.add_users(["EMAIL_SHA256"], rows, pre_hashed=True, is_raw=True)
    assert refused.value.api_error_code() == 100
    assert "10000" in refused.value.api_error_message()
    assert emulator.users(SANDBOX_AUDIENCE_ID) == []
    answer = audience.add_users(["EMAIL_SHA256"], rows[:10_000], pre_hashed=True, is_raw=True)
    assert answer.json()["num_received"] == 10_000
    assert len(emulator.users(SANDBOX_AUDIENCE_ID)) == 10_000


def test_a_replace_session_swaps_the_membership_at_its_last_batch(emulated) -> None:
    emulator, server = emulated
    audience = CustomAudience(SANDBOX_AUDIENCE_ID, api=_api(server.url))
    audience.add_users(
        ["EMAIL_SHA256"], [[sha("old@exemplo.com.br")]], pre_hashed=True, is_raw=True
    )

    def batch(seq: int, emails: list[str], last: bool):
        payload = {"schema": ["EMAIL_SHA256"], "data": [[sha(e)] for e in emails]}
        session = {
            "session_id": 77,
            "batch_seq": seq,
            "last_batch_flag": last,
            "estimated_num_total": 3,
        }
        return audience.create_users_replace(params={"payload": payload, "session": session})

    first = batch(1, ["a@exemplo.com.br", "b@exemplo.com.br"], last=False)
    assert first["num_received"] == 2 and first["session_id"] == "77"
    # mid-session the audience still holds the old membership, and /users is closed
    assert emulator.hashes(SANDBOX_AUDIENCE_ID) == {sha("old@exemplo.com.br")}
    with pytest.raises(FacebookRequestError) as busy:
        audience.add_users(
            ["EMAIL_SHA256"], [[sha("c@exemplo.com.br")]], pre_hashed=True, is_raw=True
        )
    assert busy.value.api_error_code() == 2650
    with pytest.raises(FacebookRequestError) as again:
        batch(1, ["c@exemplo.com.br"], last=False)
    assert again.value.api_error_code() == 100
    batch(2, ["c@exemplo.com.br"], last=True)
    assert emulator.hashes(SANDBOX_AUDIENCE_ID) == {
        sha("a@exemplo.com.br"),
        sha("b@exemplo.com.br"),
        sha("c@exemplo.com.br"),
    }


def test_errors_are_graph_errors(emulated) -> None:
    emulator, server = emulated
    with pytest.raises(FacebookRequestError) as bad_token:
        CustomAudience(SANDBOX_AUDIENCE_ID, api=_api(server.url, "EAAG-wrong")).api_get(
            fields=["id"]
        )
    error = bad_token.value
    assert (error.http_status(), error.api_error_code(), error.api_error_type()) == (
        400,
        190,
        "OAuthException",
    )
    assert error.body()["error"]["fbtrace_id"]

    api = _api(server.url)
    with pytest.raises(FacebookRequestError) as unknown:
        CustomAudience("23859999999999999", api=api).add_users(
            ["EMAIL_SHA256"], [[sha("x@exemplo.com.br")]], pre_hashed=True, is_raw=True
        )
    assert (unknown.value.api_error_code(), unknown.value.api_error_subcode()) == (100, 33)

    emulator.rate_limit_next(1)
    with pytest.raises(FacebookRequestError) as throttled:
        CustomAudience(SANDBOX_AUDIENCE_ID, api=api).api_get(fields=["id"])
    assert throttled.value.api_error_code() == 80003
    assert throttled.value.api_transient_error()
    usage = json.loads(throttled.value.http_headers()["x-business-use-case-usage"])
    assert usage[SANDBOX_AD_ACCOUNT_ID][0]["type"] == "custom_audience"
    assert usage[SANDBOX_AD_ACCOUNT_ID][0]["call_count"] == 100
    account = json.loads(throttled.value.http_headers()["x-ad-account-usage"])
    assert account["acc_id_util_pct"] == 100
