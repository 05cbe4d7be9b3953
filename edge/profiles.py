"""Firmware profiles: one TOML per device model and firmware, loaded and validated here.

The format is documented in ``firmware_profiles/README.md``. Every problem raises
:class:`edge.errors.ProfileError` naming the file, the point and the key
(``points.GAS.type: unknown data type 'int8'``). Profiles shipped with hazwatch live in the
``firmware_profiles`` package and are found by name (file stem); others by path.
"""

from __future__ import annotations

import importlib.resources
import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

from edge.alarms import LEVELS, Limits
from edge.errors import ProfileError
from wire import Quality

__all__ = [
    "DataType",
    "Order",
    "Point",
    "Profile",
    "Register",
    "RegisterKind",
    "StatusMap",
    "Transport",
    "find_profile",
    "load_profile",
    "parse_limits",
    "parse_profile",
    "shipped_profiles",
]

RegisterKind = Literal["holding", "input", "coil", "discrete"]
DataType = Literal[
    "int16", "uint16", "int32", "uint32", "float32", "float64", "bool", "bit", "string"
]
Order = Literal["big", "little"]

#: Registers spanned by each fixed-size data type.
WIDTH: Final[Mapping[str, int]] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "float64": 4,
    "bool": 1,
    "bit": 1,
}
_QUALITIES: Final = frozenset(get_args(Quality))
#: Last address of a register table.
_LAST_ADDRESS: Final = 65535
#: Longest unit the wire contract carries in a reading (``wire.Reading.unit``).
_MAX_UNIT: Final = 32
_BIT_KINDS: Final = frozenset({"coil", "discrete"})


@dataclass(frozen=True, slots=True)
class Register:
    """Where a value sits and how its registers encode it."""

    kind: RegisterKind
    address: int
    type: DataType
    word_order: Order = "big"
    byte_order: Order = "big"
    bit: int = 0
    length: int = 1

    @property
    def count(self) -> int:
        """Number of registers (or coils / discrete inputs) the value spans."""
        if self.kind in _BIT_KINDS:
            return 1
        return self.length if self.type == "string" else WIDTH[self.type]


@dataclass(frozen=True, slots=True)
class StatusMap:
    """A fault/status register whose value says the quality of the points that name it."""

    name: str
    register: Register
    #: exact register value -> quality (0 is usually ``good``)
    codes: Mapping[int, Quality] = field(default_factory=dict)
    #: bit number -> quality when that bit is set (checked when no exact code matches)
    bits: Mapping[int, Quality] = field(default_factory=dict)
    #: quality of a value neither ``codes`` nor ``bits`` name
    other: Quality = "good"


@dataclass(frozen=True, slots=True)
class Point:
    """One measured value of a device model."""

    name: str
    register: Register
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    valid_min: float | None = None
    valid_max: float | None = None
    status: str | None = None
    limits: Limits = field(default_factory=Limits)
    description: str = ""


@dataclass(frozen=True, slots=True)
class Transport:
    """Serial and encoding defaults of a device model."""

    baud: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stop_bits: int = 1
    byte_size: int = 8
    word_order: Order = "big"
    byte_order: Order = "big"


@dataclass(frozen=True, slots=True)
class Profile:
    """A device model's register map, read from one TOML file."""

    name: str
    file: str
    vendor: str
    model: str
    firmware: str
    transport: Transport
    points: Mapping[str, Point]
    statuses: Mapping[str, StatusMap]
    description: str = ""


