"""The agent's TOML configuration -> typed, validated settings.

Every key is declared once here (see ``deploy/edge/edge.sample.toml`` for a commented example).
Every problem is an :class:`edge.errors.ConfigError` naming the file, the dotted key and why;
unknown keys are errors too (a typo must not silently fall back to a default). Relative paths are
relative to the config file's folder.

Source sections (``[modbus]``, ``[gnss]``, ``[ais]``) are handed as they are to
``edge.sources.<name>.build_sources``, imported only when the section is present. A
``[plugins.<name>]`` table with ``module = "pkg.mod"`` adds a source from any module with the
same ``build_sources(table, *, file, state_dir)`` function (field tools, tests).
"""

from __future__ import annotations

import importlib
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import wire
from edge.buffer import Durability
from edge.errors import ConfigError
from edge.forward import DeleteOn, MqttSettings
from edge.pipeline import Source

__all__ = ["SOURCE_SECTIONS", "AgentSettings", "BufferSettings", "build_sources", "load_config"]

T = TypeVar("T")
#: Top-level sections handled by a built-in source module ``edge.sources.<name>``.
SOURCE_SECTIONS: Final = ("modbus", "gnss", "ais")
_SECTIONS: Final = ("gateway", "mqtt", "buffer", "health", "plugins", *SOURCE_SECTIONS)
_TYPE_NAMES: Final = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclass(frozen=True, slots=True, kw_only=True)
class BufferSettings:
    """``[buffer]``: where and how the outbox keeps items."""

    path: Path
    quota_bytes: int = 1024 * 1024 * 1024
    max_age_s: float = 30 * 86400.0
    durability: Durability = "normal"
    commit_interval_s: float = 0.05
    #: routine items held in memory while the file cannot be opened (alarms are all held)
    memory_items: int = 100_000
    #: largest reserve file kept for a full disk (an eighth of a smaller file system)
    reserve_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSettings:
    """The whole agent configuration."""

    file: Path
    gateway_id: str
    state_dir: Path
    mqtt: MqttSettings
    buffer: BufferSettings
    health_interval_s: float = 60.0
    #: section name -> its raw table, for the built-in sources
    sources: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    #: plugin name -> (module, its raw table)
    plugins: dict[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)


class _Section:
    """Typed access to one TOML table; remembers which keys were read."""

    def __init__(self, file: Path, name: str, table: Any) -> None:
        if not isinstance(table, dict):
            raise ConfigError(file, name, "must be a table")
        self.file, self.name, self.table = file, name, table
        self._seen: set[str] = set()

    def key(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.file, self.key(key), reason)

    def get(self, key: str, kind: type[T], default: T) -> T:
        self._seen.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.error(key, f"must be {_TYPE_NAMES.get(kind, kind.__name__)}")
        return value

    def positive(self, key: str, kind: type[T], default: T) -> T:
        value = self.get(key, kind, default)
        if isinstance(value, int | float) and value <= 0:
            raise self.error(key, "must be greater than 0")
        return value

    def path(self, key: str, default: Path | None) -> Path | None:
        raw = self.get(key, str, "")
        if not raw:
            return default
        path = Path(raw).expanduser()
        return path if path.is_absolute() else (self.file.parent / path)

    def sub(self, key: str) -> _Section | None:
        self._seen.add(key)
        return _Section(self.file, self.key(key), self.table[key]) if key in self.table else None

    def done(self) -> None:
        for key in self.table:
            if key not in self._seen:
                raise self.error(key, "unknown key")


