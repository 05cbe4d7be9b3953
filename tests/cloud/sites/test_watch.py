"""The site watch on real stores: alerts from readings, the edge's alarms of the same level,
stale points on the clock shared by two workers, the ingest step.

The archive is SQLite or PostgreSQL, the live state in-process or Redis (the fixtures of
tests/cloud/conftest.py); the two-worker tests share one Redis prefix.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

import wire
from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.ingest import Ingest
from cloud.live import LiveState, RedisLiveState
from cloud.models import Alert, Enterprise, Gateway, Limits, Point, Received, Site
from cloud.sites import SitesConfig, SiteWatch, state_key
from cloud.sites.core import Change
from tests.cloud.conftest import delete_prefix
from tests.cloud.ingest_support import batch
from tests.conftest import REDIS_URL

T0 = 1_780_000_000_000
LEVEL = Point(site_id="s1", tag="LT01", unit="m", limits=Limits(h=8.0, hh=9.0, deadband=0.1))
STILL = Point(site_id="s1", tag="TT01", unit="°C", limits=Limits(frozen_s=60, poll_s=2))
RISING = Point(
    site_id="s1", tag="PT01", unit="MPa", limits=Limits(span_lo=0.0, span_hi=2.0, frozen_s=0)
)


async def seed(store: Store) -> None:
    await store.put_enterprise(Enterprise(id="e1", name="e1", region="320281"))
    await store.put_enterprise(Enterprise(id="e2", name="e2", region="320506"))
    await store.put_gateway(Gateway(id="g1", enterprise_id="e1"))
    await store.put_site(Site(id="s1", enterprise_id="e1", name="Tank farm", lat=31.9, lon=120.3))
    for point in (LEVEL, STILL, RISING):
        await store.put_point(point)


def readings(
    point: Point, samples: Sequence[tuple[int, float]], enterprise_id: str = "e1"
) -> list[Received[wire.Reading]]:
    """Readings of ``point`` at ``(seconds after T0, value)``."""
    return [
        Received(
            item=wire.Reading(
                seq=second + 1, ts=T0 + second * 1000, site=point.site_id, point=point.tag,
                value=value, unit=point.unit,
            ),
            gateway_id="g1", enterprise_id=enterprise_id, recv_ms=T0 + second * 1000,
        )
        for second, value in samples
    ]  # fmt: skip


async def feed(watch: SiteWatch, point: Point, samples: Sequence[tuple[int, float]]) -> None:
    """One round per reading, as ingest would run them."""
    for rec in readings(point, samples):
        await watch.observe([rec], now_ms=rec.recv_ms)


async def alerts_of(store: Store, key: str) -> list[Alert]:
    """The alerts of condition ``key``, with their history."""
    found = [await store.get_alert(a.id) for a in await store.list_alerts(["e1"]) if a.key == key]
    return [a for a in found if a is not None]


@pytest.fixture
async def watch(store: Store, live: LiveState) -> SiteWatch:
    await seed(store)
    return SiteWatch(store=store, live=live, alerts=AlertService(store, live), clock=lambda: T0)


async def test_a_level_opens_one_alert_that_hovering_does_not_flap(watch: SiteWatch) -> None:
    await feed(watch, LEVEL, [(0, 7.0), (1, 8.0), (2, 7.95), (3, 8.05), (4, 7.92), (5, 8.3)])
    (alert,) = await alerts_of(watch.store, "sensor:s1:LT01:H")
    assert (alert.state, alert.kind, alert.level, alert.site_id, alert.point) == (
        "open", "sensor", "H", "s1", "LT01",
    )  # fmt: skip
    assert alert.data["source"] == "cloud"
    assert alert.data["limit"] == 8.0
    assert [e.action for e in alert.events] == ["open"]
    await feed(watch, LEVEL, [(6, 9.5), (7, 7.5)])
    (high,) = await alerts_of(watch.store, "sensor:s1:LT01:H")
    (very,) = await alerts_of(watch.store, "sensor:s1:LT01:HH")
    assert high.state == very.state == "closed"
    assert high.closed_ms == T0 + 7000


async def test_an_edge_alarm_of_the_level_is_the_same_alert(watch: SiteWatch) -> None:
    edge = wire.Alarm(
        seq=100, ts=T0 + 500, state="raise", level="H", site="s1", point="LT01", value=8.2,
        limit=8.0,
    )  # fmt: skip
    await watch.alerts.on_alarm(edge, enterprise_id="e1", gateway_id="g1", now_ms=T0 + 600)
    await feed(watch, LEVEL, [(0, 7.0), (1, 8.2), (2, 8.4)])
    (alert,) = await alerts_of(watch.store, "sensor:s1:LT01:H")
    assert alert.state == "open"
    assert alert.data["gateway_id"] == "g1"
    await feed(watch, LEVEL, [(3, 7.0)])  # the cloud leaves the edge's alert to the edge
    (alert,) = await alerts_of(watch.store, "sensor:s1:LT01:H")
    assert alert.state == "open"
    clear = wire.Alarm(seq=101, ts=T0 + 3000, state="clear", level="H", site="s1", point="LT01")
    await watch.alerts.on_alarm(clear, enterprise_id="e1", gateway_id="g1", now_ms=T0 + 3100)
    (alert,) = await alerts_of(watch.store, "sensor:s1:LT01:H")
    assert alert.state == "closed"
    assert watch.counters["left_to_edge"] == 1


async def test_readings_older_than_the_edge_alarm_do_not_reopen(watch: SiteWatch) -> None:
    """Alarms travel ahead of a data backlog: the edge's raise and clear arrive before the
    readings that crossed the level; those readings must not open the condition again."""
    raised = wire.Alarm(seq=100, ts=T0 + 1000, state="raise", level="H", site="s1", point="LT01")
    cleared = wire.Alarm(seq=101, ts=T0 + 2000, state="clear", level="H", site="s1", point="LT01")
    for alarm in (raised, cleared):
        await watch.alerts.on_alarm(alarm, enterprise_id="e1", gateway_id="g1", now_ms=T0)
    await feed(watch, LEVEL, [(0, 7.0), (1, 8.5)])
    (alert,) = await alerts_of(watch.store, "sensor:s1:LT01:H")
    assert alert.state == "closed"
    assert watch.counters["edge_newer"] == 1


async def test_stale_on_the_clock_and_cleared_by_a_reading(watch: SiteWatch) -> None:
    await feed(watch, STILL, [(0, 20.0)])
    assert await watch.tick(now_ms=T0 + 6000) == 0
    assert await watch.tick(now_ms=T0 + 6001) == 1
    assert await watch.tick(now_ms=T0 + 9000) == 0  # raised once
    (alert,) = await alerts_of(watch.store, "sensor:s1:TT01:stale")
    assert (alert.kind, alert.level, alert.state) == ("sensor.stale", "warning", "open")
    await feed(watch, STILL, [(10, 20.5)])
    (alert,) = await alerts_of(watch.store, "sensor:s1:TT01:stale")
    assert alert.state == "closed"


async def test_frozen_and_rate_of_rise(watch: SiteWatch) -> None:
    await feed(watch, STILL, [(0, 20.0), (30, 20.0), (61, 20.0)])
    (frozen,) = await alerts_of(watch.store, "sensor:s1:TT01:frozen")
    assert frozen.state == "open"
    assert frozen.kind == "sensor.frozen"
    await feed(watch, STILL, [(62, 20.1)])
    (frozen,) = await alerts_of(watch.store, "sensor:s1:TT01:frozen")
    assert frozen.state == "closed"
    # 0.2 MPa/min on a 2 MPa span is 10 %/min, over the default 5 %/min.
    await feed(watch, RISING, [(s, 0.5 + s / 300) for s in range(0, 61, 10)])
    (rate,) = await alerts_of(watch.store, "sensor:s1:PT01:rate")
    assert rate.state == "open"
    assert rate.data["rate_pct_per_min"] == pytest.approx(10.0)
    await feed(watch, RISING, [(s, 0.7) for s in range(70, 140, 10)])
    (rate,) = await alerts_of(watch.store, "sensor:s1:PT01:rate")
    assert rate.state == "closed"


async def test_another_tenants_readings_of_the_site_are_not_watched(watch: SiteWatch) -> None:
    recs = readings(LEVEL, [(0, 9.9)], enterprise_id="e2")
    assert await watch.observe(recs, now_ms=T0) == 0
    assert await watch.store.list_alerts(None) == []


async def test_the_ingest_step_watches_readings(store: Store, live: LiveState) -> None:
    await seed(store)
    alerts = AlertService(store, live)
    watch = SiteWatch(store=store, live=live, alerts=alerts)
    ingest = Ingest(store=store, live=live, ledger=store, alerts=alerts, steps=(watch.step,))
    items = [
        wire.Reading(seq=1, ts=T0, site="s1", point="LT01", value=7.0),
        wire.Reading(seq=2, ts=T0 + 1000, site="s1", point="LT01", value=9.2),
    ]
    await ingest.handle(wire.data_topic("g1"), batch("g1", items))
    keys = sorted(a.key for a in await store.list_alerts(["e1"]))
    assert keys == ["sensor:s1:LT01:H", "sensor:s1:LT01:HH"]


async def test_a_point_added_later_is_watched_within_a_second(watch: SiteWatch) -> None:
    added = Point(site_id="s1", tag="LT09", unit="m", limits=Limits(h=1.0))
    assert await watch.observe(readings(added, [(0, 5.0)]), now_ms=T0) == 0  # not registered
    await watch.store.put_point(added)
    await asyncio.sleep(1.05)
    assert await watch.observe(readings(added, [(1, 5.0)]), now_ms=T0) == 1
    assert watch.counters["reading_unwatched"] == 1


async def test_no_stale_point_while_its_gateway_is_offline(watch: SiteWatch) -> None:
    await feed(watch, STILL, [(0, 20.0)])
    await watch.live.set_gateway("g1", enterprise_id="e1", state="offline", status_ms=T0 + 1)
    assert await watch.tick(now_ms=T0 + 60_000) == 0  # gateway_offline stands for its points
    await watch.live.set_gateway("g1", state="online", status_ms=T0 + 70_000)
    assert await watch.tick(now_ms=T0 + 80_000) == 1


class HeldWatch(SiteWatch):
    """A worker that waits at a gate before applying its first change."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def _apply_one(
        self, enterprise_id: str, point: Point, change: Change, now_ms: int
    ) -> None:
        self.waiting.set()
        await self.gate.wait()
        await super()._apply_one(enterprise_id, point, change, now_ms)


