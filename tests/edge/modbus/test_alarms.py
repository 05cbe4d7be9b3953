"""Threshold alarms as timestamped tables: deadband, delay, escalation, restart in the middle."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edge.alarms import AlarmStateStore, Limits, PointAlarms, evaluate, restore

LEVEL = Limits(LL=0.5, L=1.0, H=18.0, HH=19.5, deadband=0.2, delay_s=2.0)


def run(
    limits: Limits, rows: Sequence[tuple[float, float | None]], state: PointAlarms | None = None
) -> tuple[PointAlarms, list[tuple[float, str, str]]]:
    """Feed (t_s, value) rows; return the end state and (t_s, state, level) events."""
    state = state or PointAlarms()
    out: list[tuple[float, str, str]] = []
    for t, value in rows:
        state, events = evaluate(limits, state, value, good=value is not None, now_s=t)
        out += [(t, e.state, e.level) for e in events]
    return state, out


def test_delay_suppresses_a_single_noisy_sample() -> None:
    _, events = run(LEVEL, [(0, 10), (1, 18.3), (2, 10), (3, 18.1), (4, 18.2), (5, 18.4)])
    assert events == [(5, "raise", "H")]


def test_deadband_holds_until_the_value_drops_clear_of_it() -> None:
    limits = Limits(H=18.0, HH=19.5, deadband=0.2)
    rows = [(0, 18.0), (1, 17.9), (2, 17.81), (3, 17.79), (4, 18.0)]
    _, events = run(limits, rows)
    assert events == [(0, "raise", "H"), (3, "clear", "H"), (4, "raise", "H")]


def test_escalation_and_de_escalation_per_level() -> None:
    limits = Limits(H=18.0, HH=19.5)
    _, events = run(limits, [(0, 10), (1, 19.6), (2, 18.5), (3, 10)])
    assert events == [
        (1, "raise", "H"),
        (1, "raise", "HH"),
        (2, "clear", "HH"),
        (3, "clear", "H"),
    ]


def test_low_side_and_oxygen_limits() -> None:
    o2 = Limits(L=19.5, H=23.5, deadband=0.2)
    _, events = run(o2, [(0, 20.9), (1, 19.5), (2, 19.6), (3, 19.8), (4, 23.5), (5, 20.9)])
    assert events == [(1, "raise", "L"), (3, "clear", "L"), (4, "raise", "H"), (5, "clear", "H")]
    _, events = run(LEVEL, [(0, 0.4), (2, 0.4), (3, 5.0)])
    assert events == [(2, "raise", "LL"), (2, "raise", "L"), (3, "clear", "LL"), (3, "clear", "L")]


def test_bad_quality_neither_raises_nor_clears_and_restarts_the_delay() -> None:
    limits = Limits(H=18.0, delay_s=2.0)
    rows: list[tuple[float, float | None]] = [(0, 18.5), (1, None), (2, 18.5), (3, 18.5), (4, 18.5)]
    state, events = run(limits, rows)
    assert events == [(4, "raise", "H")]
    state, events = run(limits, [(5, None), (6, None)], state)
    assert events == []
    assert state.active == {"H"}


def test_restart_in_the_middle_neither_re_raises_nor_loses_the_clear(tmp_path: Path) -> None:
    store = AlarmStateStore(tmp_path / "alarms.json")
    limits = Limits(H=18.0, HH=19.5, delay_s=1.0)
    state, events = run(limits, [(0, 19.7), (1, 19.7)])
    assert events == [(1, "raise", "H"), (1, "raise", "HH")]
    store.update("T101.LT01", frozenset(state.active))
    # the agent restarts: a new store reads the file, a new state comes from it
    store = AlarmStateStore(tmp_path / "alarms.json")
    restored = restore(store.active("T101.LT01"))  # type: ignore[arg-type]
    state, events = run(limits, [(100, 19.7), (101, 19.7)], restored)
    assert events == []  # still in alarm: nothing raised twice
    state, events = run(limits, [(102, 18.5)], state)
    assert events == [(102, "clear", "HH")]
    store.update("T101.LT01", frozenset(state.active))
    assert AlarmStateStore(tmp_path / "alarms.json").active("T101.LT01") == {"H"}


def test_a_corrupt_state_file_is_moved_aside_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "alarms.json"
    path.write_text("{not json")
    store = AlarmStateStore(path)
    assert store.corrupt == 1
    assert store.all() == {}
    assert path.with_suffix(".corrupt").exists()
    store.update("A", frozenset({"H"}))
    assert AlarmStateStore(path).all() == {"A": {"H"}}


def test_a_value_resting_on_the_limit_without_deadband_stays_in_alarm() -> None:
    # A gas detector resting at exactly its 25 %LEL first alarm: one raise, no chatter. A
    # high level is left only below limit - deadband, a low level only above limit + deadband.
    _, events = run(Limits(H=25.0), [(0, 25.0), (1, 25.0), (2, 25.0), (3, 24.9)])
    assert events == [(0, "raise", "H"), (3, "clear", "H")]
    _, events = run(Limits(L=19.5), [(0, 19.5), (1, 19.5), (2, 19.5), (3, 19.6)])
    assert events == [(0, "raise", "L"), (3, "clear", "L")]
    limits = Limits(H=18.0, deadband=0.25)
    _, events = run(limits, [(0, 18.0), (1, 17.75), (2, 17.75), (3, 17.7)])
    assert events == [(0, "raise", "H"), (3, "clear", "H")]
