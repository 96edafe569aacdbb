"""Settings: defaults, derived URLs, and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnicanal import warehouse
from omnicanal.channels import mailchimp, shopify
from omnicanal.config import CORE_SETTINGS, WarehouseURL
from omnicanal.errors import ConfigError
from omnicanal.settings import all_settings, get_settings


def test_defaults_point_at_embedded_warehouse_and_sandbox(tmp_path):
    settings = get_settings({"OMNICANAL_HOME": str(tmp_path)})
    assert settings.uses_embedded_warehouse
    assert shopify.api_url(settings) == "http://127.0.0.1:8787"
    assert mailchimp.api_url(settings) == "http://127.0.0.1:8787/3.0"
    assert settings.channel("shopify").access_token == shopify.SANDBOX_ACCESS_TOKEN
    assert settings.channel("mailchimp").list_id == mailchimp.DEFAULT_LIST_ID
    assert warehouse.url(settings).url() == "postgresql://postgres@127.0.0.1:54329/omnicanal"


def test_reading_settings_reads_no_file(tmp_path):
    """The embedded server's port lives in its state file; settings never read it."""
    state = tmp_path / "postgres" / "state.json"
    state.parent.mkdir()
    state.write_text("{not json")
    settings = get_settings({"OMNICANAL_HOME": str(tmp_path)})
    assert settings.embedded_pg_port == 54329
    with pytest.raises(ValueError):
        warehouse.url(settings)


def test_warehouse_url_parts_and_redaction():
    settings = get_settings(
        {"OMNICANAL_WAREHOUSE_URL": "postgresql://ana:s%40cret@db.local:6543/dw"}
    )
    url = warehouse.url(settings)
    assert (url.host, url.port, url.user, url.password, url.dbname) == (
        "db.local",
        6543,
        "ana",
        "s@cret",
        "dw",
    )
    assert "s@cret" not in url.redacted() and "***" in url.redacted()
    assert url.libpq_env()["OMNICANAL_PG_PORT"] == "6543"
    assert "s@cret" not in repr(settings) and "s%40cret" not in repr(settings)


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
        # channel settings fail the same way, naming their variable
        ({"OMNICANAL_SHOPIFY_MAX_RETRIES": "-1"}, "OMNICANAL_SHOPIFY_MAX_RETRIES", "at least 0"),
        ({"OMNICANAL_SHOPIFY_API_URL": "acme.myshopify.com"}, "OMNICANAL_SHOPIFY_API_URL", "http"),
        ({"OMNICANAL_SHOPIFY_START_DATE": "yesterday"}, "OMNICANAL_SHOPIFY_START_DATE", "ISO"),
        ({"OMNICANAL_MAILCHIMP_API_URL": "ftp://x"}, "OMNICANAL_MAILCHIMP_API_URL", "http"),
    ],
)
def test_bad_settings_name_the_setting(env, setting, words):
    with pytest.raises(ConfigError) as err:
        get_settings(env)
    assert err.value.setting == setting
    assert setting in str(err.value) and words in str(err.value)


def test_blank_values_mean_the_default():
    settings = get_settings({"OMNICANAL_SANDBOX_PORT": "  ", "OMNICANAL_SHOPIFY_API_URL": ""})
    assert settings.sandbox_port == 8787
    assert settings.channel("shopify").api_url is None


def test_mailchimp_url_follows_the_key_data_centre():
    settings = get_settings({"OMNICANAL_MAILCHIMP_API_KEY": "abc123-us21"})
    assert mailchimp.api_url(settings) == "https://us21.api.mailchimp.com/3.0"
    assert "abc123" not in repr(settings)
    explicit = get_settings({"OMNICANAL_MAILCHIMP_API_URL": "https://us9.api.mailchimp.com/3.0/"})
    assert mailchimp.api_url(explicit) == "https://us9.api.mailchimp.com/3.0"


def test_secrets_are_masked_in_every_repr():
    settings = get_settings(
        {"OMNICANAL_SHOPIFY_ACCESS_TOKEN": "shpat_live_123", "OMNICANAL_MAILCHIMP_API_KEY": "k-us1"}
    )
    shown = repr(settings) + repr(settings.channel("shopify")) + repr(settings.channel("mailchimp"))
    assert "shpat_live_123" not in shown and "k-us1" not in shown
    assert settings.channel("shopify").access_token == "shpat_live_123"


def test_every_setting_has_one_name():
    names = [setting.env for setting in all_settings()]
    assert len(names) == len(set(names))
    assert names[: len(CORE_SETTINGS)] == [s.env for s in CORE_SETTINGS]


def test_url_round_trip():
    url = WarehouseURL.parse("postgresql://u@h:1/d")
    assert WarehouseURL.parse(url.url()) == url


def test_readme_documents_every_setting():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for setting in all_settings():
        assert f"| `{setting.env}` | {setting.doc} |" in readme, (
            f"README's settings table lacks {setting.env}"
        )
