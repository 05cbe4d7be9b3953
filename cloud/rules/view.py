"""An asset's rule state as a person reads it: the zones it is in, what is about to change, its
stop timer and its trip's progress.

Pure: a decoded :class:`~cloud.rules.state.AssetState` and the :class:`~cloud.rules.world.World`
(for names, route lengths, checkpoints, thresholds) in, a view out; the API answers it as it is.
Times are UTC epoch ms (``None``: not yet, or never); distances metres along the route in the
world's metric plane.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

import msgspec

from cloud.rules.config import Thresholds, resolve
from cloud.rules.objects import ZoneSpec
from cloud.rules.parking import PARKED_CLASSES
from cloud.rules.state import AssetState, Pending, TripTrack
from cloud.rules.world import TripEntry, World, ZoneEntry

__all__ = [
    "AssetRules",
    "PendingChange",
    "StopTimer",
    "TripPhase",
    "TripProgress",
    "ZoneStay",
    "asset_rules",
    "find_trip",
    "trip_view",
]

TripState = Literal["not started", "under way", "done"]
#: Who may read what a zone or lot is called (its enterprise; ``None``: shared).
Visible = Callable[[str | None], bool]
_MS_PER_S: Final = 1000.0


class ZoneStay(msgspec.Struct):
    """A zone or lot the asset is confirmed inside."""

    id: str
    kind: str  # "zone" or "lot"
    #: ``None`` when the caller may not see it (another enterprise's) or it is gone
    name: str | None
    zone_kind: str | None
    since_ms: int
    #: open conditions and when each opened (``{"zone.forbidden": ms}``)
    open: dict[str, int]


class PendingChange(msgspec.Struct):
    """An entry or exit seen but not confirmed yet (fixes on the other side of a boundary)."""

    id: str
    kind: str
    name: str | None
    change: Literal["entry", "exit"]
    fixes: int
    first_ms: int
    last_ms: int
    #: whether one of the fixes lay far enough past the boundary (hysteresis)
    deep: bool


class StopTimer(msgspec.Struct):
    """Stopping and moving on (designated parking; ``watched``: the class may stop only in
    lots)."""

    watched: bool
    slow_since_ms: int | None
    #: when the slow spell becomes a stop, if it goes on (``None``: confirmed, or not slow)
    confirms_ms: int | None
    stop_ms: int | None
    outside_lot: bool
    escalated: bool
    escalates_ms: int | None
    moving_since_ms: int | None


class TripPhase(msgspec.Struct):
    """A trip the asset is not on: ``not started`` (not yet watched, or not moved) or
    ``done`` (arrived, or its window ended)."""

    state: TripState


class TripProgress(msgspec.Struct):
    """The asset's current trip."""

    state: TripState
    trip_id: str
    route_id: str | None
    start_ms: int | None
    end_ms: int | None
    started_ms: int | None
    progress_m: float
    route_length_m: float | None
    remaining_m: float | None
    percent: float | None
    checkpoints: int
    passed: list[int]
    skipped: list[int]
    next_checkpoint: int | None
    off_route: bool
    off_route_since_ms: int | None
    speed_kmh: float
    #: at the current speed, from the last fix (``None``: stopped, no route, or arrived)
    eta_ms: int | None
    arrived: bool
    arrived_ms: int | None


class AssetRules(msgspec.Struct):
    """What the rules hold of one asset now."""

    asset_id: str
    #: observation time the asset has been evaluated up to (fixes and clock)
    evaluated_ms: int | None
    last_fix_ms: int | None
    #: compare-and-set version of the stored state (0: none stored)
    state_version: int
    #: the world snapshot the view was made with (the registry version)
    world: str
    zones: list[ZoneStay]
    pending: list[PendingChange]
    stop: StopTimer
    trip: TripProgress | None
    trips_done: list[str]
    #: fixes dropped by the filters, by reason
    dropped: dict[str, int]


def _everyone(_: str | None) -> bool:
    return True


def _time(ms: int | None) -> int | None:
    return None if ms is None or ms < 0 else ms


def asset_rules(
    asset_id: str, state: AssetState, world: World, *, visible: Visible = _everyone
) -> AssetRules:
    """The view of one asset's rule state.

    Args:
        visible: whether the caller may read the name of a zone or lot of an enterprise.
    """
    zones: list[ZoneStay] = []
    pending: list[PendingChange] = []
    for zone_id, track in sorted(state.zones.items()):
        entry = _zone_entry(world, zone_id, state.clock_ms)
        name = entry.name if entry is not None and visible(entry.enterprise_id) else None
        kind = entry.kind if entry is not None else "zone"
        if track.inside:
            zone_kind = _zone_kind(entry) if name is not None else None
            stay = ZoneStay(
                id=zone_id, kind=kind, name=name, zone_kind=zone_kind, since_ms=track.since_ms,
                open=dict(track.open),
            )  # fmt: skip
            zones.append(stay)
        if track.pending is not None:
            pending.append(_pending(zone_id, kind, name, track.pending))
    trip = None
    if state.trip is not None:
        trip = _progress(state, state.trip, find_trip(world, state.trip.trip_id), world)
    return AssetRules(
        asset_id=asset_id,
        evaluated_ms=_time(state.clock_ms),
        last_fix_ms=_time(state.last_ms),
        state_version=state.version,
        world=world.label,
        zones=zones,
        pending=pending,
        stop=_stop(state, world.asset(asset_id).asset_class, world),
        trip=trip,
        trips_done=list(state.trips_done),
        dropped=dict(state.dropped),
    )


