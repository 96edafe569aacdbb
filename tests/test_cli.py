"""The `omnicanal` verbs that the other tests do not already drive."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from omnicanal.cli import main

OMNICANAL = str(Path(sys.executable).parent / "omnicanal")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sandbox_world_writes_a_world_file(tmp_path, capsys):
    out = tmp_path / "w.json"
    assert main(["sandbox", "world", "--people", "7", "--seed", "3", "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert len(data["people"]) == 7 and data["seed"] == 3
    assert "7 people" in capsys.readouterr().out


def test_sandbox_serve_answers_with_the_configured_token(tmp_path):
    port = free_port()
    env = {**os.environ, "OMNICANAL_HOME": str(tmp_path), "OMNICANAL_SHOPIFY_ACCESS_TOKEN": "tok"}
    proc = subprocess.Popen(
        [OMNICANAL, "sandbox", "serve", "--people", "5", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        customers = f"{url}/admin/api/2024-10/customers.json"
        assert httpx.get(customers).status_code == 401
        ok = httpx.get(customers, headers={"X-Shopify-Access-Token": "tok"})
        assert ok.status_code == 200 and ok.json()["customers"]
        assert (tmp_path / "sandbox" / "world.json").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_settings_masks_secrets(monkeypatch, capsys):
    monkeypatch.setenv("OMNICANAL_MAILCHIMP_API_KEY", "very-secret-us9")
    monkeypatch.setenv("OMNICANAL_SANDBOX_PORT", "9999")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "very-secret" not in out and "OMNICANAL_MAILCHIMP_API_KEY=***" in out
    assert "OMNICANAL_SANDBOX_PORT=9999" in out


def test_bad_setting_is_reported_without_traceback(monkeypatch, capsys):
    monkeypatch.setenv("OMNICANAL_SANDBOX_PORT", "x")
    assert main(["sync", "list"]) == 2
    err = capsys.readouterr().err
    assert "OMNICANAL_SANDBOX_PORT" in err and "Traceback" not in err


def test_sync_list_names_the_declared_syncs(capsys):
    assert main(["sync", "list"]) == 0
    out = capsys.readouterr().out
    assert "mailchimp__recent_buyers: activation.sync_mailchimp__recent_buyers -> mailchimp" in out


def test_env_stops_the_embedded_warehouse_it_started_for_a_command(tmp_path):
    """`omnicanal env -- cmd` (as `make sql-lint` runs sqlfluff) brings the embedded
    warehouse up for the command, with a fresh database, and stops it again after: only
    when it started it; a warehouse already up stays up."""
    from omnicanal import warehouse
    from omnicanal.settings import get_settings

    env = {
        **{k: v for k, v in os.environ.items() if k != "OMNICANAL_WAREHOUSE_URL"},
        "OMNICANAL_HOME": str(tmp_path / "home"),
        "OMNICANAL_EMBEDDED_PG_PORT": str(free_port()),
    }
    settings = get_settings(env)
    probe = (
        "import os, psycopg; "
        "psycopg.connect(os.environ['OMNICANAL_WAREHOUSE_URL']).execute('select 1')"
    )
    run = [OMNICANAL, "env", "--fresh-database", "omnicanal_envtest", "--", sys.executable]
    try:
        done = subprocess.run([*run, "-c", probe], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert not warehouse.is_running(settings)

        warehouse.up(settings)
        done = subprocess.run([*run, "-c", probe], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert warehouse.is_running(settings)
    finally:
        warehouse.down(settings)
