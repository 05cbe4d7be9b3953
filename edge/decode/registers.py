"""Pure Modbus decoding: a profile plus raw registers in, values and quality codes out.

Three steps, all without I/O:

* :func:`plan_reads` groups a device's registers into the fewest requests (at most
  ``max_registers`` per read, merging across gaps of up to ``max_gap`` unused registers);
* the poller fills an :class:`Image` with the words (or bits) each request returned, or the
  quality a failed request earns (:func:`exception_quality`);
* :func:`decode_points` turns the image into a :class:`Decoded` value and quality per point:
  data type, byte and word order, scale and offset, valid range and status registers.

:func:`encode_value` is the inverse, used by the simulator and the safety outputs.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from edge.profiles import Point, Profile, Register, RegisterKind, StatusMap
from wire import Quality

__all__ = [
    "MAX_BITS",
    "MAX_REGISTERS",
    "Decoded",
    "Image",
    "Read",
    "decode_points",
    "decode_raw",
    "encode_point",
    "encode_value",
    "exception_quality",
    "plan_reads",
]

#: Modbus limits of one read request.
MAX_REGISTERS: Final = 125
MAX_BITS: Final = 2000
_STRUCT: Final = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "float32": "f",
    "float64": "d",
}
#: Modbus exception code -> quality of the points the request covered.
_EXCEPTION_QUALITY: Final[Mapping[int, Quality]] = {
    1: "bad",  # illegal function: the profile asks for a table the device lacks
    2: "bad",  # illegal data address: wrong profile or firmware
    3: "bad",  # illegal data value
    4: "sensor_fault",  # server device failure
    5: "uncertain",  # acknowledge (long operation in progress)
    6: "uncertain",  # server device busy
    10: "comm_error",  # gateway path unavailable
    11: "comm_error",  # gateway target failed to respond
}
_SEVERITY: Final[Mapping[str, int]] = {
    "good": 0,
    "uncertain": 1,
    "maintenance": 2,
    "out_of_range": 3,
    "sensor_fault": 4,
    "comm_error": 5,
    "bad": 6,
}


def exception_quality(code: int) -> Quality:
    """The quality of values a request answered with Modbus exception ``code`` would have held."""
    return _EXCEPTION_QUALITY.get(code, "bad")


@dataclass(frozen=True, slots=True)
class Read:
    """One read request: ``count`` registers or bits of ``kind`` from ``address``."""

    kind: RegisterKind
    address: int
    count: int


def plan_reads(
    registers: Iterable[Register], *, max_registers: int = MAX_REGISTERS, max_gap: int = 8
) -> list[Read]:
    """Coalesce the registers a device needs into the fewest reads.

    Args:
        registers: Every register span to read (points and status registers).
        max_registers: Upper bound of one read (125 registers; bit tables use 16x that,
            capped at 2000).
        max_gap: Unused registers a read may span to join two neighbours; ``-1`` disables
            merging (one request per value, the baseline of the benchmark).

    Returns:
        Reads ordered by table and address.
    """
    spans: dict[RegisterKind, list[tuple[int, int]]] = {}
    for reg in registers:
        spans.setdefault(reg.kind, []).append((reg.address, reg.address + reg.count))
    reads: list[Read] = []
    for kind in ("coil", "discrete", "holding", "input"):
        bit = kind in ("coil", "discrete")
        limit = min(max_registers * 16, MAX_BITS) if bit else max_registers
        gap = max_gap * 16 if bit and max_gap >= 0 else max_gap
        current: list[int] | None = None
        for start, end in sorted(set(spans.get(kind, []))):
            if max_gap < 0 or current is None:
                joined = False
            else:
                joined = start - current[1] <= gap and max(end, current[1]) - current[0] <= limit
            if joined and current is not None:
                current[1] = max(current[1], end)
                continue
            if current is not None:
                reads.append(Read(kind, current[0], current[1] - current[0]))
            current = [start, end]
        if current is not None:
            reads.append(Read(kind, current[0], current[1] - current[0]))
    return reads


@dataclass(slots=True)
class Image:
    """What one poll of a device returned: words or bits by table and address, and failures."""

    words: dict[RegisterKind, dict[int, int]] = field(default_factory=dict)
    #: table -> address -> quality of the failed request that covered it
    failed: dict[RegisterKind, dict[int, Quality]] = field(default_factory=dict)

    def store(self, read: Read, values: Sequence[int] | Sequence[bool]) -> None:
        """Record the answer to ``read``."""
        table = self.words.setdefault(read.kind, {})
        for offset in range(read.count):
            table[read.address + offset] = int(values[offset])

    def fail(self, read: Read, quality: Quality) -> None:
        """Record that ``read`` failed with ``quality``."""
        table = self.failed.setdefault(read.kind, {})
        for offset in range(read.count):
            table[read.address + offset] = quality

    def take(self, reg: Register) -> list[int] | Quality:
        """The words of ``reg``, or the quality of the failure that lost them."""
        table = self.words.get(reg.kind, {})
        out: list[int] = []
        for address in range(reg.address, reg.address + reg.count):
            if address not in table:
                return self.failed.get(reg.kind, {}).get(address, "comm_error")
            out.append(table[address])
        return out


@dataclass(frozen=True, slots=True)
class Decoded:
    """A point's decoded value (engineering units) and quality."""

    value: float | None
    quality: Quality
    text: str | None = None


