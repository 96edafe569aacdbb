"""One settings object for the whole hub, read from the environment.

Every part of omnicanal (the taps' target config, the dbt profile, the Airflow
connection, the sync engine, the CLI) asks :func:`get_settings` instead of reading
environment variables itself, so a setting has one name, one default and one error
message everywhere.

With nothing set, omnicanal runs on embedded defaults: an embedded Postgres under
``.omnicanal/`` and the sandbox that emulates the platforms' APIs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from omnicanal.errors import ConfigError

#: Every setting omnicanal reads, with its meaning. The README's settings table and
#: ``omnicanal settings`` are generated from this, so it is the single source.
SETTINGS_DOC: dict[str, str] = {
    "OMNICANAL_HOME": "Folder for local state: embedded Postgres, Airflow home, sandbox "
    "world, logs. Default: `.omnicanal/` in the project folder.",
    "OMNICANAL_PROJECT_DIR": "The project folder (holds dags/, dbt_project/). Default: "
    "found from the installed package.",
    "OMNICANAL_WAREHOUSE_URL": "Postgres URL of the warehouse, "
    "`postgresql://user:password@host:port/dbname`. Unset: the embedded Postgres.",
    "OMNICANAL_EMBEDDED_PG_PORT": "TCP port of the embedded Postgres on 127.0.0.1. "
    "Default: 54329 (or the next free port, remembered under OMNICANAL_HOME).",
    "OMNICANAL_SANDBOX_HOST": "Address the sandbox listens on. Default: 127.0.0.1.",
    "OMNICANAL_SANDBOX_PORT": "Port the sandbox listens on. Default: 8787.",
    "OMNICANAL_SANDBOX_PEOPLE": "People in the sandbox world. Default: 500.",
    "OMNICANAL_SANDBOX_SEED": "Seed of the sandbox world. Default: 42.",
    "OMNICANAL_SHOPIFY_API_URL": "Base URL of the Shopify store, "
    "`https://<shop>.myshopify.com`. Default: the sandbox.",
    "OMNICANAL_SHOPIFY_ACCESS_TOKEN": "Shopify Admin API access token (secret). "
    "Default: the sandbox's token.",
    "OMNICANAL_SHOPIFY_START_DATE": "First date to extract from Shopify (ISO-8601). "
    "Default: 2000-01-01T00:00:00Z.",
    "OMNICANAL_SHOPIFY_MAX_RETRIES": "Retries of a failed Shopify request (5xx, 429, "
    "network) before the extract fails. Default: 5.",
    "OMNICANAL_MAILCHIMP_API_URL": "Mailchimp Marketing API base URL, "
    "`https://<dc>.api.mailchimp.com/3.0`. Default: the data centre in the API key, or "
    "the sandbox.",
    "OMNICANAL_MAILCHIMP_API_KEY": "Mailchimp API key (secret). Default: the sandbox's key.",
    "OMNICANAL_MAILCHIMP_LIST_ID": "Mailchimp audience (list) id the syncs write to. "
    "Default: omnicanal-demo (the sandbox's list).",
    "OMNICANAL_DBT_THREADS": "dbt threads. Default: 2.",
    "OMNICANAL_LOG_LEVEL": "Log level of the CLI. Default: INFO.",
}

DEFAULT_SANDBOX_SHOPIFY_TOKEN = "shpat_sandbox"
DEFAULT_SANDBOX_MAILCHIMP_KEY = "sandbox-us1"
DEFAULT_MAILCHIMP_LIST_ID = "omnicanal-demo"


@dataclass(frozen=True)
class WarehouseURL:
    """The parts of a Postgres URL, as dbt's profile and the loaders want them."""

    host: str
    port: int
    user: str
    password: str
    dbname: str

    @classmethod
    def parse(cls, url: str, setting: str = "OMNICANAL_WAREHOUSE_URL") -> WarehouseURL:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
            raise ConfigError(
                setting,
                f"must start with postgresql:// (got scheme {parts.scheme or 'none'!r})",
            )
        try:
            port = parts.port or 5432
        except ValueError as exc:
            raise ConfigError(setting, f"has an invalid port: {exc}") from None
        dbname = parts.path.lstrip("/")
        if not parts.hostname:
            raise ConfigError(setting, "has no host (postgresql://user@HOST:port/dbname)")
        if not dbname:
            raise ConfigError(setting, "has no database name (postgresql://…/DBNAME)")
        return cls(
            host=parts.hostname,
            port=port,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            dbname=unquote(dbname),
        )

    def url(self) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.dbname}"

    def redacted(self) -> str:
        """The URL with the password masked, for logs and status output."""
        auth = self.user + (":***" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.dbname}"

    def connection_params(self) -> dict[str, str | int]:
        """The five keys Singer Postgres targets (ours included) take for a connection."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.dbname,
        }

    def libpq_env(self) -> dict[str, str]:
        """Environment for dbt's profile (dbt_project/profiles.yml reads these)."""
        return {
            "OMNICANAL_PG_HOST": self.host,
            "OMNICANAL_PG_PORT": str(self.port),
            "OMNICANAL_PG_USER": self.user,
            "OMNICANAL_PG_PASSWORD": self.password,
            "OMNICANAL_PG_DBNAME": self.dbname,
        }


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number (got {raw!r})") from None
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum} (got {value})")
    return value


