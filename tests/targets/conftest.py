"""Fixtures for target-warehouse tests: target configs pointing at a fresh database."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from omnicanal.config import WarehouseURL


def _target_config(url: str, **extra) -> dict:
    config = {**WarehouseURL.parse(url).connection_params(), "default_target_schema": "raw_test"}
    config.update(extra)
    return {k: v for k, v in config.items() if v is not None}


@pytest.fixture
def config_for() -> Callable[..., dict]:
    """``config_for(url, **settings)``: a target-warehouse config for that database."""
    return _target_config


@pytest.fixture
def warehouse_config(fresh_db: str) -> dict:
    return _target_config(fresh_db)


def run_target(config: dict, messages: list[dict]) -> list[dict]:
    """Run target-warehouse in this process on ``messages``; return the states it printed."""
    import contextlib
    import io
    import json

    from target_warehouse.target import TargetWarehouse

    stdin = io.StringIO("".join(json.dumps(m) + "\n" for m in messages))
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        TargetWarehouse(config=config).listen(stdin)
    return [json.loads(line) for line in stdout.getvalue().splitlines() if line.strip()]


def query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


@pytest.fixture
def run() -> Callable[[dict, list[dict]], list[dict]]:
    return run_target


@pytest.fixture
def sql(fresh_db: str) -> Callable[..., list[tuple]]:
    """``sql(statement, params)`` against the test's fresh database."""
    return lambda statement, params=(): query(fresh_db, statement, params)


def schema(stream: str, properties: dict, keys=(), bookmark=None, required=None) -> dict:
    message = {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": list(keys),
    }
    if bookmark:
        message["bookmark_properties"] = [bookmark]
    if required:
        message["schema"]["required"] = list(required)
    return message


def record(stream: str, data: dict, **extra) -> dict:
    return {"type": "RECORD", "stream": stream, "record": data, **extra}


def state(value: dict) -> dict:
    return {"type": "STATE", "value": value}
