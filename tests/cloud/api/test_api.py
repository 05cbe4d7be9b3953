"""Tracks, nearby, alerts, gateways, sites and readings, OpenAPI; the app with its own lifespan."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import httpx
import pytest

import wire
from cloud.auth import make_key
from cloud.config import CloudSettings, DatabaseSettings, MqttSettings, StateSettings
from cloud.coords import convert
from cloud.live import RedisLiveState
from cloud.main import create_app
from cloud.models import Gap, Received, Rejected
from tests.cloud.api.conftest import NOW_MS, ORIGINS, T0_MS, TRACK_POINTS, World
from tests.conftest import REDIS_URL
from tests.support.procs import Mosquitto

WINDOW = {"start_ms": T0_MS, "end_ms": NOW_MS}


async def test_track_as_geojson(world: World) -> None:
    feature = (await world.get("disp-jy", "/assets/truck-jy/track", **WINDOW)).json()
    assert feature["type"] == "Feature"
    assert feature["geometry"]["type"] == "LineString"
    coords = feature["geometry"]["coordinates"]
    assert len(coords) == TRACK_POINTS
    assert coords[0] == pytest.approx(list(ORIGINS["jy"]))
    times = feature["properties"]["times_ms"]
    assert times == sorted(times)
    assert len(times) == TRACK_POINTS
    assert feature["properties"]["truncated"] is False


async def test_track_simplified_and_converted(world: World) -> None:
    # The seeded track is a straight line: simplification keeps its two ends.
    simple = (
        await world.get("disp-jy", "/assets/truck-jy/track", simplify_m=5, crs="gcj02", **WINDOW)
    ).json()
    props = simple["properties"]
    assert (props["fixes"], props["points"]) == (TRACK_POINTS, 2)
    assert props["times_ms"] == [T0_MS, T0_MS + (TRACK_POINTS - 1) * 10_000]
    expected = convert(*ORIGINS["jy"], src="wgs84", dst="gcj02")
    assert simple["geometry"]["coordinates"][0] == pytest.approx(list(expected), abs=1e-9)


async def test_track_edges(world: World) -> None:
    one = (
        await world.get("disp-jy", "/assets/truck-jy/track", start_ms=T0_MS, end_ms=T0_MS + 1)
    ).json()
    assert one["geometry"]["type"] == "Point"
    none = (await world.get("disp-jy", "/assets/truck-jy/track", start_ms=1, end_ms=2)).json()
    assert none["geometry"] is None
    assert none["properties"]["fixes"] == 0
    limited = (await world.get("disp-jy", "/assets/truck-jy/track", limit=10, **WINDOW)).json()
    assert limited["properties"]["truncated"] is True
    backwards = await world.get("disp-jy", "/assets/truck-jy/track", start_ms=NOW_MS, end_ms=T0_MS)
    assert backwards.status_code == 422
    missing = await world.get("disp-jy", "/assets/truck-jy/track", start_ms=T0_MS)
    assert missing.status_code == 422


async def test_assets_with_latest_state(world: World) -> None:
    assets = (await world.get("reg-wuxi", "/assets", crs="bd09")).json()
    assert [a["id"] for a in assets] == ["truck-jy", "truck-lx"]
    latest = assets[0]["latest"]
    assert latest["seq"] == TRACK_POINTS - 1
    wgs = (59e-4 + ORIGINS["jy"][0], 59e-4 + ORIGINS["jy"][1])
    assert (latest["lon"], latest["lat"]) == pytest.approx(
        convert(*wgs, src="wgs84", dst="bd09"), abs=1e-9
    )
    assert assets[0]["plate"] == "PLATE-jy"


async def test_nearby_in_metres(world: World) -> None:
    lon, lat = 120.2859, 31.9159  # 59e-4 degrees from the origin: the latest fix of truck-jy
    near = (await world.get("admin", "/nearby", lat=lat, lon=lon, radius_m=200)).json()
    assert [f["id"] for f in near["features"]] == ["truck-jy"]
    assert near["features"][0]["properties"]["distance_m"] < 200
    # The same place picked on a GCJ-02 map.
    glon, glat = convert(lon, lat, src="wgs84", dst="gcj02")
    near_gcj = (
        await world.get("admin", "/nearby", lat=glat, lon=glon, radius_m=200, crs="gcj02")
    ).json()
    assert [f["id"] for f in near_gcj["features"]] == ["truck-jy"]
    assert (
        await world.get("admin", "/nearby", lat=lat, lon=lon, radius_m=10**7)
    ).status_code == 422


async def test_alert_lifecycle(world: World) -> None:
    listed = (await world.get("disp-lx", "/alerts", state="open")).json()
    assert [a["id"] for a in listed] == ["al-lx"]
    acked = await world.send(
        "POST", "disp-lx", "/alerts/al-lx/acknowledge", {"comment": "driver called"}
    )
    assert acked.status_code == 200
    assert acked.json()["state"] == "acknowledged"
    assert acked.json()["acked_by"] == "disp-lx"
    assert (await world.send("POST", "disp-lx", "/alerts/al-lx/acknowledge", {})).status_code == 409
    assert (
        await world.send("POST", "reg-wuxi", "/alerts/al-lx/comment", {"comment": "follow up"})
    ).status_code == 200
    assert (
        await world.send("POST", "reg-wuxi", "/alerts/al-lx/comment", {"comment": ""})
    ).status_code == 422
    closed = await world.send(
        "POST", "disp-lx", "/alerts/al-lx/close", {"comment": "level back to normal"}
    )
    assert closed.json()["state"] == "closed"
    assert (await world.send("POST", "disp-lx", "/alerts/al-lx/close", {})).status_code == 409
    detail = (await world.get("disp-lx", "/alerts/al-lx")).json()
    history = [(e["action"], e.get("by"), e.get("comment", "")) for e in detail["events"]]
    assert history == [
        ("open", "system", ""),
        ("acknowledge", "disp-lx", "driver called"),
        ("comment", "reg-wuxi", "follow up"),
        ("close", "disp-lx", "level back to normal"),
    ]
    assert (await world.get("disp-lx", "/alerts", state="open")).json() == []
    assert (await world.get("disp-lx", "/alerts", state="bogus")).status_code == 422


async def test_gateways_with_status_and_health(world: World) -> None:
    gateways = (await world.get("disp-sz", "/gateways")).json()
    assert len(gateways) == 1
    gw = gateways[0]
    assert (gw["id"], gw["state"], gw["last_seen_ms"]) == ("gw-sz", "online", NOW_MS)
    assert gw["health"]["buffer_depth"] == 7
    # Gateways are provisioned by the region's regulator (or an admin), ids made by the server.
    refused = await world.send("POST", "disp-sz", "/gateways", {})
    assert refused.status_code == 403
    created = await world.send("POST", "reg-sz", "/gateways", {"enterprise_id": "ent-sz"})
    assert created.status_code == 201
    assert created.json()["enterprise_id"] == "ent-sz"
    new_id = created.json()["id"]
    fresh = (await world.get("disp-sz", f"/gateways/{new_id}")).json()
    assert (fresh["state"], fresh["health"]) == ("unknown", None)
    chosen = await world.send(
        "POST", "reg-sz", "/gateways", {"id": "gw-x", "enterprise_id": "ent-sz"}
    )
    assert chosen.status_code == 422, "only an admin chooses an id"
    bad = await world.send(
        "POST", "admin", "/gateways", {"id": "bad/id", "enterprise_id": "ent-sz"}
    )
    assert bad.status_code == 422


async def test_sites_points_readings(world: World) -> None:
    site = (await world.get("disp-jy", "/sites/site-jy")).json()
    assert [p["tag"] for p in site["points"]] == ["LT01"]
    put = await world.send(
        "PUT", "disp-jy", "/sites/site-jy/points/PT02", {"unit": "MPa", "h": 1.6, "hh": 2.0}
    )
    assert put.status_code == 200
    points = (await world.get("disp-jy", "/sites/site-jy/points")).json()
    assert [p["tag"] for p in points] == ["LT01", "PT02"]
    assert points[1]["limits"] == {"h": 1.6, "hh": 2.0}
    crossed = await world.send(
        "PUT", "disp-jy", "/sites/site-jy/points/PT03", {"h": 2.0, "hh": 1.0}
    )
    assert crossed.status_code == 422
    assert "limits must increase: h=2.0 is not below hh=1.0" in crossed.text
    # how the cloud watches a point is kept and shown (cloud/sites)
    watched = {"unit": "MPa", "h": 1.6, "kind": "pressure", "poll_s": 5, "frozen_s": 3600,
               "span_lo": 0, "span_hi": 2.5, "rate_pct_per_min": 10, "deadband": 0.02}  # fmt: skip
    put = await world.send("PUT", "disp-jy", "/sites/site-jy/points/PT02", watched)
    assert put.status_code == 200
    points = (await world.get("disp-jy", "/sites/site-jy/points")).json()
    assert points[1]["limits"] == {k: v for k, v in watched.items() if k != "unit"}
    for bad in ({"kind": "magic"}, {"poll_s": 0}, {"span_lo": 3, "span_hi": 1}):
        refused = await world.send("PUT", "disp-jy", "/sites/site-jy/points/PT04", bad)
        assert refused.status_code == 422, bad
    too_long = await world.send("PUT", "disp-jy", "/sites/site-jy/points/" + "x" * 200, {})
    assert too_long.status_code == 422
    readings = (await world.get("disp-jy", "/sites/site-jy/points/LT01/readings", **WINDOW)).json()
    assert [r["value"] for r in readings] == [1.5, 2.5, 3.5, 4.5, 5.5]
    body = {"name": "Depot", "lat": 31.6, "lon": 120.4}
    created = await world.send("POST", "disp-jy", "/sites", body, crs="gcj02")
    assert created.status_code == 201
    site_id = created.json()["id"]
    stored = await world.store.get_site(site_id)
    assert stored is not None
    assert convert(stored.lon, stored.lat, src="wgs84", dst="gcj02") == pytest.approx(
        (120.4, 31.6), abs=1e-8
    )
    renamed = await world.send("PUT", "disp-jy", f"/sites/{site_id}", {**body, "name": "Depot 2"})
    assert (renamed.status_code, renamed.json()["name"]) == (200, "Depot 2")
    assert (await world.send("DELETE", "disp-jy", f"/sites/{site_id}")).status_code == 204


async def test_registry_writes(world: World) -> None:
    asset = {"asset_class": "school_bus", "plate": "SB-1"}
    created = await world.send("POST", "disp-jy", "/assets", asset)
    assert created.status_code == 201
    assert created.json()["enterprise_id"] == "ent-jy"
    bus = created.json()["id"]
    bad = await world.send("POST", "disp-jy", "/assets", {**asset, "asset_class": "tank"})
    assert bad.status_code == 422
    needs_enterprise = await world.send("POST", "reg-wuxi", "/assets", asset)
    assert needs_enterprise.status_code == 422
    chosen = await world.send("POST", "disp-jy", "/assets", {**asset, "id": "bus-1"})
    assert chosen.status_code == 422, "only an admin chooses an id"
    replated = await world.send("PUT", "disp-jy", f"/assets/{bus}", {**asset, "plate": "SB-2"})
    assert (replated.status_code, replated.json()["plate"]) == (200, "SB-2")
    assert replated.json()["long_distance"] is False
    coach = {"asset_class": "coach", "plate": "SB-3", "long_distance": True}
    night = await world.send("PUT", "disp-jy", f"/assets/{bus}", coach)
    assert night.json()["long_distance"] is True
    assert (await world.get("disp-jy", f"/assets/{bus}")).json()["long_distance"] is True
    assert (await world.send("DELETE", "disp-jy", f"/assets/{bus}")).status_code == 204
    assert (await world.get("disp-jy", f"/assets/{bus}")).status_code == 404
    assert (await world.send("PUT", "disp-jy", f"/assets/{bus}", asset)).status_code == 404


async def test_openapi_and_docs(world: World) -> None:
    docs = await world.http.get("/docs")
    assert docs.status_code == 200
    schema = (await world.http.get("/openapi.json")).json()
    for path in (
        "/api/v1/zones",
        "/api/v1/assets/{asset_id}/track",
        "/api/v1/alerts/{alert_id}/close",
        "/api/v1/live/sse",
    ):
        assert path in schema["paths"], path
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_app_owns_store_and_ingest(
    tmp_path: Path, unique_id: str, mosquitto: Mosquitto
) -> None:
    """The app's own lifespan: SQLite archive, in-process state, MQTT ingest from a broker."""
    settings = CloudSettings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'own.db'}"),
        mqtt=MqttSettings(host="127.0.0.1", port=mosquitto.port, client_id=f"cloud-{unique_id}"),
    )
    app = create_app(settings, run_retention=False)
    gw = f"gw{unique_id}"
    async with app.router.lifespan_context(app):
        store = app.state.services.store
        token, key = make_key(name="ops", role="admin", now_ms=NOW_MS)
        await store.put_api_key(key)
        auth = {"Authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=auth
        ) as http:
            await http.post(
                "/api/v1/enterprises", json={"id": "ent", "name": "E", "region": "320281"}
            )
            await http.post("/api/v1/gateways", json={"id": gw, "enterprise_id": "ent"})
            await http.post(
                "/api/v1/assets",
                json={"id": "t1", "enterprise_id": "ent", "asset_class": "hazmat_truck"},
            )
            fix = wire.Fix(seq=1, ts=NOW_MS, asset="t1", lat=31.9, lon=120.3)
            payload = wire.assemble_batch(gw, [wire.encode_item(fix)], sent_ms=NOW_MS)
            # The ingest may not have subscribed yet: resend (it de-duplicates on seq) until seen.
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub, asyncio.timeout(10):
                while True:
                    await pub.publish(wire.data_topic(gw), payload, qos=1)
                    latest = (await http.get("/api/v1/assets/t1")).json()["latest"]
                    if latest is not None:
                        break
                    await asyncio.sleep(0.05)
            assert (latest["lat"], latest["lon"]) == (31.9, 120.3)
            health = (await http.get("/healthz", headers={"Authorization": ""})).json()
            assert health == {"ok": True, "ingest": True}, "liveness only, no figures"
            counters = (await http.get("/api/v1/ingest/counters")).json()
            assert counters["ingest"]["accepted.fix"] == 1
    assert (tmp_path / "own.db").exists()


