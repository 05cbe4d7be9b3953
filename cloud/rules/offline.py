"""Offline: silent while last seen moving, and moved while offline (the asset its reference).

shared/RULES.md, "Offline and vessels":

- ``offline.silent`` opens by the clock at the last fix + ``offline_s`` (vehicles 10 min,
  fishing vessels 2 h) when that fix was moving (over ``stop_speed_kmh``) and the asset is not
  confirmed inside a lot; it closes at the next fix. Details: ``last_ms`` (the last fix) on
  open, ``silent_s`` (from the last fix to the next) on close. A fix exactly ``offline_s`` after
  the last one is not a silence ("longer than").
- ``vessel.dark`` (issue "Rules II", vessels): a silence that opens ``offline.silent`` while
  the last fix lies inside or within ``dark_zone_m`` (fishing vessels 5 km) of a restricted or
  fishing-moratorium zone that applies to the asset then opens it too, naming those zones
  (``zones``), and closes with it at the next fix.
- ``offline.moved`` is an instantaneous finding at the first fix after a gap of at least
  ``offline_moved_gap_s`` (10 min) that lies more than ``offline_moved_m`` (1 km) from the last
  fix before it, whether the silence was alarmed or not, whatever the fixes' quality (an
  impossible jump is dropped by the filters before). Details: ``gap_s``, ``distance_m``.
"""

from __future__ import annotations

from collections.abc import Callable

from cloud.rules.config import Thresholds
from cloud.rules.geofence import Emit
from cloud.rules.state import OfflineTrack

__all__ = ["advance", "due", "on_fix"]


def due(
    track: OfflineTrack, last_ms: int, last_kmh: float, in_lot: bool, th: Thresholds
) -> int | None:
    """When the clock opens ``offline.silent`` (``None``: it does not): just after the last
    fix + ``offline_s``, the alert dated at that time."""
    if track.open_ms >= 0 or last_ms < 0 or last_kmh <= th.stop_speed_kmh or in_lot:
        return None
    if th.offline_s <= 0:
        return None
    return last_ms + int(th.offline_s * 1000) + 1


def advance(
    track: OfflineTrack,
    asset_id: str,
    until_ms: int,
    last_ms: int,
    last_kmh: float,
    in_lot: bool,
    th: Thresholds,
    emit: Emit,
    near_zones: Callable[[int], list[str]] = lambda at: [],
) -> None:
    """Open ``offline.silent`` once the silence is longer than allowed (and ``vessel.dark``
    where ``near_zones(at)``, the zones near the last fix then, names any)."""
    at = due(track, last_ms, last_kmh, in_lot, th)
    if at is None or until_ms < at:
        return
    track.open_ms = at = at - 1
    emit("offline.silent", asset_id, "open", at, {"last_ms": last_ms, "offline_s": th.offline_s})
    zones = near_zones(at) if th.dark_zone_m > 0 else []
    if zones:
        track.dark = True
        emit("vessel.dark", asset_id, "open", at, {"last_ms": last_ms, "zones": zones})


def on_fix(
    track: OfflineTrack,
    asset_id: str,
    ts_ms: int,
    last_ms: int,
    distance_m: float,
    th: Thresholds,
    emit: Emit,
) -> None:
    """Take the next fix after ``last_ms``, ``distance_m`` from it: a silence ends."""
    if last_ms < 0:
        return
    gap_s = (ts_ms - last_ms) / 1000
    if track.open_ms >= 0:
        emit("offline.silent", asset_id, "close", ts_ms, {"silent_s": gap_s})
        track.open_ms = -1
    if track.dark:
        emit("vessel.dark", asset_id, "close", ts_ms, {"silent_s": gap_s})
        track.dark = False
    if gap_s >= th.offline_moved_gap_s and distance_m > th.offline_moved_m:
        details = {"gap_s": gap_s, "distance_m": round(distance_m, 1)}
        emit("offline.moved", asset_id, "open", ts_ms, details)
