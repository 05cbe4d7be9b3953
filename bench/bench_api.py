"""Track endpoint latency: what the API adds over the archive query (GeoJSON, CRS, simplification).

Stores one asset's day of fixes (one every 2 s, a wandering line) in a throw-away SQLite file and
times, as medians of several runs: ``Store.track`` alone (the baseline), then
``GET /api/v1/assets/{id}/track`` through ``httpx.ASGITransport`` raw, converted to GCJ-02,
and simplified to 5 m and 50 m.

    python bench/bench_api.py [fixes]     # default 43_200
"""

from __future__ import annotations

import asyncio
import functools
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

import wire
from cloud.archive import Store
from cloud.auth import make_key
from cloud.config import CloudSettings, MqttSettings
from cloud.live import MemoryLiveState
from cloud.main import create_app
from cloud.models import Asset, Enterprise, Received

RUNS = 7
T0 = 1_780_000_000_000


async def median_s(fn: Callable[[], Awaitable[Any]]) -> float:
    await fn()  # warm up
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def seed(store: Store, count: int) -> None:
    await store.put_enterprise(Enterprise(id="e1", name="E", region="320281"))
    await store.put_asset(Asset(id="truck", enterprise_id="e1", asset_class="hazmat_truck"))
    fixes = [
        Received(
            item=wire.Fix(
                seq=i, ts=T0 + i * 2000, asset="truck", speed_kmh=50.0,
                lat=31.5 + i * 1e-5 + 2e-4 * math.sin(i / 40), lon=120.3 + i * 1e-5,
            ),
            gateway_id="gw", enterprise_id="e1", recv_ms=T0 + i * 2000,
        )
        for i in range(count)
    ]  # fmt: skip
    await store.insert_fixes(fixes)


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.connect(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        await seed(store, count)
        token, key = make_key(name="bench", role="dispatcher", enterprise_id="e1", now_ms=T0)
        await store.put_api_key(key)
        settings = CloudSettings(mqtt=MqttSettings(enabled=False))
        app = create_app(settings, store=store, live=MemoryLiveState(), run_retention=False)
        end = T0 + count * 2000
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://b", headers=headers
            ) as http:
                base = await median_s(lambda: store.track("truck", T0, end, enterprise_ids=["e1"]))
                print(f"{count} fixes; Store.track alone: {base * 1000:8.1f} ms (baseline)")
                cases: list[tuple[str, dict[str, str | int]]] = [
                    ("raw WGS-84", {}),
                    ("raw GCJ-02", {"crs": "gcj02"}),
                    ("simplify_m=5", {"simplify_m": 5}),
                    ("simplify_m=50", {"simplify_m": 50}),
                ]
                for label, params in cases:
                    query: dict[str, str | int] = {"start_ms": T0, "end_ms": end, **params}
                    response = await http.get("/api/v1/assets/truck/track", params=query)
                    points = response.json()["properties"]["points"]
                    get = functools.partial(http.get, "/api/v1/assets/truck/track", params=query)
                    took = await median_s(get)
                    print(
                        f"GET track {label:14s}: {took * 1000:8.1f} ms  x{took / base:5.2f} "
                        f"{points:6d} points, {len(response.content) / 1024:7.0f} KiB"
                    )
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 43_200))
