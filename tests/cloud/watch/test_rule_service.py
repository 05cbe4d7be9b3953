"""The rule service on real stores: two workers on one asset, late stretches, world edits,
findings that cannot be applied at once.

Workers share PostgreSQL or SQLite (the archive) and Redis (rule states, checkpoints, timers);
interleavings are forced by a gate in front of the live state's compare-and-set write, so the
race each test names happens every time, not by luck. What the workers leave in the archive's
alerts is compared with what the pure engine's replay of the same fixes, in order, says.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

import wire
from cloud.alerts import AlertService
from cloud.archive import Store
from cloud.live import RedisLiveState
from cloud.models import Alert, Asset, Enterprise, Received
from cloud.rules.replay import replay
from cloud.rules.world import World
from cloud.watch.service import RuleService
from tests.cloud.conftest import delete_prefix, open_store
from tests.cloud.rules.scenario import T0, fix, lot, ring, route_obj, trip_obj, zone
from tests.cloud.rules.test_order import alerts as replayed_alerts
from tests.conftest import REDIS_URL

BAN = zone("ban", (0, 0, 400, 400), zone_kind="restricted")
NIGHT = zone("night", (-600, 0, -200, 400), windows=[{"daily": "10:05-10:25"}])
LOT = lot("lot", (1200, 0, 1500, 300))
OBJECTS = (BAN, NIGHT, LOT)
TRUCK = Asset(id="truck", enterprise_id="e1", asset_class="hazmat_truck")


class GatedLive(RedisLiveState):
    """The live state on Redis, with a gate before each compare-and-set write of rule states
    (a test holds the gate to force another worker in between)."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        super().__init__(client, prefix)
        self.gate: asyncio.Event | None = None
        self.waiting = asyncio.Event()
        self.jitter: random.Random | None = None

    async def get_rule_states(self, asset_ids: Collection[str]) -> dict[str, tuple[int, bytes]]:
        if self.jitter is not None:
            await asyncio.sleep(self.jitter.random() * 0.004)
        return await super().get_rule_states(asset_ids)

    async def put_rule_states(self, writes: Mapping[str, tuple[int, bytes]]) -> set[str]:
        if self.gate is not None:
            self.waiting.set()
            await self.gate.wait()
        if self.jitter is not None:
            await asyncio.sleep(self.jitter.random() * 0.004)
        return await super().put_rule_states(writes)


class FlakyAlerts(AlertService):
    """Alerts whose archive refuses the first ``failures`` findings (a database restart)."""

    def __init__(self, store: Store, failures: int) -> None:
        super().__init__(store)
        self.failures = failures

    async def on_finding(self, **kwargs: Any) -> Alert | None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("the archive is restarting")
        return await super().on_finding(**kwargs)


@contextlib.asynccontextmanager
async def stack(
    tmp_path: Path, backend: str = "sqlite"
) -> AsyncIterator[tuple[Store, aioredis.Redis, str]]:
    """An archive with enterprise e1, its truck and the zones; a Redis prefix of its own."""
    prefix = f"hzt:{uuid.uuid4().hex[:12]}:"
    client = aioredis.Redis.from_url(REDIS_URL)
    async with open_store(backend, tmp_path) as store:
        await store.put_enterprise(Enterprise(id="e1", name="e1", region="320281"))
        await store.put_asset(TRUCK)
        for obj in OBJECTS:
            await store.put_geo(obj, now_ms=T0 - 86_400_000)
        try:
            yield store, client, prefix
        finally:
            await delete_prefix(client, prefix)
            await client.aclose()


async def worker(
    store: Store, client: aioredis.Redis, prefix: str, alerts: AlertService | None = None
) -> RuleService:
    service = RuleService(
        store=store,
        live=GatedLive(client, prefix),
        alerts=alerts or AlertService(store),
        clock=lambda: T0 + 86_400_000,
    )
    await service.refresh(force=True)
    return service


async def take(service: RuleService, store: Store, fixes: Sequence[wire.Fix]) -> None:
    """What ingest does with a round: archive the fixes, then run the rules on them."""
    records = [Received(item=f, gateway_id="g1", enterprise_id="e1", recv_ms=f.ts) for f in fixes]
    await store.insert_fixes(records)
    by_asset: dict[str, list[wire.Fix]] = {}
    for f in fixes:
        by_asset.setdefault(f.asset, []).append(f)
    await service.evaluate(by_asset, now_ms=max(f.ts for f in fixes) + 1000)


