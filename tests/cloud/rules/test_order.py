"""Any arrival order of the same fixes gives the same alerts as the ordered stream.

shared/RULES.md: the same alerts (rule, asset, zone/lot/trip, kind), each opened and closed at
the same observation times, late flags aside; an alert opened from newer data before older data
arrived keeps its identity and takes the earlier start. Fixes go through replay (the service's
late-data path: re-evaluation from a checkpoint, reconciled with what was raised) in the order
hypothesis draws: outage backlogs (a stretch arriving after newer fixes) and full shuffles.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wire
from cloud.rules.events import CONDITIONS, Event, alert_key
from cloud.rules.replay import replay
from tests.cloud.rules.scenario import fix, lot, world, zone

WORLD = world(
    zone("ban", (0, 0, 400, 400), zone_kind="restricted"),
    zone("school", (600, 0, 900, 300), zone_kind="school", trigger="enter"),
    zone(
        "night", (-600, -300, -200, 100), zone_kind="restricted", windows=[{"daily": "10:05-10:25"}]
    ),
    lot("lot", (1200, 0, 1500, 300)),
)


@dataclass
class Alert:
    kind: str
    ref: str
    start: int
    end: int | None = None
    escalated: bool = False


Alerts = tuple[list[tuple[str, str, int, int | None, bool]], set[tuple[str, str, int]]]


def alerts(events: Iterable[Event]) -> Alerts:
    """The alerts a stream of events leaves, as the alert service keeps them: conditions as
    (kind, ref, start, end, escalated), instant findings as (kind, ref, ts). A withdrawn one is
    gone; an update corrects the start (``start_ms``, found by ``was_ms``), the end (``end_ms``,
    ``None``: open again) or the escalation; an ``open`` with ``end_ms`` is over already."""
    conditions: dict[tuple[str, int], Alert] = {}  # (key, start) -> alert
    open_: dict[str, int] = {}  # key -> start of its open alert
    instants: set[tuple[str, str, int]] = set()
    for event in events:
        key, details = alert_key(event), event.details
        if event.kind not in CONDITIONS:
            if event.action == "open":
                instants.add((event.kind, event.ref, event.ts))
            elif event.action == "withdraw":
                instants.discard((event.kind, event.ref, event.ts))
            continue
        if event.action == "open":
            alert = Alert(event.kind, event.ref, event.ts)
            if "end_ms" in details:  # over already: a closed alert
                alert.end, alert.escalated = details["end_ms"], details["escalated"]
            else:
                assert key not in open_, f"{key} opened twice"
                open_[key] = event.ts
            conditions[(key, event.ts)] = alert
            continue
        was = open_[key] if event.action in ("close", "escalate") else details.get("was_ms")
        was = int(details["start_ms"] if was is None else was)
        alert = conditions.pop((key, was))
        if event.action == "withdraw":
            if open_.get(key) == was:
                del open_[key]
            continue
        if event.action == "update":
            alert.start = int(details["start_ms"])
            alert.escalated = bool(details.get("escalated", alert.escalated))
            if "end_ms" in details:
                alert.end = details["end_ms"]
                if alert.end is None:
                    open_[key] = alert.start
        elif event.action == "escalate":
            alert.escalated = True
        elif event.action == "close":
            alert.end = event.ts
            del open_[key]
        if open_.get(key) == was:
            open_[key] = alert.start
        conditions[(key, alert.start)] = alert
    done = [(a.kind, a.ref, a.start, a.end, a.escalated) for a in conditions.values()]
    return sorted(done, key=lambda a: (a[0], a[1], a[2])), instants


@st.composite
def tracks(draw: st.DrawFn) -> list[wire.Fix]:
    """A hazmat truck wandering among the zones and the lot, with stops and GPS noise."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    x, y, t = -800.0, 150.0, 0.0
    fixes = []
    for _ in range(draw(st.integers(20, 70))):
        t += rng.choice((10, 15, 30, 60))
        if rng.random() < 0.15:  # a stop of a few minutes
            for _ in range(rng.randint(3, 25)):
                fixes.append(fix(t, x + rng.uniform(-3, 3), y + rng.uniform(-3, 3), speed=0.0))
                t += 30
            continue
        x += rng.uniform(-30, 160)
        y += rng.uniform(-40, 40)
        fixes.append(fix(t, x, y, speed=rng.uniform(20, 60)))
    return fixes


def _backlog(fixes: list[wire.Fix], start: int, length: int) -> list[wire.Fix]:
    """A stretch held back by an outage, sent after the newer fixes (newest first beside it)."""
    held = fixes[start : start + length]
    return [*fixes[:start], *fixes[start + length :], *held]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(track=tracks(), data=st.data())
def test_a_backlog_after_newer_fixes_gives_the_same_alerts(
    track: list[wire.Fix], data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, max(0, len(track) - 2)))
    length = data.draw(st.integers(1, max(1, len(track) - start)))
    ordered = list(replay(WORLD, track))
    late = list(replay(WORLD, _backlog(track, start, length)))
    assert alerts(late) == alerts(ordered)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(track=tracks(), seed=st.integers(0, 2**32))
def test_any_arrival_order_gives_the_same_alerts(track: list[wire.Fix], seed: int) -> None:
    shuffled = list(track)
    random.Random(seed).shuffle(shuffled)
    assert alerts(replay(WORLD, shuffled)) == alerts(replay(WORLD, track))


def test_an_alert_opened_from_newer_data_takes_the_earlier_start() -> None:
    """The truck is in the ban from t=110; the fixes of 110-150 arrive after those of 160-200."""
    track = [fix(t, -300 + t * 2.5, 200) for t in range(0, 101, 10)]  # x=-50 at t=100
    inside = [fix(t, 150, 200) for t in range(110, 201, 10)]
    ordered = [*track, *inside]
    late = [*track, *inside[5:], *inside[:5]]
    first = list(replay(WORLD, ordered))
    second = list(replay(WORLD, late))
    assert alerts(first) == alerts(second)
    opened = [e for e in second if e.kind == "zone.forbidden"]
    assert [e.action for e in opened] == ["open", "update"]
    assert "late" in opened[1].flags
