"""The rule state as a person reads it: states made by running fixes through the engine, read
back through :func:`cloud.rules.view.asset_rules` and :func:`cloud.rules.view.trip_view`."""

from __future__ import annotations

import msgspec
import pytest

from cloud.models import GeoObject
from cloud.rules.state import AssetState
from cloud.rules.view import (
    PendingChange,
    StopTimer,
    TripPhase,
    TripProgress,
    ZoneStay,
    asset_rules,
    trip_view,
)
from tests.cloud.rules.scenario import T0, fix, lot, route_obj, run, trip_obj, world, zone

BAN = zone("ban", (0, 0, 1000, 1000))
ROUTE = route_obj("r1", [(0, 5000), (10_000, 5000)], corridor_m=100)


def ms(t_s: float) -> int:
    return T0 + int(t_s * 1000)


def test_inside_a_forbidden_zone_with_its_open_condition() -> None:
    the_world = world(BAN)
    fixes = [fix(0, -500, 500), fix(60, 500, 500), fix(120, 520, 500)]
    _, states = run(the_world, fixes)
    seen = asset_rules("truck", states["truck"], the_world)
    inside = ZoneStay(
        id="ban", kind="zone", name="ban", zone_kind="restricted", since_ms=ms(60),
        open={"zone.forbidden": ms(60)},
    )  # fmt: skip
    assert seen.zones == [inside]
    assert seen.pending == []
    assert (seen.evaluated_ms, seen.last_fix_ms) == (ms(120), ms(120))
    assert seen.trip is None
    assert seen.dropped == {}


def test_an_entry_not_confirmed_yet_is_pending() -> None:
    the_world = world(BAN)
    _, states = run(the_world, [fix(0, -500, 500), fix(60, 500, 500)])
    seen = asset_rules("truck", states["truck"], the_world)
    assert seen.zones == []
    entering = PendingChange(
        id="ban", kind="zone", name="ban", change="entry", fixes=1, first_ms=ms(60),
        last_ms=ms(60), deep=True,
    )  # fmt: skip
    assert seen.pending == [entering]


def test_another_enterprises_zone_is_shown_without_its_name() -> None:
    # the truck entered a shared zone that has since become e2's: until its next fixes close
    # it there, its state holds a zone that e1's people may not read the name of
    _, states = run(world(BAN), [fix(0, 500, 500), fix(60, 520, 500)])
    theirs = msgspec.structs.replace(BAN, enterprise_id="e2")
    the_world = world(theirs)
    seen = asset_rules("truck", states["truck"], the_world, visible=lambda e: e in (None, "e1"))
    assert [(z.id, z.name, z.zone_kind) for z in seen.zones] == [("ban", None, None)]
    assert seen.zones[0].open == {"zone.forbidden": ms(0)}
    mine = asset_rules("truck", states["truck"], the_world)
    assert [(z.name, z.zone_kind) for z in mine.zones] == [("ban", "restricted")]


def test_a_zone_gone_from_the_world_keeps_its_id() -> None:
    _, states = run(world(BAN), [fix(0, 500, 500), fix(60, 520, 500)])
    seen = asset_rules("truck", states["truck"], world())
    assert [(z.id, z.name) for z in seen.zones] == [("ban", None)]


def test_a_lot_is_listed_as_a_lot() -> None:
    the_world = world(lot("depot", (0, 0, 400, 400), capacity=10))
    _, states = run(the_world, [fix(0, 200, 200, speed=0), fix(60, 200, 200, speed=0)])
    seen = asset_rules("truck", states["truck"], the_world)
    assert [(z.id, z.kind, z.zone_kind, z.since_ms) for z in seen.zones] == [
        ("depot", "lot", "lot", ms(0))
    ]


def test_stop_timer_before_and_after_the_stop_is_confirmed() -> None:
    the_world = world()
    standing = [fix(t, 3000, 3000, speed=0) for t in range(0, 720, 60)]
    _, early = run(the_world, standing[:5])
    assert asset_rules("truck", early["truck"], the_world).stop == StopTimer(
        watched=True, slow_since_ms=ms(0), confirms_ms=ms(600), stop_ms=None, outside_lot=False,
        escalated=False, escalates_ms=None, moving_since_ms=None,
    )  # fmt: skip
    _, late = run(the_world, standing)
    assert asset_rules("truck", late["truck"], the_world).stop == StopTimer(
        watched=True, slow_since_ms=ms(0), confirms_ms=None, stop_ms=ms(0), outside_lot=True,
        escalated=False, escalates_ms=ms(600 + 1800), moving_since_ms=None,
    )  # fmt: skip
    _, escalated = run(the_world, standing, until_s=3000)
    stop = asset_rules("truck", escalated["truck"], the_world).stop
    assert (stop.escalated, stop.escalates_ms) == (True, None)


