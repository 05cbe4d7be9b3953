"""Offline as timestamped tables (shared/RULES.md, "Offline and vessels"; cloud/rules/offline.py).

Silent longer than the class allows (vehicles 10 min, fishing vessels 2 h) while last seen
moving, and not confirmed inside a lot: ``offline.silent`` opens by the clock at the last fix +
that, closes at the next fix. After a gap of at least 10 min, a first fix more than 1 km from
the last one is ``offline.moved`` (instantaneous). Times are seconds after T0.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wire
from cloud.rules.events import Event
from cloud.rules.replay import replay
from tests.cloud.rules.scenario import T0, brief, fix, lot, run, world
from tests.cloud.rules.test_order import alerts

Brief = list[tuple[str, str, str, float]]
CLASSES = {"truck": "hazmat_truck", "boat": "fishing_vessel", "bus": "school_bus"}
ROAD = world(lot("L", (1000, -200, 1400, 200)), assets=CLASSES)


def offline(events: Iterable[Event]) -> Brief:
    return [b for b in brief(events) if b[0].startswith("offline.")]


def moving(start: float, end: float, *, x: float = 0.0, asset: str = "truck",
           speed: float = 36.0, every: float = 10.0) -> list[wire.Fix]:  # fmt: skip
    """Fixes east at ``speed`` from (x, 0), every ``every`` s from ``start`` to ``end``."""
    count = int((end - start) // every) + 1
    step = speed / 3.6 * every
    return [fix(start + every * i, x + step * i, 0, speed=speed, asset=asset) for i in range(count)]


def test_silent_while_moving_opens_by_the_clock() -> None:
    events, _ = run(ROAD, moving(0, 300), until_s=3600)
    assert offline(events) == [("offline.silent", "truck", "open", 900)]  # last fix + 10 min
    assert events[-1].details == {"last_ms": T0 + 300_000, "offline_s": 600.0}


@pytest.mark.parametrize(
    ("until_s", "expected"),
    [(900, []), (901, [("offline.silent", "truck", "open", 900)])],
    ids=["exactly 10 min", "longer"],
)
def test_silent_means_longer_than_10_min(until_s: float, expected: Brief) -> None:
    events, _ = run(ROAD, moving(0, 300), until_s=until_s)
    assert offline(events) == expected


def test_the_next_fix_closes_it() -> None:
    fixes = moving(0, 300) + moving(1500, 1600, x=5000)  # 2 km on from x = 3000 in 20 min
    events, _ = run(ROAD, fixes)
    assert offline(events) == [
        ("offline.silent", "truck", "open", 900),
        ("offline.silent", "truck", "close", 1500),
        ("offline.moved", "truck", "open", 1500),
    ]
    closed, moved = events[1:3] if events[1].action == "close" else events[2:4]
    assert closed.details == {"silent_s": 1200.0}
    assert moved.details == {"gap_s": 1200.0, "distance_m": pytest.approx(2000, abs=10)}


def test_a_fix_exactly_10_min_later_is_no_silence() -> None:
    events, _ = run(ROAD, moving(0, 300) + moving(900, 950, x=3000))
    assert offline(events) == []


def test_silent_when_last_seen_stopped_is_no_alert() -> None:
    stopped = [fix(300.0 + 10 * i, 2900, 0, speed=0.0) for i in range(3)]
    events, _ = run(ROAD, moving(0, 290) + stopped, until_s=7200)
    assert offline(events) == []


def test_silent_in_a_lot_is_no_alert() -> None:
    # creeping into the lot at 9 km/h (over the stop speed), confirmed inside, then silent
    into = moving(0, 120, x=1050, speed=9.0, every=30.0)  # 75 m per 30 s: x 1050 to 1350
    events, _ = run(ROAD, into, until_s=7200)
    assert offline(events) == []


def test_a_fishing_vessel_may_be_silent_2_h() -> None:
    trip = moving(0, 300, x=-3000, asset="boat", speed=15.0, every=30.0)
    events, _ = run(ROAD, trip, until_s=3 * 3600)
    assert offline(events) == [("offline.silent", "boat", "open", 300 + 7200)]


@pytest.mark.parametrize(
    ("gap_s", "moved_m", "moved"),
    [
        (900, 2000, True),
        (600, 1100, True),  # at least 10 min, more than 1 km
        (900, 900, False),  # under 1 km
        (540, 2000, False),  # a gap under 10 min
    ],
)
def test_moved_while_offline(gap_s: float, moved_m: float, moved: bool) -> None:
    # last seen stopped (no silence alert), found elsewhere after the gap
    fixes = [fix(0, 0, -1000, speed=0.0), fix(gap_s, 0, -1000 + moved_m, speed=0.0)]
    events, _ = run(ROAD, fixes)
    expected = [("offline.moved", "truck", "open", gap_s)] if moved else []
    assert offline(events) == expected


def test_a_backlog_that_fills_the_silence_withdraws_it() -> None:
    # the fixes of 300-1500 arrive after those of 1500-1800: the replay clock saw a silence
    track = moving(0, 1800)
    late = [f for f in track if not 300 < (f.ts - T0) / 1000 < 1500]
    late += [f for f in track if 300 < (f.ts - T0) / 1000 < 1500]
    found = list(replay(ROAD, late))
    assert ("offline.silent", "open") in [(e.kind, e.action) for e in found]
    assert alerts(found) == alerts(replay(ROAD, track)) == ([], set())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(st.sampled_from([10.0, 60.0, 400.0, 700.0, 1500.0]),
                  st.sampled_from([0.0, 50.0, 900.0, 2500.0])),
        min_size=3, max_size=30,
    ),
    seed=st.integers(0, 2**32),
)  # fmt: skip
def test_any_arrival_order_gives_the_same_offline_alerts(
    steps: list[tuple[float, float]], seed: int
) -> None:
    # gaps (some over 10 min), moves (some over 1 km), stopped or moving when last seen
    fixes, t, x = [], 0.0, -5000.0
    for gap, moved in steps:
        t, x = t + gap, x + moved
        fixes.append(fix(t, x, 3000, speed=0.0 if moved == 0 else 30.0))
    shuffled = list(fixes)
    random.Random(seed).shuffle(shuffled)
    assert alerts(replay(ROAD, shuffled)) == alerts(replay(ROAD, fixes))
