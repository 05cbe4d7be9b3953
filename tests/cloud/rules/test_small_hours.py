"""Long-distance coaches in the small hours (``fatigue.small_hours``, cloud/rules/small_hours.py):
moving between 02:00 and 05:00 Beijing opens it at the first driving fix inside the window; it
closes at 05:00 by the clock, once per night; other coaches are not watched."""

from __future__ import annotations

import datetime as dt

from cloud.models import Asset
from cloud.rules.engine import Engine
from cloud.rules.events import Event
from cloud.rules.state import AssetState, decode_state, encode_state
from cloud.rules.windows import BEIJING
from cloud.rules.world import World
from tests.cloud.rules.scenario import fix

COACHES = [
    Asset(id="night-coach", enterprise_id="e1", asset_class="coach", long_distance=True),
    Asset(id="city-coach", enterprise_id="e1", asset_class="coach"),
]
WORLD = World.build([], COACHES)
#: 2026-07-02 00:00 Beijing, in seconds after scenario.T0 (2026-07-01 10:00 Beijing)
MIDNIGHT_S = 14 * 3600


def at(hhmm: str) -> float:
    """Seconds after scenario.T0 of a Beijing time on the night of 07-01 to 07-02."""
    hours, minutes = (int(p) for p in hhmm.split(":"))
    return MIDNIGHT_S + hours * 3600 + minutes * 60


def drive(asset: str, start: str, end: str, *, speed: float = 70.0, x0: float = 0.0) -> list:  # type: ignore[type-arg]
    """A fix every 60 s from ``start`` to ``end`` (Beijing) from ``x0`` east, 1.17 km apart at
    70 km/h (standing at ``x0`` at speed 0)."""
    t0, t1 = at(start), at(end)
    count = int((t1 - t0) // 60) + 1
    step = 1166.7 if speed > 0 else 0.0
    return [fix(t0 + 60 * i, x0 + step * i, 0, asset=asset, speed=speed) for i in range(count)]


def small_hours(events: list[Event]) -> list[tuple[str, str]]:
    def beijing(ts: int) -> str:
        return dt.datetime.fromtimestamp(ts / 1000, BEIJING).strftime("%H:%M")

    return [(e.action, beijing(e.ts)) for e in events if e.kind == "fatigue.small_hours"]


def run(asset: str, fixes: list, until: str | None = None) -> list[Event]:  # type: ignore[type-arg]
    engine = Engine(WORLD)
    states: dict[str, AssetState] = {}
    events: list[Event] = []
    for f in fixes:
        outcome = engine.evaluate({asset: [f]}, states, now_ms=f.ts)
        states.update(outcome.states)
        events += outcome.events
    if until is not None:
        outcome = engine.tick(states, until_ms=fixes[0].ts + int((at(until) - at("00:00")) * 1000))
        events += outcome.events
    return events


def test_a_long_distance_coach_driving_through_the_small_hours() -> None:
    events = run("night-coach", drive("night-coach", "01:30", "05:30"))
    assert small_hours(events) == [("open", "02:00"), ("close", "05:00")]


def test_one_alert_per_night_and_only_while_moving() -> None:
    away = 1166.7 * 19  # where the drive from 02:11 to 02:30 ends
    fixes = (
        drive("night-coach", "01:50", "02:10", speed=0.0)  # parked: nothing
        + drive("night-coach", "02:11", "02:30")  # drives: opens
        + drive("night-coach", "02:31", "03:30", speed=0.0, x0=away)  # stops (a rest)
        + drive("night-coach", "03:31", "04:00", x0=away)  # drives again: the same alert
    )
    events = run("night-coach", fixes, until="06:00")
    # (the fix at 02:11 still stands where the coach was parked: its 70 km/h is contradicted
    # by the distance covered, so driving is first seen at 02:12)
    assert small_hours(events) == [("open", "02:12"), ("close", "05:00")]


def test_the_clock_closes_it_at_five() -> None:
    events = run("night-coach", drive("night-coach", "04:00", "04:20"), until="05:30")
    assert small_hours(events) == [("open", "04:00"), ("close", "05:00")]


def test_other_coaches_may_drive_at_night() -> None:
    assert small_hours(run("city-coach", drive("city-coach", "01:30", "05:30"))) == []


def test_the_state_survives_a_restart_in_the_window() -> None:
    fixes = drive("night-coach", "01:30", "05:30")
    whole = small_hours(run("night-coach", fixes))
    engine = Engine(WORLD)
    states: dict[str, AssetState] = {}
    events: list[Event] = []
    for n, f in enumerate(fixes):
        if n == len(fixes) // 2:  # a worker restarts at 03:30: the state comes back from bytes
            states = {a: decode_state(encode_state(s)) for a, s in states.items()}
            engine = Engine(World.build([], COACHES))
        outcome = engine.evaluate({"night-coach": [f]}, states, now_ms=f.ts)
        states.update(outcome.states)
        events += outcome.events
    assert small_hours(events) == whole
