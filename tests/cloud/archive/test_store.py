"""Contract suite of the archive, run against SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import wire
from cloud.archive import SCHEMA_VERSION, ConflictError, Store, StoreError
from cloud.models import (
    Alert,
    AlertEvent,
    ApiKey,
    Asset,
    Enterprise,
    Gap,
    GeoObject,
    Limits,
    Point,
    Received,
    Rejected,
    Site,
)
from tests.cloud.conftest import register
from tests.conftest import POSTGRES_URL

T0 = 1_763_856_000_000  # 2025-11-23 00:00 UTC
DAY = 86_400_000


def fix_rec(
    asset: str, seq: int, ts: int, *, tenant: str = "e1", late: bool = False
) -> Received[wire.Fix]:
    fix = wire.Fix(seq=seq, ts=ts, asset=asset, lat=31.5 + seq * 1e-4, lon=120.3, speed_kmh=42.0)
    return Received(fix, "g1", tenant, ts + 500, late=late)


def reading_rec(point: str, seq: int, ts: int, value: float) -> Received[wire.Reading]:
    reading = wire.Reading(seq=seq, ts=ts, site="s1", point=point, value=value, unit="%LEL")
    return Received(reading, "g1", "e1", ts + 100)


async def test_schema_is_migrated_once(store: Store) -> None:
    assert await store.schema_version() >= 1
    assert store.dialect in ("sqlite", "postgresql")


async def test_registry_crud_and_scope(store: Store) -> None:
    await register(store, "e1", "g1", region="320281")
    await register(store, "e2", "g2", region="330106")
    await store.put_asset(
        Asset(id="a1", enterprise_id="e1", asset_class="hazmat_truck", plate="苏B12345")
    )
    await store.put_asset(
        Asset(id="v1", enterprise_id="e2", asset_class="fishing_vessel", mmsi=412345678)
    )
    assert (await store.get_asset("a1")).plate == "苏B12345"  # type: ignore[union-attr]
    assert await store.get_asset("a1", enterprise_ids=["e2"]) is None
    assert [a.id for a in await store.list_assets(["e2"])] == ["v1"]
    assert [a.id for a in await store.list_assets(asset_class="hazmat_truck")] == ["a1"]
    assert [g.id for g in await store.list_gateways(["e1"])] == ["g1"]
    assert await store.get_gateway("g2", enterprise_ids=["e1"]) is None
    assert await store.enterprise_ids_in_region("320200") == ["e1"]
    assert await store.enterprise_ids_in_region("000000") == []
    assert await store.list_enterprises([]) == []
    await store.put_asset(Asset(id="a1", enterprise_id="e1", asset_class="school_bus"))
    assert (await store.get_asset("a1")).asset_class == "school_bus"  # type: ignore[union-attr]
    assert not await store.delete_asset("a1", enterprise_ids=["e2"])
    assert await store.delete_asset("a1", enterprise_ids=["e1"])
    assert await store.get_asset("a1") is None


async def test_enterprise_with_gateways_cannot_be_deleted(store: Store) -> None:
    await register(store, "e1", "g1")
    with pytest.raises(ConflictError):
        await store.delete_enterprise("e1")
    assert await store.delete_gateway("g1")
    assert await store.delete_enterprise("e1")


async def test_gateway_of_unknown_enterprise_is_a_conflict(store: Store) -> None:
    from cloud.models import Gateway

    with pytest.raises(ConflictError):
        await store.put_gateway(Gateway(id="g9", enterprise_id="nobody"))


async def test_sites_and_points(store: Store) -> None:
    await register(store, "e1", "g1")
    await store.put_site(Site(id="s1", enterprise_id="e1", name="Tank farm", lat=31.6, lon=120.2))
    await store.put_point(
        Point(site_id="s1", tag="T101.LT01", unit="m", limits=Limits(h=8.5, hh=9.2))
    )
    await store.put_point(Point(site_id="s1", tag="GD01", unit="%LEL", limits=Limits(h=25, hh=50)))
    points = await store.list_points("s1")
    assert [p.tag for p in points] == ["GD01", "T101.LT01"]
    assert points[1].limits == Limits(h=8.5, hh=9.2)
    assert await store.list_points("s1", enterprise_ids=["e2"]) == []
    assert await store.delete_point("s1", "GD01")
    assert await store.delete_site("s1")
    assert await store.list_sites() == []


async def test_track_range_order_scope_and_late_flag(store: Store) -> None:
    records = [fix_rec("a1", seq, T0 + seq * 1000) for seq in (5, 1, 3, 2, 4)]
    records.append(fix_rec("a1", 6, T0 + 500, late=True))
    records.append(fix_rec("a2", 7, T0 + 2000))
    records.append(fix_rec("a1", 8, T0 + 40 * DAY))  # next month: another partition
    assert await store.insert_fixes(records) == 8
    track = await store.track("a1", T0, T0 + 6000)
    assert [f.ts for f in track] == [
        T0 + 500,
        T0 + 1000,
        T0 + 2000,
        T0 + 3000,
        T0 + 4000,
        T0 + 5000,
    ]
    assert track[0].flags == ("late",)
    assert track[1].speed_kmh == 42.0
    assert track[1].asset == "a1"
    assert len(await store.track("a1", T0, T0 + 6000, limit=2)) == 2
    assert await store.track("a1", T0, T0 + 6000, enterprise_ids=["e2"]) == []
    assert len(await store.track("a1", 0, T0 + 60 * DAY)) == 7
    assert await store.insert_fixes([]) == 0


async def test_readings(store: Store) -> None:
    await store.insert_readings([reading_rec("GD01", i, T0 + i * 1000, i * 1.5) for i in range(5)])
    got = await store.readings("s1", "GD01", T0 + 1000, T0 + 4000)
    assert [(r.seq, r.value, r.unit) for r in got] == [
        (1, 1.5, "%LEL"),
        (2, 3.0, "%LEL"),
        (3, 4.5, "%LEL"),
    ]
    assert await store.readings("s1", "GD01", T0, T0 + 9000, enterprise_ids=["e2"]) == []


async def test_vessels_keep_newest(store: Store) -> None:
    def vessel(seq: int, ts: int, name: str) -> Received[wire.Vessel]:
        return Received(wire.Vessel(seq=seq, ts=ts, mmsi=412000001, name=name), "g1", "e1", ts)

    await store.insert_vessels([vessel(1, T0, "OLD"), vessel(2, T0 + 10, "NEW")])
    await store.insert_vessels([vessel(3, T0 + 5, "STALE")])
    assert [v.name for v in await store.vessels(["e1"])] == ["NEW"]
    assert await store.vessels(["e2"]) == []


async def test_geo_objects_versions_and_shared_scope(store: Store) -> None:
    ring = [[120.0, 31.0], [120.1, 31.0], [120.1, 31.1], [120.0, 31.0]]
    zone = GeoObject(
        id="z1",
        kind="zone",
        name="Water source",
        geometry={"type": "Polygon", "coordinates": [ring]},
    )
    shared = await store.put_geo(zone, now_ms=T0)
    assert shared.version == 1
    assert shared.updated_ms == T0
    route = GeoObject(
        id="r1",
        kind="route",
        name="Approved",
        enterprise_id="e1",
        geometry={"type": "LineString", "coordinates": ring[:3]},
        properties={"corridor_m": [50, 80]},
    )
    await store.put_geo(route, now_ms=T0)
    again = await store.put_geo(route, now_ms=T0 + 1)
    assert again.version == 2
    assert (await store.get_geo("r1")) == again
    assert [o.id for o in await store.list_geo("zone", ["e2"])] == ["z1"]
    assert [o.id for o in await store.list_geo(None, ["e2"], include_shared=False)] == []
    assert await store.get_geo("r1", enterprise_ids=["e2"]) is None
    assert await store.get_geo("r1", kind="zone") is None
    assert not await store.delete_geo("z1", enterprise_ids=["e1"])
    assert await store.delete_geo("z1")
    assert not await store.delete_geo("r1", enterprise_ids=["e2"])


def alert(alert_id: str, key: str, *, tenant: str = "e1", opened: int = T0) -> Alert:
    return Alert(
        id=alert_id,
        enterprise_id=tenant,
        kind="sensor",
        key=key,
        level="H",
        state="open",
        opened_ms=opened,
        events=(AlertEvent(ts_ms=opened, action="open", by="system"),),
    )


async def test_alerts_one_open_per_key_and_history(store: Store) -> None:
    first = alert("al1", "sensor:s1:GD01:H")
    await store.insert_alert(first)
    with pytest.raises(ConflictError):
        await store.insert_alert(alert("al2", "sensor:s1:GD01:H"))
    assert (await store.open_alert("e1", "sensor:s1:GD01:H")).id == "al1"  # type: ignore[union-attr]
    closed = msgspec.structs.replace(first, state="closed", closed_ms=T0 + 5, closed_by="amy")
    await store.update_alert(
        closed, AlertEvent(ts_ms=T0 + 5, action="close", by="amy", comment="vented")
    )
    assert await store.open_alert("e1", "sensor:s1:GD01:H") is None
    await store.insert_alert(alert("al2", "sensor:s1:GD01:H", opened=T0 + 10))
    got = await store.get_alert("al1")
    assert got is not None
    assert got.state == "closed"
    assert [(e.action, e.by, e.comment) for e in got.events] == [
        ("open", "system", ""),
        ("close", "amy", "vented"),
    ]
    assert await store.get_alert("al1", enterprise_ids=["e2"]) is None


async def test_list_alerts_filters(store: Store) -> None:
    await store.insert_alert(alert("a", "k1", opened=T0))
    await store.insert_alert(alert("b", "k2", opened=T0 + 1))
    await store.insert_alert(alert("c", "k3", tenant="e2", opened=T0 + 2))
    assert [a.id for a in await store.list_alerts()] == ["c", "b", "a"]
    assert [a.id for a in await store.list_alerts(["e1"], state="open")] == ["b", "a"]
    assert await store.list_alerts(["e1"], state="closed") == []
    assert [a.id for a in await store.list_alerts(["e1", "e2"], since_ms=T0 + 1, limit=1)] == ["c"]
    assert [
        a.id for a in await store.list_alerts(state=("open", "acknowledged"), until_ms=T0 + 1)
    ] == ["a"]


async def test_api_keys(store: Store) -> None:
    key = ApiKey(hash="h" * 64, name="bureau", role="regulator", region="320200", created_ms=T0)
    await store.put_api_key(key)
    assert await store.api_key("h" * 64) == key
    assert await store.api_key("x") is None
    assert await store.revoke_api_key("h" * 64, now_ms=T0 + 1)
    assert (await store.api_key("h" * 64)).revoked_ms == T0 + 1  # type: ignore[union-attr]
    assert not await store.revoke_api_key("nope", now_ms=T0)
    assert [k.name for k in await store.list_api_keys()] == ["bureau"]


async def test_seq_ledger_gaps_and_rejected(store: Store) -> None:
    assert await store.admit_seqs("g1", [3, 1, 2, 2], now_ms=T0) == [1, 2, 3]
    assert await store.admit_seqs("g1", [2, 3, 4], now_ms=T0) == [4]
    assert await store.admit_seqs("g2", [2], now_ms=T0) == [2]
    assert await store.missing_seqs("g1", 0, 9) == 6
    assert await store.missing_seqs("g1", 5, 4) == 0
    big = 1_763_856_000_000_000  # seqs start at the clock in microseconds
    assert await store.high_water("g1", big) is None
    assert await store.high_water("g1", 7) == big
    assert await store.high_water("g1", big + 1) == big
    assert await store.high_water("g1", 0) == big + 1
    assert await store.high_water("g2", 3) is None
    gap = Gap(
        gateway_id="g1", enterprise_id="e1", first_seq=5, last_seq=9, missing=5, detected_ms=T0
    )
    await store.insert_gaps([gap])
    assert await store.list_gaps(["e1"]) == [gap]
    assert await store.list_gaps(["e2"]) == []
    bad = Rejected(
        ts_ms=T0, reason="malformed", detail="x", topic="hz/v1/g1/data", payload=b"\x00{"
    )
    await store.insert_rejected([bad])
    assert await store.list_rejected() == [bad]


async def test_retention(store: Store) -> None:
    now = T0 + 400 * DAY
    await store.insert_fixes([fix_rec("a1", 1, T0), fix_rec("a1", 2, now - DAY)])
    await store.insert_readings(
        [reading_rec("GD01", 1, now - 31 * DAY, 1.0), reading_rec("GD01", 2, now - DAY, 2.0)]
    )
    old = alert("old", "k1", opened=T0)
    await store.insert_alert(old)
    await store.update_alert(msgspec.structs.replace(old, state="closed", closed_ms=T0 + 1))
    await store.insert_alert(alert("open", "k2", opened=T0))
    await store.admit_seqs("g1", [1], now_ms=T0)
    done = await store.apply_retention(now, alerts_days=300)
    assert [f.seq for f in await store.track("a1", 0, now)] == [2]
    assert [r.seq for r in await store.readings("s1", "GD01", 0, now)] == [2]
    assert await store.get_alert("old") is None
    assert await store.get_alert("open") is not None
    assert await store.missing_seqs("g1", 1, 1) == 1
    assert done["alerts"] == 1


async def test_reopening_keeps_data_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    first = await Store.connect(url)
    await first.put_enterprise(Enterprise(id="e1", name="E", region="320281"))
    async with first.engine.begin() as conn:
        version = await conn.scalar(text("SELECT value FROM schema_meta WHERE key = 'version'"))
    await first.close()
    again = await Store.connect(url)
    assert await again.get_enterprise("e1") is not None
    async with again.engine.begin() as conn:
        await conn.execute(text("UPDATE schema_meta SET value = '999' WHERE key = 'version'"))
    await again.close()
    assert version == str(SCHEMA_VERSION)
    with pytest.raises(StoreError, match="newer"):
        await Store.connect(url)


async def test_old_schema_is_migrated_on_connect(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    engine = create_async_engine(url)
    async with engine.begin() as conn:  # a database that predates versioning: no tables at all
        await conn.execute(text("CREATE TABLE unrelated (x INTEGER)"))
    await engine.dispose()
    migrated = await Store.connect(url)
    try:
        assert await migrated.schema_version() == SCHEMA_VERSION
        assert await migrated.list_enterprises() == []
    finally:
        await migrated.close()


async def test_a_schema_1_database_is_migrated_to_the_current_version(store: Store) -> None:
    await store.insert_fixes([fix_rec("a1", 1, T0)])
    await store.admit_seqs("g1", [5, 9], now_ms=T0)
    async with store.engine.begin() as conn:
        await conn.execute(text("DROP TABLE seq_high"))
        for column in ("pdop", "vdop", "fix_type"):
            await conn.execute(text(f"ALTER TABLE fixes DROP COLUMN {column}"))
        await conn.execute(text("UPDATE schema_meta SET value = '1' WHERE key = 'version'"))
        schema = (
            await conn.scalar(text("SELECT current_schema()"))
            if store.dialect == "postgresql"
            else None
        )
    url = store.engine.url.render_as_string(hide_password=False)
    again = await Store.connect(url, schema=schema)
    try:
        assert await again.schema_version() == SCHEMA_VERSION
        fix = wire.Fix(
            seq=2, ts=T0 + 1, asset="a1", lat=31.0, lon=120.0, pdop=1.8, vdop=1.2, fix_type=3
        )
        await again.insert_fixes([Received(fix, "g1", "e1", T0 + 2)])
        track = await again.track("a1", 0, T0 + 10)
        assert [(f.seq, f.pdop, f.fix_type) for f in track] == [(1, None, None), (2, 1.8, 3)]
        assert await again.high_water("g1", 10) == 9  # seeded from the ledger
    finally:
        await again.close()


async def test_a_schema_8_database_gets_long_distance_assets(store: Store) -> None:
    await store.put_enterprise(Enterprise(id="e1", name="E1", region="320281"))
    await store.put_asset(Asset(id="c1", enterprise_id="e1", asset_class="coach"))
    async with store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE assets DROP COLUMN long_distance"))
        await conn.execute(text("UPDATE schema_meta SET value = '8' WHERE key = 'version'"))
        schema = (
            await conn.scalar(text("SELECT current_schema()"))
            if store.dialect == "postgresql"
            else None
        )
    url = store.engine.url.render_as_string(hide_password=False)
    again = await Store.connect(url, schema=schema)
    try:
        assert await again.schema_version() == SCHEMA_VERSION
        assert (await again.get_asset("c1")) == Asset(
            id="c1", enterprise_id="e1", asset_class="coach"
        )
        night = Asset(id="c2", enterprise_id="e1", asset_class="coach", long_distance=True)
        await again.put_asset(night)
        assert await again.get_asset("c2") == night
    finally:
        await again.close()


async def test_a_partition_dropped_by_another_worker_is_created_again(store: Store) -> None:
    """Worker B's retention drops a month that worker A still believes exists (a gateway with
    its clock in seconds sends fixes dated January 1970): A's next fixes must still archive."""
    now = T0 + 400 * DAY
    seconds_clock = T0 // 1000  # 1970-01-21
    await store.insert_fixes([fix_rec("bad", 1, seconds_clock)])
    schema = None
    if store.dialect == "postgresql":
        async with store.engine.connect() as conn:
            schema = await conn.scalar(text("SELECT current_schema()"))
    url = store.engine.url.render_as_string(hide_password=False)
    other = await Store.connect(url, schema=schema)
    try:
        await other.apply_retention(now)
    finally:
        await other.close()
    await store.insert_fixes([fix_rec("bad", 2, seconds_clock + 1), fix_rec("good", 3, now)])
    assert [f.seq for f in await store.track("bad", 0, now)] == [2]
    assert [f.seq for f in await store.track("good", 0, now + 1)] == [3]


