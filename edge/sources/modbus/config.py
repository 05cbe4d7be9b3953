"""The ``[modbus]`` section of the agent TOML, validated into typed settings.

See :mod:`edge.sources.modbus` for the documented format. Every problem raises
:class:`edge.errors.ConfigError` naming the file and the dotted key
(``modbus.devices[2].points.LT01.H``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import wire
from edge.alarms import LEVELS, Level, Limits
from edge.errors import ConfigError
from edge.profiles import Point, Profile, find_profile, load_profile, parse_limits

__all__ = ["BusConfig", "DeviceConfig", "ModbusConfig", "SafetyAction", "parse_config"]

_TOP_KEYS = frozenset(
    {
        "site", "name", "poll_interval_s", "timeout_s", "retries", "retry_backoff_s",
        "offline_after", "offline_backoff_max_s", "max_gap", "max_registers", "buses",
        "devices", "safety",
    }
)  # fmt: skip
_BUS_KEYS = frozenset({"port", "baud", "parity", "stop_bits", "byte_size", "inter_frame_delay_s"})
_DEVICE_KEYS = frozenset(
    {"name", "profile", "host", "port", "bus", "unit", "poll_interval_s", "points", "max_gap"}
)
_POINT_KEYS = frozenset({"tag", "enabled", *LEVELS, "deadband", "delay_s"})
_SAFETY_KEYS = frozenset({"name", "point", "levels", "device", "output", "on", "off"})


@dataclass(frozen=True, slots=True)
class BusConfig:
    """An RS-485 bus (RTU) or a TCP endpoint; one request at a time on each."""

    name: str
    kind: Literal["tcp", "rtu"]
    host: str = ""
    port: int = 502
    serial: str = ""
    baud: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stop_bits: int = 1
    byte_size: int = 8
    inter_frame_delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One polled device: its profile, bus, unit id, tags and limits."""

    name: str
    profile: Profile
    bus: str
    unit: int
    poll_interval_s: float
    max_gap: int
    #: profile point -> tag (disabled points are absent)
    tags: Mapping[str, str]
    #: profile point -> effective alarm limits
    limits: Mapping[str, Limits]
    #: read every point of the profile, strings and disabled ones too (field tools)
    all_points: bool = False


@dataclass(frozen=True, slots=True)
class SafetyAction:
    """Write ``on`` to ``device``/``output`` while ``point`` is in one of ``levels``."""

    name: str
    point: str
    levels: frozenset[Level]
    device: str
    output: str
    on: float
    off: float


@dataclass(frozen=True, slots=True)
class ModbusConfig:
    """The whole validated ``[modbus]`` section."""

    site: str
    name: str = "modbus"
    timeout_s: float = 1.0
    retries: int = 1
    retry_backoff_s: float = 0.05
    offline_after: int = 3
    offline_backoff_max_s: float = 30.0
    max_registers: int = 125
    poll_interval_s: float = 1.0
    max_gap: int = 8
    buses: Mapping[str, BusConfig] = field(default_factory=dict)
    devices: tuple[DeviceConfig, ...] = ()
    safety: tuple[SafetyAction, ...] = ()


