"""Routes and trips over the API: a line shorter than a metre, corridor widths that do not fit
the sections and a validity that ends before it starts are 422s naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cloud.api.conftest import World

A, B, C = [120.30, 31.50], [120.31, 31.50], [120.31, 31.51]


def feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": {"name": "test", **properties}}


def line(*points: list[float]) -> dict[str, Any]:
    return {"type": "LineString", "coordinates": list(points)}


async def _refused(world: World, path: str, body: dict[str, Any]) -> tuple[str, str]:
    response = await world.send("POST", "disp-jy", path, body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail["detail"]
    return detail["field"], detail["reason"]


@pytest.mark.parametrize("path", ["/routes", "/trips"])
@pytest.mark.parametrize("points", [[A, A], [A, A, A], [A, [120.300005, 31.50]]])
async def test_a_line_shorter_than_a_metre_is_422(
    world: World, path: str, points: list[list[float]]
) -> None:
    field = await _refused(world, path, feature(line(*points)))
    assert field == ("geometry.coordinates", "zero_length")


async def test_one_corridor_width_in_a_list_is_for_every_section(world: World) -> None:
    response = await world.send(
        "POST", "disp-jy", "/routes", feature(line(A, B, C), corridor_m=[50])
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("geometry", "widths"),
    [
        (line(A, B, C), [50, 50, 50]),
        ({"type": "MultiLineString", "coordinates": [[A, B, C], [C, B]]}, [50, 80]),
    ],
)
async def test_corridor_widths_that_do_not_fit_the_sections_are_422(
    world: World, geometry: dict[str, Any], widths: list[float]
) -> None:
    field = await _refused(world, "/routes", feature(geometry, corridor_m=widths))
    assert field == ("properties.corridor_m", "invalid_value")


@pytest.mark.parametrize(("valid_from_ms", "valid_to_ms"), [(2_000, 1_000), (1_000, 1_000)])
async def test_validity_ending_before_it_starts_is_422(
    world: World, valid_from_ms: int, valid_to_ms: int
) -> None:
    square = [A, B, C, [120.30, 31.51], A]
    body = feature(
        {"type": "Polygon", "coordinates": [square]},
        valid_from_ms=valid_from_ms,
        valid_to_ms=valid_to_ms,
    )
    assert await _refused(world, "/zones", body) == ("properties.valid_to_ms", "invalid_value")