async def stored_alerts(store: Store) -> list[tuple[str, str, int, int | None, bool]]:
    """The archive's rule alerts as (kind, ref, start, end, escalated), withdrawn ones left out."""
    listed = await store.list_alerts(None)
    return sorted(
        (a.kind, str(a.data["ref"]), a.opened_ms, a.closed_ms, a.level == "critical")
        for a in listed
        if not a.data.get("withdrawn")
    )


async def alerts_of(store: Store, kind: str) -> list[Alert]:
    """The archive's alerts of one rule kind (others, such as the silence of a truck whose
    link dropped, are other tests' business)."""
    return [a for a in await store.list_alerts(None) if a.kind == kind]


def expected(fixes: Sequence[wire.Fix]) -> list[tuple[str, str, int, int | None, bool]]:
    """The alerts of the ordered stream, by the pure engine."""
    the_world = World.build(list(OBJECTS), [TRUCK])
    conditions, instants = replayed_alerts(replay(the_world, sorted(fixes, key=lambda f: f.ts)))
    assert not instants  # this world has no instantaneous findings
    return sorted(conditions)


def drive(seed: int) -> list[wire.Fix]:
    """A hazmat truck through the night zone, the ban, a stop outside lots and into the lot."""
    rng = random.Random(seed)
    fixes = []
    t, x, y = 0.0, -800.0, 200.0
    while x < 1350:
        t += rng.choice((10, 15, 30))
        x += rng.uniform(60, 160)
        fixes.append(fix(t, x, y + rng.uniform(-15, 15), speed=rng.uniform(25, 60)))
        if rng.random() < 0.08:  # a stop of 5 to 20 min
            for _ in range(rng.randint(10, 40)):
                t += 30
                fixes.append(fix(t, x + rng.uniform(-3, 3), y + rng.uniform(-3, 3), speed=0.0))
    return fixes


# -- two workers, one asset -----------------------------------------------------------------


async def test_two_workers_at_once_lose_no_transition_and_open_no_duplicate(
    tmp_path: Path,
) -> None:
    """Worker A reads the truck's state, then B takes newer fixes and writes first; A's write
    is refused (compare-and-set), A reads again and finds its fixes late: one alert, which
    takes A's earlier start."""
    track = [fix(t, -100 + t * 2.5, 200) for t in range(0, 81, 10)]  # x = 100 at t = 80
    inside = [fix(t, 150, 200) for t in range(90, 141, 10)]
    async with stack(tmp_path, "postgresql") as (store, client, prefix):
        a, b = await worker(store, client, prefix), await worker(store, client, prefix)
        await take(a, store, track[:5])  # outside, approaching
        gated = a.live
        assert isinstance(gated, GatedLive)
        gated.gate = asyncio.Event()
        first = asyncio.create_task(take(a, store, track[5:]))  # enters at t = 50
        await gated.waiting.wait()  # A has evaluated and waits to write
        await take(b, store, inside)  # B writes the newer fixes first
        gated.gate.set()
        await first
        assert a.counters["rule_state_conflict"] == 1
        assert a.counters["rules_reevaluated"] == 1
        assert await stored_alerts(store) == expected([*track, *inside])
        (alert,) = await store.list_alerts(None)
        assert (alert.opened_ms, alert.state) == (T0 + 50_000, "open")
        assert [e.action for e in (await store.get_alert(alert.id)).events] == [  # type: ignore[union-attr]
            "open",
            "revise",
        ]


