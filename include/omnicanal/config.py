"""Settings: what each one is called, means and defaults to, and how it is read.

A leaf module: it imports nothing else of omnicanal but its errors. The core settings
(home, warehouse, sandbox, dbt, logging) are declared here; each channel declares its
own in its package (``omnicanal.channels.<platform>``) with the same :class:`Setting`
type, and :func:`omnicanal.settings.get_settings` composes the two. Everything
(the taps' config, the dbt profile, the Airflow connection, the sync engine, the CLI)
reads that one object, so a setting has one name, one default and one error message.

Reading settings starts nothing and reads no file: where the embedded warehouse
listens is :func:`omnicanal.warehouse.url`'s business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from omnicanal.errors import ConfigError

#: Parses one raw (non-empty, stripped) value; raises ConfigError naming the setting.
Parser = Callable[[str, str], Any]


def text(name: str, raw: str) -> str:
    return raw


def whole_number(minimum: int = 0) -> Parser:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"must be a whole number (got {raw!r})") from None
        if value < minimum:
            raise ConfigError(name, f"must be at least {minimum} (got {value})")
        return value

    return parse


def one_of(*choices: str) -> Parser:
    def parse(name: str, raw: str) -> str:
        value = raw.upper()
        if value not in choices:
            raise ConfigError(name, f"must be {', '.join(choices[:-1])} or {choices[-1]}")
        return value

    return parse


def http_url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(name, f"must be an http(s):// URL (got {raw!r})")
    return raw.rstrip("/")


def iso_datetime(name: str, raw: str) -> str:
    try:
        datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            name, f"must be an ISO-8601 date or time, e.g. 2024-01-31T00:00:00Z (got {raw!r})"
        ) from None
    return raw


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, the attribute it becomes, its meaning.

    ``doc`` is the one line the README's settings table and ``omnicanal settings`` show
    (a test checks the README against every declared setting); ``default`` is the value
    when the variable is unset or empty; a ``secret`` is never printed or logged.
    """

    env: str
    attr: str
    doc: str
    default: Any = None
    parse: Parser = text
    secret: bool = False

    def read(self, env: Mapping[str, str]) -> Any:
        raw = env.get(self.env, "").strip()
        return self.parse(self.env, raw) if raw else self.default


class SettingValues:
    """The values of one group of settings (a channel's), as attributes.

    Its repr masks secrets, so logging a settings object never leaks a token.
    """

    def __init__(self, specs: Iterable[Setting], values: Mapping[str, Any]) -> None:
        self._specs = {spec.attr: spec for spec in specs}
        self._values = dict(values)

    @classmethod
    def read(cls, specs: Iterable[Setting], env: Mapping[str, str]) -> SettingValues:
        specs = tuple(specs)
        return cls(specs, {spec.attr: spec.read(env) for spec in specs})

    def __getattr__(self, attr: str) -> Any:
        try:
            return self.__dict__["_values"][attr]
        except KeyError:
            raise AttributeError(f"no setting {attr!r} here") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SettingValues) and other._values == self._values

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{attr}={'***' if spec.secret and self._values[attr] else repr(self._values[attr])}"
            for attr, spec in self._specs.items()
        )
        return f"SettingValues({shown})"


def _postgres_url(name: str, raw: str) -> str:
    WarehouseURL.parse(raw, name)  # fail now, naming the setting
    return raw


def _default_project_dir() -> Path:
    # include/omnicanal/config.py -> project root is two levels above the package.
    return Path(__file__).resolve().parents[2]


