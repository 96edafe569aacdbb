"""The Meta Custom Audiences destination against the emulation, over HTTP.

What Meta receives is checked in the emulation: hashes of values normalised by Meta's
rules (never the plain values), at most 10,000 rows a request, one session per call;
rows without an identifier are refused with a reason; throttling is waited out; a bad
token or an unknown audience fails the whole sync naming what to fix.
"""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest
from fastapi import FastAPI

from omnicanal.activation.destination import Row
from omnicanal.channels.meta_ads import SANDBOX_AUDIENCE_ID
from omnicanal.channels.meta_ads.destination import MetaAdsDestination
from omnicanal.channels.meta_ads.emulation import MetaAdsEmulator
from omnicanal.errors import SyncError
from omnicanal.sandbox import SandboxServer
from omnicanal.settings import get_settings


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture
def emulated(tmp_path):
    emulator = MetaAdsEmulator()
    emulator.regain_minutes = 0  # Meta says 1+ minutes; tests wait the backoff instead
    app = FastAPI()
    app.include_router(emulator.router)
    app.get("/healthz")(lambda: {"status": "ok"})
    with SandboxServer(app) as server:
        yield emulator, server


def destination(server, options=None, **env) -> MetaAdsDestination:
    settings = get_settings(
        {
            "OMNICANAL_HOME": "/tmp/oc-meta-destination",
            "OMNICANAL_META_ADS_API_URL": server.url,
            "OMNICANAL_META_ADS_RATE_LIMIT": "100",
            **env,
        }
    )
    made = MetaAdsDestination.from_settings(settings, options or {})
    made.throttle_backoff = 0.05
    return made


def person(n: int, **payload) -> Row:
    base = {"EMAIL": f"cliente.{n}@exemplo.com.br", "FN": "Ana", "LN": "Souza"}
    return Row(f"k{n}", {**base, **payload})


def test_values_are_normalised_by_metas_rules_and_only_hashes_leave(emulated) -> None:
    emulator, server = emulated
    dest = destination(server)
    row = Row(
        "ana",
        {
            "EMAIL": "  Ana.Souza@Exemplo.COM.br ",
            "PHONE": "(11) 8765-4321",  # an old mobile, before the ninth digit
            "FN": "Ana Luíza",
            "LN": "da Conceição-Souza",
            "CT": "São Paulo",
            "ST": "SP",
            "ZIP": "01310-100",
            "COUNTRY": "BR",
            "EXTERN_ID": "c0ffee",
        },
    )
    [outcome] = dest.upsert([row])
    assert outcome.ok and outcome.ref
    [stored] = emulator.users(SANDBOX_AUDIENCE_ID)
    assert stored == {
        "EMAIL": sha("ana.souza@exemplo.com.br"),
        "PHONE": sha("5511987654321"),
        "FN": sha("analuíza"),
        "LN": sha("daconceiçãosouza"),
        "CT": sha("sãopaulo"),
        "ST": sha("sp"),
        "ZIP": sha("01310100"),
        "COUNTRY": sha("br"),
        "EXTERN_ID": "c0ffee",  # the advertiser's own id goes as it is
    }
    assert dest.stats() == {"num_received": 1, "num_invalid_entries": 0, "requests": 2}


def test_a_row_without_an_identifier_is_refused_with_a_reason_the_rest_go(emulated) -> None:
    emulator, server = emulated
    dest = destination(server)
    rows = [
        person(1),
        Row("nobody", {"EMAIL": "not-an-email", "PHONE": "12", "FN": "Sem"}),
        Row("blank", {"EMAIL": None, "FN": "Nada"}),
        person(2, EMAIL=None, PHONE="+55 21 99876-5432"),  # a phone is enough
    ]
    outcomes = dest.upsert(rows)
    assert [(o.key, o.ok) for o in outcomes] == [
        ("k1", True),
        ("nobody", False),
        ("blank", False),
        ("k2", True),
    ]
    assert "no valid identifier: EMAIL, PHONE" in outcomes[1].error
    assert "no identifier" in outcomes[2].error
    assert emulator.hashes(SANDBOX_AUDIENCE_ID, "EMAIL") == {sha("cliente.1@exemplo.com.br")}
    assert emulator.hashes(SANDBOX_AUDIENCE_ID, "PHONE") == {sha("5521998765432")}
    # refused rows were never sent: Meta received the two good ones
    assert dest.stats()["num_received"] == 2


