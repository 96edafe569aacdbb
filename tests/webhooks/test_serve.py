"""`omnicanal webhooks serve`: the settings it reads and the channels the registry gives it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from omnicanal.errors import ConfigError
from omnicanal.settings import get_settings
from omnicanal.webhooks.payload import sign
from omnicanal.webhooks.server import channels_from_settings
from webhooks.conftest import delivery

OMNICANAL = str(Path(sys.executable).parent / "omnicanal")


def test_settings_defaults_and_overrides(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = get_settings({"OMNICANAL_HOME": str(home)})
    assert settings.webhooks_url == "http://127.0.0.1:8788"
    assert settings.webhooks_dir == home / "webhooks"
    assert settings.webhooks_read_token == "omnicanal-webhooks-sandbox"
    assert "omnicanal-webhooks-sandbox" not in repr(settings)
    settings = get_settings(
        {
            "OMNICANAL_HOME": str(home),
            "OMNICANAL_WEBHOOKS_HOST": "receiver.internal",
            "OMNICANAL_WEBHOOKS_PORT": "9000",
            "OMNICANAL_WEBHOOKS_DIR": str(tmp_path / "store"),
            "OMNICANAL_WEBHOOKS_READ_TOKEN": "s3cret",
        }
    )
    assert settings.webhooks_url == "http://receiver.internal:9000"
    assert settings.webhooks_dir == tmp_path / "store"
    assert settings.webhooks_read_token == "s3cret"
    with pytest.raises(ConfigError, match="OMNICANAL_WEBHOOKS_PORT"):
        get_settings({"OMNICANAL_WEBHOOKS_PORT": "eighty"})


def test_the_registry_s_webhook_channels_are_served_with_their_secrets() -> None:
    from omnicanal.channels import CHANNELS

    fed = {n for n, c in CHANNELS.items() if c.source and c.source.delivery == "webhook"}
    env = {
        "OMNICANAL_WHATSAPP_APP_SECRET": "app-secret-from-env",
        "OMNICANAL_WHATSAPP_VERIFY_TOKEN": "verify-from-env",
    }
    channels = channels_from_settings(get_settings(env))
    assert set(channels) == fed
    if "whatsapp" in fed:
        assert channels["whatsapp"].app_secret == "app-secret-from-env"
        assert channels["whatsapp"].verify_token == "verify-from-env"
        assert "from-env" not in repr(channels)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the receiver did not start")


def test_cli_serves_the_registry_channels_and_keeps_events_across_restarts(tmp_path: Path):
    from omnicanal.channels import CHANNELS

    if "whatsapp" not in CHANNELS:
        pytest.skip("no webhook channel in the registry yet")
    port = _free_port()
    env = {
        **os.environ,
        "OMNICANAL_HOME": str(tmp_path / "home"),
        "OMNICANAL_WEBHOOKS_DIR": str(tmp_path / "store"),
        "OMNICANAL_WEBHOOKS_READ_TOKEN": "cli-read",
        "OMNICANAL_WHATSAPP_APP_SECRET": "cli-app-secret",
        "OMNICANAL_WHATSAPP_VERIFY_TOKEN": "cli-verify",
    }
    url = f"http://127.0.0.1:{port}"
    body = delivery("wamid.CLI1")
    for attempt in range(2):
        proc = subprocess.Popen(
            [OMNICANAL, "webhooks", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            _wait(url, proc)
            challenge = httpx.get(
                f"{url}/webhooks/whatsapp",
                params={
                    "hub.mode": "subscribe",
                    "hub.verify_token": "cli-verify",
                    "hub.challenge": "42",
                },
            )
            assert (challenge.status_code, challenge.text) == (200, "42")
            posted = httpx.post(
                f"{url}/webhooks/whatsapp",
                content=body,
                headers={"X-Hub-Signature-256": sign("cli-app-secret", body)},
            )
            assert posted.json()["stored"] == (1 if attempt == 0 else 0)
            events = httpx.get(
                f"{url}/events/whatsapp", headers={"Authorization": "Bearer cli-read"}
            ).json()["data"]
            assert [e["event_id"] for e in events] == ["wamid.CLI1"]
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            output = proc.communicate(timeout=15)[0]
        # uvicorn re-raises the SIGTERM once it has shut down cleanly
        assert proc.returncode in (0, -signal.SIGTERM), output
        assert "Finished server process" in output
        # the store was closed: its WAL checkpointed into the database and removed
        assert not (tmp_path / "store" / "events.sqlite3-wal").exists()
        assert "cli-app-secret" not in output and "cli-verify" not in output
    assert (tmp_path / "store" / "events.sqlite3").is_file()
