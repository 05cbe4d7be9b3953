"""The summer fishing moratorium: which vessels it watches and when (cloud/rules/vessels.py).

A moratorium zone with no ``classes`` watches fishing vessels only: registered ones and AIS
targets whose static data says they fish (ship type 30); with no ``windows`` it applies from
05-01 12:00 to the end of its latitude's season (09-01 north of 35° N, 09-16 down to 26.5° N,
08-16 south of that), Beijing time.
"""

from __future__ import annotations

import datetime as dt

import pytest

import wire
from cloud.models import Asset, GeoObject
from cloud.rules.engine import Engine
from cloud.rules.events import Event
from cloud.rules.state import AssetState
from cloud.rules.vessels import ais_fishing, moratorium_season
from cloud.rules.windows import BEIJING
from cloud.rules.world import World

#: a square of sea about 2 km across, centred at (lon, lat)
HALF_DEG = 0.01


def sea(zone_id: str, lon: float, lat: float, **properties: object) -> GeoObject:
    ring = [
        [lon - HALF_DEG, lat - HALF_DEG], [lon + HALF_DEG, lat - HALF_DEG],
        [lon + HALF_DEG, lat + HALF_DEG], [lon - HALF_DEG, lat + HALF_DEG],
        [lon - HALF_DEG, lat - HALF_DEG],
    ]  # fmt: skip
    return GeoObject(
        id=zone_id, kind="zone", name=zone_id,
        geometry={"type": "Polygon", "coordinates": [ring]},
        properties={"zone_kind": "fishing_moratorium", **properties},
    )  # fmt: skip


def beijing_ms(when: str) -> int:
    moment = dt.datetime.strptime(when, "%Y-%m-%d %H:%M").replace(tzinfo=BEIJING)
    return int(moment.timestamp() * 1000)


def inside(world: World, asset: str, lon: float, lat: float, when: str) -> list[Event]:
    """Three fixes a minute apart at the zone's centre from ``when``: what opens."""
    engine = Engine(world)
    start = beijing_ms(when)
    fixes = [
        wire.Fix(seq=n + 1, ts=start + n * 60_000, asset=asset, lat=lat, lon=lon + n * 1e-4,
                 speed_kmh=8.0, sats=10, hdop=0.8)
        for n in range(3)
    ]  # fmt: skip
    outcome = engine.evaluate({asset: fixes}, {asset: AssetState()}, now_ms=fixes[-1].ts)
    return [e for e in outcome.events if e.kind.startswith("zone.")]


@pytest.mark.parametrize(
    ("lat", "end"),
    [(38.0, "09-01 12:00"), (35.0, "09-01 12:00"), (31.9, "09-16 12:00"), (26.5, "09-16 12:00"),
     (22.0, "08-16 12:00")],
)  # fmt: skip
def test_the_season_by_latitude(lat: float, end: str) -> None:
    assert moratorium_season(lat) == [{"from": "05-01 12:00", "to": end}]


FLEET = [
    Asset(id="boat", enterprise_id="e1", asset_class="fishing_vessel"),
    Asset(id="tug", enterprise_id="e1", asset_class="other"),
]
YANGTZE = (121.0, 31.9)  # off Nantong: the 09-16 season


@pytest.mark.parametrize(
    ("when", "opens"),
    [
        ("2026-07-01 10:00", True),  # in season
        ("2026-05-01 11:55", False),  # five minutes before it starts
        ("2026-09-16 12:05", False),  # just after it ends here (it would be on 08-16 south)
        ("2026-09-10 12:00", True),
    ],
)
def test_a_fishing_vessel_in_season(when: str, opens: bool) -> None:
    world = World.build([sea("m", *YANGTZE)], FLEET)
    found = inside(world, "boat", *YANGTZE, when)
    assert [(e.kind, e.action) for e in found] == ([("zone.forbidden", "open")] if opens else [])


def test_other_vessels_are_not_watched_unless_the_zone_says_so() -> None:
    assert (
        inside(World.build([sea("m", *YANGTZE)], FLEET), "tug", *YANGTZE, "2026-07-01 10:00") == []
    )
    every = World.build([sea("m", *YANGTZE, classes=["other", "fishing_vessel"])], FLEET)
    assert [e.kind for e in inside(every, "tug", *YANGTZE, "2026-07-01 10:00")] == [
        "zone.forbidden"
    ]


def test_a_zones_own_windows_beat_the_season() -> None:
    world = World.build([sea("m", *YANGTZE, windows=[{"from": "10-01", "to": "10-31"}])], FLEET)
    assert inside(world, "boat", *YANGTZE, "2026-07-01 10:00") == []
    assert len(inside(world, "boat", *YANGTZE, "2026-10-10 10:00")) == 1


