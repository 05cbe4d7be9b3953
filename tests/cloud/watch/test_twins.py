"""Identical tracks on the real stores: two vessels 10 m apart, fix after fix, give one alert
naming both once each has 20 matched fixes within the hour; trucks in convoy, moored boats,
tracks 100 m apart or 2 min apart give none; two workers, one per vessel, share the count."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest

import wire
from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.ingest.core import Accepted
from cloud.live import LiveState
from cloud.models import Asset, Enterprise, Received
from cloud.rules.world import World
from cloud.watch.twins import KIND, TwinWatch, twin_key
from tests.cloud.conftest import open_live
from tests.cloud.rules.scenario import T0, lonlat

pytestmark = pytest.mark.services

ASSETS = [
    Asset(id="v1", enterprise_id="e1", asset_class="fishing_vessel"),
    Asset(id="v2", enterprise_id="e1", asset_class="fishing_vessel"),
    Asset(id="truck1", enterprise_id="e1", asset_class="hazmat_truck"),
    Asset(id="truck2", enterprise_id="e1", asset_class="hazmat_truck"),
    Asset(id="w1", enterprise_id="e2", asset_class="fishing_vessel"),
]
WORLD = World.build([], ASSETS)


@pytest.fixture
async def registered(store: Store) -> Store:
    for enterprise in ("e1", "e2"):
        await store.put_enterprise(Enterprise(id=enterprise, name=enterprise, region="320281"))
    for asset in ASSETS:
        await store.put_asset(asset)
    return store


def track(asset: str, n: int, *, y: float = 0.0, speed: float = 15.0, lag_s: float = 0.0,
          start: int = 0) -> list[wire.Fix]:  # fmt: skip
    """``n`` fixes 10 s apart sailing east (course 90) at 15 km/h (42 m per fix) along ``y``."""
    fixes = []
    for i in range(start, start + n):
        lon, lat = lonlat(42.0 * i, y)
        ts = T0 + int((10 * i + lag_s) * 1000)
        fixes.append(
            wire.Fix(seq=i + 1, ts=ts, asset=asset, lat=lat, lon=lon, speed_kmh=speed, course=90.0)
        )
    return fixes


async def rounds(
    watch: TwinWatch, live: LiveState, *tracks: Sequence[wire.Fix]
) -> None:  # fmt: skip
    """One ingest round per fix time: the live state first (ingest), then the watch."""
    for fixes in zip(*tracks, strict=True):
        records = [
            Received(item=f, gateway_id="g1", enterprise_id=owner(f.asset), recv_ms=f.ts)
            for f in fixes
        ]
        await live.put_fixes(records)
        await watch.step(Accepted(recv_ms=max(f.ts for f in fixes), fixes=records))


def owner(asset_id: str) -> str:
    return next((a.enterprise_id for a in ASSETS if a.id == asset_id), "e1")


async def twin_alerts(store: Store, enterprise: str = "e1") -> list[tuple[str, str | None, object]]:
    found = await store.list_alerts([enterprise])
    return [(a.kind, a.asset_id, a.data.get("other")) for a in found if a.kind == KIND]


@contextlib.asynccontextmanager
async def watching(store: Store, kind: str, unique_id: str) -> AsyncIterator[TwinWatch]:
    async with open_live(kind, unique_id) as live:
        yield TwinWatch(live, AlertService(store), lambda: WORLD)


@pytest.mark.parametrize("live_kind", ["memory", "redis"])
async def test_two_vessels_sailing_together_give_one_alert_naming_both(
    registered: Store, live_kind: str, unique_id: str
) -> None:
    async with watching(registered, live_kind, unique_id) as watch:
        await rounds(watch, watch.live, track("v1", 19), track("v2", 19, y=10.0))
        assert await twin_alerts(registered) == []  # 19 matched fixes each: not yet
        await rounds(watch, watch.live, track("v1", 5, start=19), track("v2", 5, y=10, start=19))
        assert watch.counters["twins_error"] == 0
    found = await twin_alerts(registered)
    assert found == [(KIND, "v1", "v2")]
    (alert,) = [a for a in await registered.list_alerts(["e1"]) if a.kind == KIND]
    assert alert.key == twin_key("v2", "v1") == "twins:v1|v2"
    assert alert.data["matched_fixes"] == 20
    assert alert.state == "open"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (track("truck1", 30), track("truck2", 30, y=10.0)),  # a convoy of trucks
        (track("v1", 30, speed=0.5), track("v2", 30, y=10.0, speed=0.5)),  # moored side by side
        (track("v1", 30), track("v2", 30, y=100.0)),  # 100 m apart
        (track("v1", 30), track("v2", 30, y=10.0, lag_s=-120.0)),  # the same line, 2 min apart
    ],
    ids=["trucks", "moored", "100 m apart", "2 min apart"],
)
async def test_no_alert_where_the_tracks_are_not_one(
    registered: Store, a: list[wire.Fix], b: list[wire.Fix], unique_id: str
) -> None:
    async with watching(registered, "memory", unique_id) as watch:
        await rounds(watch, watch.live, a, b)
    assert await twin_alerts(registered) == []


async def test_unregistered_ais_targets_are_vessels(registered: Store, unique_id: str) -> None:
    async with watching(registered, "memory", unique_id) as watch:
        await rounds(watch, watch.live, track("412000001", 25), track("412000002", 25, y=5.0))
    assert await twin_alerts(registered) == [(KIND, "412000001", "412000002")]


async def test_two_workers_one_vessel_each_share_the_count(
    registered: Store, unique_id: str
) -> None:
    """The vessels come through different gateways, so different workers: each worker sees
    one vessel's fixes, and the other's position and matched fixes only in the shared Redis."""
    async with (
        watching(registered, "redis", unique_id) as first,
        watching(registered, "redis", unique_id) as second,
    ):
        for f1, f2 in zip(track("v1", 25), track("v2", 25, y=10.0), strict=True):
            for watch, f in ((first, f1), (second, f2)):
                record = Received(item=f, gateway_id="g", enterprise_id="e1", recv_ms=f.ts)
                await watch.live.put_fixes([record])
                await watch.step(Accepted(recv_ms=f.ts, fixes=[record]))
    # v1's fixes meet v2's newest of 10 s before (dead reckoned 42 m on): both count
    assert await twin_alerts(registered) == [(KIND, "v1", "v2")]


async def test_vessels_of_two_enterprises_each_get_an_alert_naming_their_own(
    registered: Store, unique_id: str
) -> None:
    async with watching(registered, "memory", unique_id) as watch:
        await rounds(watch, watch.live, track("v1", 25), track("w1", 25, y=10.0))
    # neither enterprise learns the other's asset id; the regulator sees both alerts
    assert await twin_alerts(registered, "e1") == [(KIND, "v1", None)]
    assert await twin_alerts(registered, "e2") == [(KIND, "w1", None)]
    for enterprise, theirs in (("e1", "w1"), ("e2", "v1")):
        (alert,) = [a for a in await registered.list_alerts([enterprise]) if a.kind == KIND]
        assert theirs not in alert.key
        assert theirs not in alert.message
