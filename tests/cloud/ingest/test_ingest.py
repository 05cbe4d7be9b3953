"""Ingest through the real Mosquitto: archive, live state, duplicates, gaps, bad input, time marks.

Each test runs on two stacks: ``embedded`` (SQLite, in-process state, the archive's durable
de-duplication ledger) and ``production`` (PostgreSQL, Redis state and ledger).
"""

from __future__ import annotations

import asyncio
import random
from typing import Literal

import pytest

import wire
from cloud.ingest import Accepted, Ingest
from cloud.models import Asset
from tests.cloud.conftest import register
from tests.cloud.ingest_support import batch, now_ms, publish, running, until

pytestmark = pytest.mark.services


def fix(asset: str, seq: int, ts: int, lat: float = 31.5) -> wire.Fix:
    return wire.Fix(seq=seq, ts=ts, asset=asset, lat=lat, lon=120.3, speed_kmh=30.0)


async def test_fixes_and_readings_reach_archive_live_state_and_feed(
    ingest: Ingest, unique_id: str
) -> None:
    gw, t = unique_id, now_ms() - 60_000
    fixes = [fix(f"{gw}-a{n % 2}", n, t + n * 1000, lat=31.5 + n * 1e-4) for n in range(1, 11)]
    random.Random(4).shuffle(fixes)
    readings = [
        wire.Reading(seq=20 + n, ts=t + n, site="s1", point="GD01", value=n * 2.5, unit="%LEL")
        for n in range(3)
    ]
    vessel = wire.Vessel(seq=30, ts=t, mmsi=412000001, name="ZHE DAI YU 1", ship_type=30)
    health = wire.Health(seq=31, ts=t, buffer_depth=7, drops={"full": 2})
    async with ingest.live.subscribe() as feed, running(ingest, [gw]):
        await publish(
            [
                (wire.data_topic(gw), batch(gw, fixes[:6])),
                (wire.data_topic(gw), batch(gw, [*fixes[6:], *readings, vessel, health])),
            ]
        )
        await until(lambda: ingest.counters["accepted.health"] == 1)
        kinds = [(await asyncio.wait_for(anext(feed), 5.0)).kind for _ in range(14)]
    assert sorted(kinds) == ["fix"] * 10 + ["reading"] * 3 + ["vessel"]
    assert (ingest.counters["accepted.fix"], ingest.counters["accepted.reading"]) == (10, 3)
    assert [v.name for v in await ingest.store.vessels(["e1"])] == ["ZHE DAI YU 1"]
    track = await ingest.store.track(f"{gw}-a1", 0, t + 60_000)
    assert [f.seq for f in track] == [1, 3, 5, 7, 9]
    assert [r.value for r in await ingest.store.readings("s1", "GD01", 0, t + 10)] == [
        0.0,
        2.5,
        5.0,
    ]
    latest = await ingest.live.latest_fixes([f"{gw}-a0", f"{gw}-a1"])
    assert (latest[f"{gw}-a0"].fix.seq, latest[f"{gw}-a1"].fix.seq) == (10, 9)
    near = await ingest.live.nearby(31.5 + 9e-4, 120.3, 5.0)
    assert [a for a, _ in near] == [f"{gw}-a1"]
    seen = (await ingest.live.gateways([gw]))[gw]
    assert seen.enterprise_id == "e1"
    assert seen.last_seen_ms is not None
    assert seen.health == health
    assert ingest.counters["rejected.unknown_gateway"] == 0


async def test_duplicates_are_dropped_and_counted(ingest: Ingest, unique_id: str) -> None:
    gw, t = unique_id, now_ms()
    payload = batch(gw, [fix(f"{gw}-a", n, t + n) for n in range(1, 6)])
    repeated = batch(
        gw, [fix(f"{gw}-a", 5, t + 5), fix(f"{gw}-a", 6, t + 6), fix(f"{gw}-a", 6, t + 6)]
    )
    async with running(ingest, [gw]):
        await publish(
            [
                (wire.data_topic(gw), payload),
                (wire.data_topic(gw), payload),
                (wire.data_topic(gw), repeated),
            ]
        )
        await until(lambda: ingest.counters["duplicate"] == 7)
    assert ingest.counters["accepted.fix"] == 6
    assert [f.seq for f in await ingest.store.track(f"{gw}-a", 0, t + 10)] == [1, 2, 3, 4, 5, 6]