async def test_changes_applied_out_of_order_by_two_workers_are_set_right(
    store: Store, live: LiveState
) -> None:
    await seed(store)
    alerts = AlertService(store, live)
    slow = HeldWatch(store=store, live=live, alerts=alerts)
    fast = SiteWatch(store=store, live=live, alerts=alerts)
    await feed(fast, LEVEL, [(0, 7.0)])
    raising = asyncio.create_task(slow.observe(readings(LEVEL, [(1, 8.5)]), now_ms=T0 + 1000))
    await slow.waiting.wait()  # its state (H raised) is written; the alert is not opened yet
    await feed(fast, LEVEL, [(2, 7.0)])  # the newer state clears H: nothing open to close yet
    slow.gate.set()
    await raising
    (alert,) = await alerts_of(store, "sensor:s1:LT01:H")
    assert alert.state == "closed"  # opened late, then set right by the recheck
    assert slow.counters["rechecked"] == 1


@pytest.fixture
async def redis_pair(
    store: Store,
) -> AsyncIterator[tuple[SiteWatch, SiteWatch]]:
    """Two workers on one archive and one Redis prefix."""
    await seed(store)
    prefix = f"hzt:{uuid.uuid4().hex[:12]}:"
    client = aioredis.Redis.from_url(REDIS_URL)
    workers = []
    for _ in range(2):
        live = RedisLiveState(client, prefix)
        workers.append(SiteWatch(store=store, live=live, alerts=AlertService(store, live)))
    try:
        yield workers[0], workers[1]
    finally:
        for w in workers:
            await w.live.close()
        await delete_prefix(client, prefix)
        await client.aclose()


