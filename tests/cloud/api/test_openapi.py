"""The OpenAPI document describes every JSON body of the API, and real bodies match it.

Each body from a real endpoint (seeded world, SQLite and PostgreSQL + Redis) is validated against
the model its route declares and must survive the round trip unchanged: a field the model does
not know, or one it types differently, fails here rather than drifting silently from the docs.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError

import wire
from cloud.api import alerts, geo, inspect, live, registry, tracks
from cloud.api import schemas as out
from cloud.ingest import Ingest
from cloud.main import API_PREFIX
from cloud.models import Received
from tests.cloud.api.conftest import NOW_MS, ORIGINS, T0_MS, TRACK_POINTS, World, square
from tests.cloud.ingest_support import batch

WINDOW = {"start_ms": T0_MS, "end_ms": NOW_MS}
_JSON_METHODS = ("get", "post", "put", "patch")


def conforms(model: Any, body: Any) -> Any:
    """Validate ``body`` against ``model`` (a model or a type such as ``list[Model]``) and check
    that nothing was lost or changed on the way: the validated value, dumped with only the
    fields the body had, equals the body."""
    adapter: TypeAdapter[Any] = TypeAdapter(model)
    value = adapter.validate_python(body)
    assert adapter.dump_python(value, mode="json", exclude_unset=True) == body
    return value


def _api_routes() -> list[APIRoute]:
    """The HTTP routes of every router of the API (paths without the ``/api/v1`` prefix)."""
    routers = (
        registry.router,
        tracks.router,
        geo.router,
        alerts.router,
        live.router,
        inspect.router,
    )
    return [r for router in routers for r in router.routes if isinstance(r, APIRoute)]


def _route_model(method: str, path: str) -> Any:
    """The response model a route declares (so tests check what the docs really say)."""
    for route in _api_routes():
        if route.path == path and method.upper() in (route.methods or ()):
            return route.response_model
    raise AssertionError(f"no route {method} {path}")


async def _checked(world: World, key: str, path: str, route: str, **params: Any) -> Any:
    """GET ``path`` and check the body against the model of ``route``."""
    answer = await world.get(key, path, **params)
    assert answer.status_code == 200, answer.text
    return conforms(_route_model("GET", route), answer.json())


def test_conforms_catches_drift() -> None:
    fix = {"kind": "fix", "seq": 1, "ts": 2, "asset": "a", "lat": 1.0, "lon": 2.0, "recv_ms": 3}
    conforms(out.FixOut, fix)
    conforms(out.FixOut, {**fix, "course": 90.0, "quality": "questionable"})
    with pytest.raises(AssertionError):  # a field the docs do not know
        conforms(out.FixOut, {**fix, "battery": 0.5})
    with pytest.raises(ValidationError):  # documented as omitted when unset, never null
        conforms(out.FixOut, {**fix, "course": None})
    with pytest.raises(ValidationError):  # a required field missing
        conforms(list[out.FixOut], [{k: v for k, v in fix.items() if k != "recv_ms"}])


# -- the document ---------------------------------------------------------------------------


async def _openapi(world: World) -> dict[str, Any]:
    answer = await world.http.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        if path.startswith(API_PREFIX + "/")
        for method, operation in item.items()
        if method in _JSON_METHODS
    ]


async def test_every_json_route_documents_its_response(world: World) -> None:
    document = await _openapi(world)
    operations = _operations(document)
    assert len(operations) > 40
    offenders = []
    for method, path, operation in operations:
        success = {c: r for c, r in operation["responses"].items() if c.startswith("2")}
        if not success:
            offenders.append(f"{method.upper()} {path}: no success response")
        for code, response in success.items():
            content = response.get("content", {})
            if code == "204":
                continue
            if not content:
                offenders.append(f"{method.upper()} {path} {code}: no content")
            json_body = content.get("application/json")
            if json_body is not None and not _refs(json_body.get("schema", {})):
                offenders.append(f"{method.upper()} {path} {code}: no schema ({json_body})")
    assert offenders == []


async def test_errors_are_documented_with_models(world: World) -> None:
    document = await _openapi(world)
    schemas = document["components"]["schemas"]
    offenders = []
    for method, path, operation in _operations(document):
        for code in ("401", "422"):
            if code not in operation["responses"]:
                offenders.append(f"{method.upper()} {path}: {code} missing")
        for code, response in operation["responses"].items():
            if code.startswith(("4", "5")):
                refs = _refs(response.get("content", {}))
                if not refs:
                    offenders.append(f"{method.upper()} {path} {code}: no model")
    assert offenders == []
    for ref in _refs(document["paths"]):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    not_found = document["paths"][API_PREFIX + "/assets/{asset_id}"]["get"]["responses"]["404"]
    assert _refs(not_found) == ["#/components/schemas/ErrorOut"]
    admin_only = document["paths"][API_PREFIX + "/ingest/counters"]["get"]["responses"]
    assert "403" in admin_only
    created = document["paths"][API_PREFIX + "/zones"]["post"]["responses"]["201"]
    assert _refs(created) == ["#/components/schemas/ZoneFeature"]


async def test_every_api_route_is_in_the_document(world: World) -> None:
    document = await _openapi(world)
    documented = {
        (method.upper(), path) for method, path, _ in _operations(document)
    } | {  # DELETE routes answer 204 without a body
        ("DELETE", path) for path, item in document["paths"].items() if "delete" in item
    }
    routes = {
        (method, API_PREFIX + route.path)
        for route in _api_routes()
        for method in route.methods or ()
    }
    assert len(routes) > 40
    assert routes <= documented


async def test_response_models_are_for_the_docs_only(world: World) -> None:
    # The handlers return JsonResponse objects, which FastAPI passes through without
    # validating or serializing them against response_model: the bodies are msgspec's.
    answer = await world.get("disp-jy", "/assets/truck-jy")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    # A field left out by msgspec (omit_defaults) stays out: pydantic would have written it.
    assert "course" not in body["latest"]
    assert "quality" not in body["latest"]


# -- real bodies against the declared models ------------------------------------------------


async def test_assets_with_latest(any_world: World) -> None:
    assets = await _checked(any_world, "reg-wuxi", "/assets", "/assets", crs="gcj02")
    assert [a.id for a in assets] == ["truck-jy", "truck-lx"]
    assert assets[0].latest is not None
    assert assets[0].latest.seq == TRACK_POINTS - 1
    one = await _checked(any_world, "disp-jy", "/assets/truck-jy", "/assets/{asset_id}")
    assert isinstance(one, out.AssetView)
    created = await any_world.send(
        "POST", "disp-jy", "/assets", {"asset_class": "school_bus", "mmsi": 7}
    )
    assert created.status_code == 201, created.text
    conforms(_route_model("POST", "/assets"), created.json())
    bus = created.json()["id"]
    fresh = await _checked(any_world, "disp-jy", f"/assets/{bus}", "/assets/{asset_id}")
    assert fresh.latest is None
    changed = await any_world.send(
        "PUT", "disp-jy", f"/assets/{bus}", {"asset_class": "school_bus", "mmsi": 8}
    )
    conforms(_route_model("PUT", "/assets/{asset_id}"), changed.json())


async def test_track_as_geojson(any_world: World) -> None:
    route = "/assets/{asset_id}/track"
    line = await _checked(any_world, "disp-jy", "/assets/truck-jy/track", route, **WINDOW)
    assert isinstance(line, out.TrackFeature)
    assert line.geometry is not None
    assert line.geometry.type == "LineString"
    assert len(line.properties.times_ms) == TRACK_POINTS
    simple = await _checked(
        any_world, "disp-jy", "/assets/truck-jy/track", route, simplify_m=5, crs="bd09", **WINDOW
    )
    assert simple.properties.points == 2
    point = await _checked(
        any_world, "disp-jy", "/assets/truck-jy/track", route, start_ms=T0_MS, end_ms=T0_MS + 1
    )
    assert point.geometry is not None
    assert point.geometry.type == "Point"
    empty = await _checked(
        any_world, "disp-jy", "/assets/truck-jy/track", route, start_ms=1, end_ms=2
    )
    assert empty.geometry is None


async def test_nearby(any_world: World) -> None:
    lon, lat = ORIGINS["jy"][0] + 59e-4, ORIGINS["jy"][1] + 59e-4
    near = await _checked(any_world, "admin", "/nearby", "/nearby", lat=lat, lon=lon, radius_m=500)
    assert isinstance(near, out.NearbyCollection)
    assert [f.id for f in near.features] == ["truck-jy"]
    assert near.features[0].properties.fix.asset == "truck-jy"
    none = await _checked(any_world, "admin", "/nearby", "/nearby", lat=0, lon=0, radius_m=1)
    assert none.features == []


async def test_zones_routes_lots_trips(any_world: World) -> None:
    zones = await _checked(any_world, "disp-jy", "/zones", "/zones")
    assert [z.id for z in zones.features] == ["zone-jy"]
    zone = await _checked(any_world, "disp-jy", "/zones/zone-jy", "/zones/{object_id}", crs="gcj02")
    assert isinstance(zone, out.ZoneFeature)
    assert zone.properties.kind == "zone"
    lon, lat = ORIGINS["jy"]
    bodies: dict[str, dict[str, Any]] = {
        "zones": {"geometry": square(lon, lat), "properties": {"name": "z", "max_stay_s": 60}},
        "lots": {"geometry": square(lon, lat), "properties": {"name": "lot"}},
        "routes": {
            "geometry": {"type": "LineString", "coordinates": [[lon, lat], [lon + 0.01, lat]]},
            "properties": {"name": "r", "corridor_m": 50},
        },
        "trips": {
            "geometry": {"type": "MultiPoint", "coordinates": [[lon, lat], [lon + 0.01, lat]]},
            "properties": {
                "name": "t",
                "asset_id": "truck-jy",
                "start_ms": NOW_MS,
                "end_ms": NOW_MS + 3_600_000,
            },
        },
    }
    route_id = ""
    for plural, body in bodies.items():
        if plural == "trips":
            body["properties"]["route_id"] = route_id
        created = await any_world.send("POST", "disp-jy", f"/{plural}", {"type": "Feature", **body})
        assert created.status_code == 201, created.text
        if plural == "routes":
            route_id = created.json()["id"]
        conforms(_route_model("POST", f"/{plural}"), created.json())
        object_id = created.json()["id"]
        body["properties"]["name"] = "renamed"
        replaced = await any_world.send(
            "PUT", "disp-jy", f"/{plural}/{object_id}", {"type": "Feature", **body}
        )
        assert replaced.status_code == 200, replaced.text
        again = conforms(_route_model("PUT", f"/{plural}/{{object_id}}"), replaced.json())
        assert again.properties.version == 2
        await _checked(any_world, "disp-jy", f"/{plural}", f"/{plural}", crs="bd09")
    # A shared zone of a regulator carries its region among the extra properties.
    shared = await any_world.send(
        "POST", "reg-jy", "/zones", {"type": "Feature", **bodies["zones"]}
    )
    assert shared.status_code == 201, shared.text
    ban = conforms(out.ZoneFeature, shared.json())
    assert ban.properties.enterprise_id is None
    assert ban.properties.model_extra == {"max_stay_s": 60, "region": "320281"}


async def test_alerts(any_world: World) -> None:
    listed = await _checked(any_world, "reg-wuxi", "/alerts", "/alerts")
    assert sorted(a.id for a in listed) == ["al-jy", "al-lx"]
    for action in ("acknowledge", "comment", "close"):
        answer = await any_world.send(
            "POST", "disp-jy", f"/alerts/al-jy/{action}", {"comment": f"{action} done"}
        )
        assert answer.status_code == 200, answer.text
        conforms(_route_model("POST", f"/alerts/{{alert_id}}/{action}"), answer.json())
    detail = await _checked(any_world, "disp-jy", "/alerts/al-jy", "/alerts/{alert_id}")
    assert isinstance(detail, out.AlertOut)
    assert [e.action for e in detail.events] == ["open", "acknowledge", "comment", "close"]
    await _checked(any_world, "admin", "/alerts", "/alerts", state="closed")


async def test_gateways(any_world: World) -> None:
    gateways = await _checked(any_world, "admin", "/gateways", "/gateways")
    assert [g.id for g in gateways] == ["gw-jy", "gw-lx", "gw-sz"]
    assert gateways[0].health is not None
    assert gateways[0].health.buffer_depth == 7
    created = await any_world.send(
        "POST", "admin", "/gateways", {"id": "gw-new", "enterprise_id": "ent-sz"}
    )
    assert created.status_code == 201, created.text
    conforms(_route_model("POST", "/gateways"), created.json())
    fresh = await _checked(any_world, "disp-sz", "/gateways/gw-new", "/gateways/{gateway_id}")
    assert (fresh.state, fresh.health) == ("unknown", None)


async def test_ingest_counters_gaps_and_rejected(any_world: World) -> None:
    ingest = Ingest(store=any_world.store, live=any_world.live, ledger=any_world.store)
    any_world.app.state.services.ingest = ingest
    now = time.time_ns() // 1_000_000
    lon, lat = ORIGINS["jy"]
    fix = wire.Fix(seq=500, ts=now - 1000, asset="truck-jy", lat=lat, lon=lon)
    later = wire.Fix(
        seq=510, ts=now - 500, asset="truck-jy", lat=lat, lon=lon, speed_kmh=12.5, course=90.0,
        hdop=0.9, sats=9, quality="questionable",
    )  # fmt: skip
    await ingest.handle(wire.data_topic("gw-jy"), batch("gw-jy", [fix]))
    await ingest.handle(wire.data_topic("gw-jy"), batch("gw-jy", [later]))
    await ingest.handle(wire.data_topic("gw-nobody"), batch("gw-nobody", [fix]))
    # An API counter: a refused geometry.
    bowtie = [
        [lon, lat],
        [lon + 0.01, lat + 0.01],
        [lon + 0.01, lat],
        [lon, lat + 0.01],
        [lon, lat],
    ]
    refused = await any_world.send(
        "POST", "admin", "/zones",
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [bowtie]},
         "properties": {"name": "bowtie", "enterprise_id": "ent-jy"}},
    )  # fmt: skip
    assert refused.status_code == 422, refused.text
    counters = await _checked(any_world, "admin", "/ingest/counters", "/ingest/counters")
    assert counters.ingest["accepted.fix"] == 2
    assert counters.ingest["rejected.unknown_gateway"] == 1
    assert sum(counters.api.values()) == 1
    gaps = await _checked(any_world, "disp-jy", "/ingest/gaps", "/ingest/gaps")
    assert [(g.first_seq, g.last_seq) for g in gaps] == [(501, 509)]
    rejected = await _checked(any_world, "admin", "/ingest/rejected", "/ingest/rejected")
    assert [r.reason for r in rejected] == ["unknown_gateway"]
    # A fix from the real ingest, with the optional fields it has, as the API shows it.
    truck = await _checked(any_world, "disp-jy", "/assets/truck-jy", "/assets/{asset_id}")
    assert truck.latest is not None
    assert (truck.latest.seq, truck.latest.speed_kmh, truck.latest.quality) == (
        510, 12.5, "questionable",
    )  # fmt: skip
    assert "pdop" not in truck.latest.model_fields_set


async def test_registry_sites_and_service(any_world: World) -> None:
    await _checked(any_world, "admin", "/enterprises", "/enterprises")
    await _checked(any_world, "reg-jy", "/enterprises/ent-jy", "/enterprises/{enterprise_id}")
    created = await any_world.send(
        "POST", "admin", "/enterprises", {"id": "ent-new", "name": "New", "region": "320281"}
    )
    assert created.status_code == 201, created.text
    conforms(_route_model("POST", "/enterprises"), created.json())
    await _checked(any_world, "reg-wuxi", "/sites", "/sites", crs="gcj02")
    put = await any_world.send(
        "PUT", "disp-jy", "/sites/site-jy/points/PT02", {"unit": "MPa", "h": 1.6, "hh": 2}
    )
    assert put.status_code == 200, put.text
    point = conforms(_route_model("PUT", "/sites/{site_id}/points/{tag}"), put.json())
    assert point.limits.model_fields_set == {"h", "hh"}
    site = await _checked(any_world, "disp-jy", "/sites/site-jy", "/sites/{site_id}")
    assert [p.tag for p in site.points] == ["LT01", "PT02"]
    await _checked(any_world, "disp-jy", "/sites/site-jy/points", "/sites/{site_id}/points")
    readings = await _checked(
        any_world, "disp-jy", "/sites/site-jy/points/LT01/readings",
        "/sites/{site_id}/points/{tag}/readings", **WINDOW,
    )  # fmt: skip
    assert len(readings) == 5
    made = await any_world.send(
        "POST", "disp-jy", "/sites", {"name": "Depot", "lat": 31.6, "lon": 120.4}
    )
    assert made.status_code == 201, made.text
    conforms(_route_model("POST", "/sites"), made.json())
    moved = await any_world.send(
        "PUT",
        "disp-jy",
        f"/sites/{made.json()['id']}",
        {"name": "Depot", "lat": 31.7, "lon": 120.4},
    )
    conforms(_route_model("PUT", "/sites/{site_id}"), moved.json())
    vessel = wire.Vessel(seq=1, ts=NOW_MS, mmsi=412000001, name="MIN YU 1", ship_type=30)
    await any_world.store.insert_vessels(
        [Received(item=vessel, gateway_id="gw-sz", enterprise_id="ent-sz", recv_ms=NOW_MS)]
    )
    vessels = await _checked(any_world, "disp-sz", "/vessels", "/vessels")
    assert [v.mmsi for v in vessels] == [412000001]
    me = await _checked(any_world, "reg-wuxi", "/me", "/me")
    assert me.enterprise_ids == ["ent-jy", "ent-lx", "ent-new"]
    assert (await _checked(any_world, "admin", "/me", "/me")).enterprise_ids is None


# -- real error bodies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "method", "path", "params", "body", "status", "model"),
    [
        ("disp-jy", "GET", "/assets/truck-sz", {}, None, 404, out.ErrorOut),
        ("disp-jy", "GET", "/ingest/counters", {}, None, 403, out.ErrorOut),
        ("disp-jy", "POST", "/alerts/al-lx/close", {}, {}, 404, out.ErrorOut),
        ("disp-jy", "POST", "/alerts/al-jy/close", {}, {}, 200, out.AlertOut),
        ("admin", "POST", "/zones", {}, {"type": "Feature", "id": "zone-jy",
         "geometry": square(120.3, 31.5), "properties": {"name": "x"}}, 409, out.ErrorOut),
        # The three forms of a 422: FastAPI's issues, a sentence, the field of a GeoJSON body.
        ("disp-jy", "GET", "/assets/truck-jy/track", {}, None, 422, out.ValidationErrorOut),
        ("disp-jy", "GET", "/alerts", {"state": "bogus"}, None, 422, out.ValidationErrorOut),
        ("disp-jy", "POST", "/zones", {}, {"type": "Feature", "geometry": square(120.3, 31.5),
         "properties": {}}, 422, out.ValidationErrorOut),
    ],
)  # fmt: skip
async def test_error_bodies(
    world: World,
    key: str,
    method: str,
    path: str,
    params: dict[str, str],
    body: Any,
    status: int,
    model: type[BaseModel],
) -> None:
    answer = await world.send(method, key, path, body, **params)
    assert answer.status_code == status, answer.text
    conforms(model, answer.json())


async def test_unauthorized_body(world: World) -> None:
    answer = await world.http.get(API_PREFIX + "/assets")
    assert answer.status_code == 401
    conforms(out.ErrorOut, answer.json())
    nul = await world.get("admin", "/gateways", x="a\x00")
    assert nul.status_code == 422
    conforms(out.ValidationErrorOut, nul.json())
    # The standard list of issues, like every other 422 of a query (was a sentence).
    assert json.loads(nul.text)["detail"][0]["loc"] == ["query", "x"]