#: The settings of the hub itself; each channel adds its own (omnicanal.channels).
CORE_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "OMNICANAL_HOME",
        "home",
        "Folder for local state: embedded Postgres, Airflow home, sandbox world, logs. "
        "Default: `.omnicanal/` in the project folder.",
    ),
    Setting(
        "OMNICANAL_PROJECT_DIR",
        "project_dir",
        "The project folder (holds dags/, dbt_project/). Default: found from the installed "
        "package.",
    ),
    Setting(
        "OMNICANAL_WAREHOUSE_URL",
        "warehouse_url",
        "Postgres URL of the warehouse, `postgresql://user:password@host:port/dbname`. "
        "Unset: the embedded Postgres.",
        parse=_postgres_url,
        secret=True,
    ),
    Setting(
        "OMNICANAL_EMBEDDED_PG_PORT",
        "embedded_pg_port",
        "TCP port of the embedded Postgres on 127.0.0.1. Default: 54329 (or the next free "
        "port, remembered under OMNICANAL_HOME).",
        54329,
        whole_number(1),
    ),
    Setting(
        "OMNICANAL_SANDBOX_HOST",
        "sandbox_host",
        "Address the sandbox listens on. Default: 127.0.0.1.",
        "127.0.0.1",
    ),
    Setting(
        "OMNICANAL_SANDBOX_PORT",
        "sandbox_port",
        "Port the sandbox listens on. Default: 8787.",
        8787,
        whole_number(1),
    ),
    Setting(
        "OMNICANAL_SANDBOX_PEOPLE",
        "sandbox_people",
        "People in the sandbox world. Default: 500.",
        500,
        whole_number(1),
    ),
    Setting(
        "OMNICANAL_SANDBOX_SEED",
        "sandbox_seed",
        "Seed of the sandbox world. Default: 42.",
        42,
        whole_number(0),
    ),
    Setting(
        "OMNICANAL_WEBHOOKS_HOST",
        "webhooks_host",
        "Address the webhook receiver listens on. Default: 127.0.0.1.",
        "127.0.0.1",
    ),
    Setting(
        "OMNICANAL_WEBHOOKS_PORT",
        "webhooks_port",
        "Port the webhook receiver listens on. Default: 8788.",
        8788,
        whole_number(1),
    ),
    Setting(
        "OMNICANAL_WEBHOOKS_DIR",
        "webhooks_dir",
        "Folder of the webhook receiver's durable event store. Default: "
        "`webhooks/` under OMNICANAL_HOME.",
    ),
    Setting(
        "OMNICANAL_WEBHOOKS_READ_TOKEN",
        "webhooks_read_token",
        "Bearer token of the webhook receiver's read API (`GET /events/<channel>`), which "
        "the webhook channels' taps present (secret). Default: the sandbox's token.",
        "omnicanal-webhooks-sandbox",
        secret=True,
    ),
    Setting("OMNICANAL_DBT_THREADS", "dbt_threads", "dbt threads. Default: 2.", 2, whole_number(1)),
    Setting(
        "OMNICANAL_LOG_LEVEL",
        "log_level",
        "Log level of the CLI. Default: INFO.",
        "INFO",
        one_of("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
)


@dataclass(frozen=True)
class Settings:
    """Every setting omnicanal uses; build it with :func:`omnicanal.settings.get_settings`.

    Core settings are fields; a channel's are ``settings.channel(name)``.
    """

    project_dir: Path
    home: Path
    warehouse_url: str | None = field(repr=False)
    embedded_pg_port: int
    sandbox_host: str
    sandbox_port: int
    sandbox_people: int
    sandbox_seed: int
    webhooks_host: str
    webhooks_port: int
    webhooks_dir: Path
    webhooks_read_token: str = field(repr=False)
    dbt_threads: int
    log_level: str
    channels: Mapping[str, SettingValues] = field(default_factory=dict)

    def channel(self, name: str) -> SettingValues:
        """The settings of channel ``name`` (KeyError if it declares none)."""
        return self.channels[name]

    @property
    def uses_embedded_warehouse(self) -> bool:
        return self.warehouse_url is None

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.sandbox_host}:{self.sandbox_port}"

    @property
    def webhooks_url(self) -> str:
        """Where the webhook receiver answers, e.g. ``http://127.0.0.1:8788``."""
        return f"http://{self.webhooks_host}:{self.webhooks_port}"

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
    def sandbox_dir(self) -> Path:
        """Where the sandbox keeps its world and the emulations' state between restarts."""
        return self.home / "sandbox"

    @property
    def world_path(self) -> Path:
        return self.sandbox_dir / "world.json"


def read_settings(
    env: Mapping[str, str], channel_settings: Mapping[str, Iterable[Setting]]
) -> Settings:
    """Read the core settings and each channel's from ``env``.

    Raises :class:`ConfigError` naming the variable when a value is malformed, so the
    user knows exactly what to fix.
    """
    core = {spec.attr: spec.read(env) for spec in CORE_SETTINGS}
    project_dir = Path(core.pop("project_dir") or _default_project_dir()).resolve()
    home = Path(core.pop("home") or project_dir / ".omnicanal").resolve()
    core["webhooks_dir"] = Path(core["webhooks_dir"] or home / "webhooks").resolve()
    return Settings(
        project_dir=project_dir,
        home=home,
        **core,
        channels={name: SettingValues.read(specs, env) for name, specs in channel_settings.items()},
    )


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
