"""GeoJSON validation: each mistake gets its own named error; conversion and metric helpers."""

from __future__ import annotations

from typing import Any

import pytest
from shapely.geometry import LineString, Point

from cloud.rules.geometry import (
    GeometryError,
    LocalProjection,
    buffer_m,
    geodesic_distance_m,
    parse_geometry,
    simplify_indices_m,
    simplify_m,
    to_geojson,
)

SQUARE = [[120.30, 31.50], [120.31, 31.50], [120.31, 31.51], [120.30, 31.51], [120.30, 31.50]]


def polygon(ring: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [ring]}


@pytest.mark.parametrize(
    ("geometry", "reason", "words"),
    [
        (polygon(SQUARE[:-1]), "unclosed_ring", "not closed"),
        (
            polygon(
                [
                    [120.30, 31.50],
                    [120.31, 31.51],
                    [120.31, 31.50],
                    [120.30, 31.51],
                    [120.30, 31.50],
                ]
            ),
            "self_intersection",
            "crosses",
        ),
        (polygon([[lat, lon] for lon, lat in SQUARE]), "swapped_lon_lat", "[longitude, latitude]"),
        (
            {"type": "LineString", "coordinates": [[31.5, 120.3], [31.6, 120.4]]},
            "swapped_lon_lat",
            "latitude",
        ),
        ({"type": "Point", "coordinates": [40.0, 100.0]}, "swapped_lon_lat", "latitude"),
        ({"type": "Polygon", "coordinates": []}, "empty", "no coordinates"),
        ({"type": "Polygon", "coordinates": [[]]}, "empty", "no positions"),
        ({"type": "Point", "coordinates": []}, "empty", "no coordinates"),
        ({"type": "MultiPolygon", "coordinates": [[]]}, "empty", "no coordinates"),
        (polygon([[120.3, 31.5], [120.4, 31.5], [120.3, 31.5]]), "too_few_points", "4 positions"),
        ({"type": "Point", "coordinates": [200.0, 100.0]}, "out_of_range", "-180..180"),
        ({"type": "Point", "coordinates": ["120", 31.5]}, "bad_position", "[longitude, latitude]"),
        ({"type": "Circle", "coordinates": [120.0, 31.5]}, "unsupported_type", "Circle"),
        ({"type": "Polygon"}, "malformed", "coordinates"),
        ([1, 2], "malformed", "GeoJSON"),
    ],
)
def test_each_mistake_named(geometry: Any, reason: str, words: str) -> None:
    with pytest.raises(GeometryError) as info:
        parse_geometry(geometry)
    assert info.value.reason == reason
    assert words in str(info.value)


def test_wrong_kind_for_this_use() -> None:
    with pytest.raises(GeometryError, match="use Polygon or MultiPolygon") as info:
        parse_geometry(
            {"type": "Point", "coordinates": [120.3, 31.5]}, kinds=("Polygon", "MultiPolygon")
        )
    assert info.value.reason == "wrong_kind"


def test_valid_polygon_round_trips_through_gcj02() -> None:
    geom = parse_geometry(polygon(SQUARE), crs="gcj02")
    # Stored WGS-84 differs from what was drawn by the GCJ-02 offset (hundreds of metres) ...
    dist = geodesic_distance_m(
        geom.exterior.coords[0][0], geom.exterior.coords[0][1], 120.30, 31.50
    )
    assert 100.0 < float(dist) < 1000.0
    # ... and comes back as drawn.
    back = to_geojson(geom, crs="gcj02")
    assert back["type"] == "Polygon"
    for (x, y), (ex, ey) in zip(back["coordinates"][0], SQUARE, strict=True):
        assert abs(x - ex) < 1e-8
        assert abs(y - ey) < 1e-8


def test_holes_and_multipolygons_accepted() -> None:
    hole = [[120.302, 31.502], [120.304, 31.502], [120.304, 31.504], [120.302, 31.502]]
    geom = parse_geometry({"type": "MultiPolygon", "coordinates": [[SQUARE, hole]]})
    assert geom.geom_type == "MultiPolygon"
    assert geom.is_valid


def test_self_crossing_route_is_allowed() -> None:
    line = [[120.30, 31.50], [120.31, 31.51], [120.31, 31.50], [120.30, 31.51]]
    assert parse_geometry({"type": "LineString", "coordinates": line}).geom_type == "LineString"


def test_metric_helpers() -> None:
    proj = LocalProjection(120.30, 31.50)
    p = proj.to_metric(Point(120.30, 31.50))
    assert abs(p.x) < 500  # centre rounded to 0.01 degree
    assert abs(p.y) < 500
    corridor = buffer_m(LineString([(120.30, 31.50), (120.32, 31.50)]), distance_m=50.0)
    assert corridor.contains(Point(120.31, 31.5003))  # ~33 m north of the line
    assert not corridor.contains(Point(120.31, 31.5006))  # ~67 m north
    zigzag = LineString([(120.30 + i * 1e-4, 31.50 + (i % 2) * 1e-6) for i in range(200)])
    assert len(simplify_m(zigzag, tolerance_m=1.0).coords) == 2
    assert len(simplify_m(zigzag, tolerance_m=0.01).coords) == 200


def test_simplify_indices_keep_ends_order_and_tolerance() -> None:
    import math

    import numpy as np

    lons = np.array([120.3 + i * 1e-5 for i in range(2000)])
    lats = np.array([31.5 + 3e-4 * math.sin(i / 50) + (i % 3) * 1e-7 for i in range(2000)])
    indices = simplify_indices_m(lons, lats, tolerance_m=2.0)
    assert indices[0] == 0
    assert indices[-1] == len(lons) - 1
    assert indices == sorted(set(indices))
    assert 10 < len(indices) < 500
    simplified = LineString([(lons[i], lats[i]) for i in indices])
    proj = LocalProjection.around(simplified)
    line_m = proj.to_metric(simplified)
    worst = max(
        line_m.distance(proj.to_metric(Point(x, y))) for x, y in zip(lons, lats, strict=True)
    )
    assert worst <= 2.0 + 1e-6
    assert simplify_indices_m(lons[:2], lats[:2], tolerance_m=5.0) == [0, 1]


def test_simplify_indices_of_a_track_that_revisits_a_position() -> None:
    # A truck drives 1 km east and stays parked: GNSS repeats the same position. The kept
    # vertices must be the fixes they came from (the track ends at the last fix, not the first
    # one at the parking spot), also when the route passes a spot twice.
    parked = [120.30, 120.31, 120.31, 120.31]
    assert simplify_indices_m(parked, [31.5] * 4, tolerance_m=3.0) == [0, 3]
    lons = [120.30, 120.31, 120.32, 120.31, 120.31, 120.31]
    lats = [31.50, 31.50, 31.51, 31.50, 31.50, 31.52]
    indices = simplify_indices_m(lons, lats, tolerance_m=3.0)
    assert indices[0] == 0
    assert indices[-1] == len(lons) - 1
    assert indices == sorted(set(indices))
    assert 2 in indices  # the far corner
