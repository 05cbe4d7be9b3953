"""The world of the end-to-end rules bench: a province of zones, routes with trips, lots and
assets, and where each asset is at any moment (so every process computes the same fixes).

Everything is a function of ``(sizes, seed)``: the bench registers the world in the archive,
the load generators compute positions from it, the latency probe knows which fixes open an
alert. Positions are in metres of a local plane around :data:`CENTRE`, turned into WGS-84
through the same kind of projection the rules use.

- Zones: restricted areas and water-source zones (forbidden to hazmat trucks, 5% of them only
  at night, 22:00-06:00), school zones, chemical parks and ports (entry), custom zones (dwell),
  toll gates and expressways (no alert). Polygons (some with a hole), circles and corridors,
  100-600 m across.
- Routes: polylines of 20-60 km with a 100 m corridor; one trip per route, for one hazmat
  truck, whose window covers the bench.
- Lots: rectangles with a capacity, half of them with a maximum stay.
- Assets: 70% hazmat trucks, 10% school buses, 15% coaches, 5% other; they drive straight at
  40-70 km/h, trip trucks along their route from its origin.
- Probes (1% of the assets): each a hazmat truck at the southern edge of a forbidden zone of
  its own (in a band no other object touches), alternately 25 m inside (two fixes: the entry
  is confirmed, a ``zone.forbidden`` alert opens) and 25 m outside (two fixes: it closes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer
from sqlalchemy import insert

from cloud.archive import Store
from cloud.archive import schema as s
from cloud.models import GeoObject
from cloud.rules.geometry import LocalProjection

__all__ = ["CENTRE", "FULL", "QUICK", "Sizes", "World", "register"]

CENTRE: Final = (119.5, 32.5)  # lon, lat: the middle of Jiangsu
HALF_M: Final = 140_000.0  # the province: 280 km x 280 km
PROBE_BAND_M: Final = 8_000.0  # the southern band kept for the probes
PROBE_SIDE_M: Final = 200.0
PROBE_DEPTH_M: Final = 25.0  # inside and outside the probe zone's southern edge
Floats = npt.NDArray[np.float64]
#: The plane of :data:`CENTRE` back to WGS-84 (the rules' own kind of plane).
_INVERSE: Final = Transformer.from_crs(
    f"+proj=aeqd +lat_0={CENTRE[1]} +lon_0={CENTRE[0]} +datum=WGS84 +units=m +no_defs",
    "EPSG:4326",
    always_xy=True,
)


@dataclass(frozen=True)
class Sizes:
    """How big the world is."""

    zones: int
    routes: int
    lots: int
    assets: int
    enterprises: int
    probe_every: int  # one asset in this many is a probe
    trip_every: int  # one asset in this many drives a trip (routes of them)


#: The issue's world: 10,000 zones, 1,000 routes with trips, 500 lots, 50,000 assets.
FULL: Final = Sizes(
    zones=10_000, routes=1_000, lots=500, assets=50_000, enterprises=100, probe_every=100,
    trip_every=50,
)  # fmt: skip
QUICK: Final = Sizes(
    zones=400, routes=20, lots=20, assets=2_000, enterprises=4, probe_every=50, trip_every=100
)

# (zone kind, share, properties beyond the kind): what a province's map holds.
_KINDS: Final[tuple[tuple[str, float, dict[str, Any]], ...]] = (
    ("restricted", 0.15, {"classes": ["hazmat_truck"], "severity": "critical"}),
    ("water_source", 0.10, {"classes": ["hazmat_truck"], "severity": "critical"}),
    ("school", 0.15, {"classes": ["hazmat_truck"]}),
    ("chemical_park", 0.15, {}),
    ("port", 0.05, {}),
    ("custom", 0.10, {"trigger": "dwell", "overrides": {"dwell_s": 900}}),
    ("no_stop_alert", 0.15, {}),
    ("expressway", 0.15, {}),
)
_CLASSES: Final = (("hazmat_truck", 0.70), ("school_bus", 0.10), ("coach", 0.15), ("other", 0.05))


def _rng(seed: int, part: str) -> np.random.Generator:
    return np.random.default_rng([seed, sum(ord(c) << (8 * i) for i, c in enumerate(part))])


def _free_xy(rng: np.random.Generator, n: int, margin_m: float = 5_000.0) -> tuple[Floats, Floats]:
    """Random points of the province outside the probe band."""
    x = rng.uniform(-HALF_M + margin_m, HALF_M - margin_m, n)
    y = rng.uniform(-HALF_M + PROBE_BAND_M + margin_m, HALF_M - margin_m, n)
    return x, y


@dataclass
class World:
    """The world and its fleet for ``sizes`` and ``seed``; ``t_ref_ms`` anchors the motion."""

    sizes: Sizes
    t_ref_ms: int
    seed: int = 7
    projection: LocalProjection = field(init=False)
    asset_ids: list[str] = field(init=False)
    enterprise_of: list[str] = field(init=False)
    classes: list[str] = field(init=False)
    x0: Floats = field(init=False)
    y0: Floats = field(init=False)
    vx: Floats = field(init=False)
    vy: Floats = field(init=False)
    speed_kmh: Floats = field(init=False)
    #: per asset: the index of its route (trip trucks) or -1
    route_of: npt.NDArray[np.int64] = field(init=False)
    #: per asset: whether it is a probe
    probe: npt.NDArray[np.bool_] = field(init=False)
    routes: list[shapely.LineString] = field(init=False)

    def __post_init__(self) -> None:
        sizes = self.sizes
        self.projection = LocalProjection(*CENTRE)
        n = sizes.assets
        rng = _rng(self.seed, "fleet")
        self.asset_ids = [f"a{i:05d}" for i in range(n)]
        per = math.ceil(n / sizes.enterprises)
        self.enterprise_of = [f"ent{i // per:03d}" for i in range(n)]
        names, shares = zip(*_CLASSES, strict=True)
        picked = rng.choice(len(names), size=n, p=np.array(shares))
        index = np.arange(n)
        self.probe = index % sizes.probe_every == 0
        trips = (index % sizes.trip_every == 1) & ~self.probe
        self.route_of = np.full(n, -1, dtype=np.int64)
        self.route_of[trips] = np.arange(int(trips.sum())) % max(sizes.routes, 1)
        self.classes = [
            "hazmat_truck" if self.probe[i] or trips[i] else str(names[picked[i]]) for i in range(n)
        ]
        self.x0, self.y0 = _free_xy(rng, n)
        heading = rng.uniform(0, 2 * math.pi, n)
        self.speed_kmh = rng.uniform(40, 70, n)
        self.vx = np.cos(heading) * self.speed_kmh / 3.6
        self.vy = np.sin(heading) * self.speed_kmh / 3.6
        probes = np.flatnonzero(self.probe)
        # Probe zones sit in a grid in the southern band, 400 m apart.
        cols = int((2 * HALF_M - 10_000) // 400)
        self.x0[probes] = -HALF_M + 5_000 + (np.arange(len(probes)) % cols) * 400.0
        self.y0[probes] = -HALF_M + 1_000 + (np.arange(len(probes)) // cols) * 400.0
        self.routes = [self._route(i) for i in range(sizes.routes)]

    def _route(self, index: int) -> shapely.LineString:
        rng = _rng(self.seed, f"route{index}")
        x, y = _free_xy(rng, 1, margin_m=70_000.0)
        points = [(float(x[0]), float(y[0]))]
        heading = rng.uniform(0, 2 * math.pi)
        for _ in range(int(rng.integers(10, 40))):
            heading += rng.normal(0, 0.3)
            step = rng.uniform(800, 2_000)
            last = points[-1]
            points.append((last[0] + step * math.cos(heading), last[1] + step * math.sin(heading)))
        return shapely.LineString(points)

    # -- the registry ------------------------------------------------------------------------

    def wgs84(self, xs: Floats, ys: Floats) -> tuple[Floats, Floats]:
        """Metres of the plane to (lons, lats)."""
        lon, lat = _INVERSE.transform(xs, ys)
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)

    def _geojson(self, geom: shapely.Geometry) -> dict[str, Any]:
        converted = self.projection.to_wgs84(geom)
        mapping: dict[str, Any] = shapely.geometry.mapping(converted)
        return {k: _lists(v) for k, v in mapping.items()}

    def probe_zone_id(self, asset_index: int) -> str:
        return f"probe-{asset_index:05d}"

    def geo_objects(self) -> list[GeoObject]:
        """Zones (random ones, then the probes'), lots, routes and trips."""
        objects = self._zones()
        for i in np.flatnonzero(self.probe).tolist():
            x, y = float(self.x0[i]), float(self.y0[i])
            half = PROBE_SIDE_M / 2
            box = shapely.box(x - half, y, x + half, y + PROBE_SIDE_M)
            objects.append(
                GeoObject(
                    id=self.probe_zone_id(i), kind="zone", name=f"probe zone {i}",
                    geometry=self._geojson(box),
                    properties={"zone_kind": "restricted", "severity": "critical"},
                )
            )  # fmt: skip
        objects += self._lots()
        objects += self._routes_and_trips()
        return objects

    def _zones(self) -> list[GeoObject]:
        rng = _rng(self.seed, "zones")
        probes = int(self.probe.sum())
        n = max(self.sizes.zones - probes, 0)
        xs, ys = _free_xy(rng, n)
        shares = np.array([k[1] for k in _KINDS])
        kinds = rng.choice(len(_KINDS), size=n, p=shares / shares.sum())
        shapes = rng.uniform(size=n)
        objects = []
        for i in range(n):
            kind, _, extra = _KINDS[int(kinds[i])]
            props: dict[str, Any] = {"zone_kind": kind, **extra}
            if kind in ("restricted", "water_source") and rng.uniform() < 0.05:
                props["windows"] = [{"daily": "22:00-06:00"}]  # a hazmat night ban
            x, y = float(xs[i]), float(ys[i])
            radius = float(rng.uniform(50, 300))
            geom: shapely.Geometry
            if kind == "expressway" or shapes[i] < 0.1:  # a corridor
                angle = rng.uniform(0, math.pi)
                length = float(rng.uniform(1_000, 4_000))
                dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
                geom = shapely.LineString([(x - dx, y - dy), (x + dx, y + dy)])
                props["width_m"] = float(rng.uniform(40, 120))
            elif shapes[i] < 0.3:  # a circle
                geom = shapely.Point(x, y)
                props["radius_m"] = radius
            else:
                geom = _polygon(rng, x, y, radius, hole=shapes[i] > 0.9)
            objects.append(
                GeoObject(
                    id=f"z{i:05d}", kind="zone", name=f"{kind} {i}",
                    geometry=self._geojson(geom), properties=props,
                )
            )  # fmt: skip
        return objects

    def _lots(self) -> list[GeoObject]:
        rng = _rng(self.seed, "lots")
        xs, ys = _free_xy(rng, self.sizes.lots)
        lots = []
        for i in range(self.sizes.lots):
            w, h = rng.uniform(100, 300, 2)
            box = shapely.box(xs[i] - w / 2, ys[i] - h / 2, xs[i] + w / 2, ys[i] + h / 2)
            props: dict[str, Any] = {"capacity": int(rng.integers(20, 100))}
            if i % 2:
                props["max_stay_s"] = 6 * 3600
            lots.append(
                GeoObject(
                    id=f"lot{i:04d}", kind="lot", name=f"lot {i}",
                    geometry=self._geojson(box), properties=props,
                )
            )  # fmt: skip
        return lots

    def _routes_and_trips(self) -> list[GeoObject]:
        objects = []
        drivers = {int(r): i for i, r in enumerate(self.route_of.tolist()) if r >= 0}
        for index, line in enumerate(self.routes):
            route_id = f"r{index:04d}"
            objects.append(
                GeoObject(
                    id=route_id, kind="route", name=f"route {index}",
                    geometry=self._geojson(line), properties={"corridor_m": 100},
                )
            )  # fmt: skip
            driver = drivers.get(index)
            if driver is None:
                continue
            stops = [line.interpolate(f, normalized=True) for f in (0.0, 1 / 3, 2 / 3, 1.0)]
            props = {
                "asset_id": self.asset_ids[driver], "route_id": route_id,
                "start_ms": self.t_ref_ms - 600_000, "end_ms": self.t_ref_ms + 86_400_000,
            }  # fmt: skip
            objects.append(
                GeoObject(
                    id=f"trip{index:04d}", kind="trip", name=f"trip {index}",
                    enterprise_id=self.enterprise_of[driver],
                    geometry=self._geojson(shapely.MultiPoint(stops)), properties=props,
                )
            )  # fmt: skip
        return objects

    # -- the fleet in motion -----------------------------------------------------------------

    def positions(
        self, assets: npt.NDArray[np.int64], ts_ms: npt.NDArray[np.int64], tick: int
    ) -> tuple[Floats, Floats]:
        """(lons, lats) of these assets at these times; ``tick`` is the asset's fix count
        (probes alternate two fixes inside their zone, two outside)."""
        t = (ts_ms - self.t_ref_ms) / 1000.0
        xs = self.x0[assets] + self.vx[assets] * t
        ys = self.y0[assets] + self.vy[assets] * t
        on_route = self.route_of[assets]
        for k in np.flatnonzero(on_route >= 0).tolist():
            line = self.routes[int(on_route[k])]
            along = min(max(float(t[k]), 0.0) * float(self.speed_kmh[assets[k]]) / 3.6, line.length)
            point = line.interpolate(along)
            xs[k], ys[k] = point.x, point.y
        probes = self.probe[assets]
        if probes.any():
            inside = tick % 4 < 2
            depth = PROBE_DEPTH_M if inside else -PROBE_DEPTH_M
            xs[probes] = self.x0[assets[probes]]
            ys[probes] = self.y0[assets[probes]] + depth
        return self.wgs84(xs, ys)

    def probe_opens(self, tick: int) -> bool:
        """Whether a probe's fix number ``tick`` confirms its entry (the second inside)."""
        return tick % 4 == 1


def _polygon(
    rng: np.random.Generator, x: float, y: float, radius: float, *, hole: bool
) -> shapely.Geometry:
    count = int(rng.integers(6, 12))
    angles = np.sort(rng.uniform(0, 2 * math.pi, count))
    radii = radius * rng.uniform(0.6, 1.0, count)
    shell = list(
        zip(
            (x + radii * np.cos(angles)).tolist(),
            (y + radii * np.sin(angles)).tolist(),
            strict=True,
        )
    )
    holes = []
    if hole:
        r = radius * 0.25
        holes.append([(x - r, y - r), (x + r, y - r), (x + r, y + r), (x - r, y + r)])
    polygon = shapely.Polygon(shell, holes)
    return polygon if polygon.is_valid else shapely.make_valid(polygon).convex_hull


def _lists(value: Any) -> Any:
    """GeoJSON with lists for tuples (what the API stores)."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value


async def register(
    store: Store, world: World, *, gateways: list[tuple[str, str]], now_ms: int
) -> None:
    """Write enterprises, gateways, assets and geo objects as the API would store them (in
    bulk: the rows :meth:`Store.put_geo` and :meth:`Store.put_asset` write, version 1)."""
    enterprises = sorted(set(world.enterprise_of))
    assets = [
        {"id": a, "enterprise_id": e, "asset_class": c, "plate": None, "mmsi": None, "name": ""}
        for a, e, c in zip(world.asset_ids, world.enterprise_of, world.classes, strict=True)
    ]
    geo = []
    for obj in world.geo_objects():
        row = {
            "id": obj.id, "kind": obj.kind, "enterprise_id": obj.enterprise_id, "name": obj.name,
            "geometry": obj.geometry, "properties": obj.properties, "version": 1,
            "valid_from_ms": None, "valid_to_ms": None, "updated_ms": now_ms - 3_600_000,
        }  # fmt: skip
        geo.append(row)
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(s.enterprises), [{"id": e, "name": e, "region": "320000"} for e in enterprises]
        )
        await conn.execute(
            insert(s.gateways), [{"id": g, "enterprise_id": e, "name": ""} for g, e in gateways]
        )
        for start in range(0, len(assets), 10_000):
            await conn.execute(insert(s.assets), assets[start : start + 10_000])
        for table in (s.geo_objects, s.geo_versions):
            columns = {c.name for c in table.columns}
            rows = [{k: v for k, v in r.items() if k in columns} for r in geo]
            for start in range(0, len(rows), 2_000):
                await conn.execute(insert(table), rows[start : start + 2_000])