async def test_gaps_are_reported_but_alarms_sent_ahead_fill_them(
    ingest: Ingest, unique_id: str
) -> None:
    gw, t = unique_id, now_ms()
    alarm = wire.Alarm(
        seq=4, ts=t, state="raise", level="H", site="s1", point="GD01", value=30.0, limit=25.0
    )
    async with running(ingest, [gw]):
        await publish(
            [(wire.data_topic(gw), batch(gw, [fix(f"{gw}-a", n, t + n) for n in (1, 2, 3)]))]
        )
        await until(lambda: ingest.counters["accepted.fix"] == 3)
        await publish([(wire.alarm_topic(gw), batch(gw, [alarm]))])
        await until(lambda: ingest.counters["accepted.alarm"] == 1)
        # 4 came as an alarm, 5 and 6 are lost, 8 is lost inside the batch
        await publish(
            [(wire.data_topic(gw), batch(gw, [fix(f"{gw}-a", n, t + n) for n in (7, 9)]))]
        )
        await until(lambda: ingest.counters["accepted.fix"] == 5)
    gaps = await ingest.store.list_gaps(["e1"], gateway_id=gw)
    assert sorted((g.first_seq, g.last_seq, g.missing) for g in gaps) == [(4, 6, 2), (8, 8, 1)]
    assert ingest.counters["gap.missing"] == 3


async def test_a_new_buffer_file_is_a_seq_reset_not_a_gap(ingest: Ingest, unique_id: str) -> None:
    # An edge buffer file that is new (the old one lost) numbers from its clock in microseconds.
    gw, t = unique_id, now_ms()
    restart = t * 1000  # what a new file on this gateway would start from
    async with running(ingest, [gw]):
        await publish(
            [(wire.data_topic(gw), batch(gw, [fix(f"{gw}-a", n, t + n) for n in (1, 2)]))]
        )
        await until(lambda: ingest.counters["accepted.fix"] == 2)
        later = [fix(f"{gw}-a", restart + n, t + 10 + n) for n in (0, 1, 3)]
        await publish([(wire.data_topic(gw), batch(gw, later))])
        await until(lambda: ingest.counters["accepted.fix"] == 5)
    gaps = await ingest.store.list_gaps(["e1"], gateway_id=gw)
    assert [(g.first_seq, g.last_seq, g.missing) for g in gaps] == [
        (restart + 2, restart + 2, 1)
    ], "the jump is no gap; a loss inside the new numbering still is"
    assert ingest.counters["seq_reset"] == 1


async def test_bad_payloads_and_unknown_gateways_are_counted_and_kept(
    ingest: Ingest, unique_id: str
) -> None:
    gw, stranger, t = unique_id, unique_id + "x", now_ms()
    good = wire.encode_item(fix(f"{gw}-a", 1, t))
    bad_item = b'{"kind":"fix","seq":2,"ts":1,"asset":"a","lat":95.0,"lon":0}'
    async with running(ingest, [gw, stranger]):
        await publish(
            [
                (wire.data_topic(gw), b"{not json"),
                (wire.data_topic(gw), b'{"v":9,"gw":"%s","items":[]}' % gw.encode()),
                (wire.data_topic(gw), wire.assemble_batch(gw, [good, bad_item])),
                (wire.data_topic(gw), batch(stranger, [fix("z", 1, t)])),
                (wire.data_topic(stranger), batch(stranger, [fix("z", 1, t)])),
                (wire.status_topic(gw), b"\xff\xfe"),
            ]
        )
        await until(
            lambda: sum(v for k, v in ingest.counters.items() if k.startswith("rejected.")) == 6
        )
    counts = ingest.counts()
    assert counts["rejected.malformed"] == 2
    assert counts["rejected.unknown_version"] == 1
    assert counts["rejected.out_of_range"] == 1
    assert counts["rejected.gateway_mismatch"] == 1
    assert counts["rejected.unknown_gateway"] == 1
    assert counts["accepted.fix"] == 1
    kept = await ingest.store.list_rejected(limit=10)
    assert {r.reason for r in kept} == {r.reason for r in ingest.rejected}
    assert b"{not json" in [r.payload for r in kept]
    assert next(r for r in kept if r.reason == "out_of_range").field == "$.items[1].lat"


