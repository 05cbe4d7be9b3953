"""Pure thinning choices."""

from __future__ import annotations

from edge.buffer.thinning import StopPoint, thin_readings, thin_stops


def stop(seq: int, asset: str = "a", *, lat: float = 30.0, speed: float | None = 0.0) -> StopPoint:
    return StopPoint(seq, asset, lat, 120.0, speed)


def test_long_stop_keeps_first_last_and_every_other() -> None:
    fixes = [stop(n) for n in range(1, 9)]
    assert thin_stops(fixes, min_run=6) == [2, 4, 6]


def test_short_stop_and_moving_fixes_are_kept() -> None:
    short = [stop(n) for n in range(1, 5)]
    moving = [stop(n, lat=30.0 + n * 0.01, speed=50.0) for n in range(10, 20)]
    assert thin_stops(short + moving, min_run=6) == []


def test_stop_ends_when_the_vehicle_moves_away() -> None:
    fixes = (
        [stop(n) for n in range(1, 7)]
        + [stop(7, lat=30.01)]
        + [stop(n, lat=30.01) for n in range(8, 10)]
    )
    assert thin_stops(fixes, min_run=6) == [2, 4]


def test_stops_are_per_asset() -> None:
    fixes = [stop(n, "a" if n % 2 else "b") for n in range(1, 13)]
    assert thin_stops(fixes, min_run=6) == [3, 4, 7, 8]


def test_readings_lose_every_other_sample_per_point() -> None:
    readings = [(1, "p"), (2, "q"), (3, "p"), (4, "q"), (5, "p"), (6, "r")]
    assert thin_readings(readings) == [1, 2]


def test_single_reading_of_a_point_is_kept() -> None:
    assert thin_readings([(1, "p"), (2, "q")]) == []
