"""Per-asset rule state: what the rules remember between fixes, as bytes for the live state.

Mutable while one evaluation runs (the engine works on its own copy), stored as MessagePack
between evaluations under a version number (compare-and-set, so two workers never both apply a
transition). Positions are kept in WGS-84, so a state outlives the world it was made in.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from cloud.rules.events import Event

__all__ = [
    "AssetState",
    "Episode",
    "FatigueTrack",
    "OfflineTrack",
    "Pending",
    "SmallHoursTrack",
    "SpeedTrack",
    "StopTrack",
    "TripTrack",
    "ZoneTrack",
    "decode_state",
    "encode_state",
]


class Pending(msgspec.Struct, array_like=True):
    """Fixes on the other side of a boundary, not confirmed yet."""

    inside: bool
    count: int
    first_ms: int
    deep: bool
    last_ms: int


class ZoneTrack(msgspec.Struct, array_like=True, omit_defaults=True):
    """An asset and one zone or lot."""

    inside: bool = False
    #: when the confirmed side began (the first fix of the confirming run)
    since_ms: int = 0
    pending: Pending | None = None
    #: open conditions of this zone and when each opened (``zone.forbidden``: ts)
    open: dict[str, int] = {}


class StopTrack(msgspec.Struct, array_like=True, omit_defaults=True):
    """Stopping and moving on (designated parking)."""

    #: first fix of the current slow spell (speed under the stop speed)
    slow_since_ms: int | None = None
    slow_lat: float = 0.0
    slow_lon: float = 0.0
    #: first fix of the current fast spell after a stop (moving on)
    fast_since_ms: int | None = None
    #: the confirmed stop (its start): the alert's reference
    stop_ms: int | None = None
    #: whether the stop was outside every lot (an alert is open) and escalated
    outside: bool = False
    escalated: bool = False
    #: when the outside-lot alert opened (a close is never before it)
    opened_ms: int = 0


class TripTrack(msgspec.Struct, array_like=True, omit_defaults=True):
    """An asset's current trip."""

    trip_id: str
    started_ms: int | None = None
    off: bool = False
    off_since_ms: int = 0
    pending: Pending | None = None
    progress_m: float = 0.0
    #: progress of the last few fixes on the route (wrong-direction detection)
    recent_m: list[float] = []
    #: index of the next checkpoint due; skipped ones
    next_checkpoint: int = 0
    skipped: list[int] = []
    arrival: Pending | None = None
    arrived_ms: int | None = None
    ended: bool = False
    speed_kmh: float = 0.0


class SpeedTrack(msgspec.Struct, array_like=True, omit_defaults=True):
    """Over the speed limit, and back under it (``speed.over``)."""

    #: first fix of the current run over the limit (-1: none), fixes in it, the newest limit
    over_since_ms: int = -1
    over_count: int = 0
    over_limit_kmh: float = 0.0
    #: when the open alert opened (-1: none), its maximum, the maximum said, its limit
    open_ms: int = -1
    max_kmh: float = 0.0
    said_kmh: float = 0.0
    limit_kmh: float = 0.0
    #: first fix of the current run back under the limit minus the margin, fixes in it
    under_since_ms: int = -1
    under_count: int = 0


class FatigueTrack(msgspec.Struct, array_like=True, omit_defaults=True):
    """Driving time: continuous since the last rest, at night, per Beijing day."""

    #: driving counted up to here; a driving fix vouches for driving up to ``driving_until_ms``
    counted_ms: int = -1
    driving_until_ms: int = -1
    #: continuous driving and its part in the night window since the last rest (ms)
    drive_ms: int = 0
    night_ms: int = 0
    #: the current stop's first fix (-1: driving), and whether it is a rest already
    stop_ms: int = -1
    rested: bool = False
    #: the Beijing day counted and its driving (ms)
    day: int = -1
    day_ms: int = 0
    warned: bool = False
    #: open alerts: when each opened (-1: not open)
    continuous_ms: int = -1
    night_open_ms: int = -1
    daily_ms: int = -1
    #: the pre-warnings of the night and daily limits were given (this spell, this day)
    night_warned: bool = False
    daily_warned: bool = False


class SmallHoursTrack(msgspec.Struct, array_like=True, omit_defaults=True):
    """A long-distance coach moving between 02:00 and 05:00 (``fatigue.small_hours``)."""

    #: when the open alert opened (-1: none)
    open_ms: int = -1


class OfflineTrack(msgspec.Struct, array_like=True, omit_defaults=True):
    """Silence while moving (``offline.silent``)."""

    #: when the open alert opened (-1: none)
    open_ms: int = -1
    #: whether the silence is also a vessel gone dark near a zone (``vessel.dark`` open)
    dark: bool = False


class Episode(msgspec.Struct, array_like=True):
    """A condition that was open from ``open_ms`` (to ``close_ms``), or an instant finding,
    with what was said of it (so a late correction can say it again)."""

    open_ms: int
    close_ms: int | None = None
    escalated: bool = False
    escalated_ms: int = 0
    lat: float | None = None
    lon: float | None = None
    details: dict[str, Any] = {}
    close_details: dict[str, Any] = {}


class AssetState(msgspec.Struct, omit_defaults=True):
    """Everything the rules remember of one asset."""

    #: compare-and-set version in the live state (0: never stored)
    version: int = 0
    #: observation time up to which the asset has been evaluated (fixes and clock)
    clock_ms: int = -1
    #: the first fix ever taken (a late fix older than it starts from nothing)
    first_ms: int = -1
    #: the newest fix taken (not filtered out): time and position, and whether trusted
    last_ms: int = -1
    last_lat: float = 0.0
    last_lon: float = 0.0
    last_speed_kmh: float = 0.0
    #: the newest trusted fix (segments between trusted fixes may cross zones)
    trusted_ms: int = -1
    trusted_lat: float = 0.0
    trusted_lon: float = 0.0
    zones: dict[str, ZoneTrack] = {}
    stop: StopTrack = msgspec.field(default_factory=StopTrack)
    trip: TripTrack | None = None
    #: trips finished (arrived, or not arrived at their end), newest last
    trips_done: list[str] = []
    #: what was raised, per condition key (for late data: nothing is raised twice)
    ledger: dict[str, list[Episode]] = {}
    #: episodes over before this were forgotten (``checkpoint_horizon_s`` behind the clock)
    ledger_from_ms: int = -1
    #: fixes dropped by the filters, by reason
    dropped: dict[str, int] = {}
    #: events decided but not yet applied to alerts (written with the state, so a worker that
    #: dies in between leaves them for the next evaluation to apply)
    outbox: list[Event] = []
    #: evaluated-until time of the newest checkpoint kept of this state
    checkpoint_ms: int = -1
    #: failed attempts in a row to apply the first event of the outbox
    outbox_failures: int = 0
    speed: SpeedTrack = msgspec.field(default_factory=SpeedTrack)
    fatigue: FatigueTrack = msgspec.field(default_factory=FatigueTrack)
    offline: OfflineTrack = msgspec.field(default_factory=OfflineTrack)
    small_hours: SmallHoursTrack = msgspec.field(default_factory=SmallHoursTrack)
    #: an AIS target nobody registered that reported navigation status 7 (engaged in fishing):
    #: a fishing vessel from then on
    ais_fishing: bool = False


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(AssetState)


def encode_state(state: AssetState) -> bytes:
    """The stored form of a state."""
    return _ENCODER.encode(state)


def decode_state(raw: bytes | None) -> AssetState:
    """A state from its stored form (a new one for ``None``)."""
    return AssetState() if raw is None else _DECODER.decode(raw)