def _default_project_dir() -> Path:
    # include/omnicanal/config.py -> project root is two levels above the package.
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Settings:
    """Every setting omnicanal uses; build it with :func:`get_settings`."""

    project_dir: Path
    home: Path
    warehouse_url: str | None = field(repr=False)
    embedded_pg_port: int
    sandbox_host: str
    sandbox_port: int
    sandbox_people: int
    sandbox_seed: int
    shopify_api_url: str | None
    shopify_access_token: str = field(repr=False)
    shopify_start_date: str
    shopify_max_retries: int
    mailchimp_api_url: str | None
    mailchimp_api_key: str = field(repr=False)
    mailchimp_list_id: str
    dbt_threads: int
    log_level: str

    @property
    def uses_embedded_warehouse(self) -> bool:
        return self.warehouse_url is None

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.sandbox_host}:{self.sandbox_port}"

    @property
    def shopify_url(self) -> str:
        return self.shopify_api_url or self.sandbox_url

    @property
    def mailchimp_url(self) -> str:
        """The Mailchimp API base: explicit, from the key's data centre, or the sandbox."""
        if self.mailchimp_api_url:
            return self.mailchimp_api_url.rstrip("/")
        if self.mailchimp_api_key != DEFAULT_SANDBOX_MAILCHIMP_KEY and "-" in (
            self.mailchimp_api_key
        ):
            dc = self.mailchimp_api_key.rsplit("-", 1)[1]
            return f"https://{dc}.api.mailchimp.com/3.0"
        return f"{self.sandbox_url}/3.0"

    def sandbox_app_options(self) -> dict:
        """The sandbox's credentials and state file, so taps and syncs can talk to it."""
        return {
            "shopify_token": self.shopify_access_token,
            "mailchimp_api_key": self.mailchimp_api_key,
            "mailchimp_list_id": self.mailchimp_list_id,
            "mailchimp_state_path": self.sandbox_mailchimp_state,
        }

    @property
    def dbt_project_dir(self) -> Path:
        return self.project_dir / "dbt_project"

    @property
    def dags_dir(self) -> Path:
        return self.project_dir / "dags"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def world_path(self) -> Path:
        return self.home / "sandbox" / "world.json"

    @property
    def sandbox_mailchimp_state(self) -> Path:
        """Where the sandbox's Mailchimp keeps its members between restarts."""
        return self.home / "sandbox" / "mailchimp.json"

    def warehouse(self) -> WarehouseURL:
        """The warehouse URL parts; starts nothing (see omnicanal.warehouse for that)."""
        if self.warehouse_url:
            return WarehouseURL.parse(self.warehouse_url)
        from omnicanal.warehouse import embedded_url

        return WarehouseURL.parse(embedded_url(self), "embedded warehouse")


def get_settings(env: dict[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: the process environment).

    Raises :class:`ConfigError` naming the setting when a value is malformed, so the
    user knows exactly what to fix.
    """
    env = dict(os.environ if env is None else env)
    project_dir = Path(env.get("OMNICANAL_PROJECT_DIR") or _default_project_dir()).resolve()
    home = Path(env.get("OMNICANAL_HOME") or project_dir / ".omnicanal").resolve()
    warehouse_url = env.get("OMNICANAL_WAREHOUSE_URL", "").strip() or None
    if warehouse_url:
        WarehouseURL.parse(warehouse_url)  # fail now, naming the setting
    log_level = env.get("OMNICANAL_LOG_LEVEL", "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("OMNICANAL_LOG_LEVEL", "must be DEBUG, INFO, WARNING or ERROR")
    return Settings(
        project_dir=project_dir,
        home=home,
        warehouse_url=warehouse_url,
        embedded_pg_port=_int(env, "OMNICANAL_EMBEDDED_PG_PORT", 54329, 1),
        sandbox_host=env.get("OMNICANAL_SANDBOX_HOST", "127.0.0.1"),
        sandbox_port=_int(env, "OMNICANAL_SANDBOX_PORT", 8787, 1),
        sandbox_people=_int(env, "OMNICANAL_SANDBOX_PEOPLE", 500, 1),
        sandbox_seed=_int(env, "OMNICANAL_SANDBOX_SEED", 42),
        shopify_api_url=env.get("OMNICANAL_SHOPIFY_API_URL") or None,
        shopify_access_token=env.get("OMNICANAL_SHOPIFY_ACCESS_TOKEN")
        or DEFAULT_SANDBOX_SHOPIFY_TOKEN,
        shopify_start_date=env.get("OMNICANAL_SHOPIFY_START_DATE") or "2000-01-01T00:00:00Z",
        shopify_max_retries=_int(env, "OMNICANAL_SHOPIFY_MAX_RETRIES", 5),
        mailchimp_api_url=env.get("OMNICANAL_MAILCHIMP_API_URL") or None,
        mailchimp_api_key=env.get("OMNICANAL_MAILCHIMP_API_KEY") or DEFAULT_SANDBOX_MAILCHIMP_KEY,
        mailchimp_list_id=env.get("OMNICANAL_MAILCHIMP_LIST_ID") or DEFAULT_MAILCHIMP_LIST_ID,
        dbt_threads=_int(env, "OMNICANAL_DBT_THREADS", 2, 1),
        log_level=log_level,
    )
