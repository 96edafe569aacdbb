"""The sandbox app as a whole: start/stop, world files, and one round trip through it.

The round trip is what the demo does in miniature: pull Shopify over HTTP, compute
the recent-buyers segment from the noisy records, push it into Mailchimp, and compare
what Mailchimp holds with the world's ground truth.
"""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from omnicanal.channels import CHANNELS
from omnicanal.channels.mailchimp import SANDBOX_API_KEY as DEFAULT_MAILCHIMP_API_KEY
from omnicanal.channels.shopify import SANDBOX_ACCESS_TOKEN as DEFAULT_SHOPIFY_TOKEN
from omnicanal.sandbox import (
    SandboxServer,
    World,
    create_app,
    generate_world_file,
    serve,
)


def test_healthz_and_clean_stop(world: World) -> None:
    server = SandboxServer(world)
    with server:
        health = httpx.get(f"{server.url}/healthz").json()
        assert health == {
            "status": "ok",
            "seed": world.seed,
            "as_of": world.as_of.isoformat(),
            "people": 200,
            "channels": sorted(c.name for c in CHANNELS.values() if c.emulation),
        }
        url = server.url
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=1.0)


def test_server_accepts_a_ready_app_and_custom_credentials(world: World) -> None:
    app = create_app(
        world, shopify={"access_token": "shpat_other"}, mailchimp={"api_key": "key-us9"}
    )
    with SandboxServer(app) as server:
        assert server.app is app
        shopify = httpx.get(
            f"{server.url}/admin/api/2024-10/customers.json",
            headers={"X-Shopify-Access-Token": DEFAULT_SHOPIFY_TOKEN},
        )
        assert shopify.status_code == 401
        mailchimp = httpx.get(f"{server.url}/3.0/lists", auth=("any", "key-us9"))
        assert mailchimp.status_code == 200


def test_port_in_use_is_a_clear_error(world: World) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(RuntimeError, match="cannot listen"):
            SandboxServer(world, port=busy.getsockname()[1]).start()


def test_generate_world_file_round_trips(tmp_path: Path, world: World) -> None:
    path = tmp_path / "nested" / "world.json"
    generated = generate_world_file(path, people=200, seed=world.seed, as_of=world.as_of)
    assert World.from_json(path).to_dict() == generated.to_dict() == world.to_dict()


def test_serve_needs_a_world_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="omnicanal sandbox world"):
        serve(tmp_path / "missing.json")


def _segment_from_shopify(base: str, as_of: datetime) -> dict[str, dict[str, str]]:
    """A toy pipeline: pull over HTTP, resolve by trimmed lower-case email, segment."""
    headers = {"X-Shopify-Access-Token": DEFAULT_SHOPIFY_TOKEN}

    def pull(resource: str, params: dict[str, str]) -> list[dict]:
        rows: list[dict] = []
        url: str | None = f"{base}/admin/api/2024-10/{resource}.json"
        first = True
        while url:
            response = httpx.get(url, params=params if first else None, headers=headers)
            first = False
            rows += response.json()[resource]
            url = response.links.get("next", {}).get("url")
        return rows

    customers = pull("customers", {"limit": "250"})
    orders = pull("orders", {"limit": "250", "status": "any"})
    latest: dict[str, dict] = {}
    for customer in sorted(customers, key=lambda c: datetime.fromisoformat(c["updated_at"])):
        latest[customer["email"].strip().lower()] = customer
    cutoff = as_of - timedelta(days=90)
    buyers = {
        o["email"].strip().lower()
        for o in orders
        if not o["cancelled_at"] and datetime.fromisoformat(o["created_at"]) >= cutoff
    }
    return {
        email: {"first_name": latest[email]["first_name"], "last_name": latest[email]["last_name"]}
        for email in buyers
        if latest[email]["email_marketing_consent"]["state"] == "subscribed"
    }


def test_round_trip_shopify_to_mailchimp_matches_ground_truth(world: World) -> None:
    with SandboxServer(world) as server:
        segment = _segment_from_shopify(server.url, world.as_of)
        members = [
            {
                "email_address": email,
                "status": "subscribed",
                "merge_fields": {"FNAME": names["first_name"], "LNAME": names["last_name"]},
            }
            for email, names in segment.items()
        ]
        response = httpx.post(
            f"{server.url}/3.0/lists/omnicanal-demo",
            json={"members": members, "update_existing": True},
            auth=("omnicanal", DEFAULT_MAILCHIMP_API_KEY),
        )
        assert response.json()["error_count"] == 0
        held = {
            m["email_address"]: {
                "first_name": m["merge_fields"]["FNAME"],
                "last_name": m["merge_fields"]["LNAME"],
            }
            for m in server.app.state.mailchimp.members("omnicanal-demo", status="subscribed")
        }
    assert held == world.expected_recent_buyers()


@pytest.mark.parametrize(
    ("headers", "path", "body"),
    [
        (
            {"X-Shopify-Access-Token": DEFAULT_SHOPIFY_TOKEN},
            "/products.json",
            {"errors": "Not Found"},
        ),
        (
            {"Authorization": "Bearer x", "Square-Version": "2025-10-16"},
            "/v3/customers",
            {
                "errors": [
                    {
                        "category": "INVALID_REQUEST_ERROR",
                        "code": "NOT_FOUND",
                        "detail": "API endpoint for URL path `/v3/customers` not found.",
                    }
                ]
            },
        ),
        (
            {},
            "/v1/me/locations",
            {
                "errors": [
                    {
                        "category": "INVALID_REQUEST_ERROR",
                        "code": "NOT_FOUND",
                        "detail": "API endpoint for URL path `/v1/me/locations` not found.",
                    }
                ]
            },
        ),
        (
            {"X-VTEX-API-AppKey": "k", "X-VTEX-API-AppToken": "t"},
            "/api/catalog_system/pvt/products/1",
            {
                "error": {
                    "code": "1",
                    "message": "No route matches GET /api/catalog_system/pvt/products/1",
                    "exception": None,
                }
            },
        ),
        ({}, "/nowhere", {"detail": "Not Found"}),
    ],
)
def test_a_path_no_route_serves_gets_the_platforms_own_error_body(
    world: World, headers: dict[str, str], path: str, body: dict
) -> None:
    """Every platform lives on one sandbox host: a path outside every emulation's routes
    is answered by the platform whose credentials the request carries, in its body."""
    with SandboxServer(world) as server:
        answer = httpx.get(f"{server.url}{path}", headers=headers)
    assert answer.status_code == 404
    assert answer.json() == body
