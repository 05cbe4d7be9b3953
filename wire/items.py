"""Item kinds of the contract, as typed msgspec structs.

Every item carries the gateway's ``seq`` (0 .. 2**63-1, strictly increasing per gateway,
assigned when the observation is taken) and ``ts``, the observation time in UTC epoch
milliseconds. The JSON tag field is ``kind``. Decoding validates every range and that every float
is finite, and every string is held to the rules of :mod:`wire.text` (no control characters,
no lone surrogates, a bounded length: :data:`Id`, :data:`Label`, :data:`Text`); construction in
Python validates nothing (msgspec's choice, for speed), so the edge encodes with
:func:`wire.codec.encode_item`, which validates fully, before anything is stored.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

from wire.text import FREE_TEXT

__all__ = [
    "VERSION",
    "Alarm",
    "AlarmLevel",
    "Batch",
    "Fix",
    "FixQuality",
    "Health",
    "Item",
    "Quality",
    "Reading",
    "Status",
    "Vessel",
]

#: Envelope version this build writes and reads.
VERSION: Final = 1

#: Names a site, point, asset or device: 1-128 characters, no control characters.
Id = Annotated[str, Meta(min_length=1, max_length=128)]
#: A short string that is not an id (vessel name, flag, counter name): no control characters.
Label = Annotated[str, Meta(max_length=128)]
#: Free text (an alarm's message): may hold TAB and LF, no other control character.
Text = Annotated[str, Meta(max_length=1024), FREE_TEXT]
#: 64-bit signed on the wire (msgspec and PostgreSQL BIGINT), so 0 .. 2**63-1.
Seq = Annotated[int, Meta(ge=0, le=2**63 - 1)]
#: UTC epoch milliseconds, 1970 .. 2999.
TsMs = Annotated[int, Meta(ge=0, le=32_503_680_000_000)]
Lat = Annotated[float, Meta(ge=-90.0, le=90.0)]
Lon = Annotated[float, Meta(ge=-180.0, le=180.0)]
SpeedKmh = Annotated[float, Meta(ge=0.0, le=2000.0)]
Degrees = Annotated[float, Meta(ge=0.0, lt=360.0)]
NonNegInt = Annotated[int, Meta(ge=0)]

#: Reading quality codes. ``good`` is the only one rules may trust.
Quality = Literal[
    "good", "uncertain", "out_of_range", "sensor_fault", "comm_error", "maintenance", "bad"
]
#: ``good``: a fix worth a rule; ``questionable``: status V, HDOP high or few satellites;
#: ``dead_reckoning``: estimated by the receiver; kept and flagged, never trusted.
FixQuality = Literal["good", "questionable", "dead_reckoning"]
AlarmLevel = Literal["LL", "L", "H", "HH", "fault"]


_MAX: Final = 1.7976931348623157e308
#: Any finite float: NaN fails both bounds and +-inf one of them (checked in C when decoding).
Finite = Annotated[float, Meta(ge=-_MAX, le=_MAX)]


class _Item(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="kind"):
    """Fields every item has."""

    seq: Seq
    ts: TsMs


class Reading(_Item, frozen=True, kw_only=True, omit_defaults=True, tag="reading"):
    """One sensor value of a site's point (tank-farm tag such as ``T101.LT01``)."""

    site: Id
    point: Id
    value: Finite | None
    unit: Annotated[str, Meta(max_length=32)] = ""
    quality: Quality = "good"


class Fix(_Item, frozen=True, kw_only=True, omit_defaults=True, tag="fix"):
    """A position of a moving asset (truck, bus, vessel), WGS-84."""

    asset: Id
    lat: Lat
    lon: Lon
    speed_kmh: SpeedKmh | None = None
    course: Degrees | None = None
    heading: Degrees | None = None
    alt_m: Annotated[float, Meta(ge=-1000.0, le=20000.0)] | None = None
    hdop: Annotated[float, Meta(ge=0.0, le=100.0)] | None = None
    pdop: Annotated[float, Meta(ge=0.0, le=100.0)] | None = None
    vdop: Annotated[float, Meta(ge=0.0, le=100.0)] | None = None
    #: GSA fix type: 1 no fix, 2 2D, 3 3D.
    fix_type: Annotated[int, Meta(ge=1, le=3)] | None = None
    sats: Annotated[int, Meta(ge=0, le=255)] | None = None
    quality: FixQuality = "good"
    flags: Annotated[tuple[Label, ...], Meta(max_length=16)] = ()
    source: Literal["gnss", "ais", "jt808"] = "gnss"
    nav_status: Annotated[int, Meta(ge=0, le=15)] | None = None


class Vessel(_Item, frozen=True, kw_only=True, omit_defaults=True, tag="vessel"):
    """Static and voyage data of a vessel, keyed by MMSI (AIS types 5, 19 and 24)."""

    mmsi: Annotated[int, Meta(ge=0, le=999_999_999)]
    ais_class: Literal["A", "B"] | None = None
    name: Label | None = None
    callsign: Label | None = None
    imo: NonNegInt | None = None
    ship_type: Annotated[int, Meta(ge=0, le=255)] | None = None
    to_bow_m: NonNegInt | None = None
    to_stern_m: NonNegInt | None = None
    to_port_m: NonNegInt | None = None
    to_starboard_m: NonNegInt | None = None
    destination: Label | None = None


class Alarm(_Item, frozen=True, kw_only=True, omit_defaults=True, tag="alarm"):
    """An alarm raised or cleared at the edge, for a point, an asset or the gateway itself.

    Threshold alarms name ``point`` (and ``site``) with ``level``, ``value`` and ``limit``; other
    alarms (device offline, buffer corrupt, ...) carry a ``code``, and ``device`` when they
    concern one device of the gateway.
    """

    state: Literal["raise", "clear"]
    level: AlarmLevel
    site: Id | None = None
    point: Id | None = None
    asset: Id | None = None
    #: The device or stream a ``code`` alarm concerns (``device_offline`` of one of several).
    device: Id | None = None
    value: Finite | None = None
    limit: Finite | None = None
    code: Annotated[str, Meta(max_length=64)] | None = None
    message: Text = ""

    def __post_init__(self) -> None:
        if self.point is None and self.asset is None and self.code is None:
            raise ValueError("invalid: an alarm names a point, an asset or a code")


class Health(_Item, frozen=True, kw_only=True, omit_defaults=True, tag="health"):
    """The gateway's own health: buffer, drops, devices and parse errors."""

    buffer_depth: NonNegInt
    oldest_age_s: Annotated[float, Meta(ge=0.0, le=_MAX)] = 0.0
    drops: dict[Label, NonNegInt] = {}
    devices: dict[Label, Literal["online", "offline"]] = {}
    parse_errors: dict[Label, NonNegInt] = {}
    counters: dict[Label, NonNegInt] = {}


Item = Reading | Fix | Vessel | Alarm | Health


class Batch(msgspec.Struct, frozen=True, kw_only=True):
    """The envelope of one MQTT message: one gateway's items."""

    gw: Id
    items: list[Item]
    v: int = VERSION
    sent: TsMs | None = None


class Status(msgspec.Struct, frozen=True, kw_only=True):
    """Retained gateway status; the MQTT last will carries ``state="offline"``."""

    gw: Id
    state: Literal["online", "offline"]
    ts: TsMs
    v: int = VERSION
    agent: Label = ""
