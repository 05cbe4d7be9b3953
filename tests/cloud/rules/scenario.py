"""Scenario tables for the rules: a small world near Jiangyin in metres, timestamped fixes.

Positions are written in metres east/north of ORIGIN (converted to WGS-84 through the world's
own kind of projection), times in seconds from T0, so a table reads like the situation it tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import wire
from cloud.models import Asset, GeoObject
from cloud.rules.engine import Engine
from cloud.rules.events import Event
from cloud.rules.geometry import LocalProjection
from cloud.rules.state import AssetState
from cloud.rules.world import World

ORIGIN = (120.285, 31.905)  # lon, lat: the Jiangyin chemical park
#: 2026-07-01 10:00 Beijing time (02:00 UTC)
T0 = 1_782_871_200_000
PROJ = LocalProjection(*ORIGIN)
_seq = itertools.count(1)


def lonlat(x: float, y: float) -> tuple[float, float]:
    """Metres east/north of ORIGIN to (lon, lat)."""
    import shapely

    point = PROJ.to_wgs84(shapely.Point(x, y))
    return float(point.x), float(point.y)


def ring(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    return [list(lonlat(x, y)) for x, y in corners]


def zone(zone_id: str, box: tuple[float, float, float, float], **properties: Any) -> GeoObject:
    """A rectangular zone (``box`` in metres: x0, y0, x1, y1)."""
    geometry = {"type": "Polygon", "coordinates": [ring(*box)]}
    props = {"zone_kind": "restricted", **properties}
    return GeoObject(id=zone_id, kind="zone", name=zone_id, geometry=geometry, properties=props)


def lot(lot_id: str, box: tuple[float, float, float, float], **properties: Any) -> GeoObject:
    geometry = {"type": "Polygon", "coordinates": [ring(*box)]}
    return GeoObject(id=lot_id, kind="lot", name=lot_id, geometry=geometry, properties=properties)


def route_obj(route_id: str, points: Sequence[tuple[float, float]], **properties: Any) -> GeoObject:
    geometry = {"type": "LineString", "coordinates": [list(lonlat(x, y)) for x, y in points]}
    return GeoObject(
        id=route_id, kind="route", name=route_id, geometry=geometry, properties=properties
    )


def trip_obj(trip_id: str, stops: Sequence[tuple[float, float]], **properties: Any) -> GeoObject:
    geometry = {"type": "MultiPoint", "coordinates": [list(lonlat(x, y)) for x, y in stops]}
    return GeoObject(
        id=trip_id, kind="trip", name=trip_id, geometry=geometry, properties=properties
    )


def world(*objects: GeoObject, assets: Mapping[str, str] | None = None) -> World:
    """A world of these objects; ``assets`` maps asset id -> class (default: one hazmat truck)."""
    classes = assets or {"truck": "hazmat_truck"}
    registered = [Asset(id=a, enterprise_id="e1", asset_class=c) for a, c in classes.items()]  # type: ignore[arg-type]
    return World.build(objects, registered)


def fix(
    t_s: float,
    x: float,
    y: float,
    *,
    asset: str = "truck",
    speed: float | None = 30.0,
    quality: wire.FixQuality = "good",
    hdop: float | None = 0.9,
) -> wire.Fix:
    """A fix ``t_s`` seconds after T0 at (x, y) metres."""
    lon, lat = lonlat(x, y)
    return wire.Fix(
        seq=next(_seq), ts=T0 + int(t_s * 1000), asset=asset, lat=lat, lon=lon,
        speed_kmh=speed, quality=quality, hdop=hdop, sats=12,
    )  # fmt: skip


def run(
    the_world: World,
    fixes: Iterable[wire.Fix],
    *,
    batch: int = 1,
    until_s: float | None = None,
) -> tuple[list[Event], dict[str, AssetState]]:
    """Fixes in order through the engine, ``batch`` at a time; the clock ticks to ``until_s``."""
    engine = Engine(the_world)
    states: dict[str, AssetState] = {}
    events: list[Event] = []
    listed = list(fixes)
    for start in range(0, len(listed), batch):
        chunk: dict[str, list[wire.Fix]] = {}
        for item in listed[start : start + batch]:
            chunk.setdefault(item.asset, []).append(item)
        newest = max(f.ts for f in listed[start : start + batch])
        outcome = engine.evaluate(chunk, states, now_ms=newest)
        assert not outcome.late, "scenario fixes are in order"
        states.update(outcome.states)
        events += outcome.events
    if until_s is not None:
        outcome = engine.tick(states, until_ms=T0 + int(until_s * 1000))
        states.update(outcome.states)
        events += outcome.events
    return events, states


def brief(events: Iterable[Event]) -> list[tuple[str, str, str, float]]:
    """(kind, ref, action, seconds after T0) of each event."""
    return [(e.kind, e.ref, e.action, (e.ts - T0) / 1000) for e in events]