async def test_late_arrivals_are_counted_off_recorded_gaps(store: Store) -> None:
    def gap(first: int, last: int) -> Gap:
        return Gap(
            gateway_id="g1",
            enterprise_id="e1",
            first_seq=first,
            last_seq=last,
            missing=last - first + 1,
            detected_ms=T0 + first,
        )

    await store.insert_gaps([gap(3, 10), gap(20, 21)])
    await store.fill_gaps("g1", [3, 4, 21, 30])
    await store.fill_gaps("g2", [20])
    assert sorted((g.first_seq, g.missing) for g in await store.list_gaps()) == [(3, 6), (20, 1)]
    await store.fill_gaps("g1", [20])
    assert [(g.first_seq, g.missing) for g in await store.list_gaps()] == [(3, 6)]


@pytest.mark.services
@pytest.mark.parametrize("name", ["Hazwatch", 'odd"name', "with space"])
async def test_any_configured_postgresql_schema_name_works(name: str, unique_id: str) -> None:
    schema = f"{name} {unique_id}"
    try:
        opened = await Store.connect(POSTGRES_URL, schema=schema)
        try:
            await opened.put_enterprise(Enterprise(id="e1", name="E", region="320281"))
            async with opened.engine.connect() as conn:
                assert await conn.scalar(text("SELECT current_schema()")) == schema
            assert [e.id for e in await opened.list_enterprises()] == ["e1"]
        finally:
            await opened.close()
    finally:
        engine = create_async_engine(POSTGRES_URL)
        async with engine.begin() as conn:
            quoted = schema.replace('"', '""')
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{quoted}" CASCADE'))
        await engine.dispose()


