"""Every role against every other tenant's objects: 404 without data; lists show only the scope."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cloud.api.conftest import ENTERPRISES, NOW_MS, SCOPES, T0_MS, World, square

WINDOW = {"start_ms": T0_MS - 1, "end_ms": NOW_MS}


def foreign_requests(short: str) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """(method, path, body, params) touching tenant ``short``'s objects."""
    zone = {
        "type": "Feature",
        "geometry": square(120.0, 31.0),
        "properties": {"name": "taken over"},
    }
    note = {"comment": "not mine"}
    return [
        ("GET", f"/enterprises/ent-{short}", None, {}),
        ("GET", f"/assets/truck-{short}", None, {}),
        ("GET", f"/assets/truck-{short}/track", None, WINDOW),
        ("GET", f"/assets/truck-{short}/track", None, {**WINDOW, "simplify_m": 10}),
        ("DELETE", f"/assets/truck-{short}", None, {}),
        ("GET", f"/gateways/gw-{short}", None, {}),
        ("DELETE", f"/gateways/gw-{short}", None, {}),
        ("GET", f"/sites/site-{short}", None, {}),
        ("GET", f"/sites/site-{short}/points", None, {}),
        ("PUT", f"/sites/site-{short}/points/LT02", {"unit": "m"}, {}),
        ("GET", f"/sites/site-{short}/points/LT01/readings", None, WINDOW),
        ("DELETE", f"/sites/site-{short}", None, {}),
        ("GET", f"/alerts/al-{short}", None, {}),
        ("POST", f"/alerts/al-{short}/acknowledge", note, {}),
        ("POST", f"/alerts/al-{short}/comment", note, {}),
        ("POST", f"/alerts/al-{short}/close", note, {}),
        ("GET", f"/zones/zone-{short}", None, {}),
        ("GET", f"/zones/zone-{short}", None, {"crs": "gcj02"}),
        ("PUT", f"/zones/zone-{short}", zone, {}),
        ("DELETE", f"/zones/zone-{short}", None, {}),
        ("GET", f"/routes/zone-{short}", None, {}),
    ]


SECRETS = ("PLATE-", "Enterprise ", "Tank farm", "Ban ", "31.", "120.")


async def test_other_tenants_answer_404(any_world: World, subtests: pytest.Subtests) -> None:
    for key in sorted(SCOPES):
        with subtests.test(key=key):
            for short in sorted(set(ENTERPRISES) - SCOPES[key]):
                for method, path, body, params in foreign_requests(short):
                    response = await any_world.send(method, key, path, body, **params)
                    assert response.status_code == 404, (key, method, path, response.text)
                    assert not any(s in response.text for s in SECRETS), (key, path, response.text)
    # Nothing was changed by the refused writes.
    for short in ENTERPRISES:
        alert = await any_world.store.get_alert(f"al-{short}")
        assert alert is not None
        assert alert.state == "open"
        assert await any_world.store.get_geo(f"zone-{short}") is not None
        assert await any_world.store.get_asset(f"truck-{short}") is not None
        assert await any_world.store.get_site(f"site-{short}") is not None
        assert len(await any_world.store.list_points(f"site-{short}")) == 1


def _tenants(items: list[dict[str, Any]]) -> set[str]:
    return {str(i["enterprise_id"]).removeprefix("ent-") for i in items}


async def test_lists_hold_only_the_scope(any_world: World, subtests: pytest.Subtests) -> None:
    for key in sorted(SCOPES):
        with subtests.test(key=key):
            await _check_lists(any_world, key)


async def _check_lists(any_world: World, key: str) -> None:
    scope = SCOPES[key]
    for path in ("/assets", "/gateways", "/sites", "/alerts"):
        response = await any_world.get(key, path)
        assert response.status_code == 200, response.text
        assert _tenants(response.json()) == scope, path
    enterprises = (await any_world.get(key, "/enterprises")).json()
    assert {e["id"].removeprefix("ent-") for e in enterprises} == scope
    zones = (await any_world.get(key, "/zones")).json()["features"]
    assert {z["properties"]["enterprise_id"].removeprefix("ent-") for z in zones} == scope
    near = (await any_world.get(key, "/nearby", lat=31.6, lon=120.4, radius_m=100_000)).json()
    assert {
        f["properties"]["enterprise_id"].removeprefix("ent-") for f in near["features"]
    } == scope


async def test_own_tenants_are_visible(any_world: World, subtests: pytest.Subtests) -> None:
    for key, short in sorted((k, s) for k, scope in SCOPES.items() for s in scope):
        with subtests.test(key=key, tenant=short):
            asset = await any_world.get(key, f"/assets/truck-{short}")
            assert asset.status_code == 200
            assert asset.json()["latest"]["seq"] == 59
            track = await any_world.get(key, f"/assets/truck-{short}/track", **WINDOW)
            assert track.json()["properties"]["fixes"] == 60
            assert (await any_world.get(key, f"/alerts/al-{short}")).json()["state"] == "open"
            assert (await any_world.get(key, f"/zones/zone-{short}")).status_code == 200


@pytest.mark.parametrize("key", ["reg-jy", "disp-jy"])
async def test_cannot_create_objects_for_other_tenants(world: World, key: str) -> None:
    asset = {"id": "truck-new", "enterprise_id": "ent-sz", "asset_class": "hazmat_truck"}
    assert (await world.send("POST", key, "/assets", asset)).status_code == 404
    # Ids are made by the server: naming one, another tenant's or a free one, gets the same
    # answer, which reveals nothing (it used to be a 409 "already in use").
    taken = {"id": "truck-sz", "enterprise_id": "ent-jy", "asset_class": "coach"}
    refused = await world.send("POST", key, "/assets", taken)
    free = await world.send("POST", key, "/assets", {**taken, "id": "truck-free"})
    assert (refused.status_code, refused.json()) == (free.status_code, free.json())
    assert refused.status_code == 422
    assert "truck-sz" not in refused.text
    stolen = await world.store.get_asset("truck-sz")
    assert stolen is not None
    assert stolen.enterprise_id == "ent-sz"
    zone = {
        "type": "Feature",
        "geometry": square(120.0, 31.0),
        "properties": {"name": "x", "enterprise_id": "ent-sz"},
    }
    assert (await world.send("POST", key, "/zones", zone)).status_code == 404
    # A dispatcher provisions no gateway at all; a regulator only in its region.
    gateway = {"enterprise_id": "ent-sz"}
    expected = 403 if key.startswith("disp") else 404
    assert (await world.send("POST", key, "/gateways", gateway)).status_code == expected


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer hzk_not-a-key"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic abc"},
    ],
)
async def test_missing_or_bad_key_is_401(world: World, headers: dict[str, str]) -> None:
    response = await world.http.get("/api/v1/assets", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_revoked_key_is_401(world: World) -> None:
    from cloud.auth import hash_token

    assert (await world.get("disp-jy", "/assets")).status_code == 200
    await world.store.revoke_api_key(hash_token(world.tokens["disp-jy"]), now_ms=NOW_MS)
    assert (await world.get("disp-jy", "/assets")).status_code == 401


async def test_admin_only_endpoints(world: World) -> None:
    body = {"id": "ent-new", "name": "New", "region": "320282"}
    assert (await world.send("POST", "reg-wuxi", "/enterprises", body)).status_code == 403
    assert (await world.send("POST", "admin", "/enterprises", body)).status_code == 201
    # A regulator's scope follows the registry: a new enterprise in Wuxi joins it.
    ids = {e["id"] for e in (await world.get("reg-wuxi", "/enterprises")).json()}
    assert "ent-new" in ids