async def test_ingest_inspection_and_vessels(world: World) -> None:
    await world.store.insert_gaps(
        [
            Gap(
                gateway_id="gw-jy",
                first_seq=5,
                last_seq=9,
                missing=5,
                detected_ms=NOW_MS,
                enterprise_id="ent-jy",
            ),
            Gap(
                gateway_id="gw-sz",
                first_seq=1,
                last_seq=1,
                missing=1,
                detected_ms=NOW_MS,
                enterprise_id="ent-sz",
            ),
        ]
    )
    gaps = (await world.get("disp-jy", "/ingest/gaps")).json()
    assert [(g["gateway_id"], g["missing"]) for g in gaps] == [("gw-jy", 5)]
    await world.store.insert_rejected(
        [
            Rejected(
                ts_ms=NOW_MS,
                reason="unknown_gateway",
                detail="gw-x is not registered",
                payload=b'{"gw":"gw-x"}',
            )
        ]
    )
    assert (await world.get("disp-jy", "/ingest/rejected")).status_code == 403
    refused = (await world.get("admin", "/ingest/rejected")).json()
    assert refused[0]["reason"] == "unknown_gateway"
    assert refused[0]["payload"] == '{"gw":"gw-x"}'
    counters = (await world.get("admin", "/ingest/counters")).json()
    assert counters["ingest"] == {}
    vessel = wire.Vessel(seq=1, ts=NOW_MS, mmsi=412000001, name="MIN YU 1", ship_type=30)
    await world.store.insert_vessels(
        [Received(item=vessel, gateway_id="gw-sz", enterprise_id="ent-sz", recv_ms=NOW_MS)]
    )
    assert [v["mmsi"] for v in (await world.get("disp-sz", "/vessels")).json()] == [412000001]
    assert (await world.get("disp-jy", "/vessels")).json() == []


