"""The rules over the API: circle and corridor zones and what the boundary refuses, an asset's
rule state, a trip's progress and a lot's occupants, within the caller's scope.

The rule state comes from real fixes run through the app's own rule service (its world rebuilt
from what the API stored), on SQLite with the in-process live state and on PostgreSQL with Redis.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
import shapely
from fastapi.routing import APIRoute

import wire
from cloud.api import rule_state
from cloud.api import schemas as out
from cloud.api.geo_props import THRESHOLD_DOCS
from cloud.main import API_PREFIX
from cloud.models import Asset, AssetClass
from cloud.rules.config import Thresholds
from cloud.rules.geometry import LocalProjection
from tests.cloud.api.conftest import NOW_MS, World
from tests.cloud.api.test_openapi import conforms

#: Positions are metres east/north of a point between Wuxi and Jiangyin (no seeded zone near).
PROJ = LocalProjection(120.40, 31.75)
_seq = itertools.count(1)


def at(x: float, y: float) -> list[float]:
    """[lon, lat] of a point ``x`` metres east and ``y`` north of the origin."""
    point = PROJ.to_wgs84(shapely.Point(x, y))
    return [round(float(point.x), 9), round(float(point.y), 9)]


def feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": {"name": "test", **properties}}


def line(*points: tuple[float, float]) -> dict[str, Any]:
    return {"type": "LineString", "coordinates": [at(x, y) for x, y in points]}


def square(x: float, y: float, half: float) -> dict[str, Any]:
    corners = [(x - half, y - half), (x + half, y - half), (x + half, y + half)]
    ring = [at(cx, cy) for cx, cy in [*corners, (x - half, y + half), (x - half, y - half)]]
    return {"type": "Polygon", "coordinates": [ring]}


def fix(asset: str, t_s: float, x: float, y: float, *, speed: float = 30.0) -> wire.Fix:
    """A good fix of ``asset`` ``t_s`` seconds from the app's now (negative: before)."""
    lon, lat = at(x, y)
    return wire.Fix(
        seq=next(_seq), ts=NOW_MS + int(t_s * 1000), asset=asset, lat=lat, lon=lon,
        speed_kmh=speed, hdop=0.8, sats=11,
    )  # fmt: skip


async def add_asset(world: World, asset_id: str, short: str, cls: AssetClass) -> None:
    await world.store.put_asset(Asset(id=asset_id, enterprise_id=f"ent-{short}", asset_class=cls))


