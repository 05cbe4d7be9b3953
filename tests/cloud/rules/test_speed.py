"""Speed as timestamped tables: over the limit in force for 10 s opens, back under it minus 5 km/h
for 10 s closes (shared/RULES.md, "Speed"; cloud/rules/speed.py for the limits).

Vehicles drive east along y = 0 at the speeds of the table (positions follow the speeds, so the
distance agrees with them); times are seconds after T0 (10:00 Beijing), 22:00 is ``NIGHT``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wire
from cloud.rules.config import RulesConfig
from cloud.rules.events import Event
from cloud.rules.replay import replay
from tests.cloud.rules.scenario import brief, fix, run, world, zone
from tests.cloud.rules.test_order import alerts

Brief = list[tuple[str, str, str, float]]
NIGHT = 12 * 3600.0  # 22:00 Beijing
CLASSES = {"truck": "hazmat_truck", "bus": "school_bus", "coach": "coach", "boat": "fishing_vessel"}
ROAD = world(assets=CLASSES)


def drive(
    rows: Sequence[tuple[float, float]], *, asset: str = "truck", x: float = 0.0, **kw: object
) -> list[wire.Fix]:
    """Fixes at (t, speed km/h), each where the speeds so far have taken the vehicle."""
    fixes, last_t = [], rows[0][0]
    for t, speed in rows:
        x += speed / 3.6 * (t - last_t)
        last_t = t
        fixes.append(fix(t, x, 0, speed=speed, asset=asset, **kw))  # type: ignore[arg-type]
    return fixes


def every(start: float, speeds: Iterable[float], step: float = 5.0) -> list[tuple[float, float]]:
    return [(start + step * i, s) for i, s in enumerate(speeds)]


def speed_events(events: Iterable[Event]) -> Brief:
    return [b for b in brief(events) if b[0] == "speed.over"]


def test_over_the_limit_for_10_s_opens_and_back_under_for_10_s_closes() -> None:
    rows = every(0, [50, 50, 70, 70, 72, 70, 50, 50, 50, 50])
    events, _ = run(ROAD, drive(rows))
    assert speed_events(events) == [
        ("speed.over", "truck", "open", 10),  # the first fix over 60, confirmed at 20
        ("speed.over", "truck", "close", 30),  # the first fix under 55, confirmed at 40
    ]
    opened, closed = (e for e in events if e.kind == "speed.over")
    assert opened.details == {"limit_kmh": 60.0, "max_kmh": 72.0}
    assert closed.details == {
        "start_ms": opened.ts, "max_kmh": 72.0, "limit_kmh": 60.0, "duration_s": 20.0
    }  # fmt: skip


@pytest.mark.parametrize(
    ("speeds", "expected"),
    [
        # one GPS spike: one sample never opens
        ([50, 50, 120, 50, 50, 50], []),
        # over for 5 s only (two fixes): too short
        ([50, 70, 70, 50, 50, 50], []),
        # a fix at 58 breaks the run over 60: 10 s over only from 20 on
        ([70, 70, 58, 70, 70, 70], [("speed.over", "truck", "open", 15)]),
        # back under 60 but not under 55: still open
        ([70, 70, 70, 57, 57, 57, 57], [("speed.over", "truck", "open", 0)]),
        # under 55 for 5 s, over again, under for 10 s: closes at the second run's first fix
        ([70, 70, 70, 50, 62, 50, 50, 50],
         [("speed.over", "truck", "open", 0), ("speed.over", "truck", "close", 25)]),
    ],
)  # fmt: skip
def test_noise_and_hysteresis(speeds: list[float], expected: Brief) -> None:
    events, _ = run(ROAD, drive(every(0, speeds)))
    assert speed_events(events) == expected


def test_two_fixes_10_s_apart_are_enough() -> None:
    events, _ = run(ROAD, drive([(0, 40), (10, 70), (20, 70)]))
    assert speed_events(events) == [("speed.over", "truck", "open", 10)]


def test_an_open_alert_is_updated_when_its_maximum_grows_by_10_kmh() -> None:
    events, _ = run(ROAD, drive(every(0, [70, 70, 70, 75, 81, 79, 95])))
    assert speed_events(events) == [
        ("speed.over", "truck", "open", 0),
        ("speed.over", "truck", "update", 20),  # 81 >= 70 + 10
        ("speed.over", "truck", "update", 30),  # 95 >= 81 + 10
    ]
    assert events[-1].details == {
        "start_ms": events[0].ts, "max_kmh": 95.0, "limit_kmh": 60.0, "duration_s": 30.0
    }  # fmt: skip


@pytest.mark.parametrize(
    ("asset", "speed", "start", "opened"),
    [
        ("truck", 70.0, 0.0, True),  # hazmat: 60 off the expressway
        ("bus", 65.0, 0.0, True),  # school bus: 60
        ("coach", 75.0, 0.0, False),  # coach: 80 by day
        ("coach", 75.0, NIGHT + 1800, True),  # 80 x 0.8 = 64 at night
        ("bus", 55.0, NIGHT + 1800, True),  # 60 x 0.8 = 48 at night
        ("truck", 58.0, NIGHT + 1800, False),  # no night factor for hazmat trucks
        ("coach", 75.0, NIGHT + 8.5 * 3600, False),  # 06:30: day again
        ("boat", 60.0, 0.0, False),  # no limit for fishing vessels
    ],
)
def test_the_limit_of_each_class_by_day_and_by_night(
    asset: str, speed: float, start: float, opened: bool
) -> None:
    events, _ = run(ROAD, drive(every(start, [speed] * 4), asset=asset))
    assert [e.action for e in events if e.kind == "speed.over"] == (["open"] if opened else [])
    if opened:
        assert events[0].ref == asset


EXPRESSWAY = zone("g2", (-1000, -500, 20_000, 500), zone_kind="expressway", trigger="enter")


@pytest.mark.parametrize(
    ("asset", "speed", "opened", "limit"),
    [
        ("truck", 75.0, False, None),  # 80 on the expressway
        ("truck", 85.0, True, 80.0),
        ("coach", 95.0, False, None),  # 100
        ("coach", 105.0, True, 100.0),
    ],
)
def test_on_an_expressway_the_expressway_limit_applies(
    asset: str, speed: float, opened: bool, limit: float | None
) -> None:
    events, _ = run(world(EXPRESSWAY, assets=CLASSES), drive(every(0, [speed] * 5), asset=asset))
    found = [e for e in events if e.kind == "speed.over"]
    assert [e.action for e in found] == (["open"] if opened else [])
    if found:
        assert found[0].details["limit_kmh"] == limit


def test_leaving_the_expressway_brings_the_road_limit_back() -> None:
    # 75 km/h throughout: fine on the expressway (to x = 1000), over 60 once confirmed off it;
    # 104 m per 5 s: out at x = 1042 (t = 50), confirmed by the fix at 55: a fix is judged by
    # the membership known when it comes, so the run over 60 starts at 55
    short = zone("g2", (-1000, -500, 1000, 500), zone_kind="expressway")
    events, _ = run(world(short), drive(every(0, [75.0] * 14)))
    assert speed_events(events) == [("speed.over", "truck", "open", 55)]


def test_a_zone_posting_its_own_limit_lowers_it() -> None:
    school = zone("school", (500, -500, 3000, 500), zone_kind="school",
                  overrides={"speed_limit_kmh": 30})  # fmt: skip
    rows = every(0, [40.0] * 40)  # 55.6 m per 5 s: inside at x = 556 (t = 50), confirmed at 55
    events, _ = run(world(school, EXPRESSWAY), drive(rows))
    assert speed_events(events) == [("speed.over", "truck", "open", 55)]
    assert events[[e.kind for e in events].index("speed.over")].details["limit_kmh"] == 30.0


@pytest.mark.parametrize(
    ("asset", "opened"), [("bus", True), ("truck", False)], ids=["school bus", "hazmat truck"]
)
def test_a_school_bus_in_a_bend_is_held_to_20_kmh(asset: str, opened: bool) -> None:
    bend = zone("bend", (-500, -500, 500, 500), zone_kind="bend", trigger="enter")
    events, _ = run(world(bend, assets=CLASSES), drive(every(0, [30.0] * 6), asset=asset))
    found = [e for e in events if e.kind == "speed.over"]
    if opened:
        assert speed_events(found) == [("speed.over", "bus", "open", 5)]  # confirmed inside at 5
        assert found[0].details["limit_kmh"] == 20.0
    else:
        assert found == []


def test_a_speed_the_distance_belies_is_not_alarmed_but_counted() -> None:
    # parked at (0, 0), the terminal reports 90 km/h every 15 s
    fixes = [fix(15.0 * i, 0, 0, speed=90.0) for i in range(8)]
    events, states = run(ROAD, fixes)
    assert speed_events(events) == []
    assert states["truck"].dropped == {"speed_contradicted": 7}  # the first has no segment


def test_low_quality_fixes_neither_open_nor_close() -> None:
    bad = drive(every(0, [90.0] * 6), hdop=9.0)
    events, _ = run(ROAD, bad)
    assert speed_events(events) == []
    opened = drive(every(0, [70, 70, 70]))
    then_bad = drive(every(15, [40.0] * 4), x=312, hdop=9.0)
    events, _ = run(ROAD, opened + then_bad)
    assert speed_events(events) == [("speed.over", "truck", "open", 0)]


def test_fixes_without_a_speed_are_not_judged() -> None:
    fixes = [msgspec.structs.replace(f, speed_kmh=None) for f in drive(every(0, [80.0] * 6))]
    events, _ = run(ROAD, fixes)
    assert speed_events(events) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    speeds=st.lists(st.sampled_from([40.0, 52.0, 58.0, 63.0, 75.0]), min_size=4, max_size=40),
    gaps=st.lists(st.sampled_from([3.0, 5.0, 8.0, 12.0]), min_size=40, max_size=40),
    seed=st.integers(0, 2**32),
)
def test_any_arrival_order_gives_the_same_speed_alerts(
    speeds: list[float], gaps: list[float], seed: int
) -> None:
    rows, t = [], 0.0
    for speed, gap in zip(speeds, gaps, strict=False):
        rows.append((t, speed))
        t += gap
    track = drive(rows)
    shuffled = list(track)
    random.Random(seed).shuffle(shuffled)
    assert alerts(replay(ROAD, shuffled)) == alerts(replay(ROAD, track))


def test_the_limits_are_class_defaults_that_the_config_overrides() -> None:
    config = RulesConfig.from_mapping({"classes": {"coach": {"speed_limit_kmh": 70}}})
    assert config.for_class("coach").speed_limit_kmh == 70.0
    assert config.for_class("hazmat_truck").speed_limit_kmh == 60.0
    assert RulesConfig().for_class("school_bus").night_speed_factor == 0.8
    assert RulesConfig().for_class("fishing_vessel").speed_limit_kmh == 0.0  # none
    # a key set for every class beats the class defaults
    assert (
        RulesConfig.from_mapping({"speed_limit_kmh": 50}).for_class("coach").speed_limit_kmh == 50
    )
