"""Trips on approved routes as timestamped tables.

The route ``r`` runs 10 km east from (0, 0) in a 100 m corridor (50 m either side); the trip
``t`` goes from (0, 0) by checkpoints at 3 km and 6 km to (10000, 0), window T0 + 600 s to
T0 + 3 h. The truck waits at the origin, then drives 500 m per 30 s fix (60 km/h). Times are
seconds after T0; shared/RULES.md, "Routes and trips".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest

import wire
from cloud.models import GeoObject
from cloud.rules.events import Event
from tests.cloud.rules.scenario import T0, brief, fix, route_obj, run, trip_obj, world

START_S, END_S = 600.0, 10_800.0
ROUTE = route_obj("r", [(0, 0), (10_000, 0)], corridor_m=100)
CHECKPOINTS = [(3000.0, 0.0), (6000.0, 0.0)]
Brief = list[tuple[str, str, str, float]]


def trip(checkpoints: Sequence[tuple[float, float]] = CHECKPOINTS) -> GeoObject:
    return trip_obj(
        "t", [(0, 0), *checkpoints, (10_000, 0)], asset_id="truck", route_id="r",
        start_ms=T0 + int(START_S * 1000), end_ms=T0 + int(END_S * 1000),
    )  # fmt: skip


def trips(events: Iterable[Event]) -> Brief:
    return [b for b in brief(events) if b[0].startswith("trip.")]


def waiting(start: float = 0.0, end: float = 570.0) -> list[wire.Fix]:
    return [fix(t, 0, 0, speed=0.0) for t in range(int(start), int(end) + 1, 30)]


def drive(t0: float, points: Sequence[tuple[float, float]], *, every: float = 30.0,
          speed: float = 60.0) -> list[wire.Fix]:  # fmt: skip
    return [fix(t0 + every * i, x, y, speed=speed) for i, (x, y) in enumerate(points)]


def along(x0: float, x1: float, step: float = 500.0, y: float = 0.0) -> list[tuple[float, float]]:
    count = round((x1 - x0) / step)
    return [(x0 + step * i, y) for i in range(count + 1)]


#: 0 -> 9500 at 60 km/h from 600 (9500 at 1170), then 9900 at 1200, stopped at 10000
ARRIVING = [(9900.0, 0.0), (10_000.0, 0.0), (10_000.0, 0.0)]
ON_TIME = waiting() + drive(START_S, along(0, 9500) + ARRIVING)


def test_a_trip_on_its_route_raises_nothing_and_ends_on_arrival() -> None:
    events, states = run(world(ROUTE, trip()), ON_TIME, until_s=END_S + 3600)
    assert trips(events) == []
    assert states["truck"].trip is None
    assert states["truck"].trips_done == ["t"]


OPEN, CLOSE = ("trip.off_route", "t", "open"), ("trip.off_route", "t", "close")


@pytest.mark.parametrize(
    ("detour", "expected"),
    [
        # 60 m off the line (10 m past the edge), then 80 m (30 m past): off from the first;
        # back at 30 m (20 m inside the edge) and 0 m: on from the 30 m fix
        ([60, 80, 80, 30, 0], [(*OPEN, 840), (*CLOSE, 930)]),
        # 40 m in, out again at 60, then in for good: on from the first of the last run
        ([60, 80, 80, 40, 60, 0, 0], [(*OPEN, 840), (*CLOSE, 990)]),
        # 60 m three times: never 20 m past the edge (H), so never off
        ([60, 60, 60, 0], []),
        # a single fix far off is no confirmation
        ([300, 0, 0], []),
        # GPS noise within the corridor, or within 15 m either side of its edge
        ([45, -45, 45, -45, 45, -45], []),
        ([35, 65, 62, 40, 64, 50, 58, -40], []),
    ],
)
def test_off_route_and_back(detour: list[float], expected: Brief) -> None:
    # on the route to 3500 m (at 810), then the detour (metres off the line) from 840 on
    xs = [3500 + 500 * (i + 1) for i in range(len(detour))]
    points = along(0, 3500) + list(zip(xs, detour, strict=True))
    events, _ = run(world(ROUTE, trip(checkpoints=[])), waiting() + drive(START_S, points))
    assert trips(events) == expected


def test_off_route_in_a_corridor_narrower_than_twice_h() -> None:
    # 30 m wide (15 m either side): back on route by N fixes inside alone, as narrow zones
    narrow = route_obj("r", [(0, 0), (10_000, 0)], corridor_m=30)
    points = [*along(0, 1000), (1500, 60), (2000, 60), (2500, 5), (3000, 0), (3500, 0)]
    events, _ = run(world(narrow, trip()), waiting() + drive(START_S, points))
    assert trips(events) == [
        ("trip.off_route", "t", "open", START_S + 90),
        ("trip.off_route", "t", "close", START_S + 150),
    ]


@pytest.mark.parametrize(
    ("every", "step", "behind"),
    [
        # a fix every 30 s at 60 km/h: 500 m back after one fix (not more than 500), 1000 m
        # after two
        (30.0, 500.0, 2),
        # every 10 s at 58 km/h: 160 m a fix, more than 500 m back after four
        (10.0, 160.0, 4),
        # backing 50 m a fix: more than 500 m back after eleven
        (10.0, 50.0, 11),
    ],
)
def test_wrong_direction(every: float, step: float, behind: int) -> None:
    forward = along(0, 4800, step)
    back = [(forward[-1][0] - step * i, 0.0) for i in range(1, behind + 3)]
    fixes = waiting() + drive(START_S, forward + back, every=every)
    events, _ = run(world(ROUTE, trip(checkpoints=[])), fixes)
    turn_s = START_S + every * (len(forward) - 1)
    assert trips(events)[:1] == [("trip.wrong_direction", "t", "open", turn_s + every * behind)]
    assert events[0].details["back_m"] == pytest.approx(step * behind, abs=0.5)


@pytest.mark.parametrize(
    "points",
    [
        # stopped on the route with GPS noise along it
        [(5000 + (-1) ** i * 40 * (i % 3), 0) for i in range(30)],
        # slowing down and creeping: never back
        [(5000 + 10 * i, 0) for i in range(30)],
    ],
)
def test_no_wrong_direction_from_noise(points: list[tuple[float, float]]) -> None:
    fixes = waiting() + drive(START_S, along(0, 4500) + points, every=30)
    assert trips(run(world(ROUTE, trip(checkpoints=[])), fixes)[0]) == []


def test_passing_a_later_checkpoint_first_skips_the_earlier() -> None:
    # checkpoint 0 stands 300 m off the road at 3 km: the truck passes it by
    beside = trip(checkpoints=[(3000, 300), (6000, 0)])
    events, _ = run(world(ROUTE, beside), ON_TIME)
    assert trips(events) == [("trip.checkpoint_skipped", "t#0", "open", START_S + 360)]  # at 6 km
    assert events[0].details == {"checkpoint": 0}


def test_arriving_ends_the_trip_and_skips_the_checkpoints_left() -> None:
    beside = trip(checkpoints=[(3000, 0), (6000, 300)])
    events, states = run(world(ROUTE, beside), ON_TIME, until_s=END_S + 60)
    # arrival: two fixes within 200 m of the destination, from the first (9900 at 1200)
    assert trips(events) == [("trip.checkpoint_skipped", "t#1", "open", 1200)]
    assert states["truck"].trips_done == ["t"]


@pytest.mark.parametrize(
    ("fixes", "expected"),
    [
        (waiting(0, 570) + drive(600, along(0, 2000)), []),  # on time
        (waiting(0, 90) + drive(120, along(0, 2000)), [("trip.early_start", "t", "open", 120)]),
        # already moving when the watch began (window start - 1 h = -3000): the first fix
        # watched is the start
        (drive(-3300, along(0, 8000)), [("trip.early_start", "t", "open", -3000)]),
    ],
    ids=["on time", "8 min early", "moving when watched"],
)
def test_early_start(fixes: list[wire.Fix], expected: Brief) -> None:
    events, _ = run(world(ROUTE, trip(checkpoints=[])), fixes)
    assert trips(events) == expected
    early = [e.details for e in events if e.kind == "trip.early_start"]
    assert early == [{"start_ms": T0 + 600_000, "early_s": 600 - t} for *_, t in expected]


def test_not_arriving_by_the_end_of_the_window() -> None:
    # stuck off route at 5 km from 1320 on; the clock reaches the window's end
    points = [*along(0, 4500), (5000, 80), (5000, 80), (5000, 80)]
    events, states = run(world(ROUTE, trip()), waiting() + drive(START_S, points),
                         until_s=END_S + 600)  # fmt: skip
    assert trips(events) == [
        ("trip.off_route", "t", "open", START_S + 300),
        ("trip.not_arrived", "t", "open", END_S),
        ("trip.checkpoint_skipped", "t#1", "open", END_S),  # the 6 km one, never reached
        ("trip.off_route", "t", "close", END_S),  # the trip is over
    ]
    not_arrived = next(e for e in events if e.kind == "trip.not_arrived")
    assert not_arrived.details == {"end_ms": T0 + int(END_S * 1000), "progress_m": 4500.0}
    assert states["truck"].trips_done == ["t"]


def test_not_arriving_without_a_fix_in_the_window() -> None:
    # the truck was last heard of two hours before the window began
    events, _ = run(world(ROUTE, trip()), [fix(-7200, -5000, 0, speed=0.0)], until_s=END_S + 1)
    assert trips(events) == [
        ("trip.not_arrived", "t", "open", END_S),
        ("trip.checkpoint_skipped", "t#0", "open", END_S),
        ("trip.checkpoint_skipped", "t#1", "open", END_S),
    ]


def test_not_arriving_by_fixes_after_the_window() -> None:
    points = along(0, 2000)
    fixes = waiting() + drive(START_S, points) + [fix(END_S + 30, 2000, 0, speed=0.0)]
    events, _ = run(world(ROUTE, trip()), fixes)
    assert [b for b in trips(events) if b[0] == "trip.not_arrived"] == [
        ("trip.not_arrived", "t", "open", END_S)
    ]


def test_not_arriving_with_a_fix_at_the_very_end_of_the_window() -> None:
    points = along(0, 2000)
    fixes = waiting() + drive(START_S, points) + [fix(END_S, 2000, 0, speed=0.0)]
    events, _ = run(world(ROUTE, trip()), fixes, until_s=END_S + 600)
    assert [b for b in trips(events) if b[0] == "trip.not_arrived"] == [
        ("trip.not_arrived", "t", "open", END_S)
    ]


def test_an_arrived_trip_is_not_reported_not_arrived() -> None:
    events, _ = run(world(ROUTE, trip()), ON_TIME, until_s=END_S + 600)
    assert trips(events) == []
