"""Trips on approved routes: off-route, wrong direction, checkpoints, start and arrival.

shared/RULES.md, "Routes and trips": a trip is watched from its window's start minus
``trip_watch_before_s`` until it arrives or its window ends. It starts when the asset first
moves (over the stop speed); starting before the window is ``trip.early_start``. Off route is
farther than half the corridor width from the route, confirmed like a geofence exit (``confirm_n``
trusted fixes, one ``hysteresis_m`` past the edge), and back on route likewise (a corridor
narrower than twice that: by the fixes alone); ``trip.off_route`` opens and closes. Progress
decreasing by more than ``wrong_way_m`` over a run of at least ``confirm_n`` fixes, each behind
the one before, while on the route is ``trip.wrong_direction``. Checkpoints are ordered
circles: passing a later one before an earlier one skips the earlier
(``trip.checkpoint_skipped``); so does a trip that ends without reaching it. Arrival is being
confirmed inside the destination's radius; ``trip.not_arrived`` at the window's end.
"""

from __future__ import annotations

import math

from cloud.rules.config import Thresholds
from cloud.rules.geofence import Emit
from cloud.rules.state import Pending, TripTrack
from cloud.rules.world import TripEntry

__all__ = ["advance", "finish", "on_fix"]


def on_fix(
    track: TripTrack,
    trip: TripEntry,
    ts_ms: int,
    xy: tuple[float, float],
    speed_kmh: float,
    trusted: bool,
    along_m: float | None,
    off_m: float | None,
    thresholds: Thresholds,
    emit: Emit,
) -> None:
    """Take one fix of the trip's asset.

    Args:
        along_m: the fix's distance along the route (``None``: no route).
        off_m: how far outside the corridor it is (negative inside).
    """
    if track.ended:
        return
    track.speed_kmh = speed_kmh
    if track.started_ms is None and speed_kmh > thresholds.stop_speed_kmh:
        track.started_ms = ts_ms
        if ts_ms < trip.spec.start_ms:
            details = {
                "start_ms": trip.spec.start_ms,
                "early_s": (trip.spec.start_ms - ts_ms) / 1000,
            }
            emit("trip.early_start", trip.id, "open", ts_ms, details)
    if not trusted:
        return
    if along_m is not None and off_m is not None and track.started_ms is not None:
        _corridor(track, trip, ts_ms, along_m, off_m, thresholds, emit)
    _checkpoints(track, trip, ts_ms, xy, thresholds, emit)
    _arrival(track, trip, ts_ms, xy, thresholds, emit)


def _corridor(
    track: TripTrack,
    trip: TripEntry,
    ts_ms: int,
    along_m: float,
    off_m: float,
    thresholds: Thresholds,
    emit: Emit,
) -> None:
    outside = off_m > 0
    if not track.off and not outside:
        track.progress_m = along_m
        _direction(track, trip, ts_ms, along_m, thresholds, emit)
    if outside == track.off:
        track.pending = None
        return
    # A corridor narrower than 2H: back on route by N fixes inside alone (as narrow zones).
    narrow = (
        not outside
        and trip.route is not None
        and (trip.route.half_width_at(along_m) < thresholds.hysteresis_m)
    )
    deep = narrow or abs(off_m) >= thresholds.hysteresis_m
    pending = track.pending
    if pending is None or pending.inside != outside:
        pending = Pending(inside=outside, count=1, first_ms=ts_ms, deep=deep, last_ms=ts_ms)
    else:
        pending.count += 1
        pending.deep = pending.deep or deep
        pending.last_ms = ts_ms
    track.pending = pending
    if (
        pending.count >= thresholds.confirm_n
        and pending.last_ms - pending.first_ms >= thresholds.confirm_s * 1000
        and pending.deep
    ):
        track.pending = None
        track.off = outside
        track.off_since_ms = pending.first_ms
        track.recent_m = []
        action = "open" if outside else "close"
        emit("trip.off_route", trip.id, action, pending.first_ms, {"off_m": round(off_m, 1)})


