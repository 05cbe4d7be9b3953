"""Fatigue as timestamped tables (shared/RULES.md, "Fatigue"; cloud/rules/fatigue.py).

Driving = over 5 km/h; a driving fix vouches for driving until the next one, for at most 10 min.
A stop of 20 min is a rest (confirmed at its start + 20 min): continuous and night driving
start again, their alerts close dated at the rest's start. Over 4 h of continuous driving opens
``fatigue.continuous`` (a pre-warning, instantaneous, at 3 h 45 min); over 2 h of it inside
22:00-06:00 ``fatigue.night``; over 8 h on one Beijing day ``fatigue.daily`` (hazmat trucks and
coaches), which closes at midnight. Times are seconds after T0 (10:00 Beijing): midnight is
``MIDNIGHT``; fixes come every minute at 50 km/h heading east.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wire
from cloud.models import Asset
from cloud.rules.config import RulesConfig
from cloud.rules.engine import Engine
from cloud.rules.events import Event
from cloud.rules.replay import replay
from cloud.rules.state import AssetState, decode_state, encode_state
from cloud.rules.world import World
from tests.cloud.rules.scenario import T0, brief, fix, run, world
from tests.cloud.rules.test_order import alerts

Brief = list[tuple[str, str, str, float]]
H = 3600.0
MIDNIGHT = 14 * H
CLASSES = {"truck": "hazmat_truck", "bus": "school_bus", "coach": "coach", "boat": "fishing_vessel"}
ROAD = world(assets=CLASSES)


def schedule(
    *spells: tuple[str, float, float], asset: str = "truck", every: float = 60.0
) -> list[wire.Fix]:
    """Fixes of ("drive" | "stop", from, to) spells (``to`` excluded), every ``every`` s."""
    fixes, x = [], 0.0
    for what, start, end in spells:
        speed = 50.0 if what == "drive" else 0.0
        t = start
        while t < end:
            fixes.append(fix(t, x, 0, speed=speed, asset=asset))
            x += speed / 3.6 * every
            t += every
    return fixes


def fatigue(events: Iterable[Event]) -> Brief:
    return [b for b in brief(events) if b[0].startswith("fatigue.")]


#: 2 h driving, a 15 min stop (no rest), 2 h 15 min driving, a 25 min stop (a rest), 5 h 5 min
#: driving: a simulated working day of 10 h behind the wheel.
DAY = (
    ("drive", 0, 2 * H),
    ("stop", 2 * H, 2.25 * H),
    ("drive", 2.25 * H, 4.5 * H),
    ("stop", 4.5 * H, 4.5 * H + 1500),
    ("drive", 4.5 * H + 1500, 10 * H),
)


def test_a_working_day_with_a_short_stop_and_a_rest() -> None:
    events, _ = run(ROAD, schedule(*DAY), until_s=MIDNIGHT + 60)
    rest = 4.5 * H + 1500  # driving again after the rest
    assert fatigue(events) == [
        # 2 h + 1 h 45 min: the short stop neither reset nor added
        ("fatigue.continuous_warning", "truck", "open", 4 * H),
        ("fatigue.continuous", "truck", "open", 4.25 * H),
        # the rest began at 4.5 h (confirmed 20 min later): the alert closes there
        ("fatigue.continuous", "truck", "close", 4.5 * H),
        # 4.25 h of driving by the rest, 8 h at rest + 3.75 h
        # each limit warned of 15 min before: the day's 8 h first
        ("fatigue.daily_warning", "truck", "open", rest + 3.5 * H),
        ("fatigue.continuous_warning", "truck", "open", rest + 3.75 * H),
        ("fatigue.daily", "truck", "open", rest + 3.75 * H),
        ("fatigue.continuous", "truck", "open", rest + 4 * H),
        ("fatigue.daily", "truck", "close", MIDNIGHT),
    ]
    by_kind = {(e.kind, e.action): e.details for e in events if e.kind.startswith("fatigue.")}
    assert by_kind[("fatigue.continuous", "close")] == {"start_ms": T0 + 15300_000,
                                                        "duration_s": 900.0}  # fmt: skip
    # (the last fix, at 10 h - 1 min, vouches for 10 more minutes of driving)
    assert by_kind[("fatigue.daily", "close")] == {
        "start_ms": T0 + int((rest + 3.75 * H) * 1000), "driving_s": 10 * H - 1500 - 900 + 540
    }  # fmt: skip
    assert by_kind[("fatigue.continuous_warning", "open")] == {"driving_s": 13500.0,
                                                               "limit_s": 14400.0}  # fmt: skip


def test_the_rest_is_confirmed_by_the_clock() -> None:
    fixes = schedule(("drive", 0, 4.5 * H), ("stop", 4.5 * H, 4.5 * H + 60))
    events, _ = run(ROAD, fixes)
    assert fatigue(events)[-1] == ("fatigue.continuous", "truck", "open", 4 * H)
    events, _ = run(ROAD, fixes, until_s=4.5 * H + 1200)
    assert fatigue(events)[-1] == ("fatigue.continuous", "truck", "close", 4.5 * H)


def test_a_19_min_stop_is_no_rest() -> None:
    fixes = schedule(
        ("drive", 0, 3 * H), ("stop", 3 * H, 3 * H + 1140), ("drive", 3 * H + 1140, 5 * H)
    )
    events, _ = run(ROAD, fixes, until_s=6 * H)
    assert fatigue(events) == [
        ("fatigue.continuous_warning", "truck", "open", 3.75 * H + 1140),
        ("fatigue.continuous", "truck", "open", 4 * H + 1140),
    ]


def test_driving_exactly_4_h_is_not_over_4_h() -> None:
    events, _ = run(ROAD, schedule(("drive", 0, 4 * H), ("stop", 4 * H, 5 * H)), until_s=6 * H)
    assert fatigue(events) == [("fatigue.continuous_warning", "truck", "open", 3.75 * H)]


def test_the_pre_warning_and_the_alert_come_between_sparse_fixes() -> None:
    # a fix every 7 min: 3 h 45 min and 4 h fall between fixes
    events, _ = run(ROAD, schedule(("drive", 0, 4.5 * H), every=420.0))
    assert fatigue(events) == [
        ("fatigue.continuous_warning", "truck", "open", 3.75 * H),
        ("fatigue.continuous", "truck", "open", 4 * H),
    ]


def test_the_clock_brings_the_pre_warning_while_the_terminal_is_silent() -> None:
    # driving until 3 h 40 min, then silent: the last fix vouches for 10 more minutes of it
    events, _ = run(ROAD, schedule(("drive", 0, 3 * H + 2400)), until_s=5 * H)
    assert fatigue(events) == [("fatigue.continuous_warning", "truck", "open", 3.75 * H)]


def test_a_long_data_gap_counts_10_min_of_driving_then_nothing() -> None:
    # the last fix before the gap at 59 min, the next at 1 h 50 min: 69 min counted by then
    fixes = schedule(("drive", 0, H), ("drive", H + 3000, 6 * H))
    events, _ = run(ROAD, fixes)
    counted = 3540 + 600
    assert fatigue(events) == [
        ("fatigue.continuous_warning", "truck", "open", H + 3000 + 3.75 * H - counted),
        ("fatigue.continuous", "truck", "open", H + 3000 + 4 * H - counted),
    ]


def test_a_night_drive() -> None:
    # a coach from 22:30 to 01:00: 2 h inside the night window at 00:30
    events, _ = run(ROAD, schedule(("drive", 12.5 * H, 15 * H), asset="coach"))
    assert fatigue(events) == [
        ("fatigue.night_warning", "coach", "open", 14.25 * H),
        ("fatigue.night", "coach", "open", 14.5 * H),
    ]


def test_night_driving_adds_up_across_a_short_stop_and_not_before_22() -> None:
    # from 21:00: 1 h before the night, a 10 min stop at 23:00, 2 h of night at 01:10
    spells = (("drive", 11 * H, 13 * H), ("stop", 13 * H, 13 * H + 600),
              ("drive", 13 * H + 600, 14.5 * H))  # fmt: skip
    events, _ = run(ROAD, schedule(*spells, asset="coach"))
    assert fatigue(events) == [
        ("fatigue.night_warning", "coach", "open", 13.75 * H + 600),
        ("fatigue.night", "coach", "open", 14 * H + 600),
    ]


#: 3.5 h, a 30 min rest, 3.5 h, a 30 min rest, 2 h: 9 h of driving, never 4 h in a row
DAILY = (
    ("drive", 0, 3.5 * H),
    ("stop", 3.5 * H, 4 * H),
    ("drive", 4 * H, 7.5 * H),
    ("stop", 7.5 * H, 8 * H),
    ("drive", 8 * H, 10 * H),
)


@pytest.mark.parametrize(
    ("asset", "expected"),
    [
        ("coach", [("fatigue.daily_warning", "coach", "open", 8.75 * H),
                   ("fatigue.daily", "coach", "open", 9 * H),
                   ("fatigue.daily", "coach", "close", MIDNIGHT)]),
        ("truck", [("fatigue.daily_warning", "truck", "open", 8.75 * H),
                   ("fatigue.daily", "truck", "open", 9 * H),
                   ("fatigue.daily", "truck", "close", MIDNIGHT)]),
        ("bus", []),  # no daily limit for school buses
        ("boat", []),  # nor any fatigue rule for vessels
    ],
)  # fmt: skip
def test_the_daily_limit(asset: str, expected: Brief) -> None:
    events, _ = run(ROAD, schedule(*DAILY, asset=asset), until_s=MIDNIGHT + 3600)
    assert fatigue(events) == expected


def test_the_day_ends_at_midnight_for_the_count_too() -> None:
    # from 19:00, with rests: 4 h before midnight and 3 h 10 min after: no daily alert
    spells = (("drive", 9 * H, 12 * H), ("stop", 12 * H, 12.5 * H), ("drive", 12.5 * H, 13.5 * H),
              ("stop", 13.5 * H, 14 * H), ("drive", 14 * H, 17 * H))  # fmt: skip
    events, _ = run(ROAD, schedule(*spells), until_s=18 * H)
    assert [b for b in fatigue(events) if b[0] == "fatigue.daily"] == []


def _evaluate(
    engine: Engine, fixes: list[wire.Fix], states: Mapping[str, AssetState]
) -> tuple[list[Event], dict[str, AssetState]]:
    events, current = [], dict(states)
    for item in fixes:
        outcome = engine.evaluate({item.asset: [item]}, current, now_ms=item.ts)
        current.update(outcome.states)
        events += outcome.events
    return events, current


def test_a_restart_in_the_middle_of_a_drive_changes_nothing() -> None:
    fixes = schedule(*DAY)
    whole, _ = _evaluate(Engine(ROAD), fixes, {})
    half = len(fixes) // 2
    first, states = _evaluate(Engine(ROAD), fixes[:half], {})
    stored = {a: encode_state(s) for a, s in states.items()}  # the live state, as bytes
    restored = {a: decode_state(raw) for a, raw in stored.items()}
    second, _ = _evaluate(Engine(ROAD), fixes[half:], restored)  # another worker, a new engine
    assert first + second == whole
    assert fatigue(whole)[:3] == [
        ("fatigue.continuous_warning", "truck", "open", 4 * H),
        ("fatigue.continuous", "truck", "open", 4.25 * H),
        ("fatigue.continuous", "truck", "close", 4.5 * H),
    ]


def test_a_backlog_gives_the_same_fatigue_alerts() -> None:
    # an hour of the drive (with the second pre-warning and the daily alert at 8 h 40 min)
    # arrives after the rest of the day
    fixes = schedule(*DAY, every=120.0)
    held = [f for f in fixes if 8 * H <= (f.ts - T0) / 1000 < 9 * H]
    late = [f for f in fixes if f not in held] + held
    ordered = list(replay(ROAD, fixes))
    assert alerts(replay(ROAD, late)) == alerts(ordered)
    daily = ("fatigue.daily", "truck", int(T0 + (4.5 * H + 1500 + 3.75 * H) * 1000), None, False)
    assert daily in alerts(ordered)[0]


#: Fatigue in minutes instead of hours, so a shuffled day stays small.
QUICK = World.build(
    [],
    [Asset(id="coach", enterprise_id="e1", asset_class="coach")],
    config=RulesConfig.from_mapping(
        {"classes": {"coach": {"fatigue_continuous_s": 900, "fatigue_warning_s": 120,
                               "fatigue_night_s": 600, "fatigue_daily_s": 1500, "rest_s": 180,
                               "fatigue_gap_s": 90, "offline_s": 3600}}}
    ),
)  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # at most 5 h: late data is judged exactly within the checkpoint horizon (6 h) only
    spells=st.lists(
        st.tuples(st.booleans(), st.integers(1, 25), st.sampled_from([20.0, 45.0, 90.0])),
        min_size=2, max_size=8,
    ),
    start=st.sampled_from([0.0, 11.9 * H, 13.95 * H]),  # 09:54, 21:54, 23:57
    seed=st.integers(0, 2**32),
)  # fmt: skip
def test_any_arrival_order_gives_the_same_fatigue_alerts(
    spells: list[tuple[bool, int, float]], start: float, seed: int
) -> None:
    fixes, t, x = [], start, 0.0
    for driving, count, every in spells:
        for _ in range(count):
            speed = 40.0 if driving else 0.0
            fixes.append(fix(t, x, 0, speed=speed, asset="coach"))
            t, x = t + every, x + speed / 3.6 * every
    shuffled = list(fixes)
    random.Random(seed).shuffle(shuffled)
    ordered = list(replay(QUICK, fixes, until_ms=T0 + int((t + 2 * H) * 1000)))
    found = list(replay(QUICK, shuffled, until_ms=T0 + int((t + 2 * H) * 1000)))
    assert alerts(found) == alerts(ordered)
