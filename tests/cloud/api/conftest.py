"""A seeded three-tenant world behind the API, on SQLite + in-process state or PostgreSQL + Redis.

Enterprises ``jy`` (county 320281) and ``lx`` (320213) lie in Wuxi city (320200), ``sz``
(320506) in Suzhou. Each has a gateway, a truck with a track and a latest fix, a site with a
point and readings, an open alert and a zone. Keys: ``admin``, regulators of Wuxi city, of
Jiangyin county and of Suzhou city, and one dispatcher per enterprise.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import text

import wire
from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.auth import make_key
from cloud.config import CloudSettings, MqttSettings
from cloud.live import LiveState, MemoryLiveState, RedisLiveState
from cloud.main import API_PREFIX, create_app
from cloud.models import Asset, Enterprise, Gateway, GeoObject, Point, Received, Site
from cloud.notify.config import NotifySettings
from tests.conftest import POSTGRES_URL, REDIS_URL

NOW_MS = 1_780_000_000_000
T0_MS = NOW_MS - 3_600_000
ENTERPRISES = {"jy": "320281", "lx": "320213", "sz": "320506"}
ORIGINS = {"jy": (120.28, 31.91), "lx": (120.30, 31.57), "sz": (120.60, 31.30)}
#: Key name -> enterprises it sees.
SCOPES: dict[str, set[str]] = {
    "admin": {"jy", "lx", "sz"},
    "reg-wuxi": {"jy", "lx"},
    "reg-jy": {"jy"},
    "reg-sz": {"sz"},
    "disp-jy": {"jy"},
    "disp-lx": {"lx"},
    "disp-sz": {"sz"},
}
KEYS: dict[str, dict[str, str]] = {
    "admin": {"role": "admin"},
    "reg-wuxi": {"role": "regulator", "region": "320200"},
    "reg-jy": {"role": "regulator", "region": "320281"},
    "reg-sz": {"role": "regulator", "region": "320500"},
    "disp-jy": {"role": "dispatcher", "enterprise_id": "ent-jy"},
    "disp-lx": {"role": "dispatcher", "enterprise_id": "ent-lx"},
    "disp-sz": {"role": "dispatcher", "enterprise_id": "ent-sz"},
}
TRACK_POINTS = 60


def square(lon: float, lat: float, size: float = 0.01) -> dict[str, Any]:
    """A closed square polygon with its south-west corner at (lon, lat)."""
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


@dataclass
class World:
    """The app, an HTTP client on it, its store and live state, and a token per key name."""

    app: FastAPI
    http: httpx.AsyncClient
    store: Store
    live: LiveState
    tokens: dict[str, str] = field(default_factory=dict)
    backend: str = "sqlite"

    def auth(self, key: str) -> dict[str, str]:
        """The Authorization header of a key."""
        return {"Authorization": f"Bearer {self.tokens[key]}"}

    async def get(self, key: str, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(API_PREFIX + path, headers=self.auth(key), params=params)

    async def send(
        self, method: str, key: str, path: str, body: Any = None, **params: Any
    ) -> httpx.Response:
        return await self.http.request(
            method, API_PREFIX + path, headers=self.auth(key), json=body, params=params
        )


async def seed(store: Store, live: LiveState) -> dict[str, str]:
    """Fill the three tenants; return a token per key name."""
    for short, region in ENTERPRISES.items():
        ent = f"ent-{short}"
        await store.put_enterprise(Enterprise(id=ent, name=f"Enterprise {short}", region=region))
        await store.put_gateway(Gateway(id=f"gw-{short}", enterprise_id=ent))
        await store.put_asset(
            Asset(
                id=f"truck-{short}",
                enterprise_id=ent,
                asset_class="hazmat_truck",
                plate=f"PLATE-{short}",
            )
        )
        lon0, lat0 = ORIGINS[short]
        await store.put_site(
            Site(
                id=f"site-{short}", enterprise_id=ent, name=f"Tank farm {short}", lat=lat0, lon=lon0
            )
        )
        await store.put_point(Point(site_id=f"site-{short}", tag="LT01", unit="m"))
        fixes = [
            Received(
                item=wire.Fix(
                    seq=i, ts=T0_MS + i * 10_000, asset=f"truck-{short}", lat=lat0 + i * 1e-4,
                    lon=lon0 + i * 1e-4, speed_kmh=40.0,
                ),
                gateway_id=f"gw-{short}", enterprise_id=ent, recv_ms=T0_MS + i * 10_000,
            )
            for i in range(TRACK_POINTS)
        ]  # fmt: skip
        await store.insert_fixes(fixes)
        await live.put_fixes(fixes)
        readings = [
            Received(
                item=wire.Reading(seq=1000 + i, ts=T0_MS + i * 1000, site=f"site-{short}", point="LT01", value=1.5 + i, unit="m"),
                gateway_id=f"gw-{short}", enterprise_id=ent, recv_ms=T0_MS + i * 1000,
            )
            for i in range(5)
        ]  # fmt: skip
        await store.insert_readings(readings)
        health = wire.Health(seq=2000, ts=NOW_MS, buffer_depth=7, oldest_age_s=3.5)
        await live.set_gateway(
            f"gw-{short}",
            enterprise_id=ent,
            state="online",
            status_ms=NOW_MS,
            seen_ms=NOW_MS,
            health=health,
        )
        alerts = AlertService(store, None, id_factory=functools.partial(str, f"al-{short}"))
        await alerts.raise_condition(
            enterprise_id=ent, key=f"sensor:site-{short}:LT01:H", kind="sensor", level="H",
            now_ms=T0_MS, site_id=f"site-{short}", point="LT01", value=9.5,
        )  # fmt: skip
        zone = GeoObject(
            id=f"zone-{short}",
            kind="zone",
            name=f"Ban {short}",
            geometry=square(lon0, lat0),
            enterprise_id=ent,
        )
        await store.put_geo(zone, now_ms=T0_MS)
    tokens = {}
    for name, spec in KEYS.items():
        token, key = make_key(name=name, now_ms=T0_MS, **spec)
        await store.put_api_key(key)
        tokens[name] = token
    return tokens


async def _drop_schema(store: Store, schema: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@contextlib.asynccontextmanager
async def backends(
    kind: str, tmp_path: Path, unique_id: str
) -> AsyncIterator[tuple[Store, LiveState]]:
    """A fresh store and live state: ``sqlite`` (+ in-process) or ``postgres`` (+ Redis)."""
    if kind == "sqlite":
        store = await Store.connect(f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}")
        memory = MemoryLiveState()
        try:
            yield store, memory
        finally:
            await memory.close()
            await store.close()
        return
    schema = "hza_" + uuid.uuid4().hex[:12]
    prefix = f"hzt:{unique_id}:"
    store = await Store.connect(POSTGRES_URL, schema=schema)
    client = aioredis.Redis.from_url(REDIS_URL)
    redis_state = RedisLiveState(client, prefix)
    try:
        yield store, redis_state
    finally:
        await redis_state.close()
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await _drop_schema(store, schema)
        await store.close()


def app_for(store: Store, live: LiveState) -> FastAPI:
    """The API app over a given store and live state, no ingest, a fixed clock."""
    # (webhooks to the tests' own receivers on 127.0.0.1)
    notify = NotifySettings(webhook_private_ok=True)
    settings = CloudSettings(mqtt=MqttSettings(enabled=False), notify=notify)
    return create_app(
        settings, store=store, live=live, run_retention=False, clock_ms=lambda: NOW_MS,
        live_keepalive_s=0.3,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def open_world(kind: str, tmp_path: Path, unique_id: str) -> AsyncIterator[World]:
    """The seeded world with an ASGI client (the app's lifespan runs)."""
    async with backends(kind, tmp_path, unique_id) as (store, live):
        tokens = await seed(store, live)
        app = app_for(store, live)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                yield World(app=app, http=http, store=store, live=live, tokens=tokens, backend=kind)


@pytest.fixture
async def world(tmp_path: Path, unique_id: str) -> AsyncIterator[World]:
    """The world on SQLite and the in-process live state."""
    async with open_world("sqlite", tmp_path, unique_id) as opened:
        yield opened


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
async def any_world(
    request: pytest.FixtureRequest, tmp_path: Path, unique_id: str
) -> AsyncIterator[World]:
    """The world on each backend: SQLite + in-process, and PostgreSQL + Redis."""
    async with open_world(request.param, tmp_path, unique_id) as opened:
        yield opened
