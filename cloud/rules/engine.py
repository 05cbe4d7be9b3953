"""The rules engine: each asset's fixes in observation order through the filters and the rules.

Pure: values in, values out, the time a parameter. :meth:`Engine.evaluate` takes a batch of
fixes of many assets with their states and returns new states and events; geometry is computed
for the whole batch at once (one projection, one spatial-index query, vectorized exact tests),
then each asset's fixes go through, in order:

1. the fix filters (shared/RULES.md), each a named step, every drop counted by reason:
   ``invalid``, ``duplicate``, ``future``, ``jump`` (implied speed above the class maximum);
   a low-quality fix (not ``good``, HDOP over the limit, too few satellites) is kept but not
   trusted: it moves the map, never confirms, opens or closes a zone, lot or route condition;
2. what time alone does up to the fix (windows start and end, dwell, stops confirmed and
   escalated, trips ending), at the times it happens;
3. the end of a silence, geofences, lots and parking, speed, fatigue, and the asset's trip.

Clock rules (what :meth:`Engine.tick` runs): zone windows and dwell, stops and lot stays, trips
ending, rests and fatigue limits reached between fixes, days ending, silences
(:meth:`_Run.due` says when each asset next needs the clock).

A fix older than what an asset has been evaluated up to is late: such an asset is returned in
``Outcome.late``, and :meth:`Engine.reevaluate` evaluates it again from a checkpoint of its state
taken before the earliest late fix, with every fix since; what that reveals is raised marked
``late``, and what was raised already is not raised again (see :func:`reconcile`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import shapely

import wire
from cloud.rules import fatigue, geofence, offline, parking, route, small_hours
from cloud.rules import speed as overspeed
from cloud.rules.config import Thresholds, resolve
from cloud.rules.events import CONDITIONS, Event
from cloud.rules.objects import ZoneSpec
from cloud.rules.state import (
    AssetState,
    Episode,
    TripTrack,
    ZoneTrack,
    decode_state,
    encode_state,
)
from cloud.rules.world import AssetInfo, TripEntry, World, ZoneEntry

__all__ = ["DROP_REASONS", "Engine", "Outcome", "base_for_late", "copy_state", "reconcile"]

#: Why a fix was dropped before the rules (counted per reason).
DROP_REASONS: Final = ("invalid", "duplicate", "future", "jump")
_EARTH_M: Final = 6_371_008.8
_LEDGER_KEEP: Final = 64


def copy_state(state: AssetState) -> AssetState:
    """A deep copy (the engine changes the state it is given)."""
    return decode_state(encode_state(state))


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * _EARTH_M * math.asin(min(1.0, math.sqrt(a))) / 1000


@dataclass
class Outcome:
    """What one evaluation produced."""

    states: dict[str, AssetState] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    #: assets with fixes older than their evaluated time: re-evaluate from a checkpoint
    late: dict[str, list[wire.Fix]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    #: when each evaluated asset next needs the clock (``None``: not until a fix comes)
    due: dict[str, int | None] = field(default_factory=dict)
    #: per re-evaluated asset: the time of its base and the checkpoints taken since
    #: (evaluated-until ms, state), which replace those kept after the base
    checkpoints: dict[str, tuple[int, list[tuple[int, bytes]]]] = field(default_factory=dict)


@dataclass
class _Geo:
    """Per-fix geometry of a batch."""

    xs: np.ndarray[Any, np.dtype[np.float64]]
    ys: np.ndarray[Any, np.dtype[np.float64]]
    near: dict[int, list[tuple[int, float]]]
    #: per fix index: the segment from the last trusted fix the batch expects before it (its
    #: time) and the zones that segment crosses, found for the whole batch at once; used when
    #: the run finds the same last trusted fix (else it asks the index itself)
    segments: dict[int, tuple[int, list[int]]] = field(default_factory=dict)


def _trusted(fix: wire.Fix, base: Thresholds) -> bool:
    """Whether a fix may open or close conditions (RULES.md: low quality moves the map only)."""
    if fix.quality != "good":
        return False
    if fix.hdop is not None and fix.hdop > base.hdop_max:
        return False
    return fix.sats is None or fix.sats >= base.min_sats


#: AIS navigation status "engaged in fishing".
AIS_FISHING_STATUS: Final = 7

#: Zones near which a vessel going silent has gone dark.
_DARK_KINDS: Final = frozenset({"restricted", "fishing_moratorium"})


class _Run:
    """One asset's evaluation: its state, thresholds and the events it emits."""

    def __init__(self, engine: Engine, asset_id: str, state: AssetState, out: list[Event]) -> None:
        self.engine = engine
        self.world = engine.world
        self.asset_id = asset_id
        self.state = state
        self.out = out
        self.lat, self.lon = state.last_lat, state.last_lon
        self.learn(self.world.asset(asset_id))

    def learn(self, info: AssetInfo) -> None:
        """Take what the world knows of the asset (an unregistered AIS target that said it was
        fishing is a fishing vessel)."""
        if info.asset_class is None and self.state.ais_fishing:
            info = AssetInfo(info.enterprise_id, "fishing_vessel")
        self.info = info
        self.asset_class = info.asset_class
        self.base = self.world.thresholds(info.asset_class)

    # -- events -----------------------------------------------------------------------------

    def emit(
        self, kind: str, ref: str, action: str, ts: int, details: Mapping[str, object]
    ) -> None:
        lat, lon = self.lat, self.lon
        if kind == "parking.outside_lot" and "stop_lat" in details:
            lat, lon = float(details["stop_lat"]), float(details["stop_lon"])  # type: ignore[arg-type]
        flags = ("crossed",) if details.get("crossed") else ()
        event = Event(
            asset=self.asset_id, kind=kind, ref=ref, action=action, ts=ts,  # type: ignore[arg-type]
            lat=round(lat, 7), lon=round(lon, 7), flags=flags,
            details={k: v for k, v in details.items() if k != "crossed"},
        )  # fmt: skip
        _record(self.state.ledger, event)
        self.out.append(event)

    # -- time -------------------------------------------------------------------------------

    def advance(self, until_ms: int) -> None:
        """What time alone does up to ``until_ms``."""
        state = self.state
        after = state.clock_ms
        if until_ms <= after:
            return
        for zone_id, track in list(state.zones.items()):
            zone = self.world_zone(zone_id, until_ms)
            if zone is None:
                continue
            thresholds = self.thresholds_for(zone)
            if zone.kind == "zone":
                geofence.advance(track, zone, after, until_ms, thresholds, self.emit)
            else:
                parking.lot_stay(track, zone, until_ms, self.emit)
        if self.asset_class in parking.PARKED_CLASSES:
            parking.advance(
                state.stop, self.asset_id, until_ms, self.base, self.parked_allowed, self.emit
            )
        if fatigue.watched(self.base):
            fatigue.advance(state.fatigue, self.asset_id, until_ms, self.base, self.emit)
        if state.small_hours.open_ms >= 0:
            small_hours.advance(state.small_hours, self.asset_id, until_ms, self.base, self.emit)
        offline.advance(
            state.offline, self.asset_id, until_ms, state.last_ms, state.last_speed_kmh,
            self.in_lot(), self.base, self.emit, self.dark_zones,
        )  # fmt: skip
        for trip in self.world.trips.get(self.asset_id, ()):
            # A trip whose window ends meanwhile is over, whether the asset sent fixes or not.
            ending = after < trip.spec.end_ms <= until_ms
            if not ending or trip.id in state.trips_done:
                continue
            if state.trip is None or state.trip.trip_id != trip.id:
                state.trip = TripTrack(trip_id=trip.id)
            route.advance(state.trip, trip, until_ms, self.emit)
            self.close_trip()
        state.clock_ms = until_ms

    def due(self) -> int | None:
        """The next time the clock alone changes something for this asset."""
        state = self.state
        times: list[int] = []
        for zone_id, track in state.zones.items():
            zone = self.world_zone(zone_id, state.clock_ms)
            if zone is None or not track.inside:
                continue
            spec = zone.spec
            if isinstance(spec, ZoneSpec):
                if spec.trigger == "forbidden":
                    change = spec.windows.next_change(state.clock_ms)
                    if change is not None:
                        times.append(change)
                if spec.trigger == "dwell" and "zone.dwell" not in track.open:
                    dwell_s = self.thresholds_for(zone).dwell_s
                    times.append(geofence.dwell_due(track, zone, dwell_s, state.clock_ms))
            elif spec.max_stay_s is not None and "parking.max_stay" not in track.open:
                times.append(track.since_ms + int(spec.max_stay_s * 1000))
        stop = state.stop
        if self.asset_class in parking.PARKED_CLASSES and stop.slow_since_ms is not None:
            confirmed = stop.slow_since_ms + int(self.base.stop_s * 1000)
            if stop.stop_ms is None:
                times.append(confirmed)
            elif stop.outside and not stop.escalated:
                times.append(confirmed + int(self.base.escalate_s * 1000))
        for trip in self.world.trips.get(self.asset_id, ()):
            if trip.id not in state.trips_done and trip.spec.end_ms > state.clock_ms:
                times.append(trip.spec.end_ms)
        clocked = [
            fatigue.due(state.fatigue, self.base) if fatigue.watched(self.base) else None,
            small_hours.due(state.small_hours, self.base),
            offline.due(
                state.offline, state.last_ms, state.last_speed_kmh, self.in_lot(), self.base
            ),
        ]
        times += [t for t in clocked if t is not None]
        future = [t for t in times if t > state.clock_ms]
        return min(future) if future else None

    def forget(self) -> None:
        """Forget raised episodes over for longer than late data is judged against them."""
        state = self.state
        cutoff = state.clock_ms - int(self.base.checkpoint_horizon_s * 1000)
        if cutoff <= state.ledger_from_ms + 600_000:
            return  # every ten minutes of observation time is often enough
        state.ledger_from_ms = cutoff
        for key in list(state.ledger):
            instant = key.partition("|")[0] not in CONDITIONS
            kept = [e for e in state.ledger[key] if not _over_by(e, cutoff, instant=instant)]
            if kept:
                state.ledger[key] = kept
            else:
                del state.ledger[key]

    # -- one fix ----------------------------------------------------------------------------

    def take(self, fix: wire.Fix, index: int, geo: _Geo, now_ms: int) -> str | None:
        """Filter and evaluate one fix; return why it was dropped, if it was."""
        state = self.state
        reason = self.filter(fix, now_ms)
        if reason is not None:
            state.dropped = {**state.dropped, reason: state.dropped.get(reason, 0) + 1}
            return reason
        self.advance(fix.ts - 1)
        if fix.nav_status == AIS_FISHING_STATUS and self.info.asset_class is None:
            state.ais_fishing = True
            self.learn(self.info)
        implied = self.implied_kmh(fix)
        speed = implied if fix.speed_kmh is None else fix.speed_kmh
        trusted = self.trusted(fix)
        self.lat, self.lon = fix.lat, fix.lon
        if state.last_ms >= 0:
            moved_m = _km(state.last_lat, state.last_lon, fix.lat, fix.lon) * 1000
            offline.on_fix(
                state.offline, self.asset_id, fix.ts, state.last_ms, moved_m, self.base, self.emit
            )
        xy = (float(geo.xs[index]), float(geo.ys[index]))
        if trusted:
            self.zones(fix, index, geo)
        if self.asset_class in parking.PARKED_CLASSES:
            parking.on_fix(
                state.stop, self.asset_id, fix.ts, fix.lat, fix.lon, speed, self.base,
                self.parked_allowed, self.emit,
            )  # fmt: skip
        if self.speeding(fix, trusted, implied):
            speed = implied  # (the distance covered belies the speed reported)
        if fatigue.watched(self.base):
            fatigue.on_fix(state.fatigue, self.asset_id, fix.ts, speed, self.base, self.emit)
        if self.info.long_distance:
            small_hours.on_fix(
                state.small_hours, self.asset_id, fix.ts, speed, self.base, self.emit
            )
        self.trip(fix, xy, speed, trusted)
        state.last_ms, state.last_lat, state.last_lon = fix.ts, fix.lat, fix.lon
        state.last_speed_kmh = speed
        if state.first_ms < 0:
            state.first_ms = fix.ts
        if trusted:
            state.trusted_ms, state.trusted_lat, state.trusted_lon = fix.ts, fix.lat, fix.lon
        self.advance(fix.ts)  # what the clock does at the fix's very time, after the fix
        return None

    def filter(self, fix: wire.Fix, now_ms: int) -> str | None:
        state, base = self.state, self.base
        if not (math.isfinite(fix.lat) and math.isfinite(fix.lon)) or (
            fix.lat == 0 and fix.lon == 0
        ):
            return "invalid"
        if fix.ts <= state.last_ms:
            return "duplicate"
        if fix.ts > now_ms + base.future_ms:
            return "future"
        if state.last_ms >= 0:
            hours = (fix.ts - state.last_ms) / 3_600_000
            if (
                _km(state.last_lat, state.last_lon, fix.lat, fix.lon)
                > base.max_speed_kmh * hours + 0.05
            ):
                return "jump"
        return None

    def trusted(self, fix: wire.Fix) -> bool:
        return _trusted(fix, self.base)

    def implied_kmh(self, fix: wire.Fix) -> float:
        state = self.state
        if state.last_ms < 0 or fix.ts <= state.last_ms:
            return 0.0
        hours = (fix.ts - state.last_ms) / 3_600_000
        return _km(state.last_lat, state.last_lon, fix.lat, fix.lon) / hours

    # -- speed ------------------------------------------------------------------------------

    def speeding(self, fix: wire.Fix, trusted: bool, implied_kmh: float) -> bool:
        """Judge a trusted fix's reported speed against the limit in force; return whether the
        distance from the previous fix contradicts a speed over it (not judged: counted as
        ``speed_contradicted``)."""
        state, reported = self.state, fix.speed_kmh
        if reported is None or not trusted:
            return False
        limit = overspeed.limit_at(self.base, fix.ts, self.speed_zones(fix.ts))
        gap_s = (fix.ts - state.last_ms) / 1000 if state.last_ms >= 0 else 0.0
        over = 0 < limit < reported
        if over and overspeed.contradicted(reported, implied_kmh, gap_s, self.base):
            reason = "speed_contradicted"
            state.dropped = {**state.dropped, reason: state.dropped.get(reason, 0) + 1}
            return True
        overspeed.on_fix(state.speed, self.asset_id, fix.ts, reported, limit, self.base, self.emit)
        return False

    def speed_zones(self, ts_ms: int) -> list[tuple[str, Thresholds, bool]]:
        """The zones confirmed inside and active at ``ts_ms``: (kind, thresholds, whether it
        posts its own speed limit)."""
        found = []
        for zone_id, track in self.state.zones.items():
            zone = self.world_zone(zone_id, ts_ms)
            if zone is None or not track.inside or not isinstance(zone.spec, ZoneSpec):
                continue
            if zone.spec.windows.active(ts_ms):
                posts = "speed_limit_kmh" in zone.overrides
                found.append((zone.spec.zone_kind, self.thresholds_for(zone), posts))
        return found

    # -- zones and lots ---------------------------------------------------------------------

    def in_lot(self) -> bool:
        """Whether the asset is confirmed inside a lot."""
        for zone_id, track in self.state.zones.items():
            zone = self.world_zone(zone_id, self.state.clock_ms)
            if zone is not None and zone.kind == "lot" and track.inside:
                return True
        return False

    def world_zone(self, zone_id: str, ts_ms: int) -> ZoneEntry | None:
        return self.engine.version_at(zone_id, ts_ms)

    def thresholds_for(self, zone: ZoneEntry) -> Thresholds:
        return self.engine.zone_thresholds(zone, self.asset_class, self.base)

    def zones(self, fix: wire.Fix, index: int, geo: _Geo) -> None:
        state, ts = self.state, fix.ts
        depths: dict[str, tuple[ZoneEntry, float]] = {}
        for zone_index, depth in geo.near.get(index, ()):
            zone = self.world.zones[zone_index]
            if zone.valid_at(ts) and zone.applies_to(self.info):
                depths[zone.id] = (zone, depth)
        for zone_id in state.zones:
            if zone_id not in depths:
                tracked = self.world_zone(zone_id, ts)
                if tracked is not None:
                    depths[zone_id] = (tracked, -self.world.reach_m)
        self.passages(fix, geo, index, depths)
        for zone_id, (zone, depth) in depths.items():
            track = state.zones.get(zone_id)
            if track is None:
                if depth <= 0:
                    continue  # outside and untracked: nothing to remember
                track = ZoneTrack()
            changed = geofence.on_fix(track, zone, ts, depth, self.thresholds_for(zone), self.emit)
            if zone.kind == "lot" and changed:
                if track.inside:
                    parking.on_lot_entry(state.stop, self.asset_id, track.since_ms, self.emit)
                else:
                    parking.lot_exit(track, zone, track.since_ms, self.emit)
                    if self.asset_class in parking.PARKED_CLASSES:
                        parking.on_lot_exit(state.stop, track.since_ms, fix.lat, fix.lon)
            if track.inside or track.pending is not None or track.open:
                state.zones[zone_id] = track
            else:
                state.zones.pop(zone_id, None)

    def passages(
        self, fix: wire.Fix, geo: _Geo, index: int, depths: Mapping[str, tuple[ZoneEntry, float]]
    ) -> None:
        """A straight segment from the last trusted fix that passes through a zone."""
        state, base = self.state, self.base
        if state.trusted_ms < 0 or fix.ts - state.trusted_ms > base.segment_max_s * 1000:
            return
        expected = geo.segments.get(index)
        if expected is not None and expected[0] == state.trusted_ms:
            crossed = expected[1]
        else:
            x1, y1 = float(geo.xs[index]), float(geo.ys[index])
            x0, y0 = self.world.project([state.trusted_lon], [state.trusted_lat])
            if math.hypot(x1 - float(x0[0]), y1 - float(y0[0])) <= 2 * self.world.reach_m:
                return  # so short that the ends, near any zone it crossed, decide
            crossed = sorted(self.world.crossed(float(x0[0]), float(y0[0]), x1, y1))
        for zone_index in crossed:
            zone = self.world.zones[zone_index]
            if zone.kind != "zone" or not zone.valid_at(fix.ts) or not zone.applies_to(self.info):
                continue
            if zone.id in depths and depths[zone.id][1] > 0:
                continue  # the fix itself is inside: membership decides
            geofence.passage(zone, state.zones.get(zone.id), fix.ts, self.emit)

    def dark_zones(self, ts_ms: int) -> list[str]:
        """Restricted and moratorium zones that apply at ``ts_ms``, inside or within
        ``dark_zone_m`` of the last fix (a vessel going dark there)."""
        state = self.state
        xs, ys = self.world.project([state.last_lon], [state.last_lat])
        point = shapely.points(float(xs[0]), float(ys[0]))
        hits = self.world.tree.query(point, predicate="dwithin", distance=self.base.dark_zone_m)
        found = set()
        for zone_index in hits.tolist():
            zone = self.world.zones[int(zone_index)]
            if (
                isinstance(zone.spec, ZoneSpec)
                and zone.spec.zone_kind in _DARK_KINDS
                and zone.valid_at(ts_ms)
                and zone.spec.windows.active(ts_ms)
                and zone.applies_to(self.info)
            ):
                found.add(zone.id)
        return sorted(found)

    def parked_allowed(self) -> bool:
        """Whether the stop is in a lot (confirmed, or its start position inside one) or in a
        ``no_stop_alert`` zone."""
        state = self.state
        if self.in_lot():
            return True
        xs, ys = self.world.project([state.stop.slow_lon], [state.stop.slow_lat])
        point = shapely.points(float(xs[0]), float(ys[0]))
        for zone_index in self.world.tree.query(point, predicate="intersects"):
            zone = self.world.zones[int(zone_index)]
            if not zone.valid_at(state.clock_ms) or not zone.applies_to(self.info):
                continue
            if zone.kind == "lot":
                return True
            if isinstance(zone.spec, ZoneSpec) and zone.spec.zone_kind == "no_stop_alert":
                return True
        return False

    # -- trips ------------------------------------------------------------------------------

    def current_trip(self, ts_ms: int) -> TripEntry | None:
        return self.world.trip_at(self.asset_id, ts_ms, self.base.trip_watch_before_s)

    def trip(self, fix: wire.Fix, xy: tuple[float, float], speed: float, trusted: bool) -> None:
        state = self.state
        trip = self.current_trip(fix.ts)
        if trip is None or trip.id in state.trips_done:
            return
        if state.trip is None or state.trip.trip_id != trip.id:
            state.trip = TripTrack(trip_id=trip.id)
        thresholds = resolve(self.base, trip.route.spec.overrides if trip.route else None,
                             trip.spec.overrides, where="trip")  # fmt: skip
        along = off = None
        if trip.route is not None and trusted:
            point = shapely.points(xy[0], xy[1])
            along = float(shapely.line_locate_point(trip.route.line, point))
            off = float(shapely.distance(trip.route.line, point)) - trip.route.half_width_at(along)
        route.on_fix(
            state.trip, trip, fix.ts, xy, speed, trusted, along, off, thresholds, self.emit
        )
        if state.trip.ended:
            self.close_trip()

    def close_trip(self) -> None:
        state = self.state
        if state.trip is not None:
            state.trips_done = [*state.trips_done, state.trip.trip_id][-16:]
            state.trip = None


