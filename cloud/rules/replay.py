"""Replay: the same engine over recorded fixes, with its own clock; same input, same output.

The replay clock is the newest observation time seen in the input, over all assets
(shared/RULES.md): clock rules (windows starting and ending, stops confirmed and escalated, trips
not arriving) run on it, ``grace_s`` behind, as the service runs them behind the wall clock.
Fixes are taken in the order given (the order they arrived): one older than its asset's
evaluated time is late, and the asset is evaluated again from a checkpoint, exactly as in the
service, so a replay of an outage's backlog shows what the service showed, ``late`` flags
included. ``until_ms`` runs the clock on past the last fix.

Also the world file: ``{"assets": [...], "zones": [...], "lots": [...], "routes": [...],
"trips": [...]}``, assets as the API's ``POST /assets`` bodies (with ``id``), the others as its
GeoJSON Features (with ``id``; positions WGS-84).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import msgspec

import wire
from cloud.models import Asset, GeoObject
from cloud.rules.config import RulesConfig
from cloud.rules.engine import Engine, Outcome, base_for_late
from cloud.rules.events import Event
from cloud.rules.geometry import GeometryError, parse_geometry, to_geojson
from cloud.rules.objects import ObjectError, read
from cloud.rules.state import AssetState, encode_state
from cloud.rules.world import World

__all__ = ["WorldFileError", "replay", "world_from_document"]

_KINDS = {"zones": "zone", "lots": "lot", "routes": "route", "trips": "trip"}
_GEOMETRY = {
    "zone": ("Polygon", "MultiPolygon", "Point", "LineString", "MultiLineString"),
    "lot": ("Polygon", "MultiPolygon"),
    "route": ("LineString", "MultiLineString"),
    "trip": ("MultiPoint", "LineString"),
}


class WorldFileError(ValueError):
    """A world document the rules cannot use; the message names the object and field."""


def world_from_document(document: Mapping[str, Any], *, config: RulesConfig | None = None) -> World:
    """A world from a JSON document (see the module docstring).

    Raises:
        WorldFileError: naming where (``zones[3].properties.windows``) and what is wrong.
    """
    if not isinstance(document, Mapping):
        raise WorldFileError("the world is a JSON object with assets, zones, lots, routes, trips")
    assets = []
    for index, body in enumerate(document.get("assets", [])):
        try:
            assets.append(msgspec.convert(body, Asset))
        except msgspec.ValidationError as exc:
            raise WorldFileError(f"assets[{index}]: {exc}") from exc
    objects = []
    for key, kind in _KINDS.items():
        for index, feature in enumerate(document.get(key, [])):
            objects.append(_object(kind, feature, f"{key}[{index}]"))
    try:
        return World.build(objects, assets, config=config)
    except ObjectError as exc:
        raise WorldFileError(f"{exc.field}: {exc.detail}") from exc


def _object(kind: str, feature: Any, where: str) -> GeoObject:
    if not isinstance(feature, Mapping) or not isinstance(feature.get("properties"), Mapping):
        raise WorldFileError(f"{where}: a GeoJSON Feature with properties")
    props = dict(feature["properties"])
    object_id = feature.get("id") or props.get("id")
    if not isinstance(object_id, str) or not object_id:
        raise WorldFileError(f"{where}.id: required")
    try:
        geometry = to_geojson(parse_geometry(feature.get("geometry"), kinds=_GEOMETRY[kind]))
    except GeometryError as exc:
        raise WorldFileError(f"{where}.geometry: {exc}") from exc
    try:
        read(kind, props, geometry)  # the rules' reading of it, to name where it is wrong
    except ObjectError as exc:
        raise WorldFileError(f"{where} ({object_id}).{exc.field}: {exc.detail}") from exc
    try:
        return GeoObject(
            id=object_id,
            kind=kind,  # type: ignore[arg-type]  # one of the four
            name=str(props.pop("name", object_id)),
            geometry=geometry,
            enterprise_id=props.pop("enterprise_id", None),
            properties=props,
            version=int(props.pop("version", 1)),
            valid_from_ms=props.pop("valid_from_ms", None),
            valid_to_ms=props.pop("valid_to_ms", None),
            updated_ms=props.pop("updated_ms", None),
        )
    except (TypeError, ValueError) as exc:
        raise WorldFileError(f"{where}: {exc}") from exc


class _Memory:
    """What the service keeps in the live state and the archive, in memory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.states: dict[str, AssetState] = {}
        self.history: dict[str, list[wire.Fix]] = {}
        self.checkpoints: dict[str, list[tuple[int, bytes]]] = {}
        self.due: dict[str, int] = {}

    def take(self, outcome: Outcome) -> list[Event]:
        for asset_id, state in outcome.states.items():
            self.states[asset_id] = state
            due = outcome.due.get(asset_id)
            if due is None:
                self.due.pop(asset_id, None)
            else:
                self.due[asset_id] = due
            self._checkpoint(asset_id, state)
        return outcome.events

    def _checkpoint(self, asset_id: str, state: AssetState) -> None:
        thresholds = self.engine.world.thresholds(self.engine.world.asset(asset_id).asset_class)
        if state.clock_ms - state.checkpoint_ms < thresholds.checkpoint_every_s * 1000:
            return
        state.checkpoint_ms = state.clock_ms
        keep_after = state.clock_ms - thresholds.checkpoint_horizon_s * 1000
        kept = [c for c in self.checkpoints.get(asset_id, ()) if c[0] >= keep_after]
        self.checkpoints[asset_id] = [*kept, (state.clock_ms, encode_state(state))]

    def late(self, asset_id: str, fixes: list[wire.Fix], now_ms: int) -> list[Event]:
        current = self.states[asset_id]
        earliest = min(f.ts for f in fixes)
        checkpoints = self.checkpoints.get(asset_id, [])
        base, clock_ms, _ = base_for_late(current, checkpoints, earliest)
        mine = [f for f in self.history.get(asset_id, ()) if f.ts > clock_ms]
        outcome = self.engine.reevaluate(asset_id, current, base, mine, now_ms=now_ms)
        after, taken = outcome.checkpoints[asset_id]
        kept = [c for c in checkpoints if c[0] <= after]
        self.checkpoints[asset_id] = [*kept, *taken]
        return self.take(outcome)