def test_batches_of_10000_and_removal_by_identifier(emulated) -> None:
    emulator, server = emulated
    dest = destination(server)
    rows = [person(n) for n in range(10_003)]
    outcomes = dest.upsert(rows)
    assert len(outcomes) == 10_003 and all(o.ok for o in outcomes)
    assert [entry[2] for entry in emulator.write_log] == [10_000, 3]
    assert len({o.ref for o in outcomes}) == 1  # one session across the batches
    assert dest.stats()["num_received"] == 10_003

    # a changed name re-adds the same person (same email): still one row for them
    dest.upsert([person(5, FN="Bia")])
    assert len(emulator.users(SANDBOX_AUDIENCE_ID)) == 10_003
    removed = dest.remove([person(5, FN="Bia"), person(6)])
    assert [o.ok for o in removed] == [True, True]
    held = emulator.hashes(SANDBOX_AUDIENCE_ID)
    assert len(held) == 10_001
    assert sha("cliente.5@exemplo.com.br") not in held
    assert sha("cliente.7@exemplo.com.br") in held


def test_throttling_is_waited_out(emulated) -> None:
    emulator, server = emulated
    dest = destination(server)
    assert dest._honour_usage(_answer(100, regain=2)) == 120  # Meta's estimate, in minutes
    assert dest._honour_usage(_answer(96, regain=0)) == dest.throttle_backoff
    assert dest._honour_usage(_answer(50, regain=0)) == 0
    account = httpx.Response(
        200, headers={"X-Ad-Account-Usage": '{"acc_id_util_pct": 99, "reset_time_duration": 30}'}
    )
    assert dest._honour_usage(account) == 30
    dest.check()
    emulator.rate_limit_next(2, code=80003)
    emulator.fail_next(1, 429)
    assert all(o.ok for o in dest.upsert([person(1), person(2)]))
    assert emulator.hashes(SANDBOX_AUDIENCE_ID) == {
        sha("cliente.1@exemplo.com.br"),
        sha("cliente.2@exemplo.com.br"),
    }

    emulator.rate_limit_next(10, code=80003)
    with pytest.raises(SyncError, match="OMNICANAL_META_ADS_RATE_LIMIT"):
        dest.upsert([person(3)])


def _answer(percent: int, regain: int):
    import json

    usage = {
        "1": [
            {
                "type": "custom_audience",
                "call_count": percent,
                "total_cputime": 1,
                "total_time": 1,
                "estimated_time_to_regain_access": regain,
            }
        ]
    }
    return httpx.Response(200, headers={"X-Business-Use-Case-Usage": json.dumps(usage)})


def test_usage_near_the_budget_holds_the_next_request_back(emulated) -> None:
    emulator, server = emulated
    dest = destination(server)
    dest.throttle_backoff = 0.5
    dest.check()
    emulator.force_usage(97)
    dest.upsert([person(1)])  # answered with 97 %: the next call waits
    started = time.monotonic()
    dest.upsert([person(2)])
    assert time.monotonic() - started >= 0.45


def test_requests_are_paced_at_the_rate_limit(emulated) -> None:
    emulator, server = emulated
    dest = destination(server, OMNICANAL_META_ADS_RATE_LIMIT="20")
    assert dest.rate_limit == 20
    dest.check()
    started = time.monotonic()
    for n in range(11):
        dest.upsert([person(n)])
    # 11 more requests at 20/s: at least 10 intervals of 50 ms
    assert time.monotonic() - started >= 0.5


def test_an_exposures_rate_limit_overrides_the_setting(emulated) -> None:
    _emulator, server = emulated
    dest = destination(server, {"rate_limit": 2}, OMNICANAL_META_ADS_RATE_LIMIT="20")
    try:
        assert dest.rate_limit == 2.0
        assert dest.client.limiter is not None and dest.client.limiter.interval == 0.5
    finally:
        dest.close()


def test_bad_token_fails_naming_the_setting_without_the_token(emulated) -> None:
    _, server = emulated
    dest = destination(server, OMNICANAL_META_ADS_ACCESS_TOKEN="EAAG-secret-but-wrong")
    with pytest.raises(SyncError) as failed:
        dest.check()
    assert "OMNICANAL_META_ADS_ACCESS_TOKEN" in str(failed.value)
    assert "190" in str(failed.value)
    assert "EAAG-secret-but-wrong" not in str(failed.value)


def test_an_unknown_audience_fails_naming_where_it_was_set(emulated) -> None:
    _, server = emulated
    with pytest.raises(SyncError, match="OMNICANAL_META_ADS_AUDIENCE_ID"):
        destination(server, OMNICANAL_META_ADS_AUDIENCE_ID="23859999999999999").check()
    with pytest.raises(SyncError, match="exposure's audience_id"):
        destination(server, {"audience_id": "23858888888888888"}).check()
    with pytest.raises(SyncError, match="OMNICANAL_META_ADS_AD_ACCOUNT_ID"):
        destination(server, {"audience_name": "x"}, OMNICANAL_META_ADS_AD_ACCOUNT_ID="999").check()


