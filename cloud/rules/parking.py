"""Designated parking: a hazmat truck stopped outside every lot, and overstays in a lot.

shared/RULES.md, "Parking": a stop is speed under ``stop_speed_kmh`` for at least ``stop_s``;
outside every lot and every ``no_stop_alert`` zone it opens ``parking.outside_lot``,
escalates ``escalate_s`` later, and closes when the truck moves on
(over the stop speed for ``move_on_s``) or is confirmed inside a lot. A lot's ``max_stay_s``
counts from confirmed entry to exit (``parking.max_stay``).

An outside-lot alert's reference is the asset (it has one stop at a time); the stop's id (the
asset and when it stopped) and position are in its details. Late data can move a stop's start,
and the alert must stay the same one (shared/RULES.md, "Time and order"), so the start cannot be
part of the alert's identity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from cloud.rules.config import Thresholds
from cloud.rules.geofence import Emit
from cloud.rules.objects import LotSpec
from cloud.rules.state import StopTrack, ZoneTrack
from cloud.rules.world import ZoneEntry

__all__ = [
    "PARKED_CLASSES",
    "advance",
    "lot_exit",
    "lot_stay",
    "on_fix",
    "on_lot_entry",
    "on_lot_exit",
    "stop_ref",
]

#: Classes that may stop only in designated lots.
PARKED_CLASSES: Final = frozenset({"hazmat_truck"})


def stop_ref(asset_id: str, stop_ms: int) -> str:
    """The id of a stop: the asset and when it stopped (in the alert's details)."""
    return f"{asset_id}@{stop_ms}"


def on_fix(
    stop: StopTrack,
    asset_id: str,
    ts_ms: int,
    lat: float,
    lon: float,
    speed_kmh: float,
    thresholds: Thresholds,
    parked_allowed: Callable[[], bool],
    emit: Emit,
) -> None:
    """Take one fix; ``parked_allowed`` says whether the stop position is in a lot or a
    ``no_stop_alert`` zone (asked only when a stop is confirmed)."""
    if speed_kmh < thresholds.stop_speed_kmh:
        stop.fast_since_ms = None
        if stop.slow_since_ms is None:
            stop.slow_since_ms, stop.slow_lat, stop.slow_lon = ts_ms, lat, lon
        advance(stop, asset_id, ts_ms, thresholds, parked_allowed, emit)
        return
    if stop.fast_since_ms is None:
        stop.fast_since_ms = ts_ms
    if stop.stop_ms is None:  # a short halt: no stop
        stop.slow_since_ms = None
        return
    if ts_ms - stop.fast_since_ms >= thresholds.move_on_s * 1000:
        _end(stop, asset_id, stop.fast_since_ms, emit, reason="moved on")


def advance(
    stop: StopTrack,
    asset_id: str,
    until_ms: int,
    thresholds: Thresholds,
    parked_allowed: Callable[[], bool],
    emit: Emit,
) -> None:
    """What time alone does while stopped: the stop is confirmed, the alert escalates."""
    if stop.slow_since_ms is None or stop.fast_since_ms is not None:
        return
    confirmed_at = stop.slow_since_ms + int(thresholds.stop_s * 1000)
    if stop.stop_ms is None and until_ms >= confirmed_at:
        stop.stop_ms = stop.slow_since_ms
        if not parked_allowed():
            stop.outside, stop.opened_ms = True, confirmed_at
            details: dict[str, object] = {
                "stop_id": stop_ref(asset_id, stop.stop_ms),
                "stop_ms": stop.stop_ms,
                "stop_lat": stop.slow_lat,
                "stop_lon": stop.slow_lon,
            }
            emit("parking.outside_lot", asset_id, "open", confirmed_at, details)
    if stop.outside and not stop.escalated and stop.stop_ms is not None:
        due = confirmed_at + int(thresholds.escalate_s * 1000)
        if until_ms >= due:
            stop.escalated = True
            stopped_s = (due - stop.stop_ms) / 1000
            emit("parking.outside_lot", asset_id, "escalate", due, {"stopped_s": stopped_s})


def _end(stop: StopTrack, asset_id: str, at_ms: int, emit: Emit, *, reason: str) -> None:
    if stop.outside and stop.stop_ms is not None:
        # Entering a lot is dated at the first fix inside, which may precede the alert.
        at_ms = max(at_ms, stop.opened_ms)
        emit("parking.outside_lot", asset_id, "close", at_ms, {"reason": reason})
    stop.stop_ms = None
    stop.slow_since_ms = None
    stop.outside = False
    stop.escalated = False


def on_lot_entry(stop: StopTrack, asset_id: str, at_ms: int, emit: Emit) -> None:
    """The asset was confirmed inside a lot: a stop outside lots ends there."""
    if stop.outside:
        _end(stop, asset_id, at_ms, emit, reason="in a designated lot")


def on_lot_exit(stop: StopTrack, at_ms: int, lat: float, lon: float) -> None:
    """The asset was confirmed out of a lot (from ``at_ms``): a stop that goes on out there is
    a stop outside lots, counted from the exit."""
    if stop.outside or stop.slow_since_ms is None or stop.fast_since_ms is not None:
        return
    stop.slow_since_ms, stop.slow_lat, stop.slow_lon = at_ms, lat, lon
    stop.stop_ms = None
    stop.escalated = False


def lot_stay(track: ZoneTrack, lot: ZoneEntry, until_ms: int, emit: Emit) -> None:
    """Open ``parking.max_stay`` once the asset has been in the lot longer than allowed, close it
    when it leaves (the geofence transition calls :func:`lot_exit`)."""
    spec = lot.spec
    if not isinstance(spec, LotSpec) or spec.max_stay_s is None or not track.inside:
        return
    if track.pending is not None and not track.pending.inside:
        # Leaving, not confirmed yet: if it is, the stay ended at the first fix outside.
        until_ms = min(until_ms, track.pending.first_ms - 1)
    due = track.since_ms + int(spec.max_stay_s * 1000)
    if until_ms >= due and "parking.max_stay" not in track.open:
        track.open = {**track.open, "parking.max_stay": due}
        emit("parking.max_stay", lot.id, "open", due, {"max_stay_s": spec.max_stay_s})


def lot_exit(track: ZoneTrack, lot: ZoneEntry, at_ms: int, emit: Emit) -> None:
    """The asset left a lot: an overstay ends."""
    if "parking.max_stay" in track.open:
        opened = track.open["parking.max_stay"]
        track.open = {k: v for k, v in track.open.items() if k != "parking.max_stay"}
        emit("parking.max_stay", lot.id, "close", at_ms, {"overstay_s": (at_ms - opened) / 1000})
