"""Cloud service configuration: one TOML file -> typed, validated settings.

Every key is declared once below with its default; an unknown key, a wrong type or a bad value
raises :class:`ConfigError` naming the file, the dotted key and the reason. Example::

    [database]
    url = "sqlite+aiosqlite:///var/lib/hazwatch/cloud.db"   # or postgresql+asyncpg://...

    [state]
    redis_url = "redis://127.0.0.1:6379/0"   # omit for the in-process live state

    [mqtt]
    host = "127.0.0.1"
    port = 8884                               # the cloud workers' listener (deploy/mosquitto)
    username = "hazwatch-cloud"
    password = "..."
    share_group = "cloud"                     # MQTT v5 shared subscription across workers
    client_id = "hazwatch-cloud:1"            # one per worker; ':' so no gateway can have it
    [mqtt.tls]
    ca_file = "/etc/hazwatch/ca.crt"

    [http]
    host = "0.0.0.0"
    port = 8080

    [retention]
    positions_days = 183

    [sites]
    stale_factor = 3                          # stale after 3 poll periods without a reading
    rate_pct_per_min = 5                      # rate of rise of level and pressure, % span/min

    [notify]
    sms_url = "https://sms.example.cn/send"   # empty: no SMS; smtp_host likewise for e-mail
    expiry_s = 86400                          # retried with backoff until then
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import wire
from cloud.api.security import checked_tile_sources
from cloud.notify.config import NUMBER_CHECKS as NOTIFY_NUMBER_CHECKS
from cloud.notify.config import NotifySettings
from cloud.rules.config import RulesConfig, RulesConfigError
from cloud.sites.config import SitesConfig

__all__ = [
    "CloudSettings",
    "ConfigError",
    "DatabaseSettings",
    "HttpSettings",
    "MqttSettings",
    "RetentionSettings",
    "StateSettings",
    "TlsSettings",
    "load_settings",
    "settings_from_mapping",
]

DEFAULT_DATABASE_URL: Final = "sqlite+aiosqlite:///hazwatch-cloud.db"


class ConfigError(Exception):
    """A cloud configuration that cannot be used; names the file, the key and why."""

    def __init__(self, file: str | Path | None, key: str | None, reason: str) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.reason = reason
        where = ": ".join(part for part in (self.file, self.key) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    """The archive.

    Attributes:
        url: ``sqlite+aiosqlite:///path`` (relative paths are relative to the config file) or
            ``postgresql+asyncpg://user@host/db``.
        schema: PostgreSQL schema (``None``: the default search path).
        spill_path: a local file where ingest keeps the fixes, readings and vessel data the
            database refused after its retries, written again once it answers (``None``:
            such a write is given up and counted). Relative to the config file.
    """

    url: str = DEFAULT_DATABASE_URL
    schema: str | None = None
    spill_path: str | None = None


@dataclass(frozen=True, kw_only=True)
class StateSettings:
    """The live state: Redis when ``redis_url`` is set, else in-process.

    Attributes:
        redis_url: ``redis://host:port/db``; ``None`` for the in-process state (one worker).
        key_prefix: prefix of every Redis key, so several deployments can share a server.
    """

    redis_url: str | None = None
    key_prefix: str = "hz:"


@dataclass(frozen=True, kw_only=True)
class TlsSettings:
    """TLS towards the broker; ``ca_file`` alone verifies the server, cert/key add client auth."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True, kw_only=True)
class MqttSettings:
    """The broker the ingest reads from.

    Attributes:
        enabled: run the MQTT ingest at all (off for an API-only worker).
        share_group: MQTT v5 shared-subscription group; ``None`` subscribes directly.
        tls: TLS settings; ``None`` for plain MQTT.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    share_group: str | None = None
    keepalive_s: int = 60
    tls: TlsSettings | None = None


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    """Where the API listens, and what the map page may load.

    Attributes:
        tile_sources: origins of the tile servers the map page may load images from (the
            Content-Security-Policy allows only these), separated by spaces; an intranet's own
            tile server is added here.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    tile_sources: str = "https://tile.openstreetmap.org https://*.is.autonavi.com"


@dataclass(frozen=True, kw_only=True)
class RetentionSettings:
    """How long the archive keeps things (DOMAIN: positions >= 6 months, handling >= 3 years)."""

    positions_days: float = 183.0
    alerts_days: float = 1096.0
    readings_days: float = 30.0
    interval_s: float = 3600.0


