"""Contract suite of the live state, run against Redis and the in-process adapter."""

from __future__ import annotations

import asyncio

import pytest

import wire
from cloud.live import LiveState, MemoryLiveState, RedisLiveState, haversine_m
from cloud.models import LiveEvent, Received

T0 = 1_763_856_000_000


def fix(
    asset: str,
    ts: int,
    lat: float,
    lon: float,
    *,
    tenant: str = "e1",
    late: bool = False,
    future: bool = False,
) -> Received[wire.Fix]:
    return Received(
        wire.Fix(seq=ts, ts=ts, asset=asset, lat=lat, lon=lon),
        "g1",
        tenant,
        ts,
        late=late,
        future=future,
    )


def test_both_adapters_satisfy_the_protocol() -> None:
    assert isinstance(MemoryLiveState(), LiveState)
    assert issubclass(RedisLiveState, object)
    assert hasattr(RedisLiveState, "nearby")


async def test_latest_fix_only_moves_forward(live: LiveState) -> None:
    changed = await live.put_fixes([fix("a1", T0 + 2, 31.0, 120.0), fix("a1", T0 + 1, 31.5, 120.5)])
    assert changed == ["a1"]
    assert await live.put_fixes([fix("a1", T0, 30.0, 120.0)]) == []
    assert await live.put_fixes([fix("a1", T0 + 9, 30.0, 120.0, late=True)]) == []
    assert await live.put_fixes([fix("a1", T0 + 9, 30.0, 120.0, future=True)]) == []
    latest = await live.latest_fixes(["a1", "nobody"])
    assert list(latest) == ["a1"]
    assert latest["a1"].fix.ts == T0 + 2
    assert latest["a1"].enterprise_id == "e1"
    assert await live.latest_fixes([]) == {}


async def test_nearby_is_scoped_and_sorted(live: LiveState) -> None:
    # ~111 m per 0.001 degree of latitude
    await live.put_fixes(
        [
            fix("near", T0, 31.001, 120.0),
            fix("far", T0, 31.010, 120.0),
            fix("other", T0, 31.0005, 120.0, tenant="e2"),
        ]
    )
    found = await live.nearby(31.0, 120.0, 500.0)
    assert [a for a, _ in found] == ["other", "near"]
    assert found[1][1] == pytest.approx(haversine_m(31.0, 120.0, 31.001, 120.0), abs=1.0)
    assert [a for a, _ in await live.nearby(31.0, 120.0, 5000.0, enterprise_ids=["e1"])] == [
        "near",
        "far",
    ]
    assert await live.nearby(31.0, 120.0, 5000.0, enterprise_ids=[]) == []
    assert len(await live.nearby(31.0, 120.0, 5000.0, limit=1)) == 1


async def test_status_and_rule_state(live: LiveState) -> None:
    await live.set_asset_status("a1", {"moving": True, "zone": None})
    assert await live.asset_status(["a1", "a2"]) == {"a1": {"moving": True, "zone": None}}
    assert await live.put_rule_states({"a1": (0, b"\x00\x01state"), "a2": (0, b"{}")}) == set()
    assert await live.put_rule_states({"a2": (1, b"v2"), "a1": (0, b"stale")}) == {"a1"}
    assert await live.get_rule_states(["a1", "a2", "a3"]) == {
        "a1": (1, b"\x00\x01state"),
        "a2": (2, b"v2"),
    }


async def test_rule_checkpoints_timers_lots_and_locks(live: LiveState) -> None:
    await live.add_rule_checkpoint("a1", 1000, b"one", keep_after_ms=0)
    await live.add_rule_checkpoint("a1", 2000, b"one", keep_after_ms=0)  # same bytes, later
    await live.add_rule_checkpoint("a1", 3000, b"three", keep_after_ms=1500)
    assert await live.rule_checkpoints("a1") == [(2000, b"one"), (3000, b"three")]
    await live.set_rule_due({"a1": T0 + 5, "a2": T0 + 1, "a3": T0 + 9})
    await live.set_rule_due({"a3": None})
    assert await live.due_rule_assets(T0 + 5) == ["a2", "a1"]
    await live.set_lot_members([("lot1", "a1", T0), ("lot1", "a2", T0 + 1)])
    await live.set_lot_members([("lot1", "a2", None)])
    assert await live.lot_members(["lot1", "lot2"]) == {"lot1": {"a1": T0}, "lot2": {}}
    assert await live.try_lock("timer", "w1", ttl_ms=10_000)
    assert not await live.try_lock("timer", "w2", ttl_ms=10_000)
    assert await live.try_lock("timer", "w1", ttl_ms=10_000), "the holder renews"


