"""A synthetic province for the rules benchmarks: zones, lots, routes, trips, assets and fixes.

Around Jiangsu (lon 118-122, lat 30.8-35), drawn in a metric plane and handed over in WGS-84 as
the API stores it. Roads are smooth random polylines; routes are stretches of roads, each with a
trip (origin, three checkpoints, destination) for one hazmat truck. Zones are polygons with a
hole, multipolygons, circles and corridors, most along roads, some anywhere; restricted zones
may have the hazmat night ban (22:00-06:00), fishing-moratorium areas at sea the season
(05-01 12:00 to 09-16 12:00), some zones have two versions. Lots are rectangles beside roads.

Vehicles drive along roads at 30-90 km/h (trip trucks along their route; one in twenty of them
on another road: off route), vessels sail at sea at 10-25 km/h; one fix every 10-30 s, 5 m of
GPS noise, 2 % low quality; one vehicle in eight stops for 5-40 min. The clock starts at
2026-07-15 22:30 Beijing time: inside the night ban and the moratorium. One seed, one world.

Not a benchmark itself (``bench/run.py`` runs ``bench_*.py``): ``bench_rules.py`` and
``bench_rules_postgis.py`` share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

import wire
from cloud.models import Asset, GeoObject

__all__ = ["FULL", "QUICK", "T0_MS", "Province", "Sizes", "build_province"]

Array = npt.NDArray[np.float64]

CENTRE: Final = (120.0, 32.9)  # lon, lat
HALF_X_M: Final = 187_000.0  # lon 118-122 at 32.9 N
HALF_Y_M: Final = 233_000.0  # lat 30.8-35
#: 2026-07-15 22:30 Beijing time (14:30 UTC)
T0_MS: Final = 1_784_125_800_000
NIGHT_BAN: Final = [{"daily": "22:00-06:00"}]
MORATORIUM: Final = [{"from": "05-01 12:00", "to": "09-16 12:00"}]
#: zone kinds of non-corridor zones: (kind, share, classes)
AREA_KINDS: Final = (
    ("restricted", 0.25, ["hazmat_truck"]),
    ("school", 0.20, ["hazmat_truck", "coach"]),
    ("water_source", 0.12, ["hazmat_truck"]),
    ("chemical_park", 0.13, None),
    ("port", 0.05, None),
    ("custom", 0.15, ["hazmat_truck", "school_bus", "coach"]),
    ("no_stop_alert", 0.10, ["hazmat_truck"]),
)
CORRIDOR_KINDS: Final = ("expressway", "no_stop_alert", "restricted")


@dataclass(frozen=True)
class Sizes:
    """How big the world is; the area shrinks with the zone count (same zone density)."""

    zones: int = 10_000
    routes: int = 1_000
    lots: int = 500
    assets: int = 50_000
    roads: int = 400

    @property
    def scale(self) -> float:
        return min(1.0, math.sqrt(self.zones / 10_000))


FULL: Final = Sizes()
QUICK: Final = Sizes(zones=400, routes=40, lots=20, assets=2_000, roads=20)


@dataclass(eq=False)
class Road:
    """A polyline in metres with the distance along it at each vertex."""

    x: Array
    y: Array
    cum: Array

    @property
    def length_m(self) -> float:
        return float(self.cum[-1])

    def at(self, along_m: Array) -> tuple[Array, Array]:
        """Positions ``along_m`` from the start; past either end the road is driven back."""
        length = self.length_m
        folded = np.mod(along_m, 2 * length)
        folded = np.where(folded <= length, folded, 2 * length - folded)
        return np.interp(folded, self.cum, self.x), np.interp(folded, self.cum, self.y)

    def heading_sign(self, along_m: Array) -> Array:
        """+1 where driving ``along_m`` forward moves forward on the road, -1 on the way back."""
        return np.where(np.mod(along_m, 2 * self.length_m) <= self.length_m, 1.0, -1.0)


@dataclass
class Motion:
    """Per asset: where it is at T0 and how it moves (all arrays of one length)."""

    road: npt.NDArray[np.intp]  # -1: a vessel at sea
    along0_m: Array
    direction: Array
    speed_ms: Array
    period_s: Array
    phase_s: Array
    stop_from_s: Array  # inf: never stops
    stop_for_s: Array
    sea_x0: Array
    sea_y0: Array
    sea_heading: Array


@dataclass
class Province:
    """The objects and assets to build a world from, and how the assets move."""

    sizes: Sizes
    objects: list[GeoObject]
    assets: list[Asset]
    roads: list[Road]
    motion: Motion
    #: the plane the province was drawn in: metres -> WGS-84
    to_wgs84: Transformer
    rng: np.random.Generator

    def fixes(
        self, from_s: float, until_s: float, *, only: npt.NDArray[np.bool_] | None = None
    ) -> list[wire.Fix]:
        """Every asset's fixes with ``from_s <= t < until_s`` seconds after T0, in time order
        (``only``: of the assets where it is true)."""
        return _fixes(self, from_s, until_s, only)

    def fix_rate(self) -> float:
        """Fixes per second of observation time, over all assets."""
        return float(np.sum(1.0 / self.motion.period_s))


def _fold(v: Array, half: float) -> Array:
    """Fold coordinates into [-half, half] (a path that meets the edge turns back)."""
    t = np.mod(v + half, 4 * half)
    return np.where(t <= 2 * half, t, 4 * half - t) - half


def _road(rng: np.random.Generator, half_x: float, half_y: float) -> Road:
    steps = int(rng.integers(60, 250))
    heading = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, 0.12, steps))
    x = rng.uniform(-half_x, half_x) + np.concatenate(([0.0], np.cumsum(1000 * np.cos(heading))))
    y = rng.uniform(-half_y, half_y) + np.concatenate(([0.0], np.cumsum(1000 * np.sin(heading))))
    x, y = _fold(x, half_x), _fold(y, half_y)
    cum = np.concatenate(([0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))))
    return Road(x, y, cum)


def _star(rng: np.random.Generator, cx: float, cy: float, r: float, n: int) -> Array:
    angles = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * math.pi / n
    radii = r * rng.uniform(0.7, 1.0, n)
    ring = np.column_stack((cx + radii * np.cos(angles), cy + radii * np.sin(angles)))
    return np.vstack((ring, ring[:1]))


class _Drawer:
    """Draws zones, lots, routes and trips in metres; ``geo`` converts them to GeoJSON."""

    def __init__(self, rng: np.random.Generator, roads: list[Road], half: tuple[float, float]):
        self.rng = rng
        self.roads = roads
        self.half_x, self.half_y = half

    def road_point(self, spread_m: float) -> tuple[float, float]:
        road = self.roads[int(self.rng.integers(len(self.roads)))]
        x, y = road.at(np.array([self.rng.uniform(0, road.length_m)]))
        dx, dy = self.rng.normal(0, spread_m, 2)
        return float(x[0] + dx), float(y[0] + dy)

    def anywhere(self, *, sea: bool = False) -> tuple[float, float]:
        low = 0.55 * self.half_x if sea else -self.half_x
        return self.rng.uniform(low, self.half_x), self.rng.uniform(-self.half_y, self.half_y)

    def stretch(self, length_m: float) -> tuple[Road, float, float]:
        """A road and a stretch [start, end) of it about ``length_m`` long."""
        road = self.roads[int(self.rng.integers(len(self.roads)))]
        length = min(length_m, 0.9 * road.length_m)
        start = self.rng.uniform(0, road.length_m - length)
        return road, start, start + length

    def line(self, road: Road, start: float, end: float, step_m: float) -> Array:
        along = np.linspace(start, end, max(2, int((end - start) / step_m) + 1))
        x, y = road.at(along)
        return np.column_stack((x, y))

    def zone(self, index: int) -> tuple[BaseGeometry, dict[str, Any]]:
        rng = self.rng
        shape = rng.choice(4, p=[0.35, 0.30, 0.15, 0.20])  # circle, holed, multi, corridor
        r = float(np.clip(rng.lognormal(math.log(500), 0.7), 100, 5000))
        if shape == 3:
            road, start, end = self.stretch(rng.uniform(1000, 5000))
            kind = CORRIDOR_KINDS[int(rng.integers(len(CORRIDOR_KINDS)))]
            props: dict[str, Any] = {"zone_kind": kind, "width_m": round(rng.uniform(60, 200))}
            if kind == "restricted":  # a bridge or tunnel closed to hazmat trucks at night
                props |= {"classes": ["hazmat_truck"], "windows": NIGHT_BAN}
            return shapely.linestrings(self.line(road, start, end, 500)), props
        if index % 50 == 0:  # a fishing moratorium area at sea
            cx, cy = self.anywhere(sea=True)
            ring = _star(rng, cx, cy, r * 10, 24)
            props = {"zone_kind": "fishing_moratorium", "classes": ["fishing_vessel"]}
            return shapely.polygons(ring), props | {"windows": MORATORIUM}
        cx, cy = self.road_point(1500) if rng.random() < 0.6 else self.anywhere()
        shares = np.array([k[1] for k in AREA_KINDS])
        kind, _, classes = AREA_KINDS[int(rng.choice(len(AREA_KINDS), p=shares / shares.sum()))]
        props = {"zone_kind": kind} | ({"classes": classes} if classes else {})
        if kind == "restricted" and rng.random() < 0.4:
            props["windows"] = NIGHT_BAN
        if kind == "custom":
            props |= {"trigger": "dwell", "overrides": {"dwell_s": 1800}}
        if shape == 0:
            return shapely.points(cx, cy), props | {"radius_m": round(r)}
        if shape == 1:
            hole = _star(rng, cx, cy, 0.35 * r, 8)[::-1]
            shell = _star(rng, cx, cy, r, int(rng.integers(8, 25)))
            return shapely.Polygon(shell, [hole]), props
        angle = rng.uniform(0, 2 * math.pi)
        parts = [
            shapely.polygons(
                _star(rng, cx + k * 2.5 * r * math.cos(angle), cy + k * 2.5 * r * math.sin(angle),
                      r, int(rng.integers(6, 16)))
            )
            for k in range(int(rng.integers(2, 4)))
        ]  # fmt: skip
        return shapely.multipolygons(parts), props

    def lot(self) -> tuple[BaseGeometry, dict[str, Any]]:
        rng = self.rng
        cx, cy = self.road_point(200)
        w, h = rng.uniform(80, 300, 2)
        props: dict[str, Any] = {"capacity": int(rng.integers(20, 200))}
        if rng.random() < 0.3:
            props["max_stay_s"] = 6 * 3600
        return shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), props


def _geo(
    geoms: list[BaseGeometry], to_wgs84: Transformer
) -> list[dict[str, Any]]:  # one transform call for every geometry
    def convert(xy: Array) -> Array:
        lon, lat = to_wgs84.transform(xy[:, 0], xy[:, 1])
        return np.column_stack((lon, lat))

    converted = shapely.transform(np.array(geoms, dtype=object), convert)
    return [dict(mapping(g)) for g in converted]


def build_province(sizes: Sizes, *, seed: int = 12) -> Province:
    """The objects, assets and motions of a province of ``sizes``."""
    rng = np.random.default_rng(seed)
    half = (HALF_X_M * sizes.scale, HALF_Y_M * sizes.scale)
    aeqd = f"+proj=aeqd +lat_0={CENTRE[1]} +lon_0={CENTRE[0]} +datum=WGS84 +units=m +no_defs"
    to_wgs84 = Transformer.from_crs(aeqd, "EPSG:4326", always_xy=True)
    roads = [_road(rng, *half) for _ in range(sizes.roads)]
    drawer = _Drawer(rng, roads, half)
    shapes: list[BaseGeometry] = []
    heads: list[dict[str, Any]] = []
    for i in range(sizes.zones):
        geom, props = drawer.zone(i)
        shapes.append(geom)
        heads.append({"id": f"z{i:05d}", "kind": "zone", "properties": props})
        if i % 100 == 1:  # a second version, in force since yesterday, a little larger
            props = {**props, "effective_from_ms": T0_MS - 86_400_000}
            if "radius_m" in props:
                props["radius_m"] += 50
            shapes.append(geom)
            heads.append({"id": f"z{i:05d}", "kind": "zone", "properties": props, "version": 2})
    for i in range(sizes.lots):
        geom, props = drawer.lot()
        shapes.append(geom)
        heads.append({"id": f"l{i:04d}", "kind": "lot", "properties": props})
    trips = _routes(drawer, sizes, shapes, heads)
    objects = [
        GeoObject(name=head["id"], geometry=geometry, enterprise_id=None, **head)
        for head, geometry in zip(heads, _geo(shapes, to_wgs84), strict=True)
    ]
    assets, motion = _assets(rng, sizes, roads, trips, half)
    return Province(sizes, objects, assets, roads, motion, to_wgs84, rng)


@dataclass
class _Trip:
    road: int
    start_m: float
    end_m: float


def _routes(
    drawer: _Drawer, sizes: Sizes, shapes: list[BaseGeometry], heads: list[dict[str, Any]]
) -> list[_Trip]:
    rng = drawer.rng
    trips = []
    for i in range(sizes.routes):
        road, start, end = drawer.stretch(rng.uniform(20_000, 150_000))
        line = drawer.line(road, start, end, 1000)
        sections = len(line) - 1
        widths: float | list[float] = round(rng.uniform(100, 300))
        if rng.random() < 0.5:
            widths = [round(w) for w in rng.uniform(100, 300, sections)]
        shapes.append(shapely.linestrings(line))
        heads.append({"id": f"r{i:04d}", "kind": "route", "properties": {"corridor_m": widths}})
        speed = 60 / 3.6
        start_ms = T0_MS - int(rng.uniform(10, 60) * 60_000)
        end_ms = start_ms + int((end - start) / speed * 1000) + 2 * 3_600_000
        stops = [line[0], *(line[int(sections * q)] for q in (0.25, 0.5, 0.75)), line[-1]]
        shapes.append(shapely.multipoints(np.array(stops)))
        props = {"asset_id": f"a{i:05d}", "route_id": f"r{i:04d}", "start_ms": start_ms,
                 "end_ms": end_ms}  # fmt: skip
        heads.append({"id": f"t{i:04d}", "kind": "trip", "properties": props})
        trips.append(_Trip(drawer.roads.index(road), start, end))
    return trips


def _classes(count: int) -> list[str]:
    vessels, buses, coaches = count // 50, count // 20, count // 20
    trucks = count - vessels - buses - coaches
    return (["hazmat_truck"] * trucks + ["school_bus"] * buses + ["coach"] * coaches
            + ["fishing_vessel"] * vessels)  # fmt: skip


def _assets(
    rng: np.random.Generator,
    sizes: Sizes,
    roads: list[Road],
    trips: list[_Trip],
    half: tuple[float, float],
) -> tuple[list[Asset], Motion]:
    count = sizes.assets
    classes = _classes(count)
    assets = [
        Asset(id=f"a{i:05d}", enterprise_id=f"e{i % 200:03d}", asset_class=c)  # type: ignore[arg-type]
        for i, c in enumerate(classes)
    ]
    vessel = np.array([c == "fishing_vessel" for c in classes])
    lengths = np.array([r.length_m for r in roads])
    road = rng.integers(len(roads), size=count)
    along = rng.uniform(0, 1, count) * lengths[road]
    direction = rng.choice([-1.0, 1.0], count)
    for i, trip in enumerate(trips[:count]):
        if rng.random() < 0.05:
            continue  # on another road than its route's: off route
        road[i], direction[i] = trip.road, 1.0
        along[i] = trip.start_m + rng.uniform(0, 0.3) * (trip.end_m - trip.start_m)
    road = np.where(vessel, -1, road)
    speed = np.where(vessel, rng.uniform(10, 25, count), rng.uniform(30, 90, count)) / 3.6
    stops = (rng.random(count) < 0.125) & ~vessel
    motion = Motion(
        road=road,
        along0_m=along,
        direction=direction,
        speed_ms=speed,
        period_s=rng.integers(10, 31, count).astype(float),
        phase_s=rng.uniform(0, 30, count),
        stop_from_s=np.where(stops, rng.uniform(-600, 1200, count), np.inf),
        stop_for_s=rng.uniform(300, 2400, count),
        sea_x0=rng.uniform(0.6 * half[0], half[0], count),
        sea_y0=rng.uniform(-half[1], half[1], count),
        sea_heading=rng.uniform(0, 2 * math.pi, count),
    )
    return assets, motion


def _fixes(
    province: Province, from_s: float, until_s: float, only: npt.NDArray[np.bool_] | None
) -> list[wire.Fix]:
    m = province.motion
    rng = np.random.default_rng(int(from_s * 1000) + 1)
    first = np.maximum(0, np.ceil((from_s - m.phase_s) / m.period_s))
    counts = np.maximum(0, np.ceil((until_s - m.phase_s) / m.period_s) - first).astype(int)
    if only is not None:
        counts = np.where(only, counts, 0)
    who = np.repeat(np.arange(len(counts)), counts)
    k = np.arange(len(who)) - np.repeat(np.cumsum(counts) - counts, counts) + first[who]
    t = m.phase_s[who] + k * m.period_s[who]
    stopped = np.clip(t - m.stop_from_s[who], 0, m.stop_for_s[who])
    moving = (stopped <= 0) | (stopped >= m.stop_for_s[who])
    driven = m.speed_ms[who] * (t - stopped)
    x, y = np.empty(len(who)), np.empty(len(who))
    course = np.zeros(len(who))
    for index in np.unique(m.road[who]):
        mine = m.road[who] == index
        if index < 0:  # vessels: straight lines, turning back at the edge of the sea
            h = m.sea_heading[who[mine]]
            half_x, half_y = HALF_X_M * province.sizes.scale, HALF_Y_M * province.sizes.scale
            x[mine] = 0.8 * half_x + _fold(
                m.sea_x0[who[mine]] - 0.8 * half_x + driven[mine] * np.cos(h), 0.2 * half_x
            )
            y[mine] = _fold(m.sea_y0[who[mine]] + driven[mine] * np.sin(h), half_y)
            course[mine] = np.degrees(h) % 360
            continue
        road = province.roads[int(index)]
        along = m.along0_m[who[mine]] + m.direction[who[mine]] * driven[mine]
        x[mine], y[mine] = road.at(along)
        ahead_x, ahead_y = road.at(along + m.direction[who[mine]] * 5.0)
        course[mine] = np.degrees(np.arctan2(ahead_x - x[mine], ahead_y - y[mine])) % 360
    x += rng.normal(0, 5, len(who))
    y += rng.normal(0, 5, len(who))
    lon, lat = province.to_wgs84.transform(x, y)
    speed = np.where(moving, m.speed_ms[who] * 3.6 * rng.normal(1, 0.05, len(who)), 0.0)
    poor = rng.random(len(who)) < 0.02
    hdop = np.where(poor, 6.0, rng.uniform(0.6, 1.5, len(who)))
    sats = rng.integers(8, 17, len(who))
    order = np.lexsort((who, t))
    ts = T0_MS + np.round(t * 1000).astype(np.int64)
    base = int(from_s * 1000) * 64
    fixes = []
    for n, i in enumerate(order.tolist()):
        fix = wire.Fix(
            seq=base + n, ts=int(ts[i]), asset=f"a{int(who[i]):05d}",
            lat=round(float(lat[i]), 7), lon=round(float(lon[i]), 7),
            speed_kmh=round(float(max(speed[i], 0.0)), 1), course=round(float(course[i]), 1),
            hdop=round(float(hdop[i]), 1), sats=int(sats[i]),
            quality="questionable" if poor[i] else "good",
        )  # fmt: skip
        fixes.append(fix)
    return fixes