def replay(
    world: World,
    fixes: Iterable[wire.Fix],
    *,
    until_ms: int | None = None,
    grace_s: float = 60.0,
) -> Iterator[Event]:
    """The events the rules find in ``fixes`` (in the order given), in the order found."""
    engine = Engine(world)
    memory = _Memory(engine)
    grace = int(grace_s * 1000)
    clock = -1
    ended = -1
    for fix in fixes:
        memory.history.setdefault(fix.asset, []).append(fix)
        if fix.ts > clock:
            clock = fix.ts
            ended = _trips_ending(engine, memory, ended, clock - grace)
            yield from _tick(engine, memory, clock - grace, skip=fix.asset)
        outcome = engine.evaluate({fix.asset: [fix]}, memory.states, now_ms=clock)
        yield from memory.take(outcome)
        for asset_id, late in outcome.late.items():
            yield from memory.late(asset_id, late, clock)
    final = max(clock, until_ms or -1)
    if final >= 0:
        _trips_ending(engine, memory, ended, final)
        yield from _tick(engine, memory, final, skip=None)


def _tick(engine: Engine, memory: _Memory, until: int, *, skip: str | None) -> list[Event]:
    due = sorted(a for a, when in memory.due.items() if when <= until and a != skip)
    if not due:
        return []
    states = {a: memory.states.get(a) or AssetState(clock_ms=until - 1) for a in due}
    return memory.take(engine.tick(states, until_ms=until))


def _trips_ending(engine: Engine, memory: _Memory, after: int, until: int) -> int:
    for trips in engine.world.trips.values():
        for trip in trips:
            if after < trip.spec.end_ms <= until:
                asset = trip.spec.asset_id
                memory.due[asset] = min(memory.due.get(asset, trip.spec.end_ms), trip.spec.end_ms)
                if asset not in memory.states:
                    memory.states[asset] = AssetState(clock_ms=trip.spec.start_ms - 1)
    return max(after, until)