def test_an_ais_target_that_fishes_is_watched() -> None:
    statics = [
        wire.Vessel(seq=1, ts=0, mmsi=412000001, ship_type=30),  # fishing
        wire.Vessel(seq=2, ts=0, mmsi=412000002, ship_type=70),  # cargo
        wire.Vessel(seq=3, ts=0, mmsi=412000003),  # type not known yet
    ]
    assert ais_fishing(statics) == {"412000001"}
    world = World.build([sea("m", *YANGTZE)], FLEET, fishing=ais_fishing(statics))
    for mmsi, opens in (("412000001", True), ("412000002", False), ("412000003", False)):
        found = inside(world, mmsi, *YANGTZE, "2026-07-01 10:00")
        assert bool(found) is opens, mmsi


def _dark(world: World, lon: float, lat: float) -> list[tuple[str, str, float]]:
    """A fishing vessel sails for 10 min at (lon, lat), goes silent for 3 h and reports again:
    the rule findings, with their minutes after the first fix."""
    engine = Engine(world)
    start = beijing_ms("2026-07-01 10:00")
    fixes = [
        wire.Fix(seq=n + 1, ts=start + n * 60_000, asset="boat", lat=lat, lon=lon + n * 1e-4,
                 speed_kmh=8.0, sats=10, hdop=0.8)
        for n in range(11)
    ]  # fmt: skip
    late = wire.Fix(seq=99, ts=start + 190 * 60_000, asset="boat", lat=lat, lon=lon + 0.002,
                    speed_kmh=8.0, sats=10, hdop=0.8)  # fmt: skip
    states: dict[str, AssetState] = {}
    events: list[Event] = []
    for now, batch in ((fixes[-1].ts, fixes), (late.ts, [late])):
        ticked = engine.tick(states, until_ms=now - 1) if states else None
        if ticked is not None:
            states.update(ticked.states)
            events += ticked.events
        outcome = engine.evaluate({"boat": batch}, states, now_ms=now)
        states.update(outcome.states)
        events += outcome.events
    return [
        (e.kind, e.action, (e.ts - start) / 60_000)
        for e in events
        if e.kind.startswith(("offline.", "vessel."))
    ]


def test_a_fishing_vessel_going_dark_near_a_moratorium_zone() -> None:
    # 3 km south of a zone in season: the silence opens offline.silent and vessel.dark
    world = World.build([sea("m", YANGTZE[0], YANGTZE[1] + 0.04)], FLEET)
    found = _dark(world, *YANGTZE)
    assert found == [
        ("offline.silent", "open", 130),  # last fix (10 min) + 2 h
        ("vessel.dark", "open", 130),
        ("offline.silent", "close", 190),
        ("vessel.dark", "close", 190),
    ]


def test_going_dark_far_from_any_zone_is_only_silence() -> None:
    world = World.build([sea("m", YANGTZE[0], YANGTZE[1] + 0.2)], FLEET)  # 20 km away
    assert [k for k, _, _ in _dark(world, *YANGTZE)] == ["offline.silent", "offline.silent"]


def test_an_ais_target_engaged_in_fishing_is_watched_from_then_on() -> None:
    """Navigation status 7 (engaged in fishing) makes an unregistered target a fishing vessel,
    in its rule state: later fixes without the status still count."""
    world = World.build([sea("m", *YANGTZE)], FLEET)
    engine = Engine(world)
    start = beijing_ms("2026-07-01 10:00")
    lon, lat = YANGTZE

    def at(n: int, status: int | None) -> wire.Fix:
        return wire.Fix(seq=n + 1, ts=start + n * 60_000, asset="412000009", lat=lat,
                        lon=lon - 0.03 + n * 0.005, speed_kmh=30.0, sats=10, hdop=0.8,
                        nav_status=status)  # fmt: skip

    states: dict[str, AssetState] = {}
    found: list[Event] = []
    # outside the zone, status 7 once; then into it with no status at all
    for n, status in enumerate([0, 7, None, None, None, None, None]):
        outcome = engine.evaluate({"412000009": [at(n, status)]}, states, now_ms=at(n, None).ts)
        states.update(outcome.states)
        found += outcome.events
    assert states["412000009"].ais_fishing
    assert [(e.kind, e.action) for e in found if e.kind.startswith("zone.")] == [
        ("zone.forbidden", "open")
    ]
    # a target that never said so is not watched
    other = Engine(world).evaluate(
        {"412000009": [at(n, None) for n in range(7)]}, {}, now_ms=at(7, None).ts
    )
    assert not [e for e in other.events if e.kind.startswith("zone.")]