def trip_view(trip_id: str, state: AssetState, world: World) -> TripProgress | TripPhase:
    """A trip's progress, from the state of its asset."""
    if state.trip is not None and state.trip.trip_id == trip_id:
        return _progress(state, state.trip, find_trip(world, trip_id), world)
    entry = find_trip(world, trip_id)
    ended = entry is not None and 0 <= entry.spec.end_ms <= state.clock_ms
    return TripPhase("done" if trip_id in state.trips_done or ended else "not started")


def find_trip(world: World, trip_id: str) -> TripEntry | None:
    """A trip of the world by its id."""
    for trips in world.trips.values():
        for trip in trips:
            if trip.id == trip_id:
                return trip
    return None


# -- zones ----------------------------------------------------------------------------------


def _zone_entry(world: World, zone_id: str, ts_ms: int) -> ZoneEntry | None:
    """The version of a zone or lot in force at ``ts_ms`` (else its newest)."""
    versions = [z for z in world.zones if z.id == zone_id]
    for zone in versions:
        if zone.valid_at(ts_ms):
            return zone
    return max(versions, key=lambda z: z.version) if versions else None


def _zone_kind(entry: ZoneEntry | None) -> str | None:
    if entry is None:
        return None
    return entry.spec.zone_kind if isinstance(entry.spec, ZoneSpec) else "lot"


def _pending(zone_id: str, kind: str, name: str | None, pending: Pending) -> PendingChange:
    change: Literal["entry", "exit"] = "entry" if pending.inside else "exit"
    return PendingChange(
        id=zone_id, kind=kind, name=name, change=change, fixes=pending.count,
        first_ms=pending.first_ms, last_ms=pending.last_ms, deep=pending.deep,
    )  # fmt: skip


# -- stops ----------------------------------------------------------------------------------


def _stop(state: AssetState, asset_class: str | None, world: World) -> StopTimer:
    stop = state.stop
    base = world.thresholds(asset_class)
    slow = stop.slow_since_ms if stop.fast_since_ms is None else None
    confirms = escalates = None
    if slow is not None:
        confirmed_at = slow + int(base.stop_s * _MS_PER_S)
        confirms = confirmed_at if stop.stop_ms is None else None
        if stop.outside and not stop.escalated:
            escalates = confirmed_at + int(base.escalate_s * _MS_PER_S)
    return StopTimer(
        watched=asset_class in PARKED_CLASSES,
        slow_since_ms=stop.slow_since_ms,
        confirms_ms=confirms,
        stop_ms=stop.stop_ms,
        outside_lot=stop.outside,
        escalated=stop.escalated,
        escalates_ms=escalates,
        moving_since_ms=stop.fast_since_ms,
    )


# -- trips ----------------------------------------------------------------------------------


def _progress(
    state: AssetState, track: TripTrack, trip: TripEntry | None, world: World
) -> TripProgress:
    route = trip.route if trip is not None else None
    length = route.length_m if route is not None else None
    remaining = None if length is None else max(length - track.progress_m, 0.0)
    percent = None
    if length:
        percent = round(min(track.progress_m / length, 1.0) * 100, 1)
    count = len(trip.checkpoints) if trip is not None else track.next_checkpoint
    passed = [i for i in range(track.next_checkpoint) if i not in track.skipped]
    done = track.ended or track.arrived_ms is not None
    return TripProgress(
        state="done" if done else "not started" if track.started_ms is None else "under way",
        trip_id=track.trip_id,
        route_id=trip.spec.route_id if trip is not None else None,
        start_ms=trip.spec.start_ms if trip is not None else None,
        end_ms=trip.spec.end_ms if trip is not None else None,
        started_ms=track.started_ms,
        progress_m=round(track.progress_m, 1),
        route_length_m=None if length is None else round(length, 1),
        remaining_m=None if remaining is None else round(remaining, 1),
        percent=percent,
        checkpoints=count,
        passed=passed,
        skipped=list(track.skipped),
        next_checkpoint=track.next_checkpoint if track.next_checkpoint < count else None,
        off_route=track.off,
        off_route_since_ms=track.off_since_ms if track.off else None,
        speed_kmh=track.speed_kmh,
        eta_ms=None if done else _eta(state, track, trip, remaining, world),
        arrived=track.arrived_ms is not None,
        arrived_ms=track.arrived_ms,
    )


def _eta(
    state: AssetState,
    track: TripTrack,
    trip: TripEntry | None,
    remaining_m: float | None,
    world: World,
) -> int | None:
    """When the asset reaches the end of the route at its current speed (from its last fix)."""
    if trip is None or remaining_m is None or track.started_ms is None:
        return None
    if track.speed_kmh <= _trip_thresholds(trip, world).stop_speed_kmh:
        return None
    since = state.last_ms if state.last_ms >= 0 else state.clock_ms
    return since + round(remaining_m / (track.speed_kmh / 3.6) * _MS_PER_S)


def _trip_thresholds(trip: TripEntry, world: World) -> Thresholds:
    base = world.thresholds(world.asset(trip.spec.asset_id).asset_class)
    route_overrides = trip.route.spec.overrides if trip.route is not None else None
    return resolve(base, route_overrides, trip.spec.overrides, where="trip")
