"""Which running receiver the demo uses: only one that keeps one of its own home's stores.

A receiver left on the port by another home (a bench's, another checkout's demo) holds
another world's events; the demo once read them and its WhatsApp KPIs came out ten times
the world's. ``/healthz`` names the receiver's store, and ``start_webhooks`` checks it.
"""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from omnicanal.demo import start_webhooks
from omnicanal.errors import OmnicanalError
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import generate_world
from omnicanal.settings import get_settings
from omnicanal.webhooks.server import WebhooksProcess, channels_from_settings
from omnicanal.webhooks.store import store_id
from webhooks.conftest import SECRETS


def _healthz(url: str) -> dict:
    return httpx.get(f"{url}/healthz", timeout=5).json()


def test_the_store_id_is_kept_with_the_store_and_new_for_a_new_one(tmp_path: Path) -> None:
    first, other = tmp_path / "first", tmp_path / "other"
    assert store_id(first) is None
    with WebhooksProcess(first, SECRETS) as receiver:
        reported = _healthz(receiver.url)["store"]
    assert reported and reported == store_id(first)
    with WebhooksProcess(first, SECRETS) as receiver:  # the same store again: the same id
        assert _healthz(receiver.url)["store"] == reported
    with WebhooksProcess(other, SECRETS) as receiver:
        assert _healthz(receiver.url)["store"] not in (None, reported)
    shutil.rmtree(first)  # a store made again is another store
    with WebhooksProcess(first, SECRETS) as receiver:
        assert _healthz(receiver.url)["store"] not in (None, reported)


def _run_demo_webhooks(settings, emulations: dict) -> dict:
    """The demo's step: a small world's sandbox, then ``start_webhooks``."""
    with ExitStack() as stack:
        sandbox = stack.enter_context(SandboxServer(generate_world(30, 11), **emulations))
        return start_webhooks(settings, sandbox, stack)


def test_the_demo_refuses_another_home_s_receiver_and_names_the_port_setting(
    tmp_path: Path, webhook_emulations: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNICANAL_HOME", str(tmp_path / "ours"))
    settings = get_settings()
    elsewhere = tmp_path / "theirs" / "webhooks"
    with WebhooksProcess(
        elsewhere, channels_from_settings(settings), port=settings.webhooks_port
    ) as theirs:
        before = _healthz(theirs.url)
        with pytest.raises(OmnicanalError, match="OMNICANAL_WEBHOOKS_PORT") as refused:
            _run_demo_webhooks(settings, webhook_emulations)
        assert before["store"] in str(refused.value)
        # nothing was posted to it: its store holds what it held
        assert _healthz(theirs.url)["deliveries"] == before["deliveries"]


def test_the_demo_uses_its_own_home_s_receiver_and_delivers_to_it(
    tmp_path: Path, webhook_emulations: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNICANAL_HOME", str(tmp_path / "ours"))
    settings = get_settings()
    # make ui's receiver: the settings' own store, on the settings' port
    with WebhooksProcess(
        settings.webhooks_dir, channels_from_settings(settings), port=settings.webhooks_port
    ) as ours:
        delivered = _run_demo_webhooks(settings, webhook_emulations)
        assert delivered["whatsapp"]["delivered"] > 0
        assert _healthz(ours.url)["deliveries"] >= delivered["whatsapp"]["delivered"]
    # the demo started no receiver of its own: its store was never made
    assert store_id(settings.home / "demo" / "webhooks") is None


def test_with_no_receiver_the_demo_starts_its_own_on_a_fresh_store(
    tmp_path: Path, webhook_emulations: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNICANAL_HOME", str(tmp_path / "ours"))
    settings = get_settings()
    delivered = _run_demo_webhooks(settings, webhook_emulations)
    assert delivered["whatsapp"]["delivered"] > 0
    assert store_id(settings.home / "demo" / "webhooks")