class _Ctx:
    """Raises ProfileError for one file, with dotted keys."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, reason: str) -> ProfileError:
        return ProfileError(self.file, key, reason)

    def table(self, data: Mapping[str, Any], key: str, name: str) -> Mapping[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, Mapping):
            raise self.fail(f"{key}{name}", "must be a table")
        return value

    def string(
        self, data: Mapping[str, Any], key: str, name: str, default: str | None = None
    ) -> str:
        value = data.get(name, default)
        if not isinstance(value, str) or (default is None and not value):
            raise self.fail(f"{key}{name}", "must be a non-empty string")
        return value

    def integer(
        self, data: Mapping[str, Any], key: str, name: str, default: int | None, lo: int, hi: int
    ) -> int:
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{key}{name}", "must be an integer")
        if not lo <= value <= hi:
            raise self.fail(f"{key}{name}", f"must be in {lo}..{hi}, got {value}")
        return value

    def number(
        self, data: Mapping[str, Any], key: str, name: str, default: float | None
    ) -> float | None:
        value = data.get(name, default)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.fail(f"{key}{name}", "must be a finite number")
        return float(value)

    def choice(
        self, data: Mapping[str, Any], key: str, name: str, default: str | None, options: Any
    ) -> Any:
        allowed = get_args(options)
        value = data.get(name, default)
        if value not in allowed:
            raise self.fail(f"{key}{name}", f"must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def known(self, data: Mapping[str, Any], key: str, allowed: frozenset[str]) -> None:
        for name in data:
            if name not in allowed:
                raise self.fail(f"{key}{name}", "unknown key")


_REGISTER_KEYS: Final = frozenset(
    {"register", "address", "type", "word_order", "byte_order", "bit", "length", "repeat", "stride"}
)
_POINT_KEYS: Final = _REGISTER_KEYS | {
    "scale",
    "offset",
    "unit",
    "range",
    "status",
    "alarms",
    "description",
}
_STATUS_KEYS: Final = _REGISTER_KEYS | {"codes", "bits", "other"}
_LIMIT_KEYS: Final = frozenset({*LEVELS, "deadband", "delay_s"})


def parse_limits(
    ctx_file: str, data: Mapping[str, Any], key: str, base: Limits | None = None
) -> Limits:
    """Validate an ``alarms`` table (LL/L/H/HH, deadband, delay_s) over ``base`` limits.

    Raises:
        ProfileError: naming ``key`` and the bad entry.
    """
    ctx = _Ctx(ctx_file)
    ctx.known(data, key, _LIMIT_KEYS)
    overrides: dict[str, float | None] = {}
    for name in data:
        overrides[name] = ctx.number(data, key, name, None)
    limits = (base or Limits()).merged(overrides)
    for name in ("deadband", "delay_s"):
        if getattr(limits, name) < 0:
            raise ctx.fail(f"{key}{name}", "must be >= 0")
    present = [(lvl, limits.limit(lvl)) for lvl in LEVELS if limits.limit(lvl) is not None]
    for (lo_name, lo), (hi_name, hi) in itertools.pairwise(present):
        if lo is not None and hi is not None and lo >= hi:
            raise ctx.fail(f"{key}{hi_name}", f"must be above {lo_name} ({lo}), got {hi}")
    return limits


def _register(
    ctx: _Ctx, data: Mapping[str, Any], key: str, transport: Transport, default: str | None = None
) -> Register:
    kind = ctx.choice(data, key, "register", None, RegisterKind)
    default_type = "bool" if kind in _BIT_KINDS else default
    dtype = ctx.choice(data, key, "type", default_type, DataType)
    if kind in _BIT_KINDS and dtype != "bool":
        raise ctx.fail(f"{key}type", f"a {kind} holds a bool, not {dtype}")
    length = ctx.integer(data, key, "length", 1, 1, 125)
    if "length" in data and dtype != "string":
        raise ctx.fail(f"{key}length", "only a string has a length")
    if "bit" in data and dtype != "bit":
        raise ctx.fail(f"{key}bit", "only type 'bit' takes a bit number")
    return Register(
        kind=kind,
        address=ctx.integer(data, key, "address", None, 0, 65535),
        type=dtype,
        word_order=ctx.choice(data, key, "word_order", transport.word_order, Order),
        byte_order=ctx.choice(data, key, "byte_order", transport.byte_order, Order),
        bit=ctx.integer(data, key, "bit", 0, 0, 15),
        length=length,
    )


def _expand(ctx: _Ctx, name: str, data: Mapping[str, Any], key: str) -> list[tuple[str, int, int]]:
    """Names, index and address step of a point or status (``repeat`` makes CH01..CHnn)."""
    repeat = ctx.integer(data, key, "repeat", 1, 1, 256)
    stride = ctx.integer(data, key, "stride", 1, 0, 4096)
    if repeat == 1 and "repeat" not in data:
        return [(name, 0, 0)]
    return [(f"{name}{i + 1:02d}", i, i * stride) for i in range(repeat)]


def _statuses(ctx: _Ctx, data: Mapping[str, Any], transport: Transport) -> dict[str, StatusMap]:
    out: dict[str, StatusMap] = {}
    for name, raw in ctx.table(data, "", "status").items():
        key = f"status.{name}."
        if not isinstance(raw, Mapping):
            raise ctx.fail(key[:-1], "must be a table")
        ctx.known(raw, key, _STATUS_KEYS)
        reg = _register(ctx, raw, key, transport, "uint16")
        codes: dict[int, Quality] = {}
        for code, quality in ctx.table(raw, key, "codes").items():
            if not code.lstrip("-").isdigit():
                raise ctx.fail(f"{key}codes.{code}", "a code is an integer register value")
            codes[int(code)] = _quality(ctx, quality, f"{key}codes.{code}")
        bits: dict[int, Quality] = {}
        for bit, quality in ctx.table(raw, key, "bits").items():
            if not bit.isdigit() or int(bit) > 15:
                raise ctx.fail(f"{key}bits.{bit}", "a bit number is 0..15")
            bits[int(bit)] = _quality(ctx, quality, f"{key}bits.{bit}")
        other = _quality(ctx, raw.get("other", "good"), f"{key}other")
        for full, _, step in _expand(ctx, name, raw, key):
            moved = _moved(ctx, reg, step, full, key)
            out[full] = StatusMap(full, moved, codes, bits, other)
    return out


def _moved(ctx: _Ctx, reg: Register, step: int, full: str, key: str) -> Register:
    """``reg`` shifted by ``step`` addresses; it must end at the last address or before."""
    moved = Register(**{**_asdict(reg), "address": reg.address + step})
    end = moved.address + moved.count - 1
    if end > _LAST_ADDRESS:
        raise ctx.fail(f"{key}address", f"{full} ends at {end}, past {_LAST_ADDRESS}")
    return moved


def _asdict(reg: Register) -> dict[str, Any]:
    return {name: getattr(reg, name) for name in Register.__slots__}


def _quality(ctx: _Ctx, value: Any, key: str) -> Quality:
    if value not in _QUALITIES:
        raise ctx.fail(
            key, f"must be a quality code ({', '.join(sorted(_QUALITIES))}), got {value!r}"
        )
    return cast(Quality, value)


def _point_variants(
    ctx: _Ctx,
    name: str,
    raw: Mapping[str, Any],
    transport: Transport,
    statuses: Mapping[str, StatusMap],
) -> list[Point]:
    key = f"points.{name}."
    ctx.known(raw, key, _POINT_KEYS)
    reg = _register(ctx, raw, key, transport)
    if reg.type == "string" and ("alarms" in raw or "scale" in raw):
        raise ctx.fail(f"{key}type", "a string point has no scale or alarms")
    scale = ctx.number(raw, key, "scale", 1.0)
    if scale == 0:
        raise ctx.fail(f"{key}scale", "must not be 0")
    valid_min = valid_max = None
    if "range" in raw:
        rng = raw["range"]
        if not (isinstance(rng, list) and len(rng) == 2):
            raise ctx.fail(f"{key}range", "must be [min, max]")
        valid_min = _num(ctx, rng[0], f"{key}range")
        valid_max = _num(ctx, rng[1], f"{key}range")
        if valid_min >= valid_max:
            raise ctx.fail(f"{key}range", f"min {valid_min} must be below max {valid_max}")
    limits = parse_limits(ctx.file, ctx.table(raw, key, "alarms"), f"{key}alarms.")
    unit = ctx.string(raw, key, "unit", "")
    if len(unit) > _MAX_UNIT:
        raise ctx.fail(f"{key}unit", f"longer than {_MAX_UNIT} characters")
    status = raw.get("status")
    out: list[Point] = []
    for full, index, step in _expand(ctx, name, raw, key):
        status_name = None
        if status is not None:
            if not isinstance(status, str):
                raise ctx.fail(f"{key}status", "must name a [status.NAME] table")
            status_name = status if full == name else f"{status}{index + 1:02d}"
            if status_name not in statuses:
                status_name = status if status in statuses else None
            if status_name is None:
                raise ctx.fail(f"{key}status", f"no status table named {status!r}")
        out.append(
            Point(
                name=full,
                register=_moved(ctx, reg, step, full, key),
                scale=scale if scale is not None else 1.0,
                offset=ctx.number(raw, key, "offset", 0.0) or 0.0,
                unit=unit,
                valid_min=valid_min,
                valid_max=valid_max,
                status=status_name,
                limits=limits,
                description=ctx.string(raw, key, "description", ""),
            )
        )
    return out


def _num(ctx: _Ctx, value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ctx.fail(key, "must be a finite number")
    return float(value)


def parse_profile(data: Mapping[str, Any], *, file: str, name: str) -> Profile:
    """Validate a parsed profile document.

    Raises:
        ProfileError: naming ``file`` and the point and key at fault.
    """
    ctx = _Ctx(file)
    ctx.known(
        data,
        "",
        frozenset({"vendor", "model", "firmware", "description", "transport", "status", "points"}),
    )
    raw_transport = ctx.table(data, "", "transport")
    ctx.known(
        raw_transport,
        "transport.",
        frozenset({"baud", "parity", "stop_bits", "byte_size", "word_order", "byte_order"}),
    )
    transport = Transport(
        baud=ctx.integer(raw_transport, "transport.", "baud", 9600, 300, 921_600),
        parity=ctx.choice(raw_transport, "transport.", "parity", "N", Literal["N", "E", "O"]),
        stop_bits=ctx.integer(raw_transport, "transport.", "stop_bits", 1, 1, 2),
        byte_size=ctx.integer(raw_transport, "transport.", "byte_size", 8, 7, 8),
        word_order=ctx.choice(raw_transport, "transport.", "word_order", "big", Order),
        byte_order=ctx.choice(raw_transport, "transport.", "byte_order", "big", Order),
    )
    statuses = _statuses(ctx, data, transport)
    points: dict[str, Point] = {}
    raw_points = ctx.table(data, "", "points")
    if not raw_points:
        raise ctx.fail("points", "a profile needs at least one point")
    for point_name, raw in raw_points.items():
        if not isinstance(raw, Mapping):
            raise ctx.fail(f"points.{point_name}", "must be a table")
        for point in _point_variants(ctx, point_name, raw, transport, statuses):
            if point.name in points:
                raise ctx.fail(f"points.{point_name}", f"point {point.name} is defined twice")
            points[point.name] = point
    return Profile(
        name=name,
        file=file,
        vendor=ctx.string(data, "", "vendor"),
        model=ctx.string(data, "", "model"),
        firmware=ctx.string(data, "", "firmware"),
        transport=transport,
        points=points,
        statuses=statuses,
        description=ctx.string(data, "", "description", ""),
    )


def load_profile(path: str | Path) -> Profile:
    """Read and validate one profile file.

    Raises:
        ProfileError: the file is missing, is not TOML or does not validate.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(str(path), None, f"cannot read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(str(path), None, f"not valid TOML: {exc}") from exc
    return parse_profile(data, file=str(path), name=path.stem)


def shipped_profiles() -> dict[str, Path]:
    """Profiles installed with hazwatch, by name (file stem)."""
    root = importlib.resources.files("firmware_profiles")
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in root.iterdir()
        if entry.name.endswith(".toml")
    }


def find_profile(ref: str, *, base_dir: Path | None = None) -> Path:
    """Resolve a profile reference: a shipped profile name or a path (relative to ``base_dir``).

    Raises:
        ProfileError: nothing matches ``ref``.
    """
    shipped = shipped_profiles()
    if ref in shipped:
        return shipped[ref]
    path = Path(ref)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if path.is_file():
        return path
    known = ", ".join(sorted(shipped))
    raise ProfileError(
        ref, None, f"no such profile file and no shipped profile of that name ({known})"
    )