def base_for_late(
    current: AssetState, checkpoints: Sequence[tuple[int, bytes]], earliest_ms: int
) -> tuple[AssetState, int, bool]:
    """Where a re-evaluation for a late fix at ``earliest_ms`` starts: the newest checkpoint
    before it; a fresh state if the fix is older than anything the asset ever had; else (older
    than every checkpoint kept) the oldest checkpoint.

    Returns:
        The base state, the time fixes are needed after, and whether it is exact.
    """
    before = [c for c in checkpoints if c[0] < earliest_ms]
    if before:
        return decode_state(before[-1][1]), before[-1][0], True
    if current.first_ms < 0 or earliest_ms < current.first_ms:
        return AssetState(), earliest_ms - 1, True
    if checkpoints:
        return decode_state(checkpoints[0][1]), checkpoints[0][0], False
    return AssetState(), -1, False


class Engine:
    """Evaluates fixes against one :class:`World` (build a new engine for a new world)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._versions: dict[str, list[ZoneEntry]] = {}
        for zone in world.zones:
            self._versions.setdefault(zone.id, []).append(zone)
        self._thresholds: dict[tuple[int, str | None], Thresholds] = {}

    def version_at(self, zone_id: str, ts_ms: int) -> ZoneEntry | None:
        """The version of a zone or lot in force at ``ts_ms``."""
        for zone in self._versions.get(zone_id, ()):
            if zone.valid_at(ts_ms):
                return zone
        return None

    def zone_thresholds(
        self, zone: ZoneEntry, asset_class: str | None, base: Thresholds
    ) -> Thresholds:
        key = (zone.index, asset_class)
        found = self._thresholds.get(key)
        if found is None:
            found = resolve(base, zone.overrides, where=f"{zone.kind} {zone.id}")
            self._thresholds[key] = found
        return found

    # -- batches ----------------------------------------------------------------------------

    def _geometry(self, fixes: Sequence[wire.Fix]) -> _Geo:
        lons = np.fromiter((f.lon for f in fixes), float, len(fixes))
        lats = np.fromiter((f.lat for f in fixes), float, len(fixes))
        xs, ys = self.world.project(lons, lats)
        fix_idx, zone_idx = self.world.near(xs, ys)
        near: dict[int, list[tuple[int, float]]] = {}
        if len(fix_idx):
            shapes = self.world.shapes[zone_idx]
            inside = shapely.contains_xy(shapes, xs[fix_idx], ys[fix_idx])
            boundaries = self.world.boundaries[zone_idx]
            dist = shapely.distance(boundaries, shapely.points(xs[fix_idx], ys[fix_idx]))
            depth = np.where(inside, dist, -dist)
            for f, z, d in zip(fix_idx.tolist(), zone_idx.tolist(), depth.tolist(), strict=True):
                near.setdefault(f, []).append((z, d))
        return _Geo(xs=xs, ys=ys, near=near)

    def _segments(
        self,
        geo: _Geo,
        ordered: Sequence[tuple[str, Sequence[wire.Fix]]],
        states: Mapping[str, AssetState],
    ) -> dict[int, tuple[int, list[int]]]:
        """The segments the batch's fixes will test for crossings (see :meth:`_Run.passages`),
        as expected before the run: from each asset's last trusted fix, then from each of its
        trusted fixes of the batch; projected, length-checked and queried all at once."""
        world = self.world
        index = 0
        found: list[tuple[int, int, float, float]] = []  # fix index, start ts, lon, lat
        for asset_id, mine in ordered:
            base = world.thresholds(world.asset(asset_id).asset_class)
            span_ms = base.segment_max_s * 1000
            state = states.get(asset_id)
            start = None
            if state is not None and state.trusted_ms >= 0:
                start = (state.trusted_ms, state.trusted_lon, state.trusted_lat)
            for fix in mine:
                if start is not None and 0 < fix.ts - start[0] <= span_ms:
                    found.append((index, *start))
                if _trusted(fix, base):
                    start = (fix.ts, fix.lon, fix.lat)
                index += 1
        if not found:
            return {}
        at = np.fromiter((f[0] for f in found), np.intp, len(found))
        x0, y0 = world.project([f[2] for f in found], [f[3] for f in found])
        x1, y1 = geo.xs[at], geo.ys[at]
        segments: dict[int, tuple[int, list[int]]] = {f[0]: (f[1], []) for f in found}
        long = np.flatnonzero(np.hypot(x1 - x0, y1 - y0) > 2 * world.reach_m)
        if len(long) and world.zones:
            ends = np.stack(
                [np.column_stack([x0[long], y0[long]]), np.column_stack([x1[long], y1[long]])],
                axis=1,
            )
            hits = world.tree.query(shapely.linestrings(ends), predicate="intersects")
            for segment, zone_index in zip(hits[0].tolist(), hits[1].tolist(), strict=True):
                segments[int(at[long[segment]])][1].append(zone_index)
            for _, crossed in segments.values():
                crossed.sort()
        return segments

    def evaluate(
        self,
        fixes: Mapping[str, Sequence[wire.Fix]],
        states: Mapping[str, AssetState],
        *,
        now_ms: int,
    ) -> Outcome:
        """Evaluate each asset's new fixes (any order within the batch) on its state.

        The states given are not changed; the outcome holds new ones. An asset with a fix at
        or before the time it was evaluated up to is not evaluated: it is in ``Outcome.late``.
        """
        outcome = Outcome()
        ordered: list[tuple[str, list[wire.Fix]]] = []
        for asset_id, listed in fixes.items():
            state = states.get(asset_id) or AssetState()
            mine = sorted(listed, key=lambda f: (f.ts, f.seq))
            if mine and mine[0].ts <= state.clock_ms and state.clock_ms >= 0:
                outcome.late[asset_id] = mine
                continue
            ordered.append((asset_id, mine))
        flat = [fix for _, mine in ordered for fix in mine]
        geo = self._geometry(flat) if flat else _Geo(np.empty(0), np.empty(0), {})
        if flat:
            geo.segments = self._segments(geo, ordered, states)
        index = 0
        for asset_id, mine in ordered:
            state = copy_state(states.get(asset_id) or AssetState())
            run = _Run(self, asset_id, state, outcome.events)
            for fix in mine:
                dropped = run.take(fix, index, geo, now_ms)
                if dropped is not None:
                    outcome.dropped[dropped] = outcome.dropped.get(dropped, 0) + 1
                index += 1
            run.forget()
            outcome.states[asset_id] = state
            outcome.due[asset_id] = run.due()
        return outcome

    def tick(self, states: Mapping[str, AssetState], *, until_ms: int) -> Outcome:
        """What time alone does up to ``until_ms`` for these assets (the clock rules)."""
        outcome = Outcome()
        for asset_id, given in states.items():
            if (given.clock_ms < 0 or until_ms <= given.clock_ms) and not given.outbox:
                continue  # (an outbox not applied yet: returned, for another try)
            state = copy_state(given)
            run = _Run(self, asset_id, state, outcome.events)
            run.advance(until_ms)
            run.forget()
            outcome.states[asset_id] = state
            outcome.due[asset_id] = run.due()
        return outcome

    def reevaluate(
        self,
        asset_id: str,
        current: AssetState,
        checkpoint: AssetState,
        fixes: Iterable[wire.Fix],
        *,
        now_ms: int,
    ) -> Outcome:
        """Evaluate an asset again from ``checkpoint`` (its state before the earliest late fix)
        with every fix since, up to where it had been evaluated; raise only what differs from
        what was raised (see :func:`reconcile`).

        The checkpoints kept after ``checkpoint`` were made without the late fixes: the outcome's
        ``checkpoints`` replace them (taken every ``checkpoint_every_s`` along the way).

        Args:
            current: the asset's state now (its ledger says what was raised).
            checkpoint: a state of the asset taken before the earliest late fix.
            fixes: the fixes after the checkpoint (archived and new, any order, repeats allowed).
        """
        # What was evaluated was not from the future then: a late fix's receive time is no
        # reason to drop them now.
        now_ms = max(now_ms, current.clock_ms)
        state = copy_state(checkpoint)
        state.version = current.version
        state.outbox = []  # (the checkpoints taken on the way are made without it)
        raw: list[Event] = []
        mine = sorted({(f.ts, f.seq): f for f in fixes}.values(), key=lambda f: (f.ts, f.seq))
        geo = self._geometry(mine) if mine else _Geo(np.empty(0), np.empty(0), {})
        run = _Run(self, asset_id, state, raw)
        outcome = Outcome()
        taken: list[tuple[int, bytes]] = []
        outcome.checkpoints[asset_id] = (checkpoint.clock_ms, taken)
        every = int(run.base.checkpoint_every_s * 1000)
        for index, fix in enumerate(mine):
            if state.clock_ms >= 0 and state.clock_ms - state.checkpoint_ms >= every:
                state.checkpoint_ms = state.clock_ms
                taken.append((state.clock_ms, encode_state(state)))
            dropped = run.take(fix, index, geo, now_ms)
            if dropped is not None:
                outcome.dropped[dropped] = outcome.dropped.get(dropped, 0) + 1
        run.advance(max(current.clock_ms, state.clock_ms))
        span = _Span(checkpoint.ledger, current.ledger_from_ms)
        outcome.events = reconcile(asset_id, current.ledger, state.ledger, span)
        state.ledger = _merged_ledger(current.ledger, state.ledger, span)
        state.ledger_from_ms = current.ledger_from_ms
        state.outbox = list(current.outbox)  # what was decided and not applied yet still is
        run.forget()
        outcome.states[asset_id] = state
        outcome.due[asset_id] = run.due()
        return outcome


# -- the ledger of raised events ------------------------------------------------------------


def _key(event: Event) -> str:
    return f"{event.kind}|{event.ref}"


def _record(ledger: dict[str, list[Episode]], event: Event) -> None:
    key = _key(event)
    episodes = ledger.setdefault(key, [])
    if event.kind not in CONDITIONS:
        if event.action == "open":
            episodes.append(Episode(open_ms=event.ts, close_ms=event.ts, details=event.details,
                                    lat=event.lat, lon=event.lon))  # fmt: skip
    elif event.action == "open":
        episodes.append(
            Episode(open_ms=event.ts, details=event.details, lat=event.lat, lon=event.lon)
        )
    elif episodes:
        last = episodes[-1]
        if event.action == "close":
            last.close_ms = event.ts
            last.close_details = event.details
        elif event.action == "escalate":
            last.escalated = True
            last.escalated_ms = event.ts
    del episodes[:-_LEDGER_KEEP]


def _overlaps(a: Episode, b: Episode) -> bool:
    a_end = math.inf if a.close_ms is None else a.close_ms
    b_end = math.inf if b.close_ms is None else b.close_ms
    return a.open_ms <= b_end and b.open_ms <= a_end


def _over_by(episode: Episode, ts_ms: int, *, instant: bool) -> bool:
    end = episode.open_ms if instant else episode.close_ms
    return end is not None and end <= ts_ms


class _Span:
    """Which episodes a re-evaluation judges again: all but those over in the checkpoint it
    started from (the run starts with them closed, and the ledger had them closed) and those
    forgotten (over before ``floor_ms``, see ``AssetState.ledger_from_ms``).

    Not simply "over before the checkpoint's time": an event's time may precede the time it was
    decided (a truck moved on at the first fast fix, decided a minute later), so an episode can
    be open in a checkpoint and closed, in the ledger, at a time before it.
    """

    def __init__(self, settled: Mapping[str, list[Episode]], floor_ms: int) -> None:
        self.floor_ms = floor_ms
        self.opens: dict[str, set[int]] = {}
        self.closes: dict[str, set[int]] = {}
        for key, episodes in settled.items():
            over = [e for e in episodes if e.close_ms is not None]
            self.opens[key] = {e.open_ms for e in over}
            self.closes[key] = {e.close_ms for e in over if e.close_ms is not None}

    def judged(self, key: str, episodes: Iterable[Episode]) -> list[Episode]:
        instant = key.partition("|")[0] not in CONDITIONS
        opens, closes = self.opens.get(key, set()), self.closes.get(key, set())
        kept = []
        for episode in episodes:
            if _over_by(episode, self.floor_ms, instant=instant):
                continue
            if episode.open_ms in opens or (not instant and episode.close_ms in closes):
                continue
            kept.append(episode)
        return kept


def reconcile(
    asset_id: str,
    raised: Mapping[str, list[Episode]],
    found: Mapping[str, list[Episode]],
    span: _Span,
) -> list[Event]:
    """The events that bring what was raised (``raised``, the ledger) in line with what a
    re-evaluation found (``found``, its ledger), over the episodes it judged again (``span``).
    All are marked ``late``.

    Per condition, episodes of the two that overlap in time are the same alert (paired in
    order). The alert keeps its identity; what differs is corrected by one ``update``:
    ``start_ms`` (and ``was_ms``, the start raised, if it moved), ``end_ms`` if the close
    moved or was undone (``None``: open after all), ``escalated`` if that changed (unless
    the alert is open and now escalates: that is an ``escalate``); a close not raised yet is
    raised. A found episode with no partner is raised anew: ``open`` (and ``escalate``), or,
    if over already, one ``open`` with ``end_ms`` and ``escalated`` in its details (a closed
    alert). A raised one with no partner is withdrawn (``withdraw``): the data that arrived
    since shows it did not happen (a stop inferred across a gap that the backlog fills with
    driving). Instant findings match on their time. Withdrawals come first.
    """
    out: list[Event] = []
    for key in sorted(set(raised) | set(found)):
        instant = key.partition("|")[0] not in CONDITIONS
        old = span.judged(key, raised.get(key, ()))
        new = span.judged(key, found.get(key, ()))

        event = functools.partial(_late_event, asset_id, key)

        if instant:
            old_times = {e.open_ms for e in old}
            new_times = {e.open_ms for e in new}
            out += [
                event("open", e.open_ms, e, e.details) for e in new if e.open_ms not in old_times
            ]
            out += [
                event("withdraw", e.open_ms, e, {"start_ms": e.open_ms})
                for e in old
                if e.open_ms not in new_times
            ]
            continue
        unpaired = list(old)
        for episode in new:
            match = next((o for o in unpaired if _overlaps(o, episode)), None)
            if match is None:
                if episode.close_ms is not None:  # over already: one event says it all
                    details = {**episode.details, **episode.close_details,
                               "end_ms": episode.close_ms, "escalated": episode.escalated}  # fmt: skip
                    out.append(event("open", episode.open_ms, episode, details))
                    continue
                out.append(event("open", episode.open_ms, episode, episode.details))
                if episode.escalated:
                    out.append(event("escalate", episode.escalated_ms, episode, {}))
                continue
            unpaired.remove(match)
            fixes: dict[str, Any] = {}
            if episode.open_ms != match.open_ms:
                fixes["was_ms"] = match.open_ms
            escalate = episode.escalated and not match.escalated and match.close_ms is None
            if episode.escalated != match.escalated and not escalate:
                fixes["escalated"] = episode.escalated
            if match.close_ms is not None and episode.close_ms != match.close_ms:
                fixes["end_ms"] = episode.close_ms
            if fixes:
                details = {**episode.details, "start_ms": episode.open_ms, **fixes}
                out.append(event("update", episode.open_ms, episode, details))
            if escalate:
                out.append(event("escalate", episode.escalated_ms, episode, {}))
            if episode.close_ms is not None and match.close_ms is None:
                out.append(event("close", episode.close_ms, episode, episode.close_details))
        for gone in unpaired:
            out.append(event("withdraw", gone.open_ms, gone, {"start_ms": gone.open_ms}))
    # Withdrawals first: an alert raised anew may take the place of one withdrawn.
    out.sort(key=lambda e: (e.action != "withdraw", e.ts, _ORDER[e.action]))
    return out


def _late_event(
    asset_id: str, key: str, action: str, ts: int, episode: Episode, details: Mapping[str, Any]
) -> Event:
    kind, _, ref = key.partition("|")
    return Event(
        asset=asset_id, kind=kind, ref=ref, action=action, ts=ts,  # type: ignore[arg-type]
        lat=episode.lat, lon=episode.lon, flags=("late",), details=dict(details),
    )  # fmt: skip


#: Within one time: corrections before what is raised anew.
_ORDER: Final = {"withdraw": 0, "update": 1, "open": 2, "escalate": 3, "close": 4}


def _merged_ledger(
    raised: Mapping[str, list[Episode]], found: Mapping[str, list[Episode]], span: _Span
) -> dict[str, list[Episode]]:
    """The ledger after :func:`reconcile`: what was raised and not judged again, and what was
    found where it was (the alerts now say that)."""
    merged: dict[str, list[Episode]] = {}
    for key in set(raised) | set(found):
        again = {id(e) for e in span.judged(key, raised.get(key, ()))}
        kept = [e for e in raised.get(key, ()) if id(e) not in again]
        episodes = sorted([*kept, *span.judged(key, found.get(key, ()))], key=lambda e: e.open_ms)
        if episodes:
            merged[key] = episodes[-_LEDGER_KEEP:]
    return merged