@dataclass(frozen=True, kw_only=True)
class CloudSettings:
    """Everything the cloud service is configured with."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    state: StateSettings = field(default_factory=StateSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    #: rule thresholds: ``[rules]`` for every class, ``[rules.classes.<class>]`` per class
    rules: RulesConfig = field(default_factory=RulesConfig)
    #: the cloud's checks of site readings (cloud/sites/config.py documents every key)
    sites: SitesConfig = field(default_factory=SitesConfig)
    #: how alerts reach people (cloud/notify/config.py documents every key)
    notify: NotifySettings = field(default_factory=NotifySettings)
    source: str | None = None


_SECTIONS: Final[dict[str, type[Any]]] = {
    "database": DatabaseSettings,
    "state": StateSettings,
    "mqtt": MqttSettings,
    "http": HttpSettings,
    "retention": RetentionSettings,
    "sites": SitesConfig,
    "notify": NotifySettings,
}
_NUMBER_CHECKS: Final[dict[str, tuple[float, float]]] = {
    "mqtt.port": (1, 65535),
    "http.port": (0, 65535),
    "mqtt.keepalive_s": (1, 65535),
    "retention.positions_days": (1, 36500),
    "retention.alerts_days": (1, 36500),
    "retention.readings_days": (1, 36500),
    "retention.interval_s": (1, 86400 * 7),
    "sites.timer_period_s": (0.1, 3600),
    "sites.points_ttl_s": (0, 86400),
    "sites.poll_s": (0.01, 86400),
    "sites.stale_factor": (1, 10_000),
    "sites.deadband_pct": (0, 100),
    "sites.delay_s": (0, 86400),
    "sites.rate_pct_per_min": (0, 10_000),
    "sites.rate_window_s": (1, 86400),
    "sites.rate_clear_ratio": (0, 1),
    **NOTIFY_NUMBER_CHECKS,
}


def _type_ok(value: Any, annotation: str) -> bool:
    if annotation.startswith("bool"):
        return isinstance(value, bool)
    if annotation.startswith("int"):
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation.startswith("float"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def _section(cls: type[Any], data: Any, prefix: str, file: str | None) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(file, prefix, "expected a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}"
        if key not in fields:
            raise ConfigError(file, dotted, f"unknown key (known: {', '.join(sorted(fields))})")
        if cls is MqttSettings and key == "tls":
            values[key] = _section(TlsSettings, value, dotted, file)
            continue
        annotation = str(fields[key].type)
        if not _type_ok(value, annotation):
            kind = annotation.split(" ")[0]
            raise ConfigError(file, dotted, f"expected {kind}, got {value!r}")
        if dotted in _NUMBER_CHECKS:
            low, high = _NUMBER_CHECKS[dotted]
            if not low <= value <= high:
                raise ConfigError(file, dotted, f"must lie in {low:g}..{high:g}, got {value!r}")
        # An empty string means "not set" for optional strings (easier to template).
        values[key] = None if value == "" and "None" in annotation else value
    return cls(**values)


def _resolve_sqlite(url: str, base: Path | None) -> str:
    prefix = "sqlite+aiosqlite:///"
    if base is None or not url.startswith(prefix):
        return url
    path = url[len(prefix) :]
    if not path or path.startswith("/") or path == ":memory:":
        return url
    return prefix + str((base / path).resolve())


def settings_from_mapping(
    data: dict[str, Any], *, file: str | Path | None = None, base_dir: Path | None = None
) -> CloudSettings:
    """Validate an already parsed TOML document.

    Args:
        data: the parsed document.
        file: its name, for error messages.
        base_dir: folder relative SQLite paths are resolved against.
    """
    name = str(file) if file is not None else None
    sections: dict[str, Any] = {}
    for key, value in data.items():
        if key == "rules":
            try:
                sections[key] = RulesConfig.from_mapping(value if isinstance(value, dict) else None)
            except RulesConfigError as exc:
                field_name, _, detail = str(exc).partition(": ")
                raise ConfigError(name, field_name, detail) from exc
            if not isinstance(value, dict):
                raise ConfigError(name, "rules", "expected a table")
            continue
        if key not in _SECTIONS:
            known = ", ".join([*_SECTIONS, "rules"])
            raise ConfigError(name, key, f"unknown section (known: {known})")
        sections[key] = _section(_SECTIONS[key], value, key, name)
    settings = CloudSettings(**sections, source=name)
    url = settings.database.url
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError(
            name, "database.url", "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://..."
        )
    redis_url = settings.state.redis_url
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(name, "state.redis_url", "use redis://host:port/db or rediss://...")
    share_group = settings.mqtt.share_group
    if share_group is not None and any(c in share_group for c in "/+#"):
        # The group name ends at the first '/': the rest would become the topic filter.
        raise ConfigError(name, "mqtt.share_group", "a group name without '/', '+' or '#'")
    try:
        checked_tile_sources(settings.http.tile_sources.split())
    except ValueError as exc:
        raise ConfigError(name, "http.tile_sources", str(exc)) from exc
    client_id = settings.mqtt.client_id
    if client_id is not None and _could_be_a_gateway(client_id):
        # A gateway's client id is its user name (deploy/mosquitto): a cloud worker's must be
        # one no gateway can have, or that gateway could knock the worker off the broker.
        raise ConfigError(
            name, "mqtt.client_id", f"{client_id!r} could be a gateway's id; use one with ':' "
            "such as 'hazwatch-cloud:1'"
        )  # fmt: skip
    tls = settings.mqtt.tls
    if tls is not None and (tls.cert_file is None) != (tls.key_file is None):
        raise ConfigError(name, "mqtt.tls", "cert_file and key_file go together")
    spill = settings.database.spill_path
    if spill is not None and base_dir is not None:
        spill = str((base_dir / spill).resolve())
    database = dataclasses.replace(
        settings.database, url=_resolve_sqlite(url, base_dir), spill_path=spill
    )
    return dataclasses.replace(settings, database=database)


def _could_be_a_gateway(client_id: str) -> bool:
    try:
        wire.check_gateway_id(client_id)
    except wire.WireError:
        return False
    return True


def load_settings(path: str | Path) -> CloudSettings:
    """Read and validate a cloud TOML file.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown key, wrong type or bad value.
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(file, None, f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, None, f"not valid TOML: {exc}") from exc
    return settings_from_mapping(data, file=file, base_dir=file.parent)