def test_a_class_that_may_stop_anywhere_is_not_watched() -> None:
    the_world = world(assets={"bus": "school_bus"})
    _, states = run(the_world, [fix(t, 0, 0, asset="bus", speed=0) for t in (0, 60)])
    stop = asset_rules("bus", states["bus"], the_world).stop
    assert not stop.watched
    assert stop.outside_lot is False


def _trip(trip_id: str = "t1", **properties: object) -> list[GeoObject]:
    stops = [(0, 5000), (2500, 5000), (7500, 5000), (10_000, 5000)]
    props = {"asset_id": "truck", "route_id": "r1", "start_ms": T0, "end_ms": T0 + 7_200_000}
    return [ROUTE, trip_obj(trip_id, stops, **{**props, **properties})]


def test_a_trip_half_way_with_progress_and_eta() -> None:
    the_world = world(*_trip())
    fixes = [fix(30 * i, 500 * i, 5000, speed=60) for i in range(11)]
    _, states = run(the_world, fixes)
    seen = asset_rules("truck", states["truck"], the_world).trip
    assert isinstance(seen, TripProgress)
    assert (seen.state, seen.trip_id, seen.route_id) == ("under way", "t1", "r1")
    assert (seen.start_ms, seen.end_ms, seen.started_ms) == (T0, T0 + 7_200_000, ms(0))
    assert seen.progress_m == pytest.approx(5000, abs=1)
    assert seen.route_length_m == pytest.approx(10_000, abs=1)
    assert seen.remaining_m == pytest.approx(5000, abs=1)
    assert seen.percent == pytest.approx(50, abs=0.1)
    assert (seen.checkpoints, seen.passed, seen.skipped, seen.next_checkpoint) == (2, [0], [], 1)
    assert not seen.off_route
    assert seen.speed_kmh == 60
    # 5 km to go at 60 km/h from the last fix (at 300 s): 5 minutes on.
    assert seen.eta_ms == pytest.approx(ms(600), abs=200)
    assert (seen.arrived, seen.arrived_ms) == (False, None)
    assert trip_view("t1", states["truck"], the_world) == seen


def test_a_skipped_checkpoint_and_no_eta_when_stopped() -> None:
    the_world = world(*_trip())
    # Every 1.5 km: 2.5 km (the first checkpoint) is missed, 7.5 km (the second) passed.
    fixes = [fix(45 * i, 1500 * i, 5000, speed=120) for i in range(6)]
    fixes.append(fix(300, 7500, 5000, speed=0))
    _, states = run(the_world, fixes)
    seen = trip_view("t1", states["truck"], the_world)
    assert isinstance(seen, TripProgress)
    assert (seen.passed, seen.skipped, seen.next_checkpoint) == ([1], [0], None)
    assert seen.eta_ms is None


def test_trips_not_started_and_done() -> None:
    the_world = world(*_trip("past", start_ms=T0 - 7_200_000, end_ms=T0 - 3_600_000))
    assert trip_view("past", AssetState(), the_world) == TripPhase("not started")
    _, states = run(the_world, [fix(0, 0, 5000, speed=0)])
    assert trip_view("past", states["truck"], the_world) == TripPhase("done")
    assert states["truck"].trips_done == ["past"]
    assert trip_view("unknown", states["truck"], the_world) == TripPhase("not started")
    # Watched (its window starts within the hour) but not moved yet: the full form.
    soon = world(*_trip("soon", start_ms=T0 + 600_000))
    _, waiting = run(soon, [fix(0, 0, 5000, speed=0)])
    seen = trip_view("soon", waiting["truck"], soon)
    assert isinstance(seen, TripProgress)
    assert (seen.state, seen.started_ms, seen.eta_ms) == ("not started", None, None)


def test_a_blank_state_and_drop_counters() -> None:
    the_world = world(BAN)
    blank = asset_rules("truck", AssetState(), the_world)
    assert (blank.evaluated_ms, blank.last_fix_ms, blank.state_version) == (None, None, 0)
    assert (blank.zones, blank.pending, blank.trip, blank.trips_done) == ([], [], None, [])
    assert blank.stop.watched
    fixes = [fix(0, 3000, 3000), fix(0, 3000, 3000), fix(1, 90_000, 0)]
    _, states = run(the_world, fixes, batch=3)
    assert asset_rules("truck", states["truck"], the_world).dropped == {
        "duplicate": 1,
        "jump": 1,
    }
