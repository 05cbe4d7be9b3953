"""A gateway speaks only for its own enterprise: foreign assets and sites are refused, and a
check that cannot run holds the items back instead of letting them through."""

from __future__ import annotations

import pytest

import wire
from cloud.archive import StoreError
from cloud.ingest import Ingest
from cloud.models import Asset, Enterprise, Gateway, Site
from tests.cloud.ingest_support import batch, now_ms


async def _other_tenant(ingest: Ingest, gw: str) -> str:
    """Enterprise e2 with its own gateway, truck and tank farm; returns that gateway's id."""
    store = ingest.store
    await store.put_enterprise(Enterprise(id="e2", name="other", region="320281"))
    await store.put_gateway(Gateway(id=f"{gw}-e2", enterprise_id="e2"))
    await store.put_asset(Asset(id=f"{gw}-truck", enterprise_id="e2", asset_class="hazmat_truck"))
    await store.put_site(Site(id=f"{gw}-farm", enterprise_id="e2", name="farm", lat=31, lon=120))
    return f"{gw}-e2"


async def test_readings_and_alarms_for_another_enterprises_site_are_refused(
    ingest: Ingest, unique_id: str
) -> None:
    gw, t = unique_id, now_ms()
    own_gw = await _other_tenant(ingest, gw)
    site = f"{gw}-farm"
    forged: list[wire.Item] = [
        wire.Reading(seq=1, ts=t + 60_000, site=site, point="GD101", value=0.0),
        wire.Alarm(seq=2, ts=t, state="clear", level="HH", site=site, point="GD101"),
    ]
    accepted = await ingest.handle(wire.data_topic(gw), batch(gw, forged[:1]))
    await ingest.handle(wire.alarm_topic(gw), batch(gw, forged[1:]))
    assert accepted.readings == []
    assert accepted.acked == {gw: [1]}, "refused and kept for inspection"
    assert ingest.counters["rejected.foreign_site"] == 2
    # The site's real readings are not made to look late by the forged newer one.
    real = wire.Reading(seq=1, ts=t, site=site, point="GD101", value=31.0)
    own = await ingest.handle(wire.data_topic(own_gw), batch(own_gw, [real]))
    assert [(r.item.value, r.late) for r in own.readings] == [(31.0, False)]
    stored = await ingest.store.readings(site, "GD101", 0, t + 100_000)
    assert [r.value for r in stored] == [31.0]


async def test_an_unreadable_registry_holds_the_round_back(
    ingest: Ingest, unique_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old ingest accepted every fix unchecked when the owner lookup failed: a foreign fix
    sent beside a broken one moved another enterprise's truck."""
    gw, t = unique_id, now_ms()
    await _other_tenant(ingest, gw)
    ingest.archive_attempts, ingest.archive_retry_s = 2, 0.01
    real_lookup = ingest.store.asset_owners

    async def broken(asset_ids: object) -> dict[str, str]:
        raise StoreError("registry unreadable")

    monkeypatch.setattr(ingest.store, "asset_owners", broken)
    fixes = [
        wire.Fix(seq=1, ts=t, asset=f"{gw}-own", lat=31.0, lon=120.0),
        wire.Fix(seq=2, ts=t, asset=f"{gw}-truck", lat=0.5, lon=0.5),  # e2's truck
    ]
    health = wire.Health(seq=3, ts=t, buffer_depth=0)
    held = await ingest.handle(wire.data_topic(gw), batch(gw, [*fixes, health]))
    assert held.fixes == []
    assert held.acked == {gw: [3]}, "only what needed no check"
    assert ingest.counters["held.registry_error"] == 2
    assert await ingest.live.latest_fixes([f"{gw}-truck"]) == {}
    # The gateway sends the fixes again once the registry answers: checked, one refused.
    monkeypatch.setattr(ingest.store, "asset_owners", real_lookup)
    again = await ingest.handle(wire.data_topic(gw), batch(gw, fixes))
    assert [r.item.asset for r in again.fixes] == [f"{gw}-own"]
    assert again.acked == {gw: [1, 2]}
    assert ingest.counters["rejected.foreign_asset"] == 1