def _read(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(file, None, f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, None, f"not valid TOML: {exc}") from exc


def _gateway_id(section: _Section) -> str:
    if "id" not in section.table:
        raise section.error("id", "is required")
    gateway_id = section.get("id", str, "")
    try:
        return wire.check_gateway_id(gateway_id)
    except wire.WireError as exc:
        raise section.error("id", "1-64 letters, digits, '_', '.' or '-'") from exc


def _password(section: _Section) -> str | None:
    password = section.get("password", str, "") or None
    password_file = section.path("password_file", None)
    if password is not None and password_file is not None:
        raise section.error("password_file", "give either password or password_file, not both")
    if password_file is None:
        return password
    try:
        return password_file.read_text().strip()
    except OSError as exc:
        reason = f"cannot read {password_file}: {exc.strerror or exc}"
        raise section.error("password_file", reason) from exc


def _tls(section: _Section) -> dict[str, Any]:
    tls = section.sub("tls")
    if tls is None:
        return {}
    found: dict[str, Any] = {"tls": tls.get("enabled", bool, True)}
    for key in ("ca", "cert", "key"):
        path = tls.path(key, None)
        if path is not None and not path.is_file():
            raise tls.error(key, f"no such file: {path}")
        found[f"tls_{key}"] = path
    if (found["tls_cert"] is None) != (found["tls_key"] is None):
        raise tls.error("cert", "a client certificate needs both cert and key")
    if found["tls"]:
        _load_tls_files(tls, found)
    tls.done()
    return found


def _no_passphrase() -> bytes:
    # The MQTT client cannot give one either; never let OpenSSL prompt on a terminal.
    raise ValueError("the client key is encrypted")


def _load_tls_files(tls: _Section, found: dict[str, Any]) -> None:
    """Load the TLS files as the MQTT client will.

    A file it cannot use is a config error at start, not a connection that fails every few
    seconds for as long as the agent runs.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca, cert, key = found["tls_ca"], found["tls_cert"], found["tls_key"]
    if ca is not None:
        try:
            context.load_verify_locations(cafile=str(ca))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise tls.error("ca", f"cannot load {ca} as CA certificates: {exc}") from exc
    if cert is not None:
        try:
            context.load_cert_chain(str(cert), str(key), password=_no_passphrase)
        except (ssl.SSLError, OSError, ValueError) as exc:
            reason = f"cannot load {cert} with the key {key}: {exc}"
            raise tls.error("cert", reason) from exc


def _protocol(section: _Section) -> str:
    protocol = section.get("protocol", str, MqttSettings().protocol)
    if protocol not in ("5", "3.1.1"):
        raise section.error("protocol", "must be '5' or '3.1.1'")
    return protocol


def _delete_on(section: _Section) -> DeleteOn:
    delete_on = section.get("delete_on", str, MqttSettings().delete_on)
    if delete_on in ("cloud", "broker", "auto"):
        return cast(DeleteOn, delete_on)
    raise section.error("delete_on", "must be 'cloud', 'broker' or 'auto'")


def _mqtt(section: _Section, gateway_id: str) -> MqttSettings:
    defaults = MqttSettings()
    port = section.get("port", int, defaults.port)
    if not 0 < port < 65536:
        raise section.error("port", "must be 1-65535")
    settings = MqttSettings(
        host=section.get("host", str, defaults.host),
        port=port,
        username=section.get("username", str, "") or None,
        password=_password(section),
        keepalive_s=section.positive("keepalive_s", int, defaults.keepalive_s),
        protocol=_protocol(section),
        # The broker makes a gateway's client id its user name anyway (deploy/mosquitto); EMQX
        # with client-id authentication refuses any other.
        client_id=section.get("client_id", str, gateway_id),
        batch_items=section.positive("batch_items", int, defaults.batch_items),
        batch_bytes=section.positive("batch_bytes", int, defaults.batch_bytes),
        window=section.positive("window", int, defaults.window),
        publish_timeout_s=section.positive("publish_timeout_s", float, defaults.publish_timeout_s),
        reconnect_min_s=section.positive("reconnect_min_s", float, defaults.reconnect_min_s),
        reconnect_max_s=section.positive("reconnect_max_s", float, defaults.reconnect_max_s),
        delete_on=_delete_on(section),
        ack_timeout_s=section.positive("ack_timeout_s", float, defaults.ack_timeout_s),
        max_unacked=section.positive("max_unacked", int, defaults.max_unacked),
        ack_fallback_s=section.positive("ack_fallback_s", float, defaults.ack_fallback_s),
        **_tls(section),
    )
    if settings.password is not None and settings.username is None:
        # the MQTT client sends a password only with a username: it would be silently dropped
        raise section.error("username", "a password needs a username")
    if settings.batch_bytes > wire.MAX_PAYLOAD_BYTES // 2:
        raise section.error("batch_bytes", f"must be at most {wire.MAX_PAYLOAD_BYTES // 2}")
    section.done()
    return settings


def _buffer(section: _Section, state_dir: Path | None) -> BufferSettings:
    default_path = (state_dir or section.file.parent) / "buffer.db"
    durability = section.get("durability", str, "normal")
    if durability not in ("normal", "full"):
        raise section.error("durability", "must be 'normal' or 'full'")
    path = section.path("path", default_path)
    assert path is not None
    settings = BufferSettings(
        path=path,
        quota_bytes=int(section.positive("quota_mb", float, 1024.0) * 1024 * 1024),
        max_age_s=section.positive("max_age_days", float, 30.0) * 86400,
        durability="full" if durability == "full" else "normal",
        commit_interval_s=section.positive("commit_interval_s", float, 0.05),
        memory_items=section.positive("memory_items", int, 100_000),
        reserve_bytes=int(section.positive("reserve_mb", float, 8.0) * 1024 * 1024),
    )
    section.done()
    return settings


def _plugins(section: _Section) -> dict[str, tuple[str, Mapping[str, Any]]]:
    plugins: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for name in list(section.table):
        plugin = section.sub(name)
        assert plugin is not None
        module = plugin.get("module", str, "")
        if not module:
            raise plugin.error("module", "is required (a module with build_sources)")
        plugins[name] = (module, {k: v for k, v in plugin.table.items() if k != "module"})
    return plugins


def load_config(file: Path) -> AgentSettings:
    """Read and check the agent configuration (sources are built by :func:`build_sources`).

    Raises:
        ConfigError: naming the file, the key and the reason.
    """
    root = _Section(file, "", _read(file))
    for name in root.table:
        if name not in _SECTIONS:
            raise ConfigError(file, name, f"unknown section (known: {', '.join(_SECTIONS)})")
    gateway = root.sub("gateway")
    if gateway is None:
        raise ConfigError(file, "gateway", "section is required")
    gateway_id = _gateway_id(gateway)
    state_dir = gateway.path("state_dir", None)
    gateway.done()
    sections = {n: _Section(file, n, root.table.get(n, {})) for n in ("mqtt", "buffer", "health")}
    buffer = _buffer(sections["buffer"], state_dir)
    health = sections["health"]
    interval_s = health.positive("interval_s", float, 60.0)
    health.done()
    return AgentSettings(
        file=file,
        gateway_id=gateway_id,
        state_dir=state_dir or buffer.path.parent,
        mqtt=_mqtt(sections["mqtt"], gateway_id),
        buffer=buffer,
        health_interval_s=interval_s,
        sources={n: root.table[n] for n in SOURCE_SECTIONS if n in root.table},
        plugins=_plugins(_Section(file, "plugins", root.table.get("plugins", {}))),
    )


def _import_builder(module_name: str, file: Path, key: str) -> Any:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(file, key, f"cannot import {module_name}: {exc}") from exc
    builder = getattr(module, "build_sources", None)
    if not callable(builder):
        raise ConfigError(file, key, f"{module_name} has no build_sources function")
    return builder


def build_sources(settings: AgentSettings) -> list[Source]:
    """Build every configured source (importing each source module only when it is used).

    Raises:
        ConfigError: a source section is wrong, or its module is missing from this build.
    """
    sources: list[Source] = []
    wanted = [(n, f"edge.sources.{n}", t) for n, t in settings.sources.items()]
    wanted += [(f"plugins.{n}", m, t) for n, (m, t) in settings.plugins.items()]
    for key, module_name, table in wanted:
        builder = _import_builder(module_name, settings.file, key)
        built = builder(table, file=settings.file, state_dir=settings.state_dir)
        sources.extend(built)
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(settings.file, None, f"two sources share a name: {duplicates}")
    return sources