async def test_fixes_of_another_enterprises_asset_are_refused(
    ingest: Ingest, unique_id: str
) -> None:
    # gateway gw belongs to e1; gateway rogue to e2, which claims e1's registered truck
    gw, rogue, t = unique_id, unique_id + "r", now_ms() - 10_000
    truck, boat = f"{gw}-truck", f"{gw}-boat"
    await register(ingest.store, "e2", rogue)
    await ingest.store.put_asset(Asset(id=truck, enterprise_id="e1", asset_class="hazmat_truck"))
    async with running(ingest, [gw, rogue]):
        await publish([(wire.data_topic(gw), batch(gw, [fix(truck, 1, t, lat=31.5)]))])
        await until(lambda: ingest.counters["accepted.fix"] == 1)
        spoofed = [fix(truck, 1, t + 5000, lat=30.0), fix(boat, 2, t + 5000, lat=30.1)]
        await publish([(wire.data_topic(rogue), batch(rogue, spoofed))])
        await until(lambda: ingest.counters["rejected.foreign_asset"] == 1)
    assert ingest.counters["accepted.fix"] == 2, "the unregistered asset passes"
    latest = await ingest.live.latest_fixes([truck, boat])
    assert latest[truck].fix.lat == 31.5, "the truck stays where its own gateway put it"
    assert latest[truck].enterprise_id == "e1"
    assert latest[boat].enterprise_id == "e2"
    assert [f.lat for f in await ingest.store.track(truck, 0, t + 60_000)] == [31.5]
    [kept] = [r for r in await ingest.store.list_rejected(limit=10) if r.reason == "foreign_asset"]
    assert kept.gateway_id == rogue
    assert kept.field == "asset"
    assert kept.detail == f"asset {truck!r} is registered to another enterprise"  # not which
    assert wire.decode_item(kept.payload) == spoofed[0]


async def test_late_and_future_items_are_marked(ingest: Ingest, unique_id: str) -> None:
    gw, t = unique_id, now_ms()
    asset = f"{gw}-a"
    seen: list[Accepted] = []

    async def step(accepted: Accepted) -> None:
        seen.append(accepted)

    ingest.steps = (step,)
    async with running(ingest, [gw]):
        await publish([(wire.data_topic(gw), batch(gw, [fix(asset, 1, t - 1000)]))])
        await until(lambda: ingest.counters["accepted.fix"] == 1)
        late, future = fix(asset, 2, t - 60_000), fix(asset, 3, t + 3_600_000)
        await publish([(wire.data_topic(gw), batch(gw, [future, late]))])
        await until(lambda: ingest.counters["accepted.fix"] == 3)
    marks = {r.item.seq: (r.late, r.future) for a in seen for r in a.fixes}
    assert marks == {1: (False, False), 2: (True, False), 3: (False, True)}
    assert (await ingest.live.latest_fixes([asset]))[asset].fix.seq == 1
    flags = {f.seq: f.flags for f in await ingest.store.track(asset, 0, t + 4_000_000)}
    assert flags == {1: (), 2: ("late",), 3: ("future",)}
    assert (ingest.counters["late"], ingest.counters["future"]) == (1, 1)


