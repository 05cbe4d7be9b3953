"""GeoJSON geometry: parse and validate, convert between coordinate systems, metric helpers.

Zones, routes, lots and trips arrive as GeoJSON drawn on a map that may be GCJ-02 or BD-09.
:func:`parse_geometry` checks the structure, rejects what a person most often gets wrong (an
unclosed or self-intersecting ring, longitude and latitude swapped, an empty geometry, a line
shorter than a metre) with a :class:`GeometryError` naming the problem and where it is, and
returns a shapely geometry in WGS-84. :func:`check_corridor_widths` and
:func:`check_validity_period` check the properties that go with a geometry. Distances are metres: :class:`LocalProjection` maps to an azimuthal equidistant plane
around a centre, which is accurate to well under a metre across a city.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from cloud.coords import CRS_NAMES, Crs, convert_array

__all__ = [
    "GEOMETRY_TYPES",
    "MIN_LINE_LENGTH_M",
    "GeometryError",
    "LocalProjection",
    "buffer_m",
    "check_corridor_widths",
    "check_validity_period",
    "geodesic_distance_m",
    "parse_geometry",
    "simplify_indices_m",
    "simplify_m",
    "to_geojson",
    "transform_geometry",
]

GEOMETRY_TYPES: Final = (
    "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
)  # fmt: skip
#: China's extent: latitudes within _CHINA_LAT and longitudes within _CHINA_LON.
_CHINA_LON: Final = (72.0, 137.9)
_CHINA_LAT: Final = (0.8, 55.9)
_GEOD: Final = Geod(ellps="WGS84")
#: The shortest line (route, trip) taken, in metres: shorter is a click, not a path.
MIN_LINE_LENGTH_M: Final = 1.0

Position = Sequence[float]


class GeometryError(ValueError):
    """A geometry that cannot be used, with a stable ``reason`` and a readable ``detail``.

    Attributes:
        reason: ``malformed``, ``unsupported_type``, ``wrong_kind``, ``empty``, ``bad_position``,
            ``too_few_points``, ``unclosed_ring``, ``self_intersection``, ``swapped_lon_lat``,
            ``out_of_range``, ``zero_length``, ``invalid``, or ``unknown_crs``; for a property
            ``invalid_value``.
        detail: what is wrong, in words.
        path: where in the GeoJSON geometry (``coordinates[0][3]``), when known; for a
            property, the Feature's field (``properties.corridor_m``).
    """

    def __init__(self, reason: str, detail: str, *, path: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.path = path
        where = f" at {path}" if path else ""
        super().__init__(f"{reason}{where}: {detail}")


def _check_position(value: Any, path: str) -> tuple[float, float]:
    if isinstance(value, (list, tuple)) and not value:
        raise GeometryError("empty", "no coordinates", path=path)
    ok = isinstance(value, (list, tuple)) and len(value) in (2, 3)
    if ok:
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok or not all(math.isfinite(v) for v in value):
        raise GeometryError(
            "bad_position", f"a position is [longitude, latitude], got {value!r}", path=path
        )
    return float(value[0]), float(value[1])


def _positions(value: Any, path: str, *, min_count: int) -> list[tuple[float, float]]:
    if not isinstance(value, (list, tuple)):
        raise GeometryError("malformed", f"expected a list of positions, got {value!r}", path=path)
    if not value:
        raise GeometryError("empty", "no positions", path=path)
    points = [_check_position(p, f"{path}[{i}]") for i, p in enumerate(value)]
    if len(points) < min_count:
        raise GeometryError(
            "too_few_points", f"{len(points)} positions, at least {min_count} needed", path=path
        )
    return points


def _ring(value: Any, path: str) -> list[tuple[float, float]]:
    points = _positions(value, path, min_count=3)
    if points[0] != points[-1]:
        raise GeometryError(
            "unclosed_ring",
            f"ring is not closed: first position {list(points[0])} differs from last "
            f"{list(points[-1])}; repeat the first position at the end",
            path=path,
        )
    if len(points) < 4:
        raise GeometryError(
            "too_few_points", f"a ring needs 4 positions (first repeated), got {len(points)}",
            path=path,
        )  # fmt: skip
    return points


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise GeometryError("malformed", f"expected a list, got {value!r}", path=path)
    if not value:
        raise GeometryError("empty", "no coordinates", path=path)
    return list(value)


def _walk(kind: str, coords: Any) -> list[tuple[float, float]]:
    """Validate the nesting of ``coords`` for ``kind`` and return every position."""
    path = "coordinates"
    if kind == "Point":
        return [_check_position(coords, path)]
    if kind == "MultiPoint":
        return _positions(coords, path, min_count=1)
    if kind == "LineString":
        return _positions(coords, path, min_count=2)
    if kind == "MultiLineString":
        lines = _list(coords, path)
        return [
            p for i, ln in enumerate(lines) for p in _positions(ln, f"{path}[{i}]", min_count=2)
        ]
    if kind == "Polygon":
        rings = _list(coords, path)
        return [p for i, r in enumerate(rings) for p in _ring(r, f"{path}[{i}]")]
    polygons = _list(coords, path)
    out: list[tuple[float, float]] = []
    for i, rings in enumerate(polygons):
        for j, ring in enumerate(_list(rings, f"{path}[{i}]")):
            out.extend(_ring(ring, f"{path}[{i}][{j}]"))
    return out


def _check_ranges(points: list[tuple[float, float]]) -> None:
    lons = np.array([p[0] for p in points])
    lats = np.array([p[1] for p in points])
    swapped_fits = bool(np.all(np.abs(lons) <= 90.0) and np.all(np.abs(lats) <= 180.0))
    if np.any(np.abs(lats) > 90.0) or np.any(np.abs(lons) > 180.0):
        if swapped_fits:
            raise GeometryError(
                "swapped_lon_lat",
                "latitude outside -90..90: positions look like [latitude, longitude]; "
                "GeoJSON order is [longitude, latitude]",
                path="coordinates",
            )
        raise GeometryError(
            "out_of_range", "longitude must lie in -180..180 and latitude in -90..90",
            path="coordinates",
        )  # fmt: skip
    lon_in_lat_range = np.all((lons >= _CHINA_LAT[0]) & (lons <= _CHINA_LAT[1]))
    lat_in_lon_range = np.all((lats >= _CHINA_LON[0]) & (lats <= _CHINA_LON[1]))
    if lon_in_lat_range and lat_in_lon_range:
        raise GeometryError(
            "swapped_lon_lat",
            "positions look like [latitude, longitude] of a place in China "
            f"(first is {list(points[0])}); GeoJSON order is [longitude, latitude]",
            path="coordinates",
        )


def _check_valid(geom: BaseGeometry) -> None:
    if geom.is_empty:
        raise GeometryError("empty", "the geometry is empty")
    if geom.geom_type in ("Polygon", "MultiPolygon") and not geom.is_valid:
        why = shapely.is_valid_reason(geom)
        if "Self-intersection" in why:
            raise GeometryError(
                "self_intersection", f"a ring crosses itself or another ring ({why})",
                path="coordinates",
            )  # fmt: skip
        raise GeometryError("invalid", f"not a valid polygon: {why}", path="coordinates")


def parse_geometry(
    obj: Any, *, crs: Crs = "wgs84", kinds: Sequence[str] | None = None
) -> BaseGeometry:
    """Validate a GeoJSON geometry object and return it as a shapely geometry in WGS-84.

    Args:
        obj: the decoded GeoJSON geometry (``{"type": ..., "coordinates": ...}``).
        crs: the coordinate system the positions are in.
        kinds: the geometry types allowed here (all of :data:`GEOMETRY_TYPES` by default).

    Raises:
        GeometryError: the first problem found, naming it and where it is.
    """
    if crs not in CRS_NAMES:
        raise GeometryError("unknown_crs", f"unknown crs {crs!r}: use one of {CRS_NAMES}")
    if not isinstance(obj, Mapping) or "type" not in obj:
        raise GeometryError("malformed", "expected a GeoJSON geometry object with a type")
    kind = obj["type"]
    if kind not in GEOMETRY_TYPES:
        raise GeometryError("unsupported_type", f"unsupported geometry type {kind!r}", path="type")
    if kinds is not None and kind not in kinds:
        raise GeometryError(
            "wrong_kind", f"{kind} is not allowed here: use {' or '.join(kinds)}", path="type"
        )
    if "coordinates" not in obj:
        raise GeometryError("malformed", "missing coordinates", path="coordinates")
    points = _walk(kind, obj["coordinates"])
    _check_ranges(points)
    geom = shape({"type": kind, "coordinates": obj["coordinates"]})
    _check_valid(geom)
    result = transform_geometry(geom, src=crs, dst="wgs84")
    _check_length(result)
    return result


def _check_length(geom: BaseGeometry) -> None:
    if geom.geom_type not in ("LineString", "MultiLineString"):
        return
    multi = geom.geom_type == "MultiLineString"
    for i, line in enumerate(shapely.get_parts(geom)):
        length_m = float(_GEOD.geometry_length(line))
        if length_m < MIN_LINE_LENGTH_M:
            raise GeometryError(
                "zero_length",
                f"the line is {length_m:.2f} m long, at least {MIN_LINE_LENGTH_M:g} m needed: "
                "are all its positions the same?",
                path=f"coordinates[{i}]" if multi else "coordinates",
            )


def check_corridor_widths(value: Any, route: BaseGeometry) -> None:
    """Check a route's ``corridor_m``: metres > 0, one width for all sections or one each.

    A line of n positions has n - 1 sections (a MultiLineString: those of its lines, in
    order). ``corridor_m`` is a number, a list of one number (for every section), or a list
    of one number per section.

    Raises:
        GeometryError: ``invalid_value`` at ``properties.corridor_m``, saying what is wrong.
    """
    widths = value if isinstance(value, list) else [value]
    if not widths or not all(_is_width(w) for w in widths):
        raise GeometryError(
            "invalid_value", "corridor widths are metres > 0: a number or a list of numbers",
            path="properties.corridor_m",
        )  # fmt: skip
    sections = sum(len(line.coords) - 1 for line in shapely.get_parts(route))
    if len(widths) not in (1, sections):
        raise GeometryError(
            "invalid_value",
            f"{len(widths)} widths for {sections} section{'' if sections == 1 else 's'}: "
            "give one width per section or one for all",
            path="properties.corridor_m",
        )


def _is_width(value: Any) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value > 0


def check_validity_period(*, valid_from_ms: int | None, valid_to_ms: int | None) -> None:
    """Check that an object's validity ends after it starts (either end may be open).

    Raises:
        GeometryError: ``invalid_value`` at ``properties.valid_to_ms`` when it is not after
            ``valid_from_ms``: such an object would never be valid.
    """
    if valid_from_ms is None or valid_to_ms is None or valid_to_ms > valid_from_ms:
        return
    raise GeometryError(
        "invalid_value",
        f"valid_to_ms ({valid_to_ms}) must be after valid_from_ms ({valid_from_ms})",
        path="properties.valid_to_ms",
    )


def transform_geometry(geom: BaseGeometry, *, src: Crs, dst: Crs) -> BaseGeometry:
    """Convert every coordinate of ``geom`` between coordinate systems (2-D result)."""
    if src == dst:
        return geom

    def _convert(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        lon, lat = convert_array(xy[:, 0], xy[:, 1], src=src, dst=dst)
        return np.column_stack((lon, lat))

    result: BaseGeometry = shapely.transform(geom, _convert)
    return result


def to_geojson(geom: BaseGeometry, *, crs: Crs = "wgs84", decimals: int = 9) -> dict[str, Any]:
    """The GeoJSON geometry object of a WGS-84 shapely geometry, in ``crs``.

    Coordinates are rounded to ``decimals`` places (9 places is 0.1 mm).
    """
    converted = transform_geometry(geom, src="wgs84", dst=crs)
    rounded = shapely.transform(converted, lambda xy: np.round(xy, decimals))
    out: dict[str, Any] = orjson.loads(shapely.to_geojson(rounded))
    return out


@lru_cache(maxsize=256)
def _transformers(lon0: float, lat0: float) -> tuple[Transformer, Transformer]:
    proj = f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m +no_defs"
    fwd = Transformer.from_crs("EPSG:4326", proj, always_xy=True)
    inv = Transformer.from_crs(proj, "EPSG:4326", always_xy=True)
    return fwd, inv


class LocalProjection:
    """A metric plane (azimuthal equidistant, metres) centred on a point, for WGS-84 geometry.

    Centres are rounded to 0.01 degree so nearby uses share one cached transformer.
    """

    def __init__(self, lon: float, lat: float) -> None:
        self.lon0 = round(lon, 2)
        self.lat0 = round(lat, 2)
        self._fwd, self._inv = _transformers(self.lon0, self.lat0)

    @classmethod
    def around(cls, geom: BaseGeometry) -> LocalProjection:
        """A projection centred on the middle of ``geom``'s bounding box."""
        minx, miny, maxx, maxy = geom.bounds
        return cls((minx + maxx) / 2.0, (miny + maxy) / 2.0)

    def forward(
        self, lons: npt.NDArray[np.float64], lats: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """WGS-84 degrees to metres, for arrays of points (one call for a whole batch)."""
        x, y = self._fwd.transform(lons, lats)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def forward_one(self, lon: float, lat: float) -> tuple[float, float]:
        """WGS-84 degrees to metres, for one point (the same numbers as :meth:`forward`, in
        a quarter of the time of a one-element array)."""
        x, y = self._fwd.transform(lon, lat)
        return float(x), float(y)

    def to_metric(self, geom: BaseGeometry) -> BaseGeometry:
        """WGS-84 degrees to metres east/north of the centre."""
        return self._apply(geom, self._fwd)

    def to_wgs84(self, geom: BaseGeometry) -> BaseGeometry:
        """Metres back to WGS-84 degrees."""
        return self._apply(geom, self._inv)

    @staticmethod
    def _apply(geom: BaseGeometry, transformer: Transformer) -> BaseGeometry:
        def _xy(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            x, y = transformer.transform(xy[:, 0], xy[:, 1])
            return np.column_stack((x, y))

        result: BaseGeometry = shapely.transform(geom, _xy)
        return result


def simplify_m(geom: BaseGeometry, *, tolerance_m: float) -> BaseGeometry:
    """Douglas-Peucker simplification of a WGS-84 geometry with a tolerance in metres."""
    if tolerance_m <= 0 or geom.is_empty:
        return geom
    proj = LocalProjection.around(geom)
    return proj.to_wgs84(proj.to_metric(geom).simplify(tolerance_m, preserve_topology=False))


def simplify_indices_m(
    lons: npt.ArrayLike, lats: npt.ArrayLike, *, tolerance_m: float
) -> list[int]:
    """Indices of the vertices of a WGS-84 polyline kept by Douglas-Peucker at ``tolerance_m``.

    Works in a local metric projection and maps the kept vertices back by index, so callers
    keep per-vertex data (times, speeds) and the exact original coordinates.
    """
    x = np.asarray(lons, dtype=np.float64)
    y = np.asarray(lats, dtype=np.float64)
    if len(x) <= 2 or tolerance_m <= 0:
        return list(range(len(x)))
    proj = LocalProjection(
        (float(x.min()) + float(x.max())) / 2, (float(y.min()) + float(y.max())) / 2
    )
    mx, my = proj._fwd.transform(x, y)
    # Each vertex carries its index as Z: simplification keeps the coordinates (Z too) of the
    # vertices it keeps, so a vertex is found even where the track repeats a position (parked).
    metric = np.column_stack((mx, my, np.arange(len(x), dtype=np.float64)))
    kept = shapely.get_coordinates(
        shapely.simplify(shapely.linestrings(metric), tolerance_m), include_z=True
    )
    return [int(i) for i in kept[:, 2]]


def buffer_m(geom: BaseGeometry, *, distance_m: float) -> BaseGeometry:
    """The area within ``distance_m`` metres of a WGS-84 geometry (a corridor around a route)."""
    proj = LocalProjection.around(geom)
    return proj.to_wgs84(proj.to_metric(geom).buffer(distance_m))


def geodesic_distance_m(
    lon1: npt.ArrayLike, lat1: npt.ArrayLike, lon2: npt.ArrayLike, lat2: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Geodesic distance in metres on the WGS-84 ellipsoid (vectorized)."""
    x1, y1, x2, y2 = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (lon1, lat1, lon2, lat2))
    )
    _, _, dist = _GEOD.inv(x1, y1, x2, y2)
    return np.asarray(dist, dtype=np.float64)