class _Reader:
    def __init__(self, file: Path) -> None:
        self.file = file

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.file, key, reason)

    def known(self, data: Mapping[str, Any], key: str, allowed: frozenset[str]) -> None:
        for name in data:
            if name not in allowed:
                raise self.fail(f"{key}.{name}", "unknown key")

    def table(self, data: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.fail(key, "must be a table")
        return data

    def text(self, data: Mapping[str, Any], key: str, name: str, default: str | None = None) -> str:
        value = data.get(name, default)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{key}.{name}", "must be a non-empty string")
        return value

    def wire_id(
        self, data: Mapping[str, Any], key: str, name: str, default: str | None = None
    ) -> str:
        """A site id or tag: what the wire contract accepts in a reading (else every reading
        of it would be refused when it is buffered)."""
        value = self.text(data, key, name, default)
        probe = wire.Reading(seq=0, ts=0, site=value, point=value, value=None)
        try:
            wire.encode_item(probe)
        except wire.WireError as exc:
            raise self.fail(f"{key}.{name}", f"not a valid wire id: {exc}") from exc
        return value

    def integer(
        self, data: Mapping[str, Any], key: str, name: str, default: int, lo: int, hi: int
    ) -> int:
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(f"{key}.{name}", f"must be an integer in {lo}..{hi}, got {value!r}")
        return value

    def number(
        self, data: Mapping[str, Any], key: str, name: str, default: float, lo: float
    ) -> float:
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{key}.{name}", f"must be a number, got {value!r}")
        if not math.isfinite(value) or value < lo:
            raise self.fail(f"{key}.{name}", f"must be a finite number >= {lo}, got {value!r}")
        return float(value)


def _bus(r: _Reader, name: str, data: Any, key: str) -> BusConfig:
    data = r.table(data, key)
    r.known(data, key, _BUS_KEYS)
    parity = data.get("parity", "N")
    if parity not in ("N", "E", "O"):
        raise r.fail(f"{key}.parity", f"must be N, E or O, got {parity!r}")
    return BusConfig(
        name=name,
        kind="rtu",
        serial=r.text(data, key, "port"),
        baud=r.integer(data, key, "baud", 9600, 300, 921_600),
        parity=parity,
        stop_bits=r.integer(data, key, "stop_bits", 1, 1, 2),
        byte_size=r.integer(data, key, "byte_size", 8, 7, 8),
        inter_frame_delay_s=r.number(data, key, "inter_frame_delay_s", 0.005, 0.0),
    )


def _points(
    r: _Reader, dev_name: str, profile: Profile, data: Any, key: str
) -> tuple[dict[str, str], dict[str, Limits]]:
    overrides = r.table(data, key)
    for unknown in overrides:
        if unknown not in profile.points:
            raise r.fail(f"{key}.{unknown}", f"profile {profile.name} has no point {unknown!r}")
    tags: dict[str, str] = {}
    limits: dict[str, Limits] = {}
    for name, point in profile.points.items():
        pkey = f"{key}.{name}"
        over = r.table(overrides.get(name, {}), pkey)
        r.known(over, pkey, _POINT_KEYS)
        if over.get("enabled", True) is False or point.register.type == "string":
            continue
        tags[name] = r.wire_id(over, pkey, "tag", f"{dev_name}.{name}")
        limits[name] = _limits(r, point, over, pkey)
    return tags, limits


def _limits(r: _Reader, point: Point, over: Mapping[str, Any], key: str) -> Limits:
    table = {k: v for k, v in over.items() if k not in ("tag", "enabled")}
    try:
        return parse_limits(str(r.file), table, f"{key}.", point.limits)
    except ConfigError as exc:
        raise r.fail(exc.key or key, exc.reason) from exc


def _device(
    r: _Reader, i: int, data: Any, top: ModbusConfig, buses: dict[str, BusConfig]
) -> DeviceConfig:
    key = f"modbus.devices[{i}]"
    data = r.table(data, key)
    r.known(data, key, _DEVICE_KEYS)
    name = r.text(data, key, "name")
    ref = r.text(data, key, "profile")
    try:
        profile = load_profile(find_profile(ref, base_dir=r.file.parent))
    except ConfigError as exc:
        raise r.fail(f"{key}.profile", str(exc)) from exc
    if "bus" in data:
        if "host" in data:
            raise r.fail(f"{key}.host", "a device is on a bus or at a host, not both")
        bus = r.text(data, key, "bus")
        if bus not in buses or buses[bus].kind != "rtu":
            raise r.fail(f"{key}.bus", f"no bus named {bus!r} in [modbus.buses]")
    else:
        host = r.text(data, key, "host")
        port = r.integer(data, key, "port", 502, 1, 65535)
        bus = f"tcp://{host}:{port}"
        buses.setdefault(bus, BusConfig(name=bus, kind="tcp", host=host, port=port))
    tags, limits = _points(r, name, profile, data.get("points", {}), f"{key}.points")
    return DeviceConfig(
        name=name,
        profile=profile,
        bus=bus,
        unit=r.integer(data, key, "unit", 1, 0, 247),
        poll_interval_s=r.number(data, key, "poll_interval_s", top.poll_interval_s, 0.01),
        max_gap=r.integer(data, key, "max_gap", top.max_gap, -1, 125),
        tags=tags,
        limits=limits,
    )


def _safety(r: _Reader, i: int, data: Any, devices: Mapping[str, DeviceConfig]) -> SafetyAction:
    key = f"modbus.safety[{i}]"
    data = r.table(data, key)
    r.known(data, key, _SAFETY_KEYS)
    point = r.text(data, key, "point")
    if not any(point in d.tags.values() for d in devices.values()):
        raise r.fail(f"{key}.point", f"no device point has the tag {point!r}")
    levels = data.get("levels", ["HH"])
    if not isinstance(levels, list) or not levels or any(lv not in LEVELS for lv in levels):
        raise r.fail(f"{key}.levels", f"must be a list of {', '.join(LEVELS)}")
    device = r.text(data, key, "device")
    if device not in devices:
        raise r.fail(f"{key}.device", f"no device named {device!r}")
    output = r.text(data, key, "output")
    target = devices[device].profile.points.get(output)
    if target is None or target.register.kind not in ("coil", "holding"):
        raise r.fail(f"{key}.output", f"{device} has no writable coil or holding point {output!r}")
    return SafetyAction(
        name=r.text(data, key, "name", f"{point}->{device}.{output}"),
        point=point,
        levels=frozenset(levels),
        device=device,
        output=output,
        on=r.number(data, key, "on", 1.0, -math.inf),
        off=r.number(data, key, "off", 0.0, -math.inf),
    )


def parse_config(table: Mapping[str, Any], *, file: Path) -> ModbusConfig:
    """Validate the ``[modbus]`` section.

    Raises:
        ConfigError: naming ``file`` and the dotted key at fault.
    """
    r = _Reader(file)
    table = r.table(table, "modbus")
    r.known(table, "modbus", _TOP_KEYS)
    top = ModbusConfig(
        site=r.wire_id(table, "modbus", "site"),
        name=r.text(table, "modbus", "name", "modbus"),
        timeout_s=r.number(table, "modbus", "timeout_s", 1.0, 0.001),
        retries=r.integer(table, "modbus", "retries", 1, 0, 10),
        retry_backoff_s=r.number(table, "modbus", "retry_backoff_s", 0.05, 0.0),
        offline_after=r.integer(table, "modbus", "offline_after", 3, 1, 1000),
        offline_backoff_max_s=r.number(table, "modbus", "offline_backoff_max_s", 30.0, 0.0),
        max_registers=r.integer(table, "modbus", "max_registers", 125, 1, 125),
        poll_interval_s=r.number(table, "modbus", "poll_interval_s", 1.0, 0.01),
        max_gap=r.integer(table, "modbus", "max_gap", 8, -1, 125),
    )
    buses = {
        name: _bus(r, name, raw, f"modbus.buses.{name}")
        for name, raw in r.table(table.get("buses", {}), "modbus.buses").items()
    }
    raw_devices = table.get("devices", [])
    if not isinstance(raw_devices, list) or not raw_devices:
        raise r.fail("modbus.devices", "must be a non-empty array of tables ([[modbus.devices]])")
    devices: dict[str, DeviceConfig] = {}
    tags: dict[str, str] = {}
    for i, raw in enumerate(raw_devices):
        dev = _device(r, i, raw, top, buses)
        if dev.name in devices:
            raise r.fail(f"modbus.devices[{i}].name", f"device {dev.name!r} is defined twice")
        for point, tag in dev.tags.items():
            if tag in tags:
                raise r.fail(
                    f"modbus.devices[{i}].points.{point}.tag", f"tag {tag!r} is used twice"
                )
            tags[tag] = dev.name
        devices[dev.name] = dev
    raw_safety = table.get("safety", [])
    if not isinstance(raw_safety, list):
        raise r.fail("modbus.safety", "must be an array of tables ([[modbus.safety]])")
    safety = tuple(_safety(r, i, raw, devices) for i, raw in enumerate(raw_safety))
    return ModbusConfig(
        **{
            f: getattr(top, f)
            for f in ModbusConfig.__slots__
            if f not in ("buses", "devices", "safety")
        },
        buses=buses,
        devices=tuple(devices.values()),
        safety=safety,
    )