async def test_an_item_is_archived_once_whoever_writes_it(store: Store) -> None:
    """A resend, two workers, a spill replayed after a crash: one row per gateway seq."""
    fixes = [fix_rec("a1", seq, T0 + seq) for seq in range(1, 6)]
    readings = [reading_rec("GD101", seq, T0 + seq, 1.0) for seq in range(10, 13)]
    await store.insert_fixes(fixes[:3])
    await store.insert_fixes(fixes)  # overlaps the first write
    await store.insert_fixes(fixes[2:4])
    await store.insert_readings(readings)
    await store.insert_readings(readings[1:])
    track = await store.track("a1", 0, T0 + 100)
    assert [f.seq for f in track] == [1, 2, 3, 4, 5]
    found = await store.archived_items("g1", [1, 5, 11, 99])
    assert sorted(found) == [1, 5, 11]
    assert isinstance(found[11], wire.Reading)
    assert found[11].value == 1.0


async def test_the_ledger_reads_without_admitting(store: Store) -> None:
    assert await store.seen_seqs("g1", [1, 2, 3]) == []
    assert await store.admit_seqs("g1", [2, 3], now_ms=T0) == [2, 3]
    assert await store.seen_seqs("g1", [3, 1, 2, 2]) == [2, 3]
    assert await store.seen_seqs("g2", [2]) == []


