"""Designated parking as timestamped tables (hazmat trucks only).

shared/RULES.md, "Parking": a stop is under 5 km/h for at least 10 min; outside every lot and
every ``no_stop_alert`` zone it opens ``parking.outside_lot`` at the stop's start + 10 min, with
the stop itself as reference; it escalates 30 min later and closes when the truck moves on (over
5 km/h for 1 min: at the first fix of that run) or is confirmed inside a lot. A lot's max stay
counts from confirmed entry to exit. The lot ``L`` is (1000, 0)-(1300, 300); times are seconds
after T0.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

import wire
from cloud.rules.events import Event
from tests.cloud.rules.scenario import T0, brief, fix, lonlat, lot, run, world, zone

LOT = lot("L", (1000, 0, 1300, 300))
STOP = "truck"  # a stop's alert is the asset's; the stop's id is in the details
Brief = list[tuple[str, str, str, float]]


def parking(events: Iterable[Event]) -> Brief:
    return [b for b in brief(events) if b[0].startswith("parking.")]


def stopped(start: float, end: float, *, x: float = 0.0, y: float = 0.0, every: float = 60.0,
            asset: str = "truck") -> list[wire.Fix]:  # fmt: skip
    """Fixes at 0 km/h from ``start`` to ``end`` (included) at (x, y)."""
    count = int((end - start) // every) + 1
    return [fix(start + every * i, x, y, speed=0.0, asset=asset) for i in range(count)]


def moving(start: float, end: float, *, x: float = 0.0, every: float = 10.0) -> list[wire.Fix]:
    """Fixes at 40 km/h (111 m per 10 s) east from (x, 0)."""
    count = int((end - start) // every) + 1
    return [fix(start + every * i, x + 11.1 * every * i, 0, speed=40.0) for i in range(count)]


def test_a_stop_outside_every_lot_opens_escalates_and_closes_on_moving_on() -> None:
    events, _ = run(world(LOT), stopped(0, 3000) + moving(3010, 3100))
    assert parking(events) == [
        ("parking.outside_lot", STOP, "open", 600),  # the stop's start + 10 min
        ("parking.outside_lot", STOP, "escalate", 2400),  # 30 min after opening
        ("parking.outside_lot", STOP, "close", 3010),  # first fix of 60 s over 5 km/h
    ]
    opened = events[0]
    assert opened.details == {
        "stop_id": f"truck@{T0}", "stop_ms": T0, "stop_lat": opened.lat, "stop_lon": opened.lon
    }  # fmt: skip
    lon, lat = lonlat(0, 0)
    assert (opened.lat, opened.lon) == (round(lat, 7), round(lon, 7))
    assert events[2].details == {"reason": "moved on"}


def test_a_stop_opens_and_escalates_by_the_clock() -> None:
    events, _ = run(world(LOT), stopped(0, 60), until_s=3000)
    assert parking(events) == [
        ("parking.outside_lot", STOP, "open", 600),
        ("parking.outside_lot", STOP, "escalate", 2400),
    ]


def test_the_stop_is_where_it_began() -> None:
    # drifting a few metres while stopped: the alert stays at the stop's first position
    drift = [fix(60.0 * i, 3.0 * (i % 3), 0, speed=1.0) for i in range(12)]
    events, _ = run(world(LOT), drift)
    assert parking(events) == [("parking.outside_lot", STOP, "open", 600)]
    lon, lat = lonlat(0, 0)
    assert (events[0].lat, events[0].lon) == (round(lat, 7), round(lon, 7))


@pytest.mark.parametrize(
    ("speeds", "closed_at"),
    [
        # 10 s apart from 1200: fast from 1200, 60 s of it at 1260
        ([40, 40, 40, 40, 40, 40, 40], 1200),
        # a slow fix at 1210 undoes the run: fast again from 1220, 60 s at 1280
        ([40, 3, 40, 40, 40, 40, 40, 40, 40], 1220),
        # 50 s over 5 km/h, then stopped again: the stop goes on
        ([40, 40, 40, 40, 40, 40, 0, 0], None),
    ],
)
def test_moving_on_takes_a_minute_over_5_kmh(speeds: list[float], closed_at: float | None) -> None:
    after = [fix(1200 + 10 * i, 0, 0, speed=s) for i, s in enumerate(speeds)]
    events, _ = run(world(LOT), stopped(0, 1190) + after)
    expected: Brief = [("parking.outside_lot", STOP, "open", 600)]
    if closed_at is not None:
        expected.append(("parking.outside_lot", STOP, "close", closed_at))
    assert parking(events) == expected


def test_a_stop_outside_ends_when_confirmed_inside_a_lot() -> None:
    # stopped 100 m west of the lot, then creeping into it at 3 km/h
    creep = [fix(1260, 1050, 150, speed=3.0), fix(1320, 1100, 150, speed=3.0)]
    events, _ = run(
        world(LOT), stopped(0, 1200, x=900, y=150) + creep + stopped(1380, 7200, x=1100, y=150)
    )
    assert parking(events) == [
        ("parking.outside_lot", STOP, "open", 600),
        ("parking.outside_lot", STOP, "close", 1260),  # the first fix of the run inside
    ]
    assert events[-1].details == {"reason": "in a designated lot"}


@pytest.mark.parametrize(
    "where",
    [
        lot("L", (-100, -100, 100, 100)),
        zone("toll", (-100, -100, 100, 100), zone_kind="no_stop_alert"),
    ],
    ids=["in a lot", "in a no_stop_alert zone"],
)
def test_a_stop_in_a_lot_or_a_no_stop_alert_zone_opens_nothing(where: object) -> None:
    events, _ = run(world(where), stopped(0, 3600), until_s=7200)  # type: ignore[arg-type]
    assert brief(events) == []


def test_a_stop_that_creeps_out_of_a_lot_is_a_stop_outside_it() -> None:
    # stopped in the lot, out of it at 3 km/h (confirmed outside from 1290), stopped there
    creep = [fix(1260, 1250, 150, speed=3.0), fix(1290, 1330, 150, speed=3.0)]
    fixes = stopped(0, 1230, x=1150, y=150) + creep + stopped(1320, 3600, x=1350, y=150)
    events, _ = run(world(LOT), fixes)
    assert parking(events)[:1] == [("parking.outside_lot", STOP, "open", 1890)]
    assert events[0].details["stop_id"] == f"truck@{T0 + 1290_000}"


def test_a_short_halt_opens_nothing() -> None:
    # 9 min under 5 km/h, then on the move
    events, _ = run(world(LOT), stopped(0, 480) + moving(540, 700), until_s=4000)
    assert parking(events) == []


def test_each_stop_is_its_own_alert() -> None:
    fixes = stopped(0, 700) + moving(710, 800) + stopped(900, 1600, x=999)
    events, _ = run(world(LOT), fixes)
    assert parking(events) == [
        ("parking.outside_lot", STOP, "open", 600),
        ("parking.outside_lot", STOP, "close", 710),
        ("parking.outside_lot", STOP, "open", 1500),
    ]
    opened = [e.details["stop_id"] for e in events if e.action == "open"]
    assert opened == [f"truck@{T0}", f"truck@{T0 + 900_000}"]


def test_a_lots_max_stay() -> None:
    short = lot("L", (1000, 0, 1300, 300), max_stay_s=1800)
    inside = stopped(0, 2340, x=1150, y=150)
    leaving = [fix(2400, 1400, 150, speed=20.0), fix(2430, 1500, 150, speed=20.0)]
    events, _ = run(world(short), inside + leaving)
    assert parking(events) == [
        ("parking.max_stay", "L", "open", 1800),  # confirmed entry (0) + 30 min
        ("parking.max_stay", "L", "close", 2400),  # the first fix of the run outside
    ]
    assert events[1].details == {"overstay_s": 600.0}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # out from 1790, confirmed at 1820: it left before its stay ran out
        ([(1790, 1400), (1820, 1500)], []),
        ([(1810, 1400), (1840, 1500)], [("parking.max_stay", "L", "open", 1800),
                                        ("parking.max_stay", "L", "close", 1810)]),
        # one fix outside at 1790, then inside again: it stayed
        ([(1790, 1400), (1820, 1150)], [("parking.max_stay", "L", "open", 1800)]),
    ],
)  # fmt: skip
def test_a_lots_max_stay_when_leaving_about_then(
    rows: list[tuple[float, float]], expected: Brief
) -> None:
    short = lot("L", (1000, 0, 1300, 300), max_stay_s=1800)
    inside = stopped(0, 1770, x=1150, y=150, every=30)
    leaving = [fix(t, x, 150, speed=20.0) for t, x in rows]
    events, _ = run(world(short), inside + leaving, until_s=4000)
    assert parking(events) == expected


def test_a_lots_max_stay_by_the_clock() -> None:
    short = lot("L", (1000, 0, 1300, 300), max_stay_s=1800)
    events, _ = run(world(short), stopped(0, 60, x=1150, y=150), until_s=4000)
    assert parking(events) == [("parking.max_stay", "L", "open", 1800)]


def test_a_school_bus_never_gets_parking_alerts() -> None:
    the_world = world(LOT, assets={"bus": "school_bus"})
    events, _ = run(the_world, stopped(0, 3600, asset="bus"), until_s=7200)
    assert parking(events) == []