@pytest.mark.parametrize("seed", range(6))
async def test_two_workers_in_random_interleavings_leave_the_alerts_of_the_ordered_stream(
    tmp_path: Path, seed: int
) -> None:
    fixes = drive(seed)
    rng = random.Random(seed)
    rounds: list[list[wire.Fix]] = []
    i = 0
    while i < len(fixes):
        size = rng.randint(1, 6)
        rounds.append(fixes[i : i + size])
        i += size
    async with stack(tmp_path) as (store, client, prefix):
        workers = [await worker(store, client, prefix) for _ in range(2)]
        for n, w in enumerate(workers):
            assert isinstance(w.live, GatedLive)
            w.live.jitter = random.Random(seed * 10 + n)
        # Rounds go to either worker; a worker starts its next round while the other still
        # runs its own (as two workers of one shared subscription would).
        pending: list[asyncio.Task[None]] = []
        for batch in rounds:
            w = workers[rng.randrange(2)]
            pending.append(asyncio.create_task(take(w, store, batch)))
            await asyncio.sleep(rng.random() * 0.003)
            if len(pending) > 3:
                await pending.pop(0)
        await asyncio.gather(*pending)
        assert await stored_alerts(store) == expected(fixes)
        gave_up = sum(w.counters["rule_state_gave_up"] for w in workers)
        assert gave_up == 0


# -- late data ----------------------------------------------------------------------------


async def test_a_backlog_after_newer_fixes_raises_what_it_reveals_marked_late(
    tmp_path: Path,
) -> None:
    """An outage: the truck drove through the ban unseen; the edge sends live data first, the
    backlog after. The passage through the ban is raised from the backlog, marked late."""
    before = [fix(t, -400 + t * 4, 200, speed=50) for t in range(0, 61, 10)]  # x: -400..-160
    gap = [fix(t, -400 + t * 4, 200, speed=50) for t in range(70, 191, 10)]  # through the ban
    after = [fix(t, -400 + t * 4, 200, speed=50) for t in range(200, 301, 10)]  # x 400..800
    async with stack(tmp_path) as (store, client, prefix):
        w = await worker(store, client, prefix)
        await take(w, store, before)
        await take(w, store, after)
        assert await stored_alerts(store) == []
        await take(w, store, gap)
        assert await stored_alerts(store) == expected([*before, *gap, *after])
        (alert,) = await store.list_alerts(None)
        assert (alert.kind, alert.data["flags"]) == ("zone.forbidden", ["late"])
        await take(w, store, gap)  # the backlog again (a resend): nothing new
        assert len(await store.list_alerts(None)) == 1


async def test_a_stop_inferred_across_a_gap_is_withdrawn_when_the_backlog_shows_driving(
    tmp_path: Path,
) -> None:
    """The truck halts at a light, its link drops; 15 min later it reports from far away. The
    clock confirmed a stop outside lots meanwhile; the backlog shows it drove on."""
    halt = [fix(t, 600, 800, speed=0.0) for t in (0, 30)]
    drove = [fix(t, 600 + (t - 30) * 10, 800, speed=40) for t in range(60, 901, 30)]
    async with stack(tmp_path) as (store, client, prefix):
        w = await worker(store, client, prefix)
        await take(w, store, halt)
        await take(w, store, drove[-1:])  # the first fix after the outage, far away
        (alert,) = await alerts_of(store, "parking.outside_lot")
        (moved,) = await alerts_of(store, "offline.moved")  # 2.5 km in 14.5 min of silence
        await take(w, store, drove[:-1])  # the backlog
        (alert,) = await alerts_of(store, "parking.outside_lot")
        assert (alert.state, alert.data["withdrawn"]) == ("closed", True)
        (moved,) = await alerts_of(store, "offline.moved")  # the backlog fills the gap
        assert (moved.state, moved.data["withdrawn"]) == ("closed", True)
        assert await stored_alerts(store) == expected([*halt, *drove]) == []


# -- findings that cannot be applied at once -------------------------------------------------


async def test_a_finding_the_archive_refuses_is_kept_and_applied_by_the_clock(
    tmp_path: Path,
) -> None:
    track = [fix(t, 100 + t, 200) for t in range(0, 31, 10)]
    async with stack(tmp_path) as (store, client, prefix):
        w = await worker(store, client, prefix, alerts=FlakyAlerts(store, failures=1))
        await take(w, store, track)
        assert await store.list_alerts(None) == []
        assert w.counters["finding_error"] == 1
        await w.tick(now_ms=T0 + 86_400_000)
        (alert,) = await alerts_of(store, "zone.forbidden")
        assert alert.opened_ms == T0


