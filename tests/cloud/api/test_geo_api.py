"""Zones, routes, lots and trips over the API: CRUD, coordinate systems, clear 422s."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.coords import convert
from tests.cloud.api.conftest import World, square

SQUARE = square(120.30, 31.50)["coordinates"][0]


def feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": {"name": "test", **properties}}


async def test_zone_crud_in_gcj02(world: World) -> None:
    body = feature(
        {"type": "Polygon", "coordinates": [SQUARE]}, windows=[{"from": "22:00", "to": "06:00"}]
    )
    created = await world.send("POST", "disp-jy", "/zones", body, crs="gcj02")
    assert created.status_code == 201, created.text
    zone = created.json()
    assert zone["properties"]["enterprise_id"] == "ent-jy"
    assert zone["properties"]["version"] == 1
    assert zone["properties"]["windows"] == [{"from": "22:00", "to": "06:00"}]
    for (x, y), (ex, ey) in zip(zone["geometry"]["coordinates"][0], SQUARE, strict=True):
        assert abs(x - ex) < 1e-8
        assert abs(y - ey) < 1e-8
    # Stored in WGS-84: the GCJ-02 offset was removed.
    stored = await world.store.get_geo(zone["id"])
    assert stored is not None
    lon, lat = stored.geometry["coordinates"][0][0]
    assert (lon, lat) != pytest.approx((120.30, 31.50), abs=1e-3)
    assert convert(lon, lat, src="wgs84", dst="gcj02") == pytest.approx((120.30, 31.50), abs=1e-8)
    as_wgs = (await world.get("disp-jy", f"/zones/{zone['id']}")).json()
    assert as_wgs["geometry"]["coordinates"][0][0] == pytest.approx([lon, lat], abs=1e-8)
    as_bd = (await world.get("disp-jy", f"/zones/{zone['id']}", crs="bd09")).json()
    back = convert(*as_bd["geometry"]["coordinates"][0][0], src="bd09", dst="gcj02")
    assert back == pytest.approx((120.30, 31.50), abs=1e-8)

    body["properties"]["name"] = "renamed"
    replaced = await world.send("PUT", "disp-jy", f"/zones/{zone['id']}", body, crs="gcj02")
    assert replaced.status_code == 200
    assert replaced.json()["properties"]["version"] == 2
    assert replaced.json()["properties"]["name"] == "renamed"
    listed = (await world.get("disp-jy", "/zones")).json()
    assert zone["id"] in {f["id"] for f in listed["features"]}
    assert (await world.send("DELETE", "disp-jy", f"/zones/{zone['id']}")).status_code == 204
    assert (await world.get("disp-jy", f"/zones/{zone['id']}")).status_code == 404


async def test_zone_id_taken_is_409(world: World) -> None:
    body = {**feature({"type": "Polygon", "coordinates": [SQUARE]}), "id": "zone-jy"}
    assert (await world.send("POST", "admin", "/zones", body)).status_code == 409
    # Only an admin chooses ids: naming one, taken or free, tells a tenant nothing.
    taken = await world.send("POST", "disp-jy", "/zones", body)
    free = await world.send("POST", "disp-jy", "/zones", {**body, "id": "zone-free"})
    assert taken.status_code == free.status_code == 422
    assert taken.json() == free.json()
    # Kinds do not mix: a zone is not a route.
    assert (await world.get("disp-jy", "/routes/zone-jy")).status_code == 404


@pytest.mark.parametrize(
    ("path", "geometry", "properties", "field", "reason"),
    [
        (
            "/zones",
            {"type": "Polygon", "coordinates": [SQUARE[:-1]]},
            {},
            "geometry.coordinates[0]",
            "unclosed_ring",
        ),
        (
            "/zones",
            {
                "type": "Polygon",
                "coordinates": [
                    [[120.3, 31.5], [120.31, 31.51], [120.31, 31.5], [120.3, 31.51], [120.3, 31.5]]
                ],
            },
            {},
            "geometry.coordinates",
            "self_intersection",
        ),
        (
            "/zones",
            {"type": "Polygon", "coordinates": [[[y, x] for x, y in SQUARE]]},
            {},
            "geometry.coordinates",
            "swapped_lon_lat",
        ),
        ("/lots", {"type": "Polygon", "coordinates": []}, {}, "geometry.coordinates", "empty"),
        (
            "/zones",
            {"type": "Point", "coordinates": [120.3, 31.5]},
            {},
            "properties.radius_m",
            "missing_field",
        ),
        (
            "/routes",
            {"type": "Polygon", "coordinates": [SQUARE]},
            {},
            "geometry.type",
            "wrong_kind",
        ),
        (
            "/routes",
            {"type": "LineString", "coordinates": [[120.3, 31.5]]},
            {},
            "geometry.coordinates",
            "too_few_points",
        ),
        (
            "/routes",
            {"type": "LineString", "coordinates": [[120.3, 31.5], [120.4, 31.5], [120.5, 31.6]]},
            {"corridor_m": [50, 50, 50]},
            "properties.corridor_m",
            "invalid_value",
        ),
        (
            "/routes",
            {"type": "LineString", "coordinates": [[120.3, 31.5], [120.4, 31.5]]},
            {"corridor_m": -5},
            "properties.corridor_m",
            "invalid_value",
        ),
        (
            "/zones",
            {"type": "Polygon", "coordinates": [SQUARE]},
            {"name": ""},
            "properties.name",
            "missing_field",
        ),
        (
            "/zones",
            {"type": "Polygon", "coordinates": [SQUARE]},
            {"valid_from_ms": "soon"},
            "properties.valid_from_ms",
            "invalid_value",
        ),
        (
            "/trips",
            {"type": "LineString", "coordinates": [[120.3, 31.5], [120.4, 31.5]]},
            {"asset_id": "truck-sz", "route_id": "r", "start_ms": 1, "end_ms": 2},
            "properties.asset_id",
            "invalid_value",
        ),
    ],
)
async def test_invalid_geo_objects_are_422(
    world: World,
    path: str,
    geometry: dict[str, Any],
    properties: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    response = await world.send("POST", "disp-jy", path, feature(geometry, **properties))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert (detail["field"], detail["reason"]) == (field, reason)
    assert detail["detail"]


async def test_unknown_crs_is_422(world: World) -> None:
    response = await world.send(
        "POST",
        "disp-jy",
        "/zones",
        feature({"type": "Polygon", "coordinates": [SQUARE]}),
        crs="etrs89",
    )
    assert response.status_code == 422
    assert "crs" in response.text


async def test_route_with_corridor_per_section_and_trip(world: World) -> None:
    line = {"type": "LineString", "coordinates": [[120.3, 31.5], [120.4, 31.5], [120.5, 31.6]]}
    route = await world.send("POST", "disp-jy", "/routes", feature(line, corridor_m=[50, 80]))
    assert route.status_code == 201, route.text
    assert route.json()["properties"]["corridor_m"] == [50, 80]
    trip = feature(
        line, asset_id="truck-jy", route_id=route.json()["id"], start_ms=1, end_ms=5,
        valid_from_ms=1, valid_to_ms=2,
    )  # fmt: skip
    created = await world.send("POST", "disp-jy", "/trips", trip)
    assert created.status_code == 201, created.text
    assert created.json()["properties"]["valid_to_ms"] == 2


async def test_shared_zone_rules(world: World) -> None:
    body = feature({"type": "Polygon", "coordinates": [SQUARE]}, name="City centre ban")
    created = await world.send("POST", "reg-wuxi", "/zones", body)
    assert created.status_code == 201, created.text
    zone = created.json()
    assert zone["properties"]["enterprise_id"] is None
    assert zone["properties"]["region"] == "320200"
    path = f"/zones/{zone['id']}"
    # Every tenant sees a shared zone; only admins and the regulators of its region change it.
    assert (await world.get("disp-sz", path)).status_code == 200
    assert (await world.send("PUT", "disp-jy", path, body)).status_code == 403
    assert (await world.send("DELETE", "disp-jy", path)).status_code == 403
    assert (await world.send("PUT", "reg-sz", path, body)).status_code == 403
    assert (await world.send("PUT", "reg-wuxi", path, body)).status_code == 200
    assert (
        await world.send(
            "POST",
            "disp-jy",
            "/zones",
            {**body, "properties": {"name": "x", "enterprise_id": None}},
        )
    ).status_code == 403
    assert (await world.send("DELETE", "admin", path)).status_code == 204