async def test_gateway_fields_merge(live: LiveState) -> None:
    await live.set_gateway("g1", enterprise_id="e1", state="online", status_ms=T0)
    health = wire.Health(seq=5, ts=T0, buffer_depth=12, drops={"full": 1})
    await live.set_gateway("g1", seen_ms=T0 + 5, health=health)
    got = (await live.gateways(["g1", "g2"]))["g1"]
    assert (got.enterprise_id, got.state, got.status_ms, got.last_seen_ms) == (
        "e1",
        "online",
        T0,
        T0 + 5,
    )
    assert got.health == health
    assert "g2" not in await live.gateways(["g2"])
    await live.forget_gateway("g1")  # deleted or changed hands: a reused id starts blank
    assert await live.gateways(["g1"]) == {}


async def test_seq_ledger_and_high_water(live: LiveState) -> None:
    assert await live.admit_seqs("g1", [5, 1, 70000, 1], now_ms=T0) == [1, 5, 70000]
    assert await live.admit_seqs("g1", [5, 6], now_ms=T0) == [6]
    assert await live.admit_seqs("g2", [5], now_ms=T0) == [5]
    assert await live.missing_seqs("g1", 1, 6) == 3
    assert await live.missing_seqs("g1", 0, 70000) == 70001 - 4
    assert await live.high_water("g1", 10) is None
    assert await live.high_water("g1", 7) == 10
    assert await live.high_water("g1", 12) == 10
    assert await live.high_water("g1", 0) == 12


async def test_feed_fans_out_to_every_subscriber(live: LiveState) -> None:
    events = [
        LiveEvent(kind="fix", enterprise_id=f"e{i}", ts_ms=T0 + i, data={"i": i}) for i in range(3)
    ]
    async with live.subscribe() as first, live.subscribe() as second:
        await live.publish(events[0])
        await live.publish_many(events[1:])
        for sub in (first, second):
            got = [await asyncio.wait_for(anext(sub), 5.0) for _ in range(3)]
            assert got == events


async def test_an_asset_moved_to_another_enterprise_leaves_the_old_scope(live: LiveState) -> None:
    # The truck is sold (or re-registered) to e2: e1's dispatcher must no longer find it.
    await live.put_fixes([fix("truck", T0, 31.001, 120.0, tenant="e1")])
    await live.put_fixes([fix("truck", T0 + 1, 31.002, 120.0, tenant="e2")])
    assert await live.nearby(31.0, 120.0, 1000.0, enterprise_ids=["e1"]) == []
    assert [a for a, _ in await live.nearby(31.0, 120.0, 1000.0, enterprise_ids=["e2"])] == [
        "truck"
    ]
    assert [a for a, _ in await live.nearby(31.0, 120.0, 1000.0)] == ["truck"]


async def test_a_closed_subscription_ends_even_with_events_pending(live: LiveState) -> None:
    events = [LiveEvent(kind="fix", enterprise_id="e1", ts_ms=T0 + i, data={}) for i in range(3)]
    sub = live.subscribe()
    await sub.start()
    await live.publish_many(events)
    await sub.aclose()

    async def drain() -> list[LiveEvent]:
        return [event async for event in sub]

    got = await asyncio.wait_for(drain(), 10.0)  # guards a hang, measures nothing
    assert got in ([], events)


async def test_registry_version_counts_changes(live: LiveState) -> None:
    assert await live.registry_version() == 0
    assert await live.bump_registry_version() == 1
    assert await live.bump_registry_version() == 2
    assert await live.registry_version() == 2
