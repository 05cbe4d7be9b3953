"""Routes and their properties: no line shorter than a metre, corridor widths that fit the
sections, a validity period that ends after it starts. Each mistake names its field."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.rules.geometry import (
    GeometryError,
    check_corridor_widths,
    check_validity_period,
    parse_geometry,
)

A = [120.30, 31.50]
#: 0.000005 degrees of longitude east of A: about 0.47 m.
NEAR_A = [120.300005, 31.50]
B = [120.31, 31.50]
C = [120.31, 31.51]


def line(*points: list[float]) -> dict[str, Any]:
    return {"type": "LineString", "coordinates": list(points)}


@pytest.mark.parametrize(
    ("geometry", "path"),
    [
        (line(A, A), "coordinates"),
        (line(A, A, A, A), "coordinates"),
        (line(A, NEAR_A), "coordinates"),
        (line(A, NEAR_A, A), "coordinates"),
        ({"type": "MultiLineString", "coordinates": [[A, B], [C, C]]}, "coordinates[1]"),
    ],
)
def test_a_line_shorter_than_a_metre_is_refused(geometry: dict[str, Any], path: str) -> None:
    with pytest.raises(GeometryError) as caught:
        parse_geometry(geometry, kinds=("LineString", "MultiLineString"))
    assert (caught.value.reason, caught.value.path) == ("zero_length", path)
    assert "at least 1 m" in caught.value.detail


def test_a_short_line_drawn_in_gcj02_is_refused_too() -> None:
    with pytest.raises(GeometryError, match="zero_length"):
        parse_geometry(line(B, B), crs="gcj02")


def test_lines_of_a_metre_or_more_pass() -> None:
    two_metres = [120.30002, 31.50]  # about 1.9 m east of A
    assert parse_geometry(line(A, two_metres)).length > 0
    multi = parse_geometry({"type": "MultiLineString", "coordinates": [[A, B], [B, C]]})
    assert multi.geom_type == "MultiLineString"


@pytest.mark.parametrize(
    ("geometry", "widths"),
    [
        (line(A, B, C), 50),
        (line(A, B, C), 12.5),
        (line(A, B, C), [50]),  # one for all sections
        (line(A, B, C), [50, 80]),  # one per section
        ({"type": "MultiLineString", "coordinates": [[A, B, C], [C, B]]}, [50, 80, 30]),
    ],
)
def test_corridor_widths_that_fit(geometry: dict[str, Any], widths: Any) -> None:
    check_corridor_widths(widths, parse_geometry(geometry))


@pytest.mark.parametrize(
    ("geometry", "widths", "words"),
    [
        (line(A, B, C), [50, 50, 50], "3 widths for 2 sections"),
        (line(A, B), [50, 80], "2 widths for 1 section:"),
        ({"type": "MultiLineString", "coordinates": [[A, B, C], [C, B]]}, [50, 80], "for 3"),
        (line(A, B), [], "metres > 0"),
        (line(A, B), -5, "metres > 0"),
        (line(A, B), 0, "metres > 0"),
        (line(A, B), [50, float("nan")], "metres > 0"),
        (line(A, B), True, "metres > 0"),
        (line(A, B), "50", "metres > 0"),
    ],
)
def test_corridor_widths_that_do_not_fit(geometry: dict[str, Any], widths: Any, words: str) -> None:
    with pytest.raises(GeometryError) as caught:
        check_corridor_widths(widths, parse_geometry(geometry))
    assert (caught.value.reason, caught.value.path) == ("invalid_value", "properties.corridor_m")
    assert words in caught.value.detail


@pytest.mark.parametrize(("valid_from_ms", "valid_to_ms"), [(2_000, 1_000), (1_000, 1_000)])
def test_validity_must_end_after_it_starts(valid_from_ms: int, valid_to_ms: int) -> None:
    with pytest.raises(GeometryError) as caught:
        check_validity_period(valid_from_ms=valid_from_ms, valid_to_ms=valid_to_ms)
    assert (caught.value.reason, caught.value.path) == ("invalid_value", "properties.valid_to_ms")
    assert "must be after valid_from_ms" in caught.value.detail


@pytest.mark.parametrize(
    ("valid_from_ms", "valid_to_ms"), [(1_000, 1_001), (None, 1_000), (1_000, None), (None, None)]
)
def test_open_or_ordered_validity_passes(
    valid_from_ms: int | None, valid_to_ms: int | None
) -> None:
    check_validity_period(valid_from_ms=valid_from_ms, valid_to_ms=valid_to_ms)
