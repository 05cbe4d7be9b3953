"""The fix filters as timestamped tables: impossible jumps, duplicates, fixes from the future.

shared/RULES.md, "Fix filters": a fix whose implied speed from the last accepted fix is above the
class maximum (hazmat truck 150 km/h, coach 180) is dropped, and the next one is judged against
the last accepted; a duplicate and a fix more than 5 min ahead of now are dropped. Drops are
counted by reason, in the asset's state (ever) and in each evaluation's outcome.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import wire
from cloud.rules.engine import Engine, Outcome
from cloud.rules.state import AssetState
from tests.cloud.rules.scenario import T0, brief, fix, run, world, zone

WORLD = world(
    zone("z", (20_000, -200, 20_400, 200)), assets={"truck": "hazmat_truck", "coach": "coach"}
)


def evaluate(
    fixes: Sequence[wire.Fix], *, now_s: float, state: AssetState | None = None
) -> Outcome:
    asset = fixes[0].asset
    states = {} if state is None else {asset: state}
    return Engine(WORLD).evaluate({asset: list(fixes)}, states, now_ms=T0 + int(now_s * 1000))


def taken(outcome: Outcome, asset: str = "truck") -> float:
    """Seconds after T0 of the last fix taken."""
    return (outcome.states[asset].last_ms - T0) / 1000


@pytest.mark.parametrize(
    ("asset", "rows", "dropped", "last_s"),
    [
        # 5 km in 60 s (300 km/h): dropped; 500 m from the first in 120 s is possible, though
        # 4.5 km from the dropped one in 60 s would not be
        ("truck", [(0, 0), (60, 5000), (120, 500)], {"jump": 1}, 120),
        # 5.5 km in 120 s from the last accepted is 165 km/h: dropped too, though 500 m from the
        # dropped fix in 60 s would be possible
        ("truck", [(0, 0), (60, 5000), (120, 5500)], {"jump": 2}, 0),
        # a coach may do 165 km/h (its maximum is 180)
        ("coach", [(0, 0), (60, 5000), (120, 5500)], {"jump": 1}, 120),
        # 2.4 km in 60 s is 144 km/h: possible for a hazmat truck
        ("truck", [(0, 0), (60, 2400)], {}, 60),
    ],
)
def test_an_impossible_jump_is_dropped_and_the_next_judged_against_the_last_accepted(
    asset: str, rows: list[tuple[float, float]], dropped: dict[str, int], last_s: float
) -> None:
    outcome = evaluate([fix(t, x, 0, asset=asset) for t, x in rows], now_s=120)
    assert outcome.dropped == dropped
    assert outcome.states[asset].dropped == dropped
    assert taken(outcome, asset) == last_s


def test_a_glitch_into_a_zone_raises_nothing() -> None:
    # two fixes 20 km away, 30 s apart: both dropped (each judged against the last accepted)
    rows = [fix(0, 0, 0), fix(30, 0, 10), fix(60, 20_200, 0), fix(90, 20_200, 0), fix(120, 0, 20)]
    events, states = run(WORLD, rows)
    assert brief(events) == []
    assert states["truck"].dropped == {"jump": 2}


def test_a_duplicate_is_dropped() -> None:
    first, again = fix(60, 100, 0), fix(60, 150, 0)
    outcome = evaluate([fix(0, 0, 0), first, again], now_s=90)
    assert outcome.dropped == {"duplicate": 1}
    assert outcome.states["truck"].last_lon == first.lon  # the first of the two is kept
    assert taken(outcome) == 60


@pytest.mark.parametrize(
    ("ahead_s", "dropped"),
    [(300, {}), (301, {"future": 1}), (3600, {"future": 1})],
)
def test_a_fix_more_than_5_min_ahead_of_now_is_dropped(
    ahead_s: float, dropped: dict[str, int]
) -> None:
    outcome = evaluate([fix(0, 0, 0), fix(60 + ahead_s, 100, 0)], now_s=60)
    assert outcome.dropped == dropped
    assert taken(outcome) == (0 if dropped else 60 + ahead_s)


def test_drops_are_counted_by_reason_in_the_state_and_in_each_outcome() -> None:
    first = evaluate(
        [fix(0, 0, 0), fix(30, 5000, 0), fix(60, 100, 0), fix(60, 120, 0), fix(900, 200, 0)],
        now_s=120,
    )
    assert first.dropped == {"jump": 1, "duplicate": 1, "future": 1}
    state = first.states["truck"]
    second = evaluate(
        [fix(120, 9000, 0), fix(150, 300, 0), fix(180, 9000, 0), fix(240, 400, 0)],
        now_s=240,
        state=state,
    )
    assert second.dropped == {"jump": 2}
    assert second.states["truck"].dropped == {"jump": 3, "duplicate": 1, "future": 1}
    assert state.dropped == {"jump": 1, "duplicate": 1, "future": 1}  # the given state unchanged


def test_a_fix_at_or_before_the_evaluated_time_goes_to_re_evaluation() -> None:
    # not a duplicate of this batch: an older fix of a later batch is late data
    first = evaluate([fix(0, 0, 0), fix(60, 100, 0)], now_s=60)
    second = evaluate([fix(60, 100, 0)], now_s=90, state=first.states["truck"])
    assert list(second.late) == ["truck"]
    assert second.dropped == {}