def _direction(
    track: TripTrack, trip: TripEntry, ts_ms: int, along_m: float, thresholds: Thresholds,
    emit: Emit,
) -> None:  # fmt: skip
    """Wrong direction: ``confirm_n`` or more fixes in a row each behind the one before, more
    than ``wrong_way_m`` behind where the run began (so it does not depend on the fix rate).

    ``track.recent_m`` holds the run: the progress where it began, then that of its latest
    fixes (``confirm_n`` at most, so a long slow run stays small).
    """
    run = track.recent_m
    run = [*run, along_m] if run and along_m < run[-1] else [along_m]
    if len(run) > thresholds.confirm_n + 1:
        run = [run[0], *run[-thresholds.confirm_n :]]
    back_m = run[0] - along_m
    if len(run) > thresholds.confirm_n and back_m > thresholds.wrong_way_m:
        details = {"back_m": round(back_m, 1), "along_m": round(along_m, 1)}
        emit("trip.wrong_direction", trip.id, "open", ts_ms, details)
        run = [along_m]
    track.recent_m = run


def _distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def _checkpoints(
    track: TripTrack,
    trip: TripEntry,
    ts_ms: int,
    xy: tuple[float, float],
    thresholds: Thresholds,
    emit: Emit,
) -> None:
    radius = trip.spec.checkpoint_radius_m or thresholds.checkpoint_radius_m
    for index in range(track.next_checkpoint, len(trip.checkpoints)):
        if _distance(xy, trip.checkpoints[index]) <= radius:
            for skipped in range(track.next_checkpoint, index):
                _skip(track, trip, skipped, ts_ms, emit)
            track.next_checkpoint = index + 1
            return


def _skip(track: TripTrack, trip: TripEntry, index: int, ts_ms: int, emit: Emit) -> None:
    track.skipped = [*track.skipped, index]
    emit("trip.checkpoint_skipped", f"{trip.id}#{index}", "open", ts_ms, {"checkpoint": index})


def _arrival(
    track: TripTrack,
    trip: TripEntry,
    ts_ms: int,
    xy: tuple[float, float],
    thresholds: Thresholds,
    emit: Emit,
) -> None:
    if track.started_ms is None:
        return
    radius = trip.spec.arrival_radius_m or thresholds.arrival_radius_m
    inside = _distance(xy, trip.destination) <= radius
    if not inside:
        track.arrival = None
        return
    arrival = track.arrival
    if arrival is None:
        arrival = Pending(inside=True, count=1, first_ms=ts_ms, deep=True, last_ms=ts_ms)
    else:
        arrival.count += 1
        arrival.last_ms = ts_ms
    track.arrival = arrival
    if arrival.count >= thresholds.confirm_n:
        track.arrived_ms = arrival.first_ms
        finish(track, trip, arrival.first_ms, emit)


def finish(track: TripTrack, trip: TripEntry, at_ms: int, emit: Emit) -> None:
    """The trip is over (arrived, or its window ended): checkpoints not reached are skipped,
    an off-route condition closes."""
    if track.ended:
        return
    track.ended = True
    for index in range(track.next_checkpoint, len(trip.checkpoints)):
        _skip(track, trip, index, at_ms, emit)
    track.next_checkpoint = len(trip.checkpoints)
    if track.off:
        track.off = False
        emit("trip.off_route", trip.id, "close", at_ms, {"reason": "the trip ended"})


def advance(track: TripTrack, trip: TripEntry, until_ms: int, emit: Emit) -> None:
    """What time alone does: the window ends without an arrival (``trip.not_arrived``)."""
    if track.ended or until_ms < trip.spec.end_ms:
        return
    details = {"end_ms": trip.spec.end_ms, "progress_m": round(track.progress_m, 1)}
    emit("trip.not_arrived", trip.id, "open", trip.spec.end_ms, details)
    finish(track, trip, trip.spec.end_ms, emit)
