"""The API: recipients configured within each caller's scope, and the notifications of an alert
(scoped like the alert: 404 outside), delivered by the app's own dispatcher."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cloud.alerts import AlertService
from tests.cloud.api.conftest import NOW_MS, World, open_world
from tests.cloud.notify.receivers import HttpReceiver

SECRET = "0123456789abcdef"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, unique_id: str
) -> AsyncIterator[World]:
    async with open_world(request.param, tmp_path, unique_id) as opened:
        yield opened


def hook(url: str = "http://127.0.0.1:9/hook") -> dict[str, Any]:
    return {"channel": "webhook", "address": url, "secret": SECRET}


async def put(world: World, key: str, recipient_id: str, body: dict[str, Any]) -> int:
    answer = await world.send("PUT", key, f"/notify/recipients/{recipient_id}", body)
    return answer.status_code


async def test_recipients_are_configured_within_scope(world: World) -> None:
    desk = {"tier": "enterprise", "name": "调度台", "channels": [hook()]}
    assert await put(world, "disp-jy", "jy-desk", desk) == 200
    assert await put(world, "disp-jy", "lx-desk", {**desk, "enterprise_id": "ent-lx"}) == 404
    regulator = {"tier": "regulator", "region": "320200", "channels": [hook()]}
    assert await put(world, "disp-jy", "wuxi", regulator) == 403
    assert await put(world, "reg-jy", "wuxi", regulator) == 404  # a county key, a city region
    assert await put(world, "reg-wuxi", "wuxi", regulator) == 200
    boss = {"tier": "safety_manager", "enterprise_id": "ent-jy", "channels": [
        {"channel": "sms", "address": "+8613800000000"}, {"channel": "email", "address": "a@b.cn"},
    ], "severities": ["critical"], "quiet": {"warning": {"start": "22:00", "end": "07:00"}}}  # fmt: skip
    assert await put(world, "reg-wuxi", "jy-boss", boss) == 200
    assert await put(world, "reg-sz", "sz-boss", {**boss, "enterprise_id": "ent-jy"}) == 404
    assert await put(world, "disp-lx", "jy-desk", {**desk, "name": "taken"}) == 404
    seen = {
        key: [r["id"] for r in (await world.get(key, "/notify/recipients")).json()]
        for key in ("admin", "reg-wuxi", "reg-jy", "reg-sz", "disp-jy", "disp-lx")
    }
    assert seen == {
        "admin": ["jy-boss", "jy-desk", "wuxi"],
        "reg-wuxi": ["jy-boss", "jy-desk", "wuxi"],
        "reg-jy": ["jy-boss", "jy-desk"],
        "reg-sz": [],
        "disp-jy": ["jy-boss", "jy-desk"],
        "disp-lx": [],
    }
    one = (await world.get("disp-jy", "/notify/recipients/jy-desk")).json()
    assert one["channels"] == [{"channel": "webhook", "address": hook()["address"], "signed": True}]
    assert SECRET not in str(one)
    assert one["enterprise_id"] == "ent-jy"
    assert one["updated_ms"] == NOW_MS
    assert (await world.get("disp-lx", "/notify/recipients/jy-desk")).status_code == 404
    assert (await world.send("DELETE", "disp-lx", "/notify/recipients/jy-desk")).status_code == 404
    assert (await world.send("DELETE", "disp-jy", "/notify/recipients/jy-desk")).status_code == 204
    assert (await world.get("admin", "/notify/recipients/jy-desk")).status_code == 404


@pytest.mark.parametrize(
    "channel",
    [
        {"channel": "webhook", "address": "http://x/h"},  # no secret
        {"channel": "webhook", "address": "ftp://x/h", "secret": SECRET},
        {"channel": "sms", "address": "call me"},
        {"channel": "email", "address": "nobody"},
        {"channel": "pigeon", "address": "x"},
    ],
)
async def test_bad_endpoints_are_refused(world: World, channel: dict[str, Any]) -> None:
    body = {"tier": "enterprise", "channels": [channel]}
    assert await put(world, "disp-jy", "r", body) == 422


async def test_bad_recipients_are_refused(world: World) -> None:
    base = {"tier": "enterprise", "channels": [hook()]}
    assert await put(world, "disp-jy", "r", {**base, "severities": ["loud"]}) == 422
    assert (
        await put(
            world,
            "disp-jy",
            "r",
            {**base, "quiet": {"warning": {"start": "25:00", "end": "07:00"}}},
        )
        == 422
    )
    assert await put(world, "disp-jy", "r", {**base, "region": "320200"}) == 422
    assert await put(world, "admin", "r", {"tier": "regulator", "channels": [hook()]}) == 422
    assert await put(world, "admin", "r", base) == 422  # whose enterprise?
    assert await put(world, "admin", "r", {**base, "enterprise_id": "ent-none"}) == 404


async def test_an_alerts_notifications_are_visible_in_its_scope(world: World) -> None:
    with HttpReceiver().running() as receiver:
        desk = {"tier": "enterprise", "channels": [hook(receiver.url + "/jy")]}
        assert await put(world, "disp-jy", "jy-desk", desk) == 200
        wuxi = {"tier": "regulator", "region": "320200", "channels": [hook(receiver.url + "/wx")]}
        assert await put(world, "reg-wuxi", "wuxi", wuxi) == 200
        alert = await AlertService(world.store).raise_condition(
            enterprise_id="ent-jy", key="sensor:site-jy:GT01:HH", kind="sensor", level="HH",
            now_ms=NOW_MS, site_id="site-jy", point="GT01", value=55.0, message="可燃气体",
        )  # fmt: skip
        path = f"/alerts/{alert.id}/notifications"
        found: list[dict[str, Any]] = []
        for _ in range(100):  # the app's own dispatcher sends them
            found = (await world.get("disp-jy", path)).json()
            if len(found) == 2 and {n["status"] for n in found} == {"sent"}:
                break
            await asyncio.sleep(0.1)
    assert sorted(n["recipient_id"] for n in found) == ["jy-desk", "wuxi"]
    assert [a["outcome"] for a in found[0]["history"]] == ["sent"]
    assert "secret" not in found[0]
    assert "payload" not in found[0]
    # (the seeded alert of ent-jy may be told too, if the app swept after the PUTs)
    mine = [r.path for r in receiver.received if json.loads(r.body)["alert"]["id"] == alert.id]
    assert sorted(mine) == ["/jy", "/wx"]
    assert (await world.get("reg-wuxi", path)).status_code == 200
    for outsider in ("disp-lx", "reg-sz"):
        assert (await world.get(outsider, path)).status_code == 404
    assert (await world.get("admin", "/alerts/nope/notifications")).status_code == 404


async def test_maintenance_windows_are_scoped_like_their_site_or_vehicle(world: World) -> None:
    window = {"site_id": "site-jy", "point": "LT01", "start_ms": NOW_MS, "end_ms": NOW_MS + 1}
    answer = await world.send("PUT", "disp-jy", "/notify/maintenance/mw1", window)
    assert answer.status_code == 200, answer.text
    assert answer.json()["enterprise_id"] == "ent-jy"
    assert (
        await world.send("PUT", "disp-lx", "/notify/maintenance/mw1", window)
    ).status_code == 404
    truck = {"asset_id": "truck-lx", "start_ms": NOW_MS, "end_ms": NOW_MS + 1}
    assert (await world.send("PUT", "disp-jy", "/notify/maintenance/mw2", truck)).status_code == 404
    assert (
        await world.send("PUT", "reg-wuxi", "/notify/maintenance/mw2", truck)
    ).status_code == 200
    for bad in (
        {"start_ms": NOW_MS, "end_ms": NOW_MS + 1},  # neither site nor vehicle
        {**truck, "site_id": "site-lx"},  # both
        {**truck, "end_ms": NOW_MS},  # empty
        {"asset_id": "truck-lx", "point": "LT01", "start_ms": 0, "end_ms": 1},
    ):
        assert (await world.send("PUT", "admin", "/notify/maintenance/x", bad)).status_code == 422
    listed = {k: [w["id"] for w in (await world.get(k, "/notify/maintenance")).json()]
              for k in ("admin", "disp-jy", "disp-lx", "reg-sz")}  # fmt: skip
    assert listed == {"admin": ["mw1", "mw2"], "disp-jy": ["mw1"], "disp-lx": ["mw2"], "reg-sz": []}
    assert (await world.send("DELETE", "disp-jy", "/notify/maintenance/mw2")).status_code == 404
    assert (await world.send("DELETE", "disp-lx", "/notify/maintenance/mw2")).status_code == 204


async def test_alert_stats_count_and_time_handling_within_scope(world: World) -> None:
    assert (await world.send("POST", "disp-jy", "/alerts/al-jy/acknowledge", {})).status_code == 200
    assert (await world.send("POST", "disp-lx", "/alerts/al-lx/close", {})).status_code == 200
    window = {"since_ms": 0, "until_ms": NOW_MS + 1}
    answer = await world.get("reg-wuxi", "/alerts/stats", **window, by="enterprise")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["by"], body["total"], body["truncated"]) == (["enterprise"], 2, False)
    jy, lx = body["groups"]
    assert jy["key"] == {"enterprise": "ent-jy"}
    assert (jy["count"], jy["acknowledged"], jy["ack_ms_median"], jy["close_ms_mean"]) == (
        1, 1, 3_600_000.0, None,
    )  # fmt: skip
    assert (lx["closed"], lx["close_ms_median"], lx["ack_ms_median"]) == (1, 3_600_000.0, None)
    everything = (await world.get("admin", "/alerts/stats", **window)).json()
    assert everything["by"] == ["enterprise", "kind", "severity", "day"]
    assert {tuple(g["key"].values()) for g in everything["groups"]} == {
        (f"ent-{e}", "sensor", "warning", "2026-05-29") for e in ("jy", "lx", "sz")
    }
    mine = (await world.get("disp-sz", "/alerts/stats", **window, by=["severity"])).json()
    assert [(g["key"], g["count"], g["open"]) for g in mine["groups"]] == [
        ({"severity": "warning"}, 1, 1)
    ]
    assert (await world.get("admin", "/alerts/stats", since_ms=0)).status_code == 422
    assert (await world.get("admin", "/alerts/stats", **window, by="colour")).status_code == 422
