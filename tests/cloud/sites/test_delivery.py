"""A site alert reaches the enterprise's dispatcher and the regulators of its region at once:
both see it on the live stream as it opens, and in the alert list; other tenants do not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

import wire
from cloud.models import Limits, Point, Received
from cloud.sites import SiteWatch
from tests.cloud.api.conftest import NOW_MS, World, open_world
from tests.cloud.api.test_live import served, ticket

GAS = Point(site_id="site-jy", tag="GT01", unit="%LEL")  # GB/T 50493 defaults: 25 / 50 %LEL


@pytest.fixture(params=["sqlite", "postgres"])
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, unique_id: str
) -> AsyncIterator[World]:
    """The API's seeded three-tenant world (tests/cloud/api/conftest.py) on each backend:
    SQLite + in-process state, PostgreSQL + Redis."""
    async with open_world(request.param, tmp_path, unique_id) as opened:
        yield opened


async def open_gas_alert(world: World) -> None:
    """What ingest does with a round: the site watch sees a combustible gas reading at 30 %LEL."""
    await world.store.put_point(GAS)
    watch: SiteWatch = world.app.state.sites
    watch.forget_site("site-jy")  # its clock step cached the site's points at start
    reading = wire.Reading(seq=9000, ts=NOW_MS, site="site-jy", point="GT01", value=30.0)
    rec = Received(item=reading, gateway_id="gw-jy", enterprise_id="ent-jy", recv_ms=NOW_MS)
    assert await watch.observe([rec], now_ms=NOW_MS) == 1


async def test_dispatcher_and_regulators_receive_the_same_site_alert(world: World) -> None:
    keys = ("disp-jy", "reg-wuxi", "reg-jy", "disp-lx", "reg-sz")
    async with served(world) as port:
        streams = {}
        for key in keys:
            url = f"ws://127.0.0.1:{port}/api/v1/live/ws?kinds=alert&ticket={await ticket(world, key)}"
            streams[key] = await websockets.connect(url)
            assert json.loads(await streams[key].recv())["kind"] == "ready"
        try:
            await open_gas_alert(world)
            received: dict[str, dict[str, Any]] = {}
            async with asyncio.timeout(10):
                for key in ("disp-jy", "reg-wuxi", "reg-jy"):
                    received[key] = json.loads(await streams[key].recv())["data"]
            for key in ("disp-lx", "reg-sz"):  # nothing for tenants outside the scope
                try:
                    async with asyncio.timeout(0.3):
                        leaked = json.loads(await streams[key].recv())
                except TimeoutError:
                    continue
                raise AssertionError(f"{key} received {leaked}")
        finally:
            for stream in streams.values():
                await stream.close()
    ids = {data["id"] for data in received.values()}
    assert len(ids) == 1
    first = received["disp-jy"]
    assert (first["key"], first["level"], first["state"]) == ("sensor:site-jy:GT01:H", "H", "open")
    for key in ("disp-jy", "reg-wuxi", "reg-jy"):
        listed = await world.get(key, "/alerts", site_id="site-jy")
        assert listed.status_code == 200
        assert ids <= {a["id"] for a in listed.json()}
    for key in ("disp-lx", "reg-sz"):
        listed = await world.get(key, "/alerts")
        assert not ids & {a["id"] for a in listed.json()}


async def test_the_app_runs_the_watch_and_shows_point_settings(world: World) -> None:
    watch: SiteWatch = world.app.state.sites
    assert watch.config == world.app.state.services.settings.sites
    point = Point(site_id="site-jy", tag="LT02", unit="m", limits=Limits(h=5, deadband=0.2))
    await world.store.put_point(point)
    shown = await world.get("disp-jy", "/sites/site-jy")
    assert shown.status_code == 200
    (lt02,) = [p for p in shown.json()["points"] if p["tag"] == "LT02"]
    assert lt02["limits"] == {"h": 5.0, "deadband": 0.2}
