"""Geofences as timestamped tables: confirmation and hysteresis, low-quality fixes, triggers,
shapes (holes, circles, corridors), classes, sparse passages, windows and zone versions.

Unless a table says otherwise the zone ``z`` is the square (0, 0)-(400, 400) and the truck drives
east along y = 200; times are seconds after T0 (2026-07-01 10:00 Beijing). shared/RULES.md,
"Geofences": entry is confirmed by N = 2 trusted fixes inside, one of them H = 20 m or more
inside, and happens at the first fix of the confirming run; exit likewise.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import pytest

import wire
from cloud.models import GeoObject
from cloud.rules.engine import Engine
from cloud.rules.events import Event
from cloud.rules.windows import BEIJING
from tests.cloud.rules.scenario import T0, brief, fix, lonlat, ring, run, world, zone

BOX = (0.0, 0.0, 400.0, 400.0)
Brief = list[tuple[str, str, str, float]]


def zone_events(events: Iterable[Event]) -> Brief:
    return [b for b in brief(events) if b[0].startswith("zone.")]


def east(rows: Sequence[tuple[float, float]], *, y: float = 200.0, **kw: Any) -> list[wire.Fix]:
    """Fixes at (t_s, x) along ``y``."""
    return [fix(t, x, y, **kw) for t, x in rows]


def at(when: str) -> float:
    """Seconds after T0 of a Beijing wall time (``"2026-07-01 22:00"``)."""
    moment = dt.datetime.strptime(when, "%Y-%m-%d %H:%M").replace(tzinfo=BEIJING)
    return moment.timestamp() - T0 / 1000


# -- a truck parked on the boundary ---------------------------------------------------------


def _jitter(n: int) -> list[float]:
    """±15 m across the west edge (x = 0), with runs on either side."""
    rng = random.Random(2026)
    offsets = [rng.uniform(-15.0, 15.0) for _ in range(n)]
    signs = "".join("+" if o > 0 else "-" for o in offsets)
    assert "+++" in signs  # runs of fixes on one side happen
    assert "---" in signs
    return offsets


@pytest.mark.parametrize("trigger", ["enter", "exit", "dwell", "forbidden"])
@pytest.mark.parametrize("approach", [None, -150.0])
def test_a_truck_parked_on_the_boundary_raises_nothing(
    trigger: str, approach: float | None
) -> None:
    # An hour of fixes every 30 s within 15 m of the edge: never H inside or outside.
    rows = [(30.0 * i, x) for i, x in enumerate(_jitter(121), start=1)]
    if approach is not None:
        rows = [(0.0, approach), *rows, (3660.0, approach)]
    events, _ = run(world(zone("z", BOX, trigger=trigger)), east(rows, speed=0.0), until_s=7200)
    assert zone_events(events) == []


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ("enter", [("zone.enter", "z", "open", 0.0)]),
        ("forbidden", [("zone.forbidden", "z", "open", 0.0)]),  # never closed by the jitter
        ("exit", []),
        ("dwell", [("zone.dwell", "z", "open", 600.0)]),
    ],
)
def test_a_truck_inside_then_parked_on_the_boundary_never_exits(
    trigger: str, expected: Brief
) -> None:
    rows = [(0.0, 100.0), (10.0, 100.0)]
    rows += [(30.0 * i, x) for i, x in enumerate(_jitter(121), start=1)]
    events, _ = run(world(zone("z", BOX, trigger=trigger)), east(rows, speed=0.0), until_s=3630)
    assert zone_events(events) == expected


# -- passing through ------------------------------------------------------------------------

#: every 10 s, 100 m east: inside from x = 50 (t = 30) to x = 350 (t = 60)
PASS = [(0, -250), (10, -150), (20, -50), (30, 50), (40, 150), (50, 250), (60, 350), (70, 450),
        (80, 550)]  # fmt: skip


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        # opens at the first fix of the confirming run inside, closes at the first outside
        ({"trigger": "forbidden"}, [("zone.forbidden", "z", "open", 30), ("zone.forbidden", "z", "close", 70)]),
        ({"trigger": "enter"}, [("zone.enter", "z", "open", 30)]),
        ({"trigger": "exit"}, [("zone.exit", "z", "open", 70)]),
        ({"trigger": "dwell"}, []),  # 40 s inside: shorter than dwell_s (600 s)
        # dwell_s 20: inside from 30, so it opens at 50 (a fix time, too) and closes on exit
        ({"trigger": "dwell", "overrides": {"dwell_s": 20}},
         [("zone.dwell", "z", "open", 50), ("zone.dwell", "z", "close", 70)]),
        ({"trigger": "none"}, []),
        ({"zone_kind": "school"}, [("zone.enter", "z", "open", 30)]),  # the kind's trigger
    ],
)  # fmt: skip
def test_a_clean_pass_through(properties: dict[str, Any], expected: Brief) -> None:
    events, _ = run(world(zone("z", BOX, **properties)), east(PASS))
    assert zone_events(events) == expected


def test_dwell_by_the_clock_and_closed_on_exit() -> None:
    rows = [(0, -100), (30, 100), (60, 120), (900, 120), (930, 500), (960, 520)]
    the_world = world(zone("z", BOX, trigger="dwell", overrides={"dwell_s": 300}))
    events, _ = run(the_world, east(rows[:3]), until_s=400)
    assert zone_events(events) == [("zone.dwell", "z", "open", 330)]  # entry (30) + 300 s
    events, _ = run(the_world, east(rows))
    assert zone_events(events) == [
        ("zone.dwell", "z", "open", 330),
        ("zone.dwell", "z", "close", 930),
    ]


# -- confirmation: hysteresis, N, T, narrow zones --------------------------------------------


OPEN, CLOSE = ("zone.forbidden", "z", "open"), ("zone.forbidden", "z", "close")


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # 10 m then 25 m inside: one of the run is H (20 m) deep: entry at the first
        ([(0, -100), (30, 10), (60, 25)], [(*OPEN, 30)]),
        ([(0, -100), (30, 25), (60, 10)], [(*OPEN, 30)]),
        # two (or more) fixes 10 m inside are not enough
        ([(0, -100), (30, 10), (60, 10)], []),
        ([(0, -100), (30, 10), (60, 12), (90, 15), (120, 19.9)], []),
        # a deep fix, one outside, a deep fix: no run of two
        ([(0, -100), (30, 50), (60, -50), (90, 50)], []),
        # exit likewise: 10 m then 25 m outside
        ([(0, 100), (30, 100), (60, -10), (90, -25)], [(*OPEN, 0), (*CLOSE, 60)]),
        ([(0, 100), (30, 100), (60, -10), (90, -10), (120, -10)], [(*OPEN, 0)]),
    ],
)
def test_hysteresis(rows: list[tuple[float, float]], expected: Brief) -> None:
    assert zone_events(run(world(zone("z", BOX)), east(rows))[0]) == expected


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([(0, -100), (30, 100), (60, 100)], []),  # two fixes: N = 3 wants three
        ([(0, -100), (30, 100), (60, 100), (90, 100)], [("zone.forbidden", "z", "open", 30)]),
        ([(0, -100), (30, 100), (60, 100), (90, -100), (120, 100)], []),
    ],
)
def test_n_three_by_the_zones_overrides(rows: list[tuple[float, float]], expected: Brief) -> None:
    the_world = world(zone("z", BOX, overrides={"confirm_n": 3}))
    assert zone_events(run(the_world, east(rows))[0]) == expected


@pytest.mark.parametrize(
    ("confirm_s", "expected"),
    [
        (0, [("zone.forbidden", "z", "open", 20), ("zone.forbidden", "z", "close", 80)]),
        # inside 20..60 spans 40 s < 60 s: never confirmed
        (60, []),
        (40, [("zone.forbidden", "z", "open", 20), ("zone.forbidden", "z", "close", 80)]),
    ],
)
def test_confirm_s(confirm_s: float, expected: Brief) -> None:
    rows = [(0, -100), (20, 100), (40, 100), (60, 100), (80, -100), (100, -100), (120, -100)]
    the_world = world(zone("z", BOX, overrides={"confirm_s": confirm_s}))
    assert zone_events(run(the_world, east(rows))[0]) == expected


@pytest.mark.parametrize(
    ("width", "expected"),
    [
        # 30 m wide (narrower than 2H): two fixes 15 m inside confirm the entry by themselves
        (30.0, [("zone.forbidden", "z", "open", 30)]),
        # 60 m wide: 15 m inside is not deep enough
        (60.0, []),
    ],
)
def test_a_zone_narrower_than_twice_h(width: float, expected: Brief) -> None:
    rows = [(0, -100), (30, 15), (60, 15), (90, 15)]
    the_world = world(zone("z", (0, 0, width, 400)))
    assert zone_events(run(the_world, east(rows))[0]) == expected


def test_a_narrow_zone_is_left_like_any_other() -> None:
    rows = [(0, -100), (30, 15), (60, 15), (90, 40), (120, 60)]  # 10 m then 30 m past the east edge
    the_world = world(zone("z", (0, 0, 30, 400)))
    assert zone_events(run(the_world, east(rows))[0]) == [
        ("zone.forbidden", "z", "open", 30),
        ("zone.forbidden", "z", "close", 90),
    ]


# -- low-quality fixes ----------------------------------------------------------------------

BAD: dict[str, dict[str, Any]] = {
    "questionable": {"quality": "questionable"},
    "dead reckoning": {"quality": "dead_reckoning"},
    "hdop 6": {"hdop": 6.0},
    "3 satellites": {"sats": 3},
}


def _fix(t: float, x: float, bad: dict[str, Any] | None = None) -> wire.Fix:
    made = fix(t, x, 200.0, **{k: v for k, v in (bad or {}).items() if k != "sats"})
    if bad and "sats" in bad:
        made = msgspec.structs.replace(made, sats=bad["sats"])
    return made


@pytest.mark.parametrize("bad", list(BAD.values()), ids=list(BAD))
def test_low_quality_fixes_never_confirm_open_or_close(bad: dict[str, Any]) -> None:
    table = [
        _fix(0, -100),
        _fix(30, 200, bad), _fix(60, 200, bad), _fix(90, 200, bad),  # deep inside: nothing
        _fix(120, -100),
        _fix(150, 200), _fix(180, 200, bad), _fix(210, 200),  # opens at 150: bad fix not counted
        _fix(240, -100, bad), _fix(270, -100, bad), _fix(300, -100, bad),  # no close
        _fix(330, 200),
        _fix(360, -100), _fix(390, -100),  # closes at 360
    ]  # fmt: skip
    events, state = run(world(zone("z", BOX)), table)
    assert zone_events(events) == [
        ("zone.forbidden", "z", "open", 150),
        ("zone.forbidden", "z", "close", 360),
    ]
    assert state["truck"].dropped == {}  # kept (they move the map), just not trusted
    assert state["truck"].last_ms == T0 + 390_000


@pytest.mark.parametrize("bad", list(BAD.values()), ids=list(BAD))
def test_low_quality_fixes_make_no_passage(bad: dict[str, Any]) -> None:
    small = zone("z", (0, 0, 50, 50))
    for rows in ([_fix(0, -2000, bad), _fix(120, 2000)], [_fix(0, -2000), _fix(120, 2000, bad)]):
        moved = [msgspec.structs.replace(f, lat=lonlat(0, 25)[1]) for f in rows]
        assert zone_events(run(world(small), moved)[0]) == []


# -- shapes ---------------------------------------------------------------------------------


def test_a_polygon_with_a_hole() -> None:
    # outer (0, 0)-(600, 600), hole (200, 200)-(400, 400): the hole is outside the zone
    geometry = {"type": "Polygon", "coordinates": [ring(0, 0, 600, 600), ring(200, 200, 400, 400)]}
    holed = GeoObject(
        id="z", kind="zone", name="z", geometry=geometry, properties={"zone_kind": "restricted"}
    )
    rows = [(0, -100), (10, 50), (20, 100), (30, 250), (40, 300), (50, 450), (60, 500), (70, 650),
            (80, 700)]  # fmt: skip
    events, _ = run(world(holed), east(rows, y=300))
    assert zone_events(events) == [
        ("zone.forbidden", "z", "open", 10),
        ("zone.forbidden", "z", "close", 30),  # into the hole
        ("zone.forbidden", "z", "open", 50),  # out of it
        ("zone.forbidden", "z", "close", 70),
    ]


def _circle(radius_m: float) -> GeoObject:
    geometry = {"type": "Point", "coordinates": list(lonlat(0, 0))}
    properties = {"zone_kind": "restricted", "radius_m": radius_m}
    return GeoObject(id="c", kind="zone", name="c", geometry=geometry, properties=properties)


def test_a_circle_zone() -> None:
    # radius 100 m around (0, 0): in at x = -70 (30 m deep), out at x = 130
    rows = [(0, -200), (10, -70), (20, -20), (30, 80), (40, 130), (50, 180)]
    events, _ = run(world(_circle(100)), east(rows, y=0))
    assert zone_events(events) == [
        ("zone.forbidden", "c", "open", 10),
        ("zone.forbidden", "c", "close", 40),
    ]


def test_the_corners_of_a_circle_are_outside_it() -> None:
    # (85, 85) and (90, 90) are inside the square around the circle, 120 m from its centre
    rows = [fix(0, 200, 200), fix(30, 85, 85), fix(60, 90, 90), fix(90, 85, 85)]
    assert zone_events(run(world(_circle(100)), rows)[0]) == []


def test_a_corridor_zone_has_its_total_width() -> None:
    # a 100 m wide corridor along (0, 0)-(1000, 0): 50 m each side of the line
    geometry = {"type": "LineString", "coordinates": [list(lonlat(0, 0)), list(lonlat(1000, 0))]}
    corridor = GeoObject(
        id="k", kind="zone", name="k", geometry=geometry,
        properties={"zone_kind": "restricted", "width_m": 100},
    )  # fmt: skip
    rows = [fix(0, 500, -100), fix(10, 500, -10), fix(20, 500, 10), fix(30, 500, 60),
            fix(40, 500, 80), fix(50, 500, 150)]  # fmt: skip
    events, _ = run(world(corridor), rows)
    assert zone_events(events) == [
        ("zone.forbidden", "k", "open", 10),
        ("zone.forbidden", "k", "close", 30),  # 60 m off the line: outside a 100 m corridor
    ]


# -- classes --------------------------------------------------------------------------------


def test_a_zone_for_school_buses_ignores_a_hazmat_truck() -> None:
    the_world = world(
        zone("z", BOX, classes=["school_bus"], trigger="enter"),
        assets={"truck": "hazmat_truck", "bus": "school_bus"},
    )
    fixes = [f for t, x in PASS for f in (fix(t, x, 200), fix(t, x, 100, asset="bus"))]
    events, _ = run(the_world, fixes, batch=2)
    assert [(e.asset, *b) for e, b in zip(events, brief(events), strict=True)] == [
        ("bus", "zone.enter", "z", "open", 30)
    ]


# -- sparse fixes: passages -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("gap_s", "trigger", "expected"),
    [
        (300, "forbidden", [("zone.crossed", "z", "open", 300)]),  # at most 5 min: counts
        (120, "enter", [("zone.crossed", "z", "open", 120)]),
        (200, "dwell", [("zone.crossed", "z", "open", 200)]),
        (120, "exit", []),  # an exit zone does not care about a passage
        (301, "forbidden", []),  # more than segment_max_s apart: the segment says nothing
    ],
)
def test_two_sparse_fixes_either_side_of_a_small_zone(
    gap_s: float, trigger: str, expected: Brief
) -> None:
    # a 50 m square; 4 km between the fixes (48 km/h over 300 s)
    small = zone("z", (0, 0, 50, 50), trigger=trigger)
    events, _ = run(world(small), [fix(0, -2000, 25), fix(gap_s, 2000, 25)])
    assert zone_events(events) == expected
    assert all(e.flags == ("crossed",) for e in events)


@pytest.mark.parametrize(
    "rows",
    [
        # one fix 50 m inside, the next back out where it came from: no entry, no passage
        [(0, -100), (30, 50), (60, -50), (90, -100)],
        # a road along the edge, GPS error 25 m either side: no segment enters and leaves
        [(30.0 * i, 25.0 if i % 2 else -25.0) for i in range(40)],
    ],
    ids=["a dip", "weaving across the edge"],
)
def test_a_segment_from_a_fix_inside_is_no_passage(rows: list[tuple[float, float]]) -> None:
    # RULES.md: a passage enters and leaves between the two fixes; an end inside is membership
    moving = [fix(t, x, 100.0 + t / 5) for t, x in rows]  # 0.2 m/s north, within the zone
    assert zone_events(run(world(zone("z", BOX, trigger="enter")), moving)[0]) == []


def test_an_impossible_segment_is_no_passage() -> None:
    # 40 km in 5 min (480 km/h): the second fix is an impossible jump, dropped
    small = zone("z", (0, 0, 50, 50))
    events, states = run(world(small), [fix(0, -20000, 25), fix(300, 20000, 25)])
    assert zone_events(events) == []
    assert states["truck"].dropped == {"jump": 1}


def test_a_sparse_segment_beside_the_zone_is_no_passage() -> None:
    small = zone("z", (0, 0, 50, 50))
    events, _ = run(world(small), [fix(0, -2000, 80), fix(300, 2000, 80)])
    assert zone_events(events) == []


# -- windows --------------------------------------------------------------------------------

NIGHT_BAN = zone("z", BOX, windows=[{"daily": "22:00-06:00"}])
NINE_PM, TEN_PM, SIX_AM = at("2026-07-01 21:00"), at("2026-07-01 22:00"), at("2026-07-02 06:00")


def test_a_night_ban_opens_at_22_by_the_clock() -> None:
    rows = [(NINE_PM, 100), (NINE_PM + 30, 100)]
    events, _ = run(world(NIGHT_BAN), east(rows, speed=0.0), until_s=TEN_PM + 3600)
    assert zone_events(events) == [("zone.forbidden", "z", "open", TEN_PM)]


@pytest.mark.parametrize("offset_s", [15.0, 0.0], ids=["between fixes", "a fix at 22:00 and 06:00"])
def test_a_night_ban_opens_at_22_and_closes_at_6_by_fixes(offset_s: float) -> None:
    # inside from 21:00 to 06:30, a fix every 5 min
    rows = [(NINE_PM + offset_s + 300 * i, 100) for i in range(115)]
    events, _ = run(world(NIGHT_BAN), east(rows, speed=0.0))
    assert zone_events(events) == [
        ("zone.forbidden", "z", "open", TEN_PM),
        ("zone.forbidden", "z", "close", SIX_AM),
    ]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # entered at 21:59:50, confirmed at 22:00:10: the ban applies from 22:00
        ([(-100, -100), (-10, 100), (10, 100)], [("zone.forbidden", "z", "open", 0)]),
        # left at 23:00 (first fix of the run outside)
        ([(-60, 100), (-30, 100), (3600, -100), (3630, -100)],
         [("zone.forbidden", "z", "open", 0), ("zone.forbidden", "z", "close", 3600)]),
        # left at 21:59:50, confirmed outside at 22:00:10: it never applied to the truck
        ([(-60, 100), (-30, 100), (-10, -100), (10, -100)], []),
        # one fix outside at 21:59:50, back inside at 22:00:10: still inside at 22:00
        ([(-60, 100), (-30, 100), (-10, -100), (10, 100), (40, 100)],
         [("zone.forbidden", "z", "open", 0)]),
    ],
)  # fmt: skip
def test_a_night_ban_around_22(rows: list[tuple[float, float]], expected: Brief) -> None:
    shifted = [(TEN_PM + t, x) for t, x in rows]
    events, _ = run(world(NIGHT_BAN), east(shifted), until_s=TEN_PM + 7200)
    assert zone_events(events) == [(k, r, a, t + TEN_PM) for k, r, a, t in expected]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # left at 05:59:50, confirmed at 06:00:10: the truck left before the ban ended
        ([(-60, 100), (-30, 100), (-10, -100), (10, -100)],
         [("zone.forbidden", "z", "close", -10)]),
        # one fix outside at 05:59:50, back inside: the ban ends at 06:00
        ([(-60, 100), (-30, 100), (-10, -100), (10, 100), (40, 100)],
         [("zone.forbidden", "z", "close", 0)]),
    ],
)  # fmt: skip
def test_a_night_ban_around_6(rows: list[tuple[float, float]], expected: Brief) -> None:
    before = [(NINE_PM, 100), (NINE_PM + 30, 100)]
    shifted = before + [(SIX_AM + t, x) for t, x in rows]
    events, _ = run(world(NIGHT_BAN), east(shifted), until_s=SIX_AM + 7200)
    assert zone_events(events) == [("zone.forbidden", "z", "open", TEN_PM)] + [
        (k, r, a, t + SIX_AM) for k, r, a, t in expected
    ]


def test_a_night_ban_every_night() -> None:
    rows = [(NINE_PM, 100), (NINE_PM + 30, 100)]
    events, _ = run(world(NIGHT_BAN), east(rows, speed=0.0), until_s=NINE_PM + 2 * 86_400)
    assert zone_events(events) == [
        ("zone.forbidden", "z", "open", TEN_PM),
        ("zone.forbidden", "z", "close", SIX_AM),
        ("zone.forbidden", "z", "open", TEN_PM + 86_400),
        ("zone.forbidden", "z", "close", SIX_AM + 86_400),
    ]


def test_a_season_ends_and_begins_at_noon() -> None:
    moratorium = zone("z", BOX, windows=[{"from": "05-01 12:00", "to": "09-16 12:00"}])
    start, end = at("2026-05-01 12:00"), at("2026-09-16 12:00")
    rows = [(start - 3600, 100), (start - 3570, 100)]
    events, _ = run(world(moratorium), east(rows, speed=0.0), until_s=start + 60)
    assert zone_events(events) == [("zone.forbidden", "z", "open", start)]
    rows = [(end - 3600, 100), (end - 3570, 100), (end - 10, 100), (end + 10, 100)]
    events, _ = run(world(moratorium), east(rows, speed=0.0))
    assert zone_events(events) == [
        ("zone.forbidden", "z", "open", end - 3600),
        ("zone.forbidden", "z", "close", end),
    ]


@pytest.mark.parametrize(
    ("entered", "expected"),
    [
        (NINE_PM, [TEN_PM + 600]),  # dwell counts from the window's start
        (TEN_PM + 1200, [TEN_PM + 1800]),
        (SIX_AM - 300, [TEN_PM + 86_400 + 600]),  # 5 min before 06:00: not long enough that night
    ],
)
def test_dwell_counts_time_inside_while_the_zone_applies(
    entered: float, expected: list[float]
) -> None:
    night = zone("z", BOX, trigger="dwell", windows=[{"daily": "22:00-06:00"}])
    rows = [(entered, 100), (entered + 30, 100)]
    events, _ = run(world(night), east(rows, speed=0.0), until_s=TEN_PM + 2 * 86_400)
    assert zone_events(events) == [("zone.dwell", "z", "open", t) for t in expected]


def test_the_clock_is_due_when_a_dwell_in_a_window_is() -> None:
    night = zone("z", BOX, trigger="dwell", windows=[{"daily": "22:00-06:00"}])
    fixes = east([(NINE_PM, 100), (NINE_PM + 30, 100)])  # at 30 km/h: no stop due
    engine = Engine(world(night))
    outcome = engine.evaluate({"truck": fixes}, {}, now_ms=fixes[-1].ts)
    silent = fixes[-1].ts + 600_001  # last seen moving: a silence is due first (offline)
    assert outcome.due["truck"] == silent
    later = engine.tick(outcome.states, until_ms=silent)
    assert later.due["truck"] == T0 + int((TEN_PM + 600) * 1000)


def test_a_night_enter_zone_reports_entries_only_at_night() -> None:
    night = zone("z", BOX, trigger="enter", windows=[{"daily": "22:00-06:00"}])
    day = [(float(t), float(x)) for t, x in PASS]
    night_pass = [(TEN_PM + t, float(x)) for t, x in PASS]
    events, _ = run(world(night), east(day + night_pass))
    assert zone_events(events) == [("zone.enter", "z", "open", TEN_PM + 30)]


# -- a zone edited while a truck is inside --------------------------------------------------


def test_a_zone_edited_to_exclude_the_truck_closes_its_condition() -> None:
    edited_at = 600.0
    first = zone("z", BOX)
    second = msgspec.structs.replace(
        zone("z", (1000, 0, 1400, 400), effective_from_ms=T0 + int(edited_at * 1000)), version=2
    )
    rows = [(60.0 * i, 200) for i in range(21)]  # parked at (200, 200) for 20 min
    events, _ = run(world(first, second), east(rows, speed=0.0))
    assert zone_events(events) == [
        ("zone.forbidden", "z", "open", 0),
        # the new version applies from 600: the first fix of the run outside it
        ("zone.forbidden", "z", "close", edited_at),
    ]
    assert [e.details.get("version") for e in events if e.kind == "zone.forbidden"] == [1, None]


def test_a_zone_edited_to_include_the_truck_opens_its_condition() -> None:
    first = zone("z", (1000, 0, 1400, 400))
    second = msgspec.structs.replace(zone("z", BOX, effective_from_ms=T0 + 600_000), version=2)
    rows = [(60.0 * i, 200) for i in range(21)]
    events, _ = run(world(first, second), east(rows, speed=0.0))
    assert zone_events(events) == [("zone.forbidden", "z", "open", 600)]
    assert [e.details["version"] for e in events if e.kind == "zone.forbidden"] == [2]