@pytest.mark.services
async def test_app_opens_redis_state_from_settings(tmp_path: Path, unique_id: str) -> None:
    prefix = f"hzt:{unique_id}:"
    settings = CloudSettings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"),
        state=StateSettings(redis_url=REDIS_URL, key_prefix=prefix),
        mqtt=MqttSettings(enabled=False),
    )
    app = create_app(settings, run_retention=False)
    async with app.router.lifespan_context(app):
        live = app.state.services.live
        assert isinstance(live, RedisLiveState)
        fix = wire.Fix(seq=1, ts=NOW_MS, asset="t1", lat=31.9, lon=120.3)
        await live.put_fixes(
            [Received(item=fix, gateway_id="g", enterprise_id="e", recv_ms=NOW_MS)]
        )
        assert (await live.latest_fixes(["t1"]))["t1"].fix == fix
        client = live.client
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        assert keys
        await client.delete(*keys)


async def test_me(world: World) -> None:
    me = (await world.get("reg-wuxi", "/me")).json()
    assert me == {
        "name": "reg-wuxi", "role": "regulator", "region": "320200", "enterprise_id": None,
        "enterprise_ids": ["ent-jy", "ent-lx"],
    }  # fmt: skip
    assert (await world.get("admin", "/me")).json()["enterprise_ids"] is None


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/assets/truck-jy/track", {"start_ms": 0, "end_ms": 10**20}),
        ("/assets/truck-jy/track", {"start_ms": 2**63, "end_ms": 2**64}),
        ("/sites/site-jy/points/LT01/readings", {"start_ms": 0, "end_ms": 10**20}),
        ("/alerts", {"since_ms": 10**20}),
        ("/alerts", {"until_ms": 2**63}),
    ],
)
async def test_times_beyond_the_archive_range_are_a_422(
    any_world: World, path: str, params: dict[str, int]
) -> None:
    # The archive keeps 64-bit epoch ms: a bigger time is bad input (422), not a server error.
    answer = await any_world.get("admin", path, **params)
    assert answer.status_code == 422, answer.text


