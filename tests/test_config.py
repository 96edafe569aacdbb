"""Settings: defaults, derived URLs, and errors that name the setting."""

from __future__ import annotations

import pytest

from omnicanal.config import WarehouseURL, get_settings
from omnicanal.errors import ConfigError


def test_defaults_point_at_embedded_warehouse_and_sandbox(tmp_path):
    settings = get_settings({"OMNICANAL_HOME": str(tmp_path)})
    assert settings.uses_embedded_warehouse
    assert settings.shopify_url == "http://127.0.0.1:8787"
    assert settings.mailchimp_url == "http://127.0.0.1:8787/3.0"
    assert settings.warehouse().url() == "postgresql://postgres@127.0.0.1:54329/omnicanal"


def test_warehouse_url_parts_and_redaction():
    settings = get_settings(
        {"OMNICANAL_WAREHOUSE_URL": "postgresql://ana:s%40cret@db.local:6543/dw"}
    )
    url = settings.warehouse()
    assert (url.host, url.port, url.user, url.password, url.dbname) == (
        "db.local",
        6543,
        "ana",
        "s@cret",
        "dw",
    )
    assert "s@cret" not in url.redacted() and "***" in url.redacted()
    assert url.libpq_env()["OMNICANAL_PG_PORT"] == "6543"
    assert "cret" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "setting", "words"),
    [
        ({"OMNICANAL_WAREHOUSE_URL": "mysql://x/y"}, "OMNICANAL_WAREHOUSE_URL", "postgresql://"),
        ({"OMNICANAL_WAREHOUSE_URL": "postgresql://h:port/db"}, "OMNICANAL_WAREHOUSE_URL", "port"),
        (
            {"OMNICANAL_WAREHOUSE_URL": "postgresql://h:5432/"},
            "OMNICANAL_WAREHOUSE_URL",
            "database",
        ),
        ({"OMNICANAL_SANDBOX_PORT": "eighty"}, "OMNICANAL_SANDBOX_PORT", "whole number"),
        ({"OMNICANAL_DBT_THREADS": "0"}, "OMNICANAL_DBT_THREADS", "at least 1"),
        ({"OMNICANAL_LOG_LEVEL": "LOUD"}, "OMNICANAL_LOG_LEVEL", "DEBUG"),
    ],
)
def test_bad_settings_name_the_setting(env, setting, words):
    with pytest.raises(ConfigError) as err:
        get_settings(env)
    assert err.value.setting == setting
    assert setting in str(err.value) and words in str(err.value)


def test_mailchimp_url_follows_the_key_data_centre():
    settings = get_settings({"OMNICANAL_MAILCHIMP_API_KEY": "abc123-us21"})
    assert settings.mailchimp_url == "https://us21.api.mailchimp.com/3.0"
    assert "abc123" not in repr(settings)


def test_url_round_trip():
    url = WarehouseURL.parse("postgresql://u@h:1/d")
    assert WarehouseURL.parse(url.url()) == url


def test_readme_documents_every_setting():
    from pathlib import Path

    from omnicanal.config import SETTINGS_DOC

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name, doc in SETTINGS_DOC.items():
        assert f"| `{name}` | {doc} |" in readme, f"README's settings table lacks {name}"