def _bytes(reg: Register, words: Sequence[int]) -> bytes:
    ordered = list(reversed(words)) if reg.word_order == "little" else list(words)
    return b"".join(int(w & 0xFFFF).to_bytes(2, reg.byte_order) for w in ordered)


def decode_raw(reg: Register, words: Sequence[int]) -> int | float | str:
    """The raw value of ``reg`` (before scale and offset) from its words or bits."""
    if reg.kind in ("coil", "discrete") or reg.type == "bool":
        return int(bool(words[0]))
    if reg.type == "bit":
        word = int.from_bytes(_bytes(reg, words[:1]), "big")
        return (word >> reg.bit) & 1
    data = _bytes(reg, words)
    if reg.type == "string":
        return data.rstrip(b"\x00 ").decode("ascii", errors="replace")
    value: int | float = struct.unpack(">" + _STRUCT[reg.type], data)[0]
    if reg.type == "float32" and math.isfinite(value):
        return float(f"{value:.7g}")  # the digits a float32 holds, not binary noise
    return value


def encode_value(reg: Register, raw: int | float | str | bool) -> list[int]:
    """Words (or one bit) that make :func:`decode_raw` return ``raw``."""
    if reg.kind in ("coil", "discrete") or reg.type == "bool":
        return [int(bool(raw))]
    if reg.type == "bit":
        word = (1 << reg.bit) if raw else 0
        return [int.from_bytes(word.to_bytes(2, "big"), reg.byte_order)]  # as _bytes reads it
    if reg.type == "string":
        data = str(raw).encode("ascii")[: reg.length * 2].ljust(reg.length * 2, b"\x00")
    else:
        code = _STRUCT[reg.type]
        number = float(raw) if code in "fd" else int(raw)
        data = struct.pack(">" + code, number)
    words = [int.from_bytes(data[i : i + 2], reg.byte_order) for i in range(0, len(data), 2)]
    return list(reversed(words)) if reg.word_order == "little" else words


def encode_point(point: Point, value: float | str | bool) -> list[int]:
    """Words for an engineering value of ``point`` (inverse of scale and offset)."""
    reg = point.register
    if (
        isinstance(value, str)
        or reg.type in ("string", "bool", "bit")
        or reg.kind
        in (
            "coil",
            "discrete",
        )
    ):
        return encode_value(reg, value)
    raw = (float(value) - point.offset) / point.scale
    if reg.type in ("float32", "float64"):
        return encode_value(reg, raw)
    return encode_value(reg, round(raw))


def _status_quality(status: StatusMap, image: Image) -> Quality:
    words = image.take(status.register)
    if isinstance(words, str):
        return words
    code = decode_raw(status.register, words)
    if not isinstance(code, int):
        return "bad"
    if code in status.codes:
        return status.codes[code]
    worst: Quality | None = None
    for bit, quality in status.bits.items():  # every set bit counts: the worst one shows
        if code >> bit & 1:
            worst = quality if worst is None else _worst(worst, quality)
    return status.other if worst is None else worst


def _worst(a: Quality, b: Quality) -> Quality:
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


def decode_point(point: Point, image: Image, status_quality: Quality = "good") -> Decoded:
    """Decode one point from a poll image; ``status_quality`` comes from its status register."""
    words = image.take(point.register)
    if isinstance(words, str):
        return Decoded(None, words)
    raw = decode_raw(point.register, words)
    if isinstance(raw, str):
        return Decoded(None, status_quality, text=raw)
    if isinstance(raw, float) and not math.isfinite(raw):
        return Decoded(None, "bad")
    value = raw * point.scale + point.offset
    if not math.isfinite(value):  # a huge float64 scaled past the largest float
        return Decoded(None, "bad")
    quality: Quality = "good"
    low, high = point.valid_min, point.valid_max
    if (low is not None and value < low) or (high is not None and value > high):
        quality = "out_of_range"
    return Decoded(float(value), _worst(quality, status_quality))


def decode_points(profile: Profile, image: Image) -> dict[str, Decoded]:
    """Decode every point of ``profile`` from one poll image."""
    statuses = {name: _status_quality(st, image) for name, st in profile.statuses.items()}
    return {
        name: decode_point(point, image, statuses[point.status] if point.status else "good")
        for name, point in profile.points.items()
    }
