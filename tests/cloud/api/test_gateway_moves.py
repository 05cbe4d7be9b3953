"""A gateway moved to another enterprise or deleted through the API: its next message counts for
the new owner (or is refused), never for the old one, in the worker that made the change at once
and in the other workers within their registry check (about a second)."""

from __future__ import annotations

import time

import wire
from cloud.ingest import Ingest
from tests.cloud.api.conftest import ORIGINS, World
from tests.cloud.ingest_support import batch


def _fix(seq: int, ts: int, asset: str) -> wire.Fix:
    lon, lat = ORIGINS["jy"]
    return wire.Fix(seq=seq, ts=ts, asset=asset, lat=lat, lon=lon, speed_kmh=20.0)


def _ingest(world: World) -> Ingest:
    ingest = Ingest(store=world.store, live=world.live, ledger=world.store)
    world.app.state.services.ingest = ingest
    return ingest


async def test_a_moved_gateway_feeds_its_new_enterprise_at_once(world: World) -> None:
    ingest = _ingest(world)
    made = await world.send(
        "POST", "admin", "/assets",
        {"id": "truck-moved", "enterprise_id": "ent-lx", "asset_class": "hazmat_truck"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    now = time.time_ns() // 1_000_000
    # gw-jy still belongs to ent-jy: its fix is ent-jy's (and the gateway's owner is cached).
    await ingest.handle(wire.data_topic("gw-jy"), batch("gw-jy", [_fix(9001, now - 2000, "x")]))
    moved = await world.send(
        "POST", "admin", "/gateways", {"id": "gw-jy", "enterprise_id": "ent-lx"}
    )
    assert moved.status_code == 201, moved.text
    await ingest.handle(
        wire.data_topic("gw-jy"), batch("gw-jy", [_fix(9002, now - 1000, "truck-moved")])
    )

    window = {"start_ms": now - 10_000, "end_ms": now + 10_000}
    track = await world.get("disp-lx", "/assets/truck-moved/track", **window)
    assert track.status_code == 200
    assert track.json()["properties"]["times_ms"] == [now - 1000]
    lon, lat = ORIGINS["jy"]
    near = await world.get("disp-jy", "/nearby", lat=lat, lon=lon, radius_m=500)
    assert "truck-moved" not in [f["id"] for f in near.json()["features"]]


async def test_a_deleted_gateway_is_refused_at_once(world: World) -> None:
    ingest = _ingest(world)
    now = time.time_ns() // 1_000_000
    await ingest.handle(
        wire.data_topic("gw-sz"), batch("gw-sz", [_fix(9001, now - 2000, "truck-sz")])
    )
    assert (await world.send("DELETE", "admin", "/gateways/gw-sz")).status_code == 204
    await ingest.handle(
        wire.data_topic("gw-sz"), batch("gw-sz", [_fix(9002, now - 1000, "truck-sz")])
    )
    assert ingest.counts().get("rejected.unknown_gateway") == 1
    window = {"start_ms": now - 10_000, "end_ms": now + 10_000}
    track = await world.get("admin", "/assets/truck-sz/track", **window)
    assert track.json()["properties"]["times_ms"] == [now - 2000]


async def test_another_worker_learns_of_the_move_through_the_registry_version(
    world: World,
) -> None:
    # The API runs on one worker; this ingest stands for another process's, which only shares
    # the live state and the archive with it.
    other = Ingest(store=world.store, live=world.live, ledger=world.store, registry_check_s=0.0)
    made = await world.send(
        "POST", "admin", "/assets",
        {"id": "truck-far", "enterprise_id": "ent-lx", "asset_class": "hazmat_truck"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    now = time.time_ns() // 1_000_000
    await other.handle(wire.data_topic("gw-jy"), batch("gw-jy", [_fix(9101, now - 2000, "x")]))
    before = await world.live.registry_version()
    moved = await world.send(
        "POST", "admin", "/gateways", {"id": "gw-jy", "enterprise_id": "ent-lx"}
    )
    assert moved.status_code == 201, moved.text
    assert await world.live.registry_version() > before
    await other.handle(
        wire.data_topic("gw-jy"), batch("gw-jy", [_fix(9102, now - 1000, "truck-far")])
    )
    window = {"start_ms": now - 10_000, "end_ms": now + 10_000}
    track = await world.get("disp-lx", "/assets/truck-far/track", **window)
    assert track.json()["properties"]["times_ms"] == [now - 1000], "not ent-jy's cached owner"


async def test_a_reused_gateway_id_shows_nothing_of_its_previous_owner(world: World) -> None:
    """gw-jy reported health (buffer depth 7) for ent-jy; deleted and provisioned again for
    ent-sz, its new owner sees a blank gateway, not ent-jy's figures."""
    before = (await world.get("disp-jy", "/gateways/gw-jy")).json()
    assert before["health"]["buffer_depth"] == 7
    assert (await world.send("DELETE", "admin", "/gateways/gw-jy")).status_code == 204
    again = await world.send(
        "POST", "admin", "/gateways", {"id": "gw-jy", "enterprise_id": "ent-sz"}
    )
    assert again.status_code == 201, again.text
    fresh = (await world.get("disp-sz", "/gateways/gw-jy")).json()
    assert (fresh["state"], fresh["last_seen_ms"], fresh["health"]) == ("unknown", None, None)
    # Moved without a delete, its live state is cleared too.
    moved = await world.send(
        "POST", "admin", "/gateways", {"id": "gw-lx", "enterprise_id": "ent-sz"}
    )
    assert moved.status_code == 201
    assert (await world.get("disp-sz", "/gateways/gw-lx")).json()["health"] is None
