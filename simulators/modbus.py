"""Modbus devices simulated from firmware profiles, served by a real pymodbus server.

A :class:`SimDevice` holds one device's register tables, filled from the profile's points.
Each point can follow a script (:class:`Constant`, :class:`Ramp`, :class:`Noise`,
:class:`Step`), evaluated at the moment a request arrives; status registers take fault codes;
the whole device can answer every read with a Modbus exception code or stop answering.
:class:`ModbusSimulator` serves any number of devices (by unit id) over TCP or RTU on a serial
port (a pseudo-terminal in tests) and counts requests.

From Python (tests)::

    dev = SimDevice(load_profile(find_profile("radar_level_v3")), unit=1)
    dev.script("LEVEL", Ramp(start=1.0, end=19.0, duration_s=60))
    async with ModbusSimulator([dev]).tcp(port) as sim:
        ...
        dev.silent = True          # device loss
        dev.set_status("DIAG", 2)  # sensor fault

From a TOML spec (``hazwatch sim modbus --script spec.toml``), see :func:`apply_spec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData
from pymodbus.simulator import SimDevice as PymodbusSimDevice

from edge.decode.registers import encode_point, encode_value
from edge.profiles import Profile, RegisterKind

__all__ = [
    "Constant",
    "ModbusSimulator",
    "Noise",
    "Ramp",
    "Script",
    "SimDevice",
    "Step",
    "apply_spec",
    "script_from_spec",
]

log = logging.getLogger(__name__)

#: function code -> register table it addresses
_TABLES: dict[int, RegisterKind] = {
    1: "coil",
    5: "coil",
    15: "coil",
    2: "discrete",
    3: "holding",
    6: "holding",
    16: "holding",
    23: "holding",
    4: "input",
}


class Script(Protocol):
    """A value as a function of seconds since the simulator started."""

    def at(self, t_s: float) -> float:
        """The value at ``t_s``."""


@dataclass(frozen=True, slots=True)
class Constant:
    """Always ``value``."""

    value: float

    def at(self, t_s: float) -> float:
        return self.value


@dataclass(frozen=True, slots=True)
class Ramp:
    """From ``start`` to ``end`` over ``duration_s``, then holds ``end`` (or repeats)."""

    start: float
    end: float
    duration_s: float
    repeat: bool = False

    def at(self, t_s: float) -> float:
        if self.duration_s <= 0:
            return self.end
        frac = (t_s % self.duration_s) / self.duration_s if self.repeat else t_s / self.duration_s
        return self.start + (self.end - self.start) * min(max(frac, 0.0), 1.0)


@dataclass(slots=True)
class Noise:
    """``mean`` plus uniform noise of +-``amplitude`` (seeded: runs repeat)."""

    mean: float
    amplitude: float
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def at(self, t_s: float) -> float:
        return self.mean + self._rng.uniform(-self.amplitude, self.amplitude)


@dataclass(frozen=True, slots=True)
class Step:
    """``before`` until ``at_s``, then ``after``."""

    before: float
    after: float
    at_s: float

    def at(self, t_s: float) -> float:
        return self.after if t_s >= self.at_s else self.before


class SimDevice:
    """One simulated device (unit id) serving a profile's register map.

    Args:
        profile: The register map served.
        unit: The unit id the device answers to.
        answer_gaps: Whether reads may span addresses no point uses (exception 2 if not).

    Attributes:
        silent: When true the device does not answer at all (device loss).
        exception: A Modbus exception code every read answers with, or ``None``.
        requests: Requests received, by table (``holding``, ``coil``, ...).
        writes: ``(table, address, value)`` of every write, in order.
    """

    def __init__(self, profile: Profile, *, unit: int = 1, answer_gaps: bool = True) -> None:
        self.profile = profile
        self.unit = unit
        self.silent = False
        self.exception: int | None = None
        self.requests: dict[str, int] = {}
        self.writes: list[tuple[str, int, int]] = []
        self.tables: dict[RegisterKind, dict[int, int]] = {}
        self._scripts: dict[str, Script] = {}
        for point in profile.points.values():
            self._poke(point.register.kind, point.register.address, [0] * point.register.count)
        for status in profile.statuses.values():
            self._poke(status.register.kind, status.register.address, [0] * status.register.count)
        for table in self.tables.values() if answer_gaps else ():  # most devices do
            for address in range(min(table), max(table) + 1):
                table.setdefault(address, 0)

    @property
    def request_count(self) -> int:
        """Every request answered or not, all tables together."""
        return sum(self.requests.values())

    def _poke(self, kind: RegisterKind, address: int, words: Sequence[int]) -> None:
        table = self.tables.setdefault(kind, {})
        for offset, word in enumerate(words):
            table[address + offset] = int(word)

    def set(self, point: str, value: float | str | bool) -> None:
        """Set a point to a constant engineering value (replaces its script)."""
        self._scripts.pop(point, None)
        target = self.profile.points[point]
        self._poke(target.register.kind, target.register.address, encode_point(target, value))

    def set_raw(self, point: str, words: Sequence[int]) -> None:
        """Put raw words (or bits) into a point's registers (a value beyond its range, NaN...)."""
        self._scripts.pop(point, None)
        reg = self.profile.points[point].register
        self._poke(reg.kind, reg.address, words)

    def script(self, point: str, script: Script) -> None:
        """Let a point follow ``script`` from now on."""
        if point not in self.profile.points:
            raise KeyError(f"{self.profile.name} has no point {point!r}")
        self._scripts[point] = script

    def set_status(self, status: str, code: int) -> None:
        """Write a fault/status code into a status register (0 = healthy in shipped profiles)."""
        reg = self.profile.statuses[status].register
        self._poke(reg.kind, reg.address, encode_value(reg, code))

    def value(self, kind: RegisterKind, address: int) -> int | None:
        """Current word or bit at an address (to check what a safety output wrote)."""
        return self.tables.get(kind, {}).get(address)

    def refresh(self, t_s: float) -> None:
        """Evaluate every script at ``t_s`` into the register tables."""
        for name, script in self._scripts.items():
            point = self.profile.points[name]
            value = script.at(t_s)
            if math.isfinite(value):
                self._poke(point.register.kind, point.register.address, encode_point(point, value))

    def read(self, kind: RegisterKind, address: int, count: int) -> list[int] | ExcCodes:
        """Answer a read of ``count`` values from ``address``."""
        table = self.tables.get(kind, {})
        if self.exception is not None:
            return ExcCodes(self.exception)
        if any(address + i not in table for i in range(count)):
            return ExcCodes.ILLEGAL_ADDRESS
        return [table[address + i] for i in range(count)]

    def write(self, kind: RegisterKind, address: int, values: Sequence[int]) -> ExcCodes | None:
        """Apply a write of ``values`` from ``address``."""
        if self.exception is not None:
            return ExcCodes(self.exception)
        table = self.tables.get(kind, {})
        if kind not in ("coil", "holding") or any(
            address + i not in table for i in range(len(values))
        ):
            return ExcCodes.ILLEGAL_ADDRESS
        for offset, word in enumerate(values):
            table[address + offset] = int(word)
            self.writes.append((kind, address + offset, int(word)))
        return None


