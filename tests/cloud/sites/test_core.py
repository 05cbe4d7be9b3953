"""The pure site-point watch as timestamped sequences: levels with deadband and delay, stale,
frozen, rate of rise, and the settings a point resolves to."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from cloud.models import Limits, Point
from cloud.sites import SitesConfig
from cloud.sites.core import (
    Change,
    PointState,
    Profile,
    decode_state,
    encode_state,
    kind_of,
    on_clock,
    on_reading,
    profile,
)

T0 = 1_780_000_000_000
CONFIG = SitesConfig()
LEVEL = Point(site_id="s1", tag="T101.LT01", unit="m", limits=Limits(h=8.0, hh=9.0, deadband=0.1))


def feed(
    prof: Profile, samples: Sequence[tuple[int, float]], state: PointState | None = None
) -> tuple[PointState, list[tuple[str, str, int]]]:
    """Feed ``(seconds after T0, value)`` samples; return the state and the changes."""
    state = state or PointState()
    out: list[Change] = []
    for second, value in samples:
        state, found = on_reading(prof, state, ts_ms=T0 + second * 1000, value=value, good=True)
        out += found
    return state, [(c.action, c.condition, (c.ts_ms - T0) // 1000) for c in out]


def test_each_level_is_its_own_condition_and_the_deadband_stops_flapping() -> None:
    prof = profile(LEVEL, CONFIG)
    values = [7.0, 8.0, 7.95, 8.02, 7.92, 9.1, 8.95, 8.5, 7.89]
    _, changes = feed(prof, list(enumerate(values)))
    assert changes == [
        ("raise", "H", 1),  # 8.0 reaches H
        ("raise", "HH", 5),  # hovering at 7.92..8.02 stays inside the 0.1 deadband
        ("clear", "HH", 7),  # 8.95 is within HH's deadband, 8.5 is not
        ("clear", "H", 8),
    ]


def test_low_levels_mirror_the_high_ones() -> None:
    point = Point(site_id="s1", tag="O2", unit="%VOL", limits=Limits(l=19.5, deadband=0.2))
    _, changes = feed(profile(point, CONFIG), [(0, 20.9), (1, 19.5), (2, 19.6), (3, 19.8)])
    assert changes == [("raise", "L", 1), ("clear", "L", 3)]


def test_a_delay_needs_the_level_to_hold() -> None:
    point = Point(site_id="s1", tag="PT01", unit="MPa", limits=Limits(h=1.0, delay_s=5))
    prof = profile(point, CONFIG)
    _, changes = feed(prof, [(0, 1.2), (3, 0.5), (4, 1.1), (8, 1.1), (9, 1.3)])
    assert changes == [("raise", "H", 9)]  # the first spell was interrupted at 3 s


def test_readings_of_bad_quality_hold_levels_but_are_readings() -> None:
    prof = profile(LEVEL, CONFIG)
    state, _ = feed(prof, [(0, 8.5)])
    state, changes = on_reading(prof, state, ts_ms=T0 + 1000, value=1.0, good=False)
    assert changes == []
    assert "H" in state.active
    assert state.last_ms == T0 + 1000


def test_late_and_repeated_readings_change_nothing() -> None:
    prof = profile(LEVEL, CONFIG)
    state, _ = feed(prof, [(10, 8.5)])
    again, changes = on_reading(prof, state, ts_ms=T0 + 5000, value=1.0, good=True)
    assert again is state
    assert changes == []


def test_stale_by_the_clock_clears_on_the_next_reading() -> None:
    point = Point(site_id="s1", tag="LT01", unit="m", limits=Limits(poll_s=2))
    prof = profile(point, CONFIG)  # stale after 3 x 2 s
    state, _ = feed(prof, [(0, 5.0)])
    assert on_clock(prof, state, now_ms=T0 + 6000) == (state, [])
    state, changes = on_clock(prof, state, now_ms=T0 + 6001)
    assert [(c.action, c.condition) for c in changes] == [("raise", "stale")]
    assert on_clock(prof, state, now_ms=T0 + 60_000)[1] == []  # raised once
    _, cleared = feed(prof, [(70, 5.0)], state)
    assert cleared == [("clear", "stale", 70)]


def test_a_point_never_heard_is_not_stale() -> None:
    prof = profile(LEVEL, CONFIG)
    assert on_clock(prof, PointState(), now_ms=T0)[1] == []


def test_frozen_when_the_value_holds_too_long_and_cleared_by_a_change() -> None:
    point = Point(site_id="s1", tag="TT01", unit="°C", limits=Limits(frozen_s=60))
    prof = profile(point, CONFIG)
    state, changes = feed(prof, [(0, 20.0), (30, 20.0), (60, 20.0), (61, 20.0), (90, 20.0)])
    assert changes == [("raise", "frozen", 61)]
    _, changes = feed(prof, [(91, 20.1)], state)
    assert changes == [("clear", "frozen", 91)]


def test_frozen_zero_disables_and_gas_is_not_watched_by_default() -> None:
    gas = profile(Point(site_id="s1", tag="GT01", unit="%LEL"), CONFIG)
    assert gas.frozen_ms == 0
    _, changes = feed(gas, [(0, 0.0), (86_400, 0.0)])
    assert changes == []


def test_rate_of_rise_over_the_window() -> None:
    point = Point(
        site_id="s1", tag="LT01", unit="m", limits=Limits(span_lo=0.0, span_hi=20.0, frozen_s=0)
    )
    prof = profile(point, CONFIG)  # 5 % of 20 m per minute = 1 m/min
    assert prof.rate_pct_per_min == 5.0
    rising = [(s, 5.0 + s / 60 * 1.2) for s in range(0, 91, 10)]  # 1.2 m/min
    state, changes = feed(prof, rising)
    assert changes == [("raise", "rate", 30)]  # once the window is half covered
    steady = [(s, rising[-1][1] + (s - 90) / 60 * 0.1) for s in range(100, 200, 10)]
    _, changes = feed(prof, steady, state)
    assert [c[:2] for c in changes] == [("clear", "rate")]


def test_no_rate_without_a_span_or_for_other_kinds() -> None:
    assert profile(Point(site_id="s1", tag="LT01", unit="m"), CONFIG).rate_pct_per_min == 0
    temp = Point(site_id="s1", tag="TT01", unit="°C", limits=Limits(span_lo=0, span_hi=100))
    assert profile(temp, CONFIG).rate_pct_per_min == 0


def test_gas_points_without_limits_take_the_gb50493_alarm_values() -> None:
    prof = profile(Point(site_id="s1", tag="GT01", unit="%LEL"), CONFIG)
    assert prof.limits == {"H": 25.0, "HH": 50.0}
    _, changes = feed(prof, [(0, 10.0), (1, 26.0), (2, 55.0)])
    assert changes == [("raise", "H", 1), ("raise", "HH", 2)]


def test_kinds_from_the_point_the_unit_or_the_tag() -> None:
    assert kind_of(Point(site_id="s", tag="x", limits=Limits(kind="flow"))) == "flow"
    assert kind_of(Point(site_id="s", tag="x", unit="kPa")) == "pressure"
    assert kind_of(Point(site_id="s", tag="T101.LT01")) == "level"
    assert kind_of(Point(site_id="s", tag="T101.PIT-3")) == "pressure"
    assert kind_of(Point(site_id="s", tag="GT02")) == "gas"
    assert kind_of(Point(site_id="s", tag="V1")) == "other"


def test_state_round_trips_and_old_limits_stay_as_stored() -> None:
    prof = profile(LEVEL, CONFIG)
    state, _ = feed(prof, [(0, 8.5)])
    assert decode_state(encode_state(state)) == state
    assert decode_state(None) == PointState()
    assert msgspec.to_builtins(Limits(h=1.0)) == {"h": 1.0}  # no new keys in stored limits