async def test_a_trip_whose_truck_never_reports_does_not_arrive(tmp_path: Path) -> None:
    """The clock ends the trip at its window's end though the truck never sent a fix."""
    route = route_obj("r", [(0, 0), (10_000, 0)])
    trip = trip_obj(
        "t", [(0, 0), (10_000, 0)], asset_id="truck", route_id="r",
        start_ms=T0, end_ms=T0 + 3_600_000,
    )  # fmt: skip
    async with stack(tmp_path) as (store, client, prefix):
        await store.put_geo(route, now_ms=T0 - 1)
        await store.put_geo(trip, now_ms=T0 - 1)
        w = await worker(store, client, prefix)
        await w.tick(now_ms=T0 + 1_800_000)
        assert await store.list_alerts(None) == []
        await w.tick(now_ms=T0 + 3_700_000)  # the end, 60 s of grace, and some
        (alert,) = await store.list_alerts(None)
        assert (alert.kind, alert.opened_ms) == ("trip.not_arrived", T0 + 3_600_000)


async def test_two_workers_share_the_clock_and_raise_a_silence_once(tmp_path: Path) -> None:
    """A truck goes silent while moving: both workers run the clock, one at a time (the timer
    lock; on a busy machine it may pass from one to the other), and the silence is one alert,
    opened at the last fix + 10 min."""
    moving = [fix(t, -2000 + t * 10, 800, speed=40) for t in range(0, 61, 30)]
    async with stack(tmp_path) as (store, client, prefix):
        workers = [await worker(store, client, prefix) for _ in range(2)]
        await take(workers[0], store, moving)
        ticks = [0, 0]
        for n, w in enumerate(workers):
            original = w.tick

            async def counted(*, now_ms: int | None = None, n: int = n, f: Any = original) -> int:
                ticks[n] += 1
                return int(await f(now_ms=now_ms))

            w.tick = counted  # type: ignore[method-assign]
        timers = [asyncio.create_task(w.run_timer(period_s=0.1)) for w in workers]
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            while sum(ticks) < 6:
                assert loop.time() - started < 10, "the clock did not run"
                await asyncio.sleep(0.05)
        finally:
            for task in timers:
                task.cancel()
            await asyncio.gather(*timers, return_exceptions=True)
        (silence,) = await alerts_of(store, "offline.silent")
        assert silence.opened_ms == T0 + 60_000 + 600_000


# -- the world ------------------------------------------------------------------------------


async def test_every_worker_follows_a_zone_edit_without_restart(tmp_path: Path) -> None:
    async with stack(tmp_path) as (store, client, prefix):
        workers = [await worker(store, client, prefix) for _ in range(2)]
        for w in workers:
            w.world_check_s = 0.2
        timers = [asyncio.create_task(w.run_timer(period_s=0.5)) for w in workers]
        try:
            school = zone("school", (2000, 0, 2300, 300), zone_kind="school")
            await store.put_geo(school, now_ms=T0)
            await workers[0].live.bump_registry_version()
            loop = asyncio.get_running_loop()
            started = loop.time()
            while not all(any(z.id == "school" for z in w.world.zones) for w in workers):
                assert loop.time() - started < 10, "a worker never saw the new zone"
                await asyncio.sleep(0.05)
        finally:
            for task in timers:
                task.cancel()
            await asyncio.gather(*timers, return_exceptions=True)


async def test_a_zone_edited_while_the_truck_is_inside(tmp_path: Path) -> None:
    """The ban shrinks (from T0 + 100 s) to leave the parked truck outside: its alert closes at
    the first fix under the new version, confirmed like any exit."""
    parked = [fix(t, 300, 200, speed=0.0) for t in range(0, 91, 10)]
    later = [fix(t, 300, 200, speed=0.0) for t in range(100, 161, 10)]
    async with stack(tmp_path) as (store, client, prefix):
        w = await worker(store, client, prefix)
        await take(w, store, parked)
        (alert,) = await store.list_alerts(None)
        assert alert.state == "open"
        shrunk = msgspec.structs.replace(
            BAN,
            geometry={"type": "Polygon", "coordinates": [ring(0, 0, 200, 400)]},
            valid_from_ms=T0 + 100_000,
        )
        await store.put_geo(shrunk, now_ms=T0 + 100_000)
        await w.live.bump_registry_version()
        await w.refresh(force=True)
        await take(w, store, later)
        (alert,) = await store.list_alerts(None)
        assert (alert.state, alert.closed_ms) == ("closed", T0 + 100_000)