async def create(world: World, key: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create a geo object an hour ago (a version of a zone or lot applies from when it was
    stored: the fixes come after)."""
    services = world.app.state.services
    clock, services.clock_ms = services.clock_ms, lambda: NOW_MS - 3_600_000
    try:
        answer = await world.send("POST", key, f"/{plural}", body)
    finally:
        services.clock_ms = clock
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def drive(world: World, *fixes: wire.Fix) -> None:
    """Run fixes through the app's rule service on the world the API stored."""
    rules = world.app.state.services.rules
    await rules.refresh(force=True)
    by_asset: dict[str, list[wire.Fix]] = {}
    for item in fixes:
        by_asset.setdefault(item.asset, []).append(item)
    await rules.evaluate(by_asset, now_ms=NOW_MS)


def model_of(path: str) -> Any:
    """The response model the rule state route declares (what the docs say)."""
    for route in rule_state.router.routes:
        if isinstance(route, APIRoute) and route.path == path:
            return route.response_model
    raise AssertionError(path)


async def checked(world: World, key: str, path: str, route: str) -> Any:
    answer = await world.get(key, path)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    conforms(model_of(route), body)
    return body


async def answers(world: World, path: str) -> dict[str, int]:
    keys = ("admin", "reg-wuxi", "reg-sz", "disp-jy", "disp-lx", "disp-sz")
    return {key: (await world.get(key, path)).status_code for key in keys}


# -- an asset's rule state ------------------------------------------------------------------


async def test_asset_inside_a_forbidden_circle_zone(any_world: World) -> None:
    await add_asset(any_world, "visitor-jy", "jy", "hazmat_truck")
    body = feature(
        {"type": "Point", "coordinates": at(0, 0)},
        name="Reservoir", zone_kind="water_source", radius_m=300, severity="critical",
    )  # fmt: skip
    zone = await create(any_world, "disp-jy", "zones", body)
    assert zone["geometry"]["type"] == "Point"
    assert zone["properties"]["radius_m"] == 300
    await drive(
        any_world,
        fix("visitor-jy", -120, -1000, 0),
        fix("visitor-jy", -60, 0, 0),
        fix("visitor-jy", 0, 50, 0),
    )
    path = "/assets/visitor-jy/rules"
    seen = await checked(any_world, "disp-jy", path, "/assets/{asset_id}/rules")
    assert seen["zones"] == [
        {
            "id": zone["id"], "kind": "zone", "name": "Reservoir", "zone_kind": "water_source",
            "since_ms": NOW_MS - 60_000, "open": {"zone.forbidden": NOW_MS - 60_000},
        }
    ]  # fmt: skip
    assert (seen["evaluated_ms"], seen["last_fix_ms"]) == (NOW_MS, NOW_MS)
    assert seen["pending"] == []
    assert seen["trip"] is None
    assert seen["state_version"] >= 1
    alerts = (await any_world.get("disp-jy", "/alerts", asset_id="visitor-jy")).json()
    assert [(a["kind"], a["level"], a["state"]) for a in alerts] == [
        ("zone.forbidden", "critical", "open")
    ]
    # In scope: 200; another enterprise's dispatcher or regulator: 404, as for the asset.
    assert await answers(any_world, path) == {
        "admin": 200, "reg-wuxi": 200, "reg-sz": 404, "disp-jy": 200, "disp-lx": 404,
        "disp-sz": 404,
    }  # fmt: skip
    assert (await any_world.get("admin", "/assets/nobody/rules")).status_code == 404


async def test_an_asset_in_a_corridor_zone_and_one_the_rules_never_saw(any_world: World) -> None:
    await add_asset(any_world, "convoy-jy", "jy", "hazmat_truck")
    body = feature(line((0, 2000), (3000, 2000)), zone_kind="restricted", width_m=100)
    corridor = await create(any_world, "disp-jy", "zones", body)
    await drive(
        any_world,
        fix("convoy-jy", -120, 200, 2000),
        fix("convoy-jy", -60, 900, 2010),
        fix("convoy-jy", 0, 1600, 1990),
    )
    seen = await checked(
        any_world, "disp-jy", "/assets/convoy-jy/rules", "/assets/{asset_id}/rules"
    )
    assert [(z["id"], list(z["open"])) for z in seen["zones"]] == [
        (corridor["id"], ["zone.forbidden"])
    ]
    # Outside the corridor (60 m from the line, 10 m past its edge): not inside.
    await add_asset(any_world, "beside-jy", "jy", "hazmat_truck")
    await drive(any_world, fix("beside-jy", -60, 500, 2060), fix("beside-jy", 0, 1100, 2060))
    beside = await checked(
        any_world, "disp-jy", "/assets/beside-jy/rules", "/assets/{asset_id}/rules"
    )
    assert beside["zones"] == []
    # Registered, never evaluated: a blank state.
    blank = await checked(
        any_world, "disp-jy", "/assets/truck-jy/rules", "/assets/{asset_id}/rules"
    )
    assert (blank["evaluated_ms"], blank["state_version"], blank["zones"]) == (None, 0, [])


async def test_a_stopped_truck_and_its_timer(any_world: World) -> None:
    await add_asset(any_world, "stopper-jy", "jy", "hazmat_truck")
    await drive(
        any_world, *(fix("stopper-jy", t, 5000, -5000, speed=0) for t in range(-720, 1, 60))
    )
    path = "/assets/stopper-jy/rules"
    seen = await checked(any_world, "disp-jy", path, "/assets/{asset_id}/rules")
    # Slow since 12 minutes ago: a stop after 10, outside every lot, escalating 30 min later.
    assert seen["stop"] == {
        "watched": True, "slow_since_ms": NOW_MS - 720_000, "confirms_ms": None,
        "stop_ms": NOW_MS - 720_000, "outside_lot": True, "escalated": False,
        "escalates_ms": NOW_MS - 120_000 + 1_800_000, "moving_since_ms": None,
    }  # fmt: skip
    alerts = (await any_world.get("disp-jy", "/alerts", asset_id="stopper-jy")).json()
    assert [(a["kind"], a["state"]) for a in alerts] == [("parking.outside_lot", "open")]
    assert (await any_world.get("disp-lx", path)).status_code == 404


# -- trips ----------------------------------------------------------------------------------


async def _trip(
    world: World, asset_id: str, route_id: str, start_ms: int, end_ms: int
) -> dict[str, Any]:
    stops = {"type": "MultiPoint", "coordinates": [at(x, 8000) for x in (0, 2500, 7500, 10_000)]}
    body = feature(stops, asset_id=asset_id, route_id=route_id, start_ms=start_ms, end_ms=end_ms)
    return await create(world, "disp-jy", "trips", body)


async def test_a_trip_half_way_with_progress_and_eta(any_world: World) -> None:
    route = await create(
        any_world, "disp-jy", "routes", feature(line((0, 8000), (10_000, 8000)), corridor_m=100)
    )
    for asset_id in ("tanker-jy", "idle-jy", "late-jy"):
        await add_asset(any_world, asset_id, "jy", "hazmat_truck")
    trip = await _trip(any_world, "tanker-jy", route["id"], NOW_MS - 600_000, NOW_MS + 3_600_000)
    idle = await _trip(any_world, "idle-jy", route["id"], NOW_MS + 7_200_000, NOW_MS + 9_000_000)
    late = await _trip(any_world, "late-jy", route["id"], NOW_MS - 9_000_000, NOW_MS - 7_200_000)
    # 60 km/h along the route for five minutes: half of its 10 km.
    tanker = [fix("tanker-jy", -300 + 30 * i, 500 * i, 8000, speed=60) for i in range(11)]
    await drive(any_world, *tanker, fix("late-jy", 0, 0, 8000, speed=0))

    path = f"/trips/{trip['id']}/progress"
    seen = await checked(any_world, "disp-jy", path, "/trips/{trip_id}/progress")
    assert seen["state"] == "under way"
    assert (seen["trip_id"], seen["route_id"]) == (trip["id"], route["id"])
    assert seen["started_ms"] == NOW_MS - 300_000
    assert seen["progress_m"] == pytest.approx(5000, abs=2)
    assert seen["route_length_m"] == pytest.approx(10_000, abs=5)
    assert seen["percent"] == pytest.approx(50, abs=0.1)
    assert (seen["checkpoints"], seen["passed"], seen["skipped"]) == (2, [0], [])
    assert (seen["next_checkpoint"], seen["off_route"], seen["arrived"]) == (1, False, False)
    assert seen["eta_ms"] == pytest.approx(NOW_MS + 300_000, abs=1000)
    on_asset = await checked(
        any_world, "disp-jy", "/assets/tanker-jy/rules", "/assets/{asset_id}/rules"
    )
    assert on_asset["trip"] == seen
    not_started = await checked(
        any_world, "disp-jy", f"/trips/{idle['id']}/progress", "/trips/{trip_id}/progress"
    )
    assert not_started == {"state": "not started"}
    done = await checked(
        any_world, "disp-jy", f"/trips/{late['id']}/progress", "/trips/{trip_id}/progress"
    )
    assert done == {"state": "done"}
    assert await answers(any_world, path) == {
        "admin": 200, "reg-wuxi": 200, "reg-sz": 404, "disp-jy": 200, "disp-lx": 404,
        "disp-sz": 404,
    }  # fmt: skip
    assert (await any_world.get("disp-jy", f"/trips/{route['id']}/progress")).status_code == 404


# -- lots -----------------------------------------------------------------------------------


async def test_lot_occupants_with_a_foreign_asset_hidden(any_world: World) -> None:
    # A shared lot (a regulator's): everyone sees it, each its own occupants by id.
    shared = await create(
        any_world, "reg-wuxi", "lots", feature(square(0, -8000, 100), capacity=1, max_stay_s=90)
    )
    assert shared["properties"]["enterprise_id"] is None
    await add_asset(any_world, "parker-jy", "jy", "other")
    await add_asset(any_world, "parker-lx", "lx", "other")
    await drive(
        any_world,
        fix("parker-jy", -120, 0, -8000, speed=0),
        fix("parker-jy", -60, 10, -8000, speed=0),
        fix("parker-lx", -60, -10, -8000, speed=0),
        fix("parker-lx", 0, 0, -8010, speed=0),
    )
    path = f"/lots/{shared['id']}/occupants"
    route = "/lots/{lot_id}/occupants"
    both = await checked(any_world, "admin", path, route)
    assert both == {
        "lot_id": shared["id"], "name": "test", "capacity": 1, "max_stay_s": 90.0, "count": 2,
        "over_capacity": True, "others": 0, "as_of_ms": NOW_MS,
        "occupants": [
            {"asset_id": "parker-jy", "since_ms": NOW_MS - 120_000, "stay_s": 120.0,
             "over_stay": True},
            {"asset_id": "parker-lx", "since_ms": NOW_MS - 60_000, "stay_s": 60.0,
             "over_stay": False},
        ],
    }  # fmt: skip
    assert await checked(any_world, "reg-wuxi", path, route) == both
    mine = await checked(any_world, "disp-jy", path, route)
    assert [o["asset_id"] for o in mine["occupants"]] == ["parker-jy"]
    assert (mine["count"], mine["others"], mine["over_capacity"]) == (2, 1, True)
    none = await checked(any_world, "disp-sz", path, route)
    assert (none["occupants"], none["others"]) == ([], 2)
    # The lot is in the rule state of its occupants too.
    state = await checked(
        any_world, "disp-jy", "/assets/parker-jy/rules", "/assets/{asset_id}/rules"
    )
    assert [(z["id"], z["kind"], z["name"]) for z in state["zones"]] == [
        (shared["id"], "lot", "test")
    ]
    # Another enterprise's own lot: 404.
    theirs = await create(any_world, "disp-lx", "lots", feature(square(3000, -8000, 100)))
    assert await answers(any_world, f"/lots/{theirs['id']}/occupants") == {
        "admin": 200, "reg-wuxi": 200, "reg-sz": 404, "disp-jy": 404, "disp-lx": 200,
        "disp-sz": 404,
    }  # fmt: skip
    assert (await any_world.get("admin", "/lots/zone-jy/occupants")).status_code == 404


# -- zone shapes and the properties the rules read, at the boundary -------------------------

POINT = {"type": "Point", "coordinates": at(0, 0)}
LINE = line((0, 0), (1000, 0))
MULTILINE = {"type": "MultiLineString", "coordinates": [LINE["coordinates"]]}
WINDOW = {"start_ms": NOW_MS, "end_ms": NOW_MS + 3_600_000}


@pytest.mark.parametrize(
    ("path", "geometry", "properties", "field", "reason"),
    [
        ("/zones", POINT, {}, "properties.radius_m", "missing_field"),
        ("/zones", POINT, {"radius_m": -5}, "properties.radius_m", "invalid_value"),
        ("/zones", POINT, {"radius_m": 0}, "properties.radius_m", "invalid_value"),
        ("/zones", POINT, {"radius_m": 1e7}, "properties.radius_m", "invalid_value"),
        ("/zones", POINT, {"radius_m": "500"}, "properties.radius_m", "invalid_value"),
        ("/zones", POINT, {"radius_m": 50, "width_m": 9}, "properties.width_m", "invalid_value"),
        ("/zones", LINE, {}, "properties.width_m", "missing_field"),
        ("/zones", LINE, {"width_m": 0}, "properties.width_m", "invalid_value"),
        ("/zones", MULTILINE, {"width_m": 50_000}, "properties.width_m", "invalid_value"),
        ("/zones", LINE, {"width_m": 50, "radius_m": 5}, "properties.radius_m", "invalid_value"),
        ("/zones", square(0, 0, 50), {"radius_m": 5}, "properties.radius_m", "invalid_value"),
        (
            "/zones",
            {"type": "MultiPoint", "coordinates": [at(0, 0)]},
            {"radius_m": 5},
            "geometry.type",
            "wrong_kind",
        ),
        (
            "/zones",
            POINT,
            {"radius_m": 9, "zone_kind": "zoo"},
            "properties.zone_kind",
            "invalid_value",
        ),
        ("/zones", POINT, {"radius_m": 9, "classes": []}, "properties.classes", "invalid_value"),
        (
            "/zones",
            POINT,
            {"radius_m": 9, "trigger": "maybe"},
            "properties.trigger",
            "invalid_value",
        ),
        (
            "/zones",
            POINT,
            {"radius_m": 9, "windows": [{"daily": "22:00-25:00"}]},
            "properties.windows",
            "invalid_value",
        ),
        (
            "/zones",
            POINT,
            {"radius_m": 9, "effective_from_ms": -1},
            "properties.effective_from_ms",
            "invalid_value",
        ),
        (
            "/zones",
            POINT,
            {"radius_m": 9, "severity": "dire"},
            "properties.severity",
            "invalid_value",
        ),
        (
            "/zones",
            POINT,
            {"radius_m": 9, "overrides": {"stop_s": 1e12}},
            "properties.overrides.stop_s",
            "invalid_value",
        ),
        (
            "/zones",
            POINT,
            {"radius_m": 9, "overrides": {"nonsense": 1}},
            "properties.overrides.nonsense",
            "invalid_value",
        ),
        ("/lots", square(0, 0, 50), {"capacity": 2.5}, "properties.capacity", "invalid_value"),
        ("/lots", square(0, 0, 50), {"capacity": 10**9}, "properties.capacity", "invalid_value"),
        ("/lots", square(0, 0, 50), {"max_stay_s": -1}, "properties.max_stay_s", "invalid_value"),
        ("/lots", POINT, {"radius_m": 50}, "geometry.type", "wrong_kind"),
        ("/routes", LINE, {"corridor_m": 20_000}, "properties.corridor_m", "invalid_value"),
        (
            "/trips",
            LINE,
            {"asset_id": "truck-jy", **WINDOW},
            "properties.route_id",
            "missing_field",
        ),
        (
            "/trips",
            LINE,
            {"asset_id": "truck-jy", "route_id": "nowhere", **WINDOW},
            "properties.route_id",
            "invalid_value",
        ),
        (
            "/trips",
            LINE,
            {"asset_id": "truck-jy", "route_id": "r", "start_ms": NOW_MS, "end_ms": NOW_MS},
            "properties.end_ms",
            "invalid_value",
        ),
        (
            "/trips",
            LINE,
            {"asset_id": "truck-jy", "route_id": "r"},
            "properties.start_ms",
            "missing_field",
        ),
    ],
)
async def test_what_the_rules_cannot_use_is_422_naming_it(
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
    assert (detail["field"], detail["reason"]) == (field, reason), detail
    assert detail["detail"]


async def test_circle_and_corridor_zones_round_trip(world: World) -> None:
    circle = feature(POINT, radius_m=250.5, windows=[{"daily": "22:00-06:00"}], classes=["coach"])
    made = await world.send("POST", "disp-jy", "/zones", circle, crs="gcj02")
    assert made.status_code == 201, made.text
    zone = conforms(out.ZoneFeature, made.json())
    assert zone.geometry.type == "Point"
    assert zone.geometry.coordinates == pytest.approx(at(0, 0), abs=1e-8)
    assert (zone.properties.radius_m, zone.properties.classes) == (250.5, ["coach"])
    corridor = feature(MULTILINE, width_m=40, trigger="dwell", overrides={"dwell_s": 300})
    made = await world.send("POST", "disp-jy", "/zones", corridor)
    assert made.status_code == 201, made.text
    assert conforms(out.ZoneFeature, made.json()).properties.width_m == 40
    listed = (await world.get("disp-jy", "/zones")).json()
    conforms(out.ZoneCollection, listed)
    assert {f["geometry"]["type"] for f in listed["features"]} == {
        "Polygon", "Point", "MultiLineString",
    }  # fmt: skip
    # A trip goes on a route of its own enterprise or a shared one, not another's.
    theirs = await world.send("POST", "disp-lx", "/routes", feature(LINE))
    trip = feature(LINE, asset_id="truck-jy", route_id=theirs.json()["id"], **WINDOW)
    refused = await world.send("POST", "admin", "/trips", {**trip, "properties": {
        **trip["properties"], "enterprise_id": "ent-jy"}})  # fmt: skip
    assert refused.json()["detail"]["field"] == "properties.route_id"


# -- the OpenAPI document -------------------------------------------------------------------

RULE_PROPERTIES = {
    "ZoneIn": {
        "zone_kind", "classes", "trigger", "windows", "effective_from_ms", "severity",
        "radius_m", "width_m", "overrides", "valid_from_ms", "valid_to_ms",
    },
    "LotIn": {"capacity", "max_stay_s", "overrides"},
    "RouteIn": {"corridor_m", "overrides"},
    "TripIn": {
        "asset_id", "route_id", "start_ms", "end_ms", "checkpoint_radius_m", "arrival_radius_m",
        "overrides",
    },
}  # fmt: skip


async def test_openapi_documents_the_properties_the_rules_read(world: World) -> None:
    document = (await world.http.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    thresholds = {f.name for f in dataclasses.fields(Thresholds)}
    assert set(THRESHOLD_DOCS) == thresholds
    for body, names in RULE_PROPERTIES.items():
        properties = schemas[body]["properties"]["properties"]["properties"]
        assert names <= set(properties), body
        for name in names:
            assert properties[name].get("description"), (body, name)
        for name in names - {"valid_from_ms", "valid_to_ms"}:
            assert properties[name].get("examples"), (body, name)
        overrides = properties["overrides"]
        assert set(overrides["properties"]) == thresholds
        assert "default 600" in overrides["properties"]["stop_s"]["description"]
    zone = schemas["ZoneIn"]["properties"]
    assert set(zone["geometry"]["properties"]["type"]["enum"]) == {
        "Polygon", "MultiPolygon", "Point", "LineString", "MultiLineString",
    }  # fmt: skip
    assert zone["properties"]["properties"]["radius_m"]["maximum"] == 100_000
    assert "restricted" in zone["properties"]["properties"]["zone_kind"]["enum"]
    trip = schemas["TripIn"]["properties"]["properties"]
    assert {"name", "asset_id", "route_id", "start_ms", "end_ms"} <= set(trip["required"])
    # The answers document them too.
    assert {"radius_m", "width_m", "windows"} <= set(schemas["ZoneProperties"]["properties"])
    assert {"capacity", "max_stay_s"} <= set(schemas["LotProperties"]["properties"])
    assert "route_id" in schemas["TripProperties"]["properties"]
    paths = document["paths"]
    for path, model in (
        ("/assets/{asset_id}/rules", "AssetRulesOut"),
        ("/trips/{trip_id}/progress", "TripProgressOut"),
        ("/lots/{lot_id}/occupants", "LotOccupantsOut"),
    ):
        responses = paths[API_PREFIX + path]["get"]["responses"]
        assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(model)
        assert "404" in responses
    stop = schemas["StopTimerOut"]["properties"]
    assert stop["escalates_ms"]["description"]