async def test_a_schema_4_database_loses_its_repeated_rows_and_keeps_one(store: Store) -> None:
    fix = fix_rec("a1", 7, T0)
    reading = reading_rec("GD101", 8, T0, 3.0)
    async with store.engine.begin() as conn:
        await conn.execute(text("DROP INDEX ux_fixes_gateway_seq"))
        await conn.execute(text("DROP INDEX ux_readings_gateway_seq"))
        await conn.execute(text("UPDATE schema_meta SET value = '4' WHERE key = 'version'"))
        schema = (
            await conn.scalar(text("SELECT current_schema()"))
            if store.dialect == "postgresql"
            else None
        )
    for _ in range(3):  # schema 4 archived a repeat twice when two workers raced
        await store.insert_fixes([fix])
        await store.insert_readings([reading])
    url = store.engine.url.render_as_string(hide_password=False)
    again = await Store.connect(url, schema=schema)
    try:
        assert await again.schema_version() == SCHEMA_VERSION
        assert [f.seq for f in await again.track("a1", 0, T0 + 10)] == [7]
        await again.insert_fixes([fix])
        assert [f.seq for f in await again.track("a1", 0, T0 + 10)] == [7]
        assert sorted(await again.archived_items("g1", [7, 8])) == [7, 8]
    finally:
        await again.close()