def test_an_audience_named_in_the_exposure_is_found_or_created_once(emulated) -> None:
    emulator, server = emulated
    first = destination(server, {"audience_name": "Clientes inativos"})
    first.upsert([person(1)])
    created = [a for a in emulator.audiences.values() if a.info["name"] == "Clientes inativos"]
    assert len(created) == 1
    assert created[0].info["customer_file_source"] == "USER_PROVIDED_ONLY"
    second = destination(server, {"audience_name": "Clientes inativos"})
    second.upsert([person(2)])
    assert [a.info["name"] for a in emulator.audiences.values()].count("Clientes inativos") == 1
    assert emulator.hashes(first.audience_id) == {
        sha("cliente.1@exemplo.com.br"),
        sha("cliente.2@exemplo.com.br"),
    }
    assert emulator.users(SANDBOX_AUDIENCE_ID) == []


def test_replace_makes_the_audience_hold_exactly_the_rows(emulated) -> None:
    emulator, server = emulated
    dest = destination(server)
    dest.upsert([person(n) for n in range(5)])
    rows = [person(n) for n in range(3, 10_006)]
    outcomes = dest.replace(rows)
    assert len(outcomes) == len(rows) and all(o.ok for o in outcomes)
    assert [e for e in emulator.write_log if "usersreplace" in e[1]] == [
        ("POST", f"/{SANDBOX_AUDIENCE_ID}/usersreplace", 10_000),
        ("POST", f"/{SANDBOX_AUDIENCE_ID}/usersreplace", 3),
    ]
    assert emulator.hashes(SANDBOX_AUDIENCE_ID) == {
        sha(f"cliente.{n}@exemplo.com.br") for n in range(3, 10_006)
    }


def test_rows_meta_samples_as_invalid_entries_are_refused() -> None:
    dest = MetaAdsDestination("http://127.0.0.1:9", "t", "1", audience_id="1")
    good, bad = person(1), person(2)
    outcomes = dest._outcomes(
        {
            "num_received": 2,
            "num_invalid_entries": 1,
            "invalid_entry_samples": {sha("cliente.2@exemplo.com.br"): "Invalid email"},
        },
        [(good, [sha("cliente.1@exemplo.com.br")]), (bad, [sha("cliente.2@exemplo.com.br")])],
        ["EMAIL"],
        "42",
    )
    assert [(o.key, o.ok) for o in outcomes.values()] == [("k1", True), ("k2", False)]
    assert "Invalid email" in outcomes["k2"].error
    assert dest.stats()["num_invalid_entries"] == 1
    dest.close()


def test_audiences_outlive_a_sandbox_restart(tmp_path) -> None:
    """Meta keeps what a sync wrote; so does the sandbox, in its state file."""
    state = tmp_path / "meta_ads.json"
    emulator = MetaAdsEmulator(state_path=state)
    app = FastAPI()
    app.include_router(emulator.router)
    app.get("/healthz")(lambda: {"status": "ok"})
    with SandboxServer(app) as server:
        dest = destination(server, {"audience_name": "Clientes inativos"})
        dest.upsert([person(1), person(2)])
        dest.remove([person(2)])
        dest.close()
    again = MetaAdsEmulator(state_path=state)
    [created] = [a for a in again.audiences.values() if a.info["name"] == "Clientes inativos"]
    assert again.hashes(created.info["id"]) == {sha("cliente.1@exemplo.com.br")}
    # removal by identifier still works after a reload (the index is rebuilt)
    created.remove({"EMAIL": sha("cliente.1@exemplo.com.br")})
    assert again.hashes(created.info["id"]) == set()
    assert SANDBOX_AUDIENCE_ID in again.audiences


def test_a_multipart_delete_as_metas_curl_examples_send_it(emulated) -> None:
    """``curl -X DELETE -F payload=… -F access_token=…``: a form body on DELETE."""
    import json

    emulator, server = emulated
    dest = destination(server)
    dest.upsert([person(n) for n in range(3)])
    payload = {"schema": "EMAIL_SHA256", "data": [sha("cliente.1@exemplo.com.br")]}
    response = httpx.request(
        "DELETE",
        f"{server.url}/v26.0/{SANDBOX_AUDIENCE_ID}/users",
        files={
            "payload": (None, json.dumps(payload)),
            "access_token": (None, "EAAGsandbox-omnicanal-meta-ads"),
        },
    )
    # a multi-key audience takes no single-key rows (Meta's 2650), and says so
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 2650
    payload = {"schema": ["EMAIL_SHA256"], "data": [[sha("cliente.1@exemplo.com.br")]] * 9000}
    response = httpx.request(
        "DELETE",
        f"{server.url}/v26.0/{SANDBOX_AUDIENCE_ID}/users",
        files={
            "payload": (None, json.dumps(payload)),
            "access_token": (None, "EAAGsandbox-omnicanal-meta-ads"),
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["num_received"] == 9000
    assert emulator.hashes(SANDBOX_AUDIENCE_ID) == {
        sha("cliente.0@exemplo.com.br"),
        sha("cliente.2@exemplo.com.br"),
    }