async def test_alarm_raise_opens_and_clear_closes_an_alert(ingest: Ingest, unique_id: str) -> None:
    gw, t = unique_id, now_ms()

    def alarm(seq: int, state: Literal["raise", "clear"]) -> wire.Alarm:
        return wire.Alarm(
            seq=seq,
            ts=t + seq,
            state=state,
            level="HH",
            site="s1",
            point="GD01",
            value=55.0,
            limit=50.0,
        )

    async with running(ingest, [gw]):
        await publish([(wire.alarm_topic(gw), batch(gw, [alarm(1, "raise")]))])
        await until(lambda: ingest.counters["accepted.alarm"] == 1)
        opened = await ingest.store.list_alerts(["e1"], state="open")
        await publish([(wire.alarm_topic(gw), batch(gw, [alarm(2, "raise"), alarm(3, "clear")]))])
        await until(lambda: ingest.counters["accepted.alarm"] == 3)
    assert [(a.kind, a.level, a.site_id, a.point, a.value) for a in opened] == [
        ("sensor", "HH", "s1", "GD01", 55.0)
    ]
    closed = await ingest.store.get_alert(opened[0].id)
    assert closed is not None
    assert closed.state == "closed"
    assert [e.action for e in closed.events] == ["open", "close"]


async def test_retained_status_sets_gateway_state(ingest: Ingest, unique_id: str) -> None:
    gw, t = unique_id, now_ms()
    status = wire.encode_status(wire.Status(gw=gw, state="online", ts=t, agent="test"))
    await publish([(wire.status_topic(gw), status)], retain=True)
    try:
        async with running(ingest, [gw]):
            await until(lambda: ingest.counters["status.online"] == 1)
    finally:
        await publish([(wire.status_topic(gw), b"")], retain=True)
    got = (await ingest.live.gateways([gw]))[gw]
    assert (got.state, got.status_ms) == ("online", t)


async def test_an_offline_status_opens_the_gateways_alert_and_online_closes_it(
    ingest: Ingest, unique_id: str
) -> None:
    """The last will (``offline``) is an alert; statuses are applied in the order of their
    time, so an older one taken late (another worker, a retained one again) changes nothing."""
    gw, t = unique_id, now_ms()

    def status(state: Literal["online", "offline"], ts: int) -> tuple[str, bytes]:
        return wire.status_topic(gw), wire.encode_status(wire.Status(gw=gw, state=state, ts=ts))

    async def alerts() -> list[tuple[str, str, str]]:
        found = await ingest.store.list_alerts(["e1"])
        return [(a.kind, a.level, a.state) for a in found if gw in a.key]

    async with running(ingest, [gw]):
        await publish([status("offline", t)])
        await until(lambda: ingest.counters["status.offline"] == 1)
        assert await alerts() == [("device", "fault", "open")]
        await publish([status("online", t + 1000)])
        await until(lambda: ingest.counters["status.online"] == 1)
        assert await alerts() == [("device", "fault", "closed")]
        await publish([status("offline", t - 5000), status("offline", t + 1000)])
        await until(lambda: ingest.counters["status.offline"] == 3)
        assert await alerts() == [("device", "fault", "closed")]
    assert ingest.counters["alert_error.status"] == 0


async def test_a_failing_step_is_counted_and_the_next_still_runs(
    ingest: Ingest, unique_id: str
) -> None:
    gw, t = unique_id, now_ms()
    calls: list[int] = []

    async def broken(accepted: Accepted) -> None:
        raise RuntimeError("rule bug")

    async def counting(accepted: Accepted) -> None:
        calls.append(len(accepted.fixes))

    ingest.steps = (broken, counting)
    async with running(ingest, [gw]):
        await publish([(wire.data_topic(gw), batch(gw, [fix(f"{gw}-a", 1, t)]))])
        await until(lambda: calls == [1])
    assert ingest.counters["step_error.broken"] == 1
