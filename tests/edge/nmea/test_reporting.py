"""Reporting strategy: time, distance, heading change, quality change, alarms; config."""

from __future__ import annotations

from pathlib import Path

import pytest

import wire
from edge.errors import ConfigError
from edge.reporting import Reporter, ReportPolicy, haversine_m


def fix(
    t_s: float,
    lat: float = 31.0,
    lon: float = 121.0,
    *,
    course: float | None = 90.0,
    speed_kmh: float = 40.0,
    asset: str = "truck-1",
    quality: wire.FixQuality = "good",
) -> wire.Fix:
    return wire.Fix(
        seq=0,
        ts=int(t_s * 1000),
        asset=asset,
        lat=lat,
        lon=lon,
        course=course,
        speed_kmh=speed_kmh,
        quality=quality,
    )


def test_haversine_one_degree_of_latitude() -> None:
    assert haversine_m(30.0, 120.0, 31.0, 120.0) == pytest.approx(111_195, rel=1e-3)


def test_interval_rule() -> None:
    reporter = Reporter(ReportPolicy(interval_s=30, distance_m=0, heading_change_deg=0))
    decisions = [reporter.decide(fix(t)) for t in range(0, 91)]
    sent = [t for t, reason in enumerate(decisions) if reason]
    assert sent == [0, 30, 60, 90]
    assert decisions[0] == "first"
    assert decisions[30] == "interval"
    assert reporter.suppressed == 87


def test_distance_rule() -> None:
    reporter = Reporter(ReportPolicy(interval_s=0, distance_m=100, heading_change_deg=0))
    # about 11.1 m per step north
    sent = [t for t in range(40) if reporter.decide(fix(t, 31.0 + t * 0.0001))]
    assert sent == [0, 9, 18, 27, 36]


def test_heading_rule_keeps_corners_but_ignores_course_noise_when_slow() -> None:
    reporter = Reporter(ReportPolicy(interval_s=0, distance_m=0, heading_change_deg=30))
    assert reporter.decide(fix(0, course=90)) == "first"
    assert reporter.decide(fix(1, course=110)) is None
    assert reporter.decide(fix(2, course=125)) == "heading"
    assert reporter.decide(fix(3, course=300, speed_kmh=1.0)) is None  # parked: noise
    assert reporter.decide(fix(4, course=100)) is None
    assert reporter.decide(fix(5, course=350)) == "heading"  # wraps: 125 -> 350 is 135 deg
    assert reporter.decide(fix(6, course=10)) is None  # 350 -> 10 is 20 deg


def test_alarm_and_quality_change_send_at_once() -> None:
    reporter = Reporter(ReportPolicy(interval_s=60, distance_m=0, heading_change_deg=0))
    assert reporter.decide(fix(0)) == "first"
    assert reporter.decide(fix(1)) is None
    assert reporter.decide(fix(2), alarm=True) == "alarm"
    reporter.force("truck-1")
    assert reporter.decide(fix(3)) == "alarm"
    assert reporter.decide(fix(4)) is None
    assert reporter.decide(fix(5, quality="dead_reckoning")) == "quality"
    assert reporter.sent == {"first": 1, "alarm": 2, "quality": 1}


def test_assets_are_independent_and_bounded() -> None:
    reporter = Reporter(ReportPolicy(), max_assets=2)
    assert reporter.decide(fix(0, asset="a")) == "first"
    assert reporter.decide(fix(0, asset="b")) == "first"
    assert reporter.decide(fix(1, asset="a")) is None
    assert reporter.decide(fix(1, asset="c")) == "first"  # forgets a, the least recently sent
    assert reporter.decide(fix(2, asset="b")) is None
    assert reporter.decide(fix(2, asset="a")) == "first"


def test_min_interval_and_clock_going_back() -> None:
    reporter = Reporter(ReportPolicy(interval_s=1, min_interval_s=5))
    assert reporter.decide(fix(10)) == "first"
    assert reporter.decide(fix(12)) is None
    assert reporter.decide(fix(15)) == "interval"
    assert reporter.decide(fix(3)) == "interval"


def test_policy_from_table() -> None:
    base = ReportPolicy(interval_s=60)
    policy = ReportPolicy.from_table(
        {"distance_m": 50}, file="a.toml", key="gnss.report", base=base
    )
    assert policy == ReportPolicy(interval_s=60, distance_m=50)
    with pytest.raises(ConfigError, match=r"a.toml: gnss.report.distanse_m: unknown key"):
        ReportPolicy.from_table({"distanse_m": 5}, file=Path("a.toml"), key="gnss.report")
    with pytest.raises(ConfigError, match=r"gnss.report.interval_s: must be a number >= 0"):
        ReportPolicy.from_table({"interval_s": "30"}, file="a.toml", key="gnss.report")
