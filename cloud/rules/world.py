"""The world the rules see: zones, lots, routes, trips and assets, in one metric plane, indexed.

An immutable snapshot: the rule service builds a new one when anything changes and swaps it in
whole (a reference assignment), so a round of fixes never sees half an edit. Shapes are kept in
a local azimuthal equidistant plane (metres) around the world's centre, accurate to well under a
metre per kilometre across a province; zones and lots (every version of each) sit in one
``STRtree``: candidates for a point or a segment come from the tree, only they get the exact test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely
from shapely import STRtree
from shapely.geometry import shape as to_shape
from shapely.geometry.base import BaseGeometry

from cloud.models import Asset, GeoObject
from cloud.rules.config import RulesConfig, Thresholds, resolve
from cloud.rules.geometry import LocalProjection
from cloud.rules.objects import LotSpec, RouteSpec, TripSpec, ZoneSpec, read
from cloud.rules.vessels import with_moratorium_defaults

__all__ = ["AssetInfo", "RouteEntry", "TripEntry", "World", "ZoneEntry"]

_FOREVER: Final = 2**62


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """What the rules know of an asset: its enterprise and class."""

    enterprise_id: str | None
    asset_class: str | None
    #: a long-distance coach (may not move between 02:00 and 05:00)
    long_distance: bool = False


@dataclass(frozen=True, slots=True)
class ZoneEntry:
    """One version of a zone or a lot, in metres."""

    index: int
    id: str
    kind: str  # "zone" or "lot"
    name: str
    version: int
    enterprise_id: str | None
    spec: ZoneSpec | LotSpec
    shape: BaseGeometry
    boundary: BaseGeometry
    #: the deepest a point can be inside (radius of the largest inscribed circle), metres
    inscribed_m: float
    valid_from_ms: int
    valid_to_ms: int

    def applies_to(self, asset: AssetInfo) -> bool:
        """Whether the zone or lot concerns this asset: a shared one (no enterprise) concerns
        every enterprise, another only its own enterprise's assets; a zone limited to classes
        only those (lots serve every class)."""
        if self.enterprise_id is not None and self.enterprise_id != asset.enterprise_id:
            return False
        if not isinstance(self.spec, ZoneSpec) or self.spec.classes is None:
            return True
        return asset.asset_class is not None and asset.asset_class in self.spec.classes

    def valid_at(self, ts_ms: int) -> bool:
        """Whether this version is the one in force at ``ts_ms``."""
        return self.valid_from_ms <= ts_ms < self.valid_to_ms

    @property
    def overrides(self) -> Mapping[str, Any]:
        return self.spec.overrides


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """An approved route: a polyline in metres with a corridor width per section."""

    id: str
    line: BaseGeometry
    #: cumulative distance along the route at each vertex
    cum_m: npt.NDArray[np.float64]
    #: half the corridor width of each section (metres)
    half_width_m: npt.NDArray[np.float64]
    spec: RouteSpec

    @property
    def length_m(self) -> float:
        return float(self.cum_m[-1])

    def half_width_at(self, along_m: float) -> float:
        """Half the corridor width where the route is ``along_m`` from its start."""
        after = int(np.searchsorted(self.cum_m, along_m, side="right"))
        section = min(max(after - 1, 0), len(self.half_width_m) - 1)
        return float(self.half_width_m[section])


@dataclass(frozen=True, slots=True)
class TripEntry:
    """A trip: an asset on an approved route in a time window, with its stops in metres."""

    id: str
    enterprise_id: str | None
    spec: TripSpec
    origin: tuple[float, float]
    checkpoints: tuple[tuple[float, float], ...]
    destination: tuple[float, float]
    route: RouteEntry | None

    def watched(self, ts_ms: int, before_s: float) -> bool:
        """Whether the trip is watched at ``ts_ms`` (from its start minus ``before_s``)."""
        return self.spec.start_ms - before_s * 1000 <= ts_ms <= self.spec.end_ms


@dataclass
class World:
    """Zones, lots, routes, trips and assets (build with :meth:`build`)."""

    projection: LocalProjection
    zones: list[ZoneEntry]
    routes: dict[str, RouteEntry]
    trips: dict[str, list[TripEntry]]  # by asset id, by start time
    assets: dict[str, AssetInfo]
    config: RulesConfig
    #: a label of this snapshot (the registry version it was built from)
    label: str = ""
    tree: STRtree = field(init=False)
    reach_m: float = field(init=False)
    #: thresholds per class, resolved once (the engine asks for every asset of every batch)
    _by_class: dict[str | None, Thresholds] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.tree = STRtree([z.shape for z in self.zones])
        reach = [
            resolve(self.config.default, z.overrides, where="zone").hysteresis_m for z in self.zones
        ]
        self.reach_m = max([20.0, *reach]) + 1.0

    @classmethod
    def build(
        cls,
        objects: Iterable[GeoObject],
        assets: Iterable[Asset],
        *,
        config: RulesConfig | None = None,
        label: str = "",
        fishing: Iterable[str] = (),
    ) -> World:
        """A snapshot from the stored geo objects and the registered assets; ``fishing``: AIS
        targets nobody registered that fish (:func:`cloud.rules.vessels.ais_fishing`), which
        the rules then take as fishing vessels of no enterprise.

        Zones and lots may come in several versions of one id (each applies from its
        ``effective_from_ms``, or when it was stored, until the next one; and only within its
        ``valid_from_ms``/``valid_to_ms``); of a route or trip the highest version counts.

        Raises:
            cloud.rules.objects.ObjectError: an object's properties cannot be used.
        """
        objects = list(objects)
        projection = _projection_for(objects)
        infos = {mmsi: AssetInfo(None, "fishing_vessel") for mmsi in fishing}
        infos.update(
            {a.id: AssetInfo(a.enterprise_id, a.asset_class, a.long_distance) for a in assets}
        )
        zones = _zone_entries(objects, projection)
        newest: dict[str, GeoObject] = {}
        for obj in objects:
            if obj.kind in ("route", "trip") and (
                obj.id not in newest or newest[obj.id].version < obj.version
            ):
                newest[obj.id] = obj
        routes: dict[str, RouteEntry] = {}
        for obj in newest.values():
            if obj.kind == "route":
                spec = read("route", obj.properties, obj.geometry)
                assert isinstance(spec, RouteSpec)
                routes[obj.id] = _route_entry(obj, spec, projection, config or RulesConfig())
        trips: dict[str, list[TripEntry]] = {}
        for obj in newest.values():
            if obj.kind == "trip":
                spec = read("trip", obj.properties, obj.geometry)
                assert isinstance(spec, TripSpec)
                entry = _trip_entry(obj, spec, projection, routes)
                trips.setdefault(spec.asset_id, []).append(entry)
        for listed in trips.values():
            listed.sort(key=lambda t: t.spec.start_ms)
        return cls(
            projection=projection,
            zones=zones,
            routes=routes,
            trips=trips,
            assets=infos,
            config=config or RulesConfig(),
            label=label,
        )

    # -- lookups ----------------------------------------------------------------------------

    def asset(self, asset_id: str) -> AssetInfo:
        return self.assets.get(asset_id) or AssetInfo(None, None)

    def thresholds(self, asset_class: str | None) -> Thresholds:
        found = self._by_class.get(asset_class)
        if found is None:
            found = self._by_class[asset_class] = self.config.for_class(asset_class)
        return found

    def project(
        self, lons: npt.ArrayLike, lats: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """WGS-84 to the world's plane (vectorized)."""
        lon_array, lat_array = np.asarray(lons, float), np.asarray(lats, float)
        if lon_array.size == 1:  # one point (a segment's start, per fix): the cheaper call
            x1, y1 = self.projection.forward_one(float(lon_array.flat[0]), float(lat_array.flat[0]))
            return np.full(lon_array.shape, x1), np.full(lat_array.shape, y1)
        x, y = self.projection.forward(lon_array, lat_array)
        return np.asarray(x, float), np.asarray(y, float)

    def near(
        self, xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """(point index, zone index) of every zone within reach (hysteresis) of each point."""
        if not self.zones or len(xs) == 0:
            empty = np.empty(0, dtype=np.intp)
            return empty, empty
        points = shapely.points(xs, ys)
        pairs = self.tree.query(points, predicate="dwithin", distance=self.reach_m)
        return pairs[0], pairs[1]

    def crossed(self, x0: float, y0: float, x1: float, y1: float) -> list[int]:
        """Zones whose shape the segment (x0, y0)-(x1, y1) intersects."""
        if not self.zones:
            return []
        # An array of one: a scalar query costs shapely a few microseconds more, on every fix.
        segment = np.array([shapely.linestrings([[x0, y0], [x1, y1]])])
        hits: list[int] = self.tree.query(segment, predicate="intersects")[1].tolist()
        return hits

    def trip_at(self, asset_id: str, ts_ms: int, before_s: float) -> TripEntry | None:
        """The asset's trip watched at ``ts_ms``, if any (the latest starting one)."""
        found = None
        for trip in self.trips.get(asset_id, ()):
            if trip.watched(ts_ms, before_s):
                found = trip
        return found

    @cached_property
    def shapes(self) -> npt.NDArray[np.object_]:
        """Every zone's and lot's shape, by index (for vectorized tests)."""
        return np.array([z.shape for z in self.zones], dtype=object)

    @cached_property
    def boundaries(self) -> npt.NDArray[np.object_]:
        """Every zone's and lot's boundary, by index."""
        return np.array([z.boundary for z in self.zones], dtype=object)

    @cached_property
    def lots(self) -> list[ZoneEntry]:
        return [z for z in self.zones if z.kind == "lot"]


def _projection_for(objects: Sequence[GeoObject]) -> LocalProjection:
    centres = []
    for obj in objects:
        minx, miny, maxx, maxy = to_shape(obj.geometry).bounds
        centres.append(((minx + maxx) / 2, (miny + maxy) / 2))
    if not centres:
        return LocalProjection(120.3, 31.9)
    lons, lats = zip(*centres, strict=True)
    return LocalProjection(float(np.median(lons)), float(np.median(lats)))


def _area(obj: GeoObject, spec: ZoneSpec | LotSpec, projection: LocalProjection) -> BaseGeometry:
    metric = projection.to_metric(to_shape(obj.geometry))
    if isinstance(spec, ZoneSpec) and spec.radius_m is not None and metric.geom_type == "Point":
        return metric.buffer(spec.radius_m, quad_segs=16)
    if isinstance(spec, ZoneSpec) and spec.width_m is not None and "Line" in metric.geom_type:
        return metric.buffer(spec.width_m / 2, cap_style="flat")
    return metric


def _inscribed_tolerance(area: BaseGeometry) -> float:
    """How closely to find a zone's inscribed circle: 1 m, or 1 % of 2 x area / perimeter.

    The radius r of the inscribed circle is at least area / perimeter (every point of the zone
    lies within r of its boundary), so this is 1 m or at most 2 % of r: exact enough to tell
    whether the zone is narrower than twice the hysteresis, and for a zone of kilometres it
    spares most of the search (the search time grows with size / tolerance).
    """
    perimeter = float(area.length)
    if perimeter <= 0:
        return 1.0
    return max(1.0, 0.02 * float(area.area) / perimeter)


def _zone_entries(objects: Sequence[GeoObject], projection: LocalProjection) -> list[ZoneEntry]:
    versions: dict[str, list[GeoObject]] = {}
    for obj in objects:
        if obj.kind in ("zone", "lot"):
            versions.setdefault(obj.id, []).append(obj)
    entries: list[ZoneEntry] = []
    for object_id, listed in sorted(versions.items()):
        specs = []
        for obj in listed:
            # A version applies from when it was stored, unless it says when.
            default_from = obj.updated_ms or 0
            spec = read(obj.kind, obj.properties, obj.geometry, default_from_ms=default_from)
            assert isinstance(spec, ZoneSpec | LotSpec)
            if isinstance(spec, ZoneSpec):
                spec = with_moratorium_defaults(spec, obj.properties, obj.geometry)
            start = spec.effective_from_ms if isinstance(spec, ZoneSpec) else default_from
            specs.append((start, obj.version, obj, spec))
        specs.sort(key=lambda s: (s[0], s[1]))
        for position, (start, _, obj, spec) in enumerate(specs):
            following = specs[position + 1][0] if position + 1 < len(specs) else _FOREVER
            end = min(following, obj.valid_to_ms if obj.valid_to_ms is not None else _FOREVER)
            area = _area(obj, spec, projection)
            shapely.prepare(area)
            inscribed = shapely.maximum_inscribed_circle(area, tolerance=_inscribed_tolerance(area))
            entries.append(
                ZoneEntry(
                    index=len(entries),
                    id=object_id,
                    kind=obj.kind,
                    name=obj.name,
                    version=obj.version,
                    enterprise_id=obj.enterprise_id,
                    spec=spec,
                    shape=area,
                    boundary=area.boundary,
                    inscribed_m=float(shapely.length(inscribed)),
                    valid_from_ms=max(start, obj.valid_from_ms or 0),
                    valid_to_ms=end,
                )
            )
    return entries


def _route_entry(
    obj: GeoObject, spec: RouteSpec, projection: LocalProjection, config: RulesConfig
) -> RouteEntry:
    line = projection.to_metric(to_shape(obj.geometry))
    if line.geom_type == "MultiLineString":
        line = shapely.line_merge(line)
        if line.geom_type == "MultiLineString":  # disjoint parts: join them in order
            line = shapely.linestrings(shapely.get_coordinates(line))
    coords = shapely.get_coordinates(line)
    steps = np.hypot(np.diff(coords[:, 0]), np.diff(coords[:, 1]))
    cum = np.concatenate(([0.0], np.cumsum(steps)))
    sections = len(steps)
    widths = spec.corridor_m or (config.default.corridor_m,)
    half = np.array(widths if len(widths) == sections else widths[:1] * sections) / 2.0
    shapely.prepare(line)
    return RouteEntry(id=obj.id, line=line, cum_m=cum, half_width_m=half, spec=spec)


def _trip_entry(
    obj: GeoObject, spec: TripSpec, projection: LocalProjection, routes: Mapping[str, RouteEntry]
) -> TripEntry:
    points = projection.to_metric(to_shape(obj.geometry))
    coords = [(float(x), float(y)) for x, y in shapely.get_coordinates(points)]
    route = routes.get(spec.route_id)
    if len(coords) < 2 and route is not None:  # no stops given: the route's ends
        ends = shapely.get_coordinates(route.line)
        coords = [(float(ends[0][0]), float(ends[0][1])), (float(ends[-1][0]), float(ends[-1][1]))]
    origin = coords[0] if coords else (0.0, 0.0)
    destination = coords[-1] if coords else (0.0, 0.0)
    return TripEntry(
        id=obj.id,
        enterprise_id=obj.enterprise_id,
        spec=spec,
        origin=origin,
        checkpoints=tuple(coords[1:-1]),
        destination=destination,
        route=route,
    )