class _Context:
    """The datastore the pymodbus server calls (duck-typed like its ``SimCore``)."""

    def __init__(self, devices: Mapping[int, SimDevice], clock: Callable[[], float]) -> None:
        self.devices = devices
        self.clock = clock
        self.started = clock()

    def _device(self, device_id: int, func_code: int) -> tuple[SimDevice, RegisterKind]:
        device = self.devices.get(device_id)
        if device is None or device.silent:
            # With ignore_missing_devices the server then sends nothing: a dead device.
            raise NoSuchIdException(f"unit {device_id} does not answer")
        kind = _TABLES.get(func_code)
        device.requests[kind or "other"] = device.requests.get(kind or "other", 0) + 1
        if kind is None:
            raise NoSuchIdException(f"function {func_code} not simulated")
        return device, kind

    async def async_getValues(  # noqa: N802 - the name pymodbus calls
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        device, kind = self._device(device_id, func_code)
        if func_code in (5, 6, 15, 16, 23):  # the read-back after a write: not a new request
            device.requests[kind] -= 1
        device.refresh(self.clock() - self.started)
        words = device.read(kind, address, count)
        if isinstance(words, ExcCodes) or kind not in ("coil", "discrete"):
            return words
        return [bool(w) for w in words]

    async def async_setValues(  # noqa: N802
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        device, kind = self._device(device_id, func_code)
        return device.write(kind, address, [int(v) for v in values])

    def device_ids(self) -> list[int]:
        return list(self.devices)


class ModbusSimulator:
    """Serves :class:`SimDevice` objects by unit id over Modbus TCP or RTU."""

    def __init__(
        self, devices: Sequence[SimDevice], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        units = [d.unit for d in devices]
        if len(set(units)) != len(units):
            raise ValueError(f"unit ids must be unique, got {units}")
        self.devices = {d.unit: d for d in devices}
        self._context = _Context(self.devices, clock)

    def _install(self, server: ModbusTcpServer | ModbusSerialServer) -> None:
        # pymodbus 3.16 builds its datastore from SimDevice blocks; ours evaluates scripts at
        # each request, counts requests and can go silent, so it replaces that datastore. The
        # server only calls async_getValues / async_setValues / device_ids on it.
        server.context = self._context  # type: ignore[assignment]

    @staticmethod
    def _placeholder() -> PymodbusSimDevice:
        return PymodbusSimDevice(id=0, simdata=[SimData(0, datatype=DataType.REGISTERS)])

    @contextlib.asynccontextmanager
    async def tcp(self, port: int, *, host: str = "127.0.0.1") -> AsyncIterator[ModbusSimulator]:
        """Serve Modbus TCP on ``host:port`` while the context is open."""
        server = ModbusTcpServer(
            self._placeholder(), address=(host, port), ignore_missing_devices=True
        )
        self._install(server)
        async with self._serving(server):
            yield self

    @contextlib.asynccontextmanager
    async def rtu(
        self, port: str, *, baud: int = 9600, parity: str = "N", stop_bits: int = 1
    ) -> AsyncIterator[ModbusSimulator]:
        """Serve Modbus RTU on serial device ``port`` while the context is open."""
        server = ModbusSerialServer(
            self._placeholder(),
            framer=FramerType.RTU,
            port=port,
            baudrate=baud,
            parity=parity,
            stopbits=stop_bits,
            ignore_missing_devices=True,
        )
        self._install(server)
        async with self._serving(server):
            yield self

    @contextlib.asynccontextmanager
    async def _serving(self, server: ModbusTcpServer | ModbusSerialServer) -> AsyncIterator[None]:
        await server.serve_forever(background=True)
        try:
            yield
        finally:
            await server.shutdown()  # type: ignore[no-untyped-call]
            await asyncio.sleep(0)


def script_from_spec(spec: Any, *, key: str) -> Script:
    """A script from its TOML form: a number, or a table with ``kind`` and its parameters.

    Raises:
        ValueError: naming ``key`` when the spec is unusable.
    """
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        return Constant(float(spec))
    if not isinstance(spec, Mapping):
        raise ValueError(f"{key}: a number or a table with kind = constant|ramp|noise|step")
    params = {k: v for k, v in spec.items() if k != "kind"}
    kinds: dict[str, type[Any]] = {
        "constant": Constant,
        "ramp": Ramp,
        "noise": Noise,
        "step": Step,
    }
    cls = kinds.get(str(spec.get("kind")))
    if cls is None:
        raise ValueError(f"{key}.kind: must be one of {', '.join(kinds)}")
    try:
        script: Script = cls(**params)
    except TypeError as exc:
        raise ValueError(f"{key}: {exc}") from exc
    return script


def apply_spec(device: SimDevice, spec: Mapping[str, Any], *, key: str) -> None:
    """Apply one ``[[device]]`` table of a simulator spec to ``device``.

    Keys: ``points`` (point -> number or script table), ``status`` (status -> code),
    ``exception`` (code every read answers with), ``silent`` (bool).

    Raises:
        ValueError: naming the key at fault.
    """
    for name, value in dict(spec.get("points", {})).items():
        if name not in device.profile.points:
            raise ValueError(f"{key}.points.{name}: no such point in {device.profile.name}")
        device.script(name, script_from_spec(value, key=f"{key}.points.{name}"))
    for name, code in dict(spec.get("status", {})).items():
        if name not in device.profile.statuses:
            raise ValueError(f"{key}.status.{name}: no such status in {device.profile.name}")
        device.set_status(name, int(code))
    if "exception" in spec:
        device.exception = int(spec["exception"])
    device.silent = bool(spec.get("silent", False))