async def test_geo_validity_beyond_the_archive_range_is_a_422(any_world: World) -> None:
    ring = [[120.30, 31.50], [120.31, 31.50], [120.31, 31.51], [120.30, 31.50]]
    zone = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"name": "far future", "valid_to_ms": 10**20},
    }
    answer = await any_world.send("POST", "admin", "/zones", zone)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == "properties.valid_to_ms"


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_numbers_in_bodies_are_a_422(any_world: World, number: str) -> None:
    # Python's JSON reader takes NaN and Infinity: a NaN alarm limit was stored as "no limit"
    # (SQLite) or crashed the request (PostgreSQL); in zone properties likewise.
    headers = {**any_world.auth("admin"), "Content-Type": "application/json"}
    point = await any_world.http.put(
        "/api/v1/sites/site-jy/points/LT09", headers=headers,
        content=f'{{"unit": "m", "h": {number}}}'.encode(),
    )  # fmt: skip
    assert point.status_code == 422, point.text
    assert [p["tag"] for p in (await any_world.get("admin", "/sites/site-jy/points")).json()] == [
        "LT01"
    ]
    site = await any_world.http.post(
        "/api/v1/sites", headers=headers,
        content=f'{{"id": "s9", "enterprise_id": "ent-jy", "name": "s", "lat": {number}, "lon": 120.3}}'.encode(),
    )  # fmt: skip
    assert site.status_code == 422, site.text
    ring = "[[120.30, 31.50], [120.31, 31.50], [120.31, 31.51], [120.30, 31.50]]"
    zone = await any_world.http.post(
        "/api/v1/zones", headers=headers,
        content=(
            f'{{"type": "Feature", "geometry": {{"type": "Polygon", "coordinates": [{ring}]}},'
            f' "properties": {{"name": "z", "limits": {{"speed": [60, {number}]}}}}}}'
        ).encode(),
    )  # fmt: skip
    assert zone.status_code == 422, zone.text
    assert zone.json()["detail"]["field"] == "properties.limits.speed[1]"


@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        ("GET", "/assets/a%00b", {}, None),
        ("GET", "/assets", {"asset_class": "a\x00"}, None),
        ("GET", "/alerts", {"kind": "a\x00"}, None),
        ("GET", "/ingest/gaps", {"gateway_id": "a\x00"}, None),
        ("GET", "/zones/z%00", {}, None),
        ("POST", "/assets", {}, {"id": "a\x00", "enterprise_id": "ent-jy", "asset_class": "other"}),
        ("POST", "/alerts/al-jy/comment", {}, {"comment": "valve\x00"}),
        (
            "POST", "/zones", {},
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[
                [120.30, 31.50], [120.31, 31.50], [120.31, 31.51], [120.30, 31.50]]]},
             "properties": {"name": "z", "notes": ["ok", {"x\x00": 1}]}},
        ),
    ],
)  # fmt: skip
async def test_nul_characters_are_a_422(
    any_world: World, method: str, path: str, params: dict[str, str], body: object
) -> None:
    # PostgreSQL text cannot hold NUL: such input crashed the request there (500).
    answer = await any_world.send(method, "admin", path, body, **params)
    assert answer.status_code == 422, answer.text