async def test_two_workers_share_the_stale_clock_and_only_one_raises(
    redis_pair: tuple[SiteWatch, SiteWatch],
) -> None:
    one, two = redis_pair
    await feed(one, STILL, [(0, 20.0)])  # worker one heard the point; two keeps no copy
    now = T0 + 10_000
    results = await asyncio.gather(one.tick_if_leader(now_ms=now), two.tick_if_leader(now_ms=now))
    assert sorted(results, key=str) == [1, None]  # one holds the lock; the other waits
    (alert,) = await alerts_of(one.store, "sensor:s1:TT01:stale")
    assert [e.action for e in alert.events] == ["open"]
    # Without the lock (it expired, or a worker restarted) the state still says "raised".
    assert await two.tick(now_ms=now + 1000) == 0
    await feed(two, STILL, [(20, 21.0)])  # the other worker's reading closes it
    (alert,) = await alerts_of(one.store, "sensor:s1:TT01:stale")
    assert alert.state == "closed"


async def test_two_workers_on_one_point_lose_no_transition(
    redis_pair: tuple[SiteWatch, SiteWatch],
) -> None:
    one, two = redis_pair
    batches = [readings(LEVEL, [(s, 8.5 if s % 20 < 10 else 7.0)]) for s in range(40)]
    await asyncio.gather(
        *(w.observe(b, now_ms=b[0].recv_ms) for w, b in zip([one, two] * 20, batches, strict=True))
    )
    raw = (await one.live.get_rule_states([state_key("s1", "LT01")]))[state_key("s1", "LT01")]
    assert raw[0] >= 1
    states = [a.state for a in await alerts_of(one.store, "sensor:s1:LT01:H")]
    assert states.count("open") <= 1


def test_config_defaults() -> None:
    config = SitesConfig()
    assert (config.stale_factor, config.frozen_level_s, config.rate_pct_per_min) == (
        3.0, 21600.0, 5.0,
    )  # fmt: skip
